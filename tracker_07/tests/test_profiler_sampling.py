"""Profile mode with ``PROFILER_ENGINE=sampling`` through the demo app: saved, listed, opened,
downloaded, pruned and retained like ``.prof`` profiles; its console tree; nothing hidden.

(profiler.py's own tests are in test_profiler.py; this module covers what the sampling
engine adds to the same wiring.)
"""
import concurrent.futures
import json
import os
import re
from unittest import mock

from tracker_07.profiles import errors, files, index, listing, stats as profile_stats
from tracker_07.profiles import tick, unprofiled
from tracker_07.profiles.sampling import SampledProfile
from tracker_07.profiles.retention import FolderRetention
from tracker_07.tests.base import LiveServer, ProfiledAppTestCase, fetch

TREE_BLOCK = re.compile(
    r"-{80}\nPATH: '(?P<path>[^\n]*)'\nPROFILE: (?P<id>[^ \n]+)(?: [^\n]+)?\n(?:NOTE: [^\n]*\n)?"
    r"Sampled call tree: \d+ samples every 1 ms; [\d.]+ ms = 100%; paths under 1% left out\.\n"
    r" +ms +% +function \(file:line\), callees indented\n"
    r"(?P<rows>(?: +[\d.]+ +[\d.]+% +[^\n]+\n)*)\n-{80}\n\n")


def tree_blocks(text):
    """Split console output into whole call-tree reports, failing on anything else."""
    blocks = list(TREE_BLOCK.finditer(text))
    if "".join(block.group() for block in blocks) != text:
        raise AssertionError("console output is not a sequence of whole reports:\n" + text[:3000])
    return blocks


class SamplingModeTestCase(ProfiledAppTestCase):
    """The demo app in profile mode with the sampling engine."""

    settings = {"PROFILER_ENGINE": "sampling", "TRACKER_ENABLED": False}

    def saved(self):
        """The index records of the saved profiles."""
        return index.read_index(self.profile_dir)

    def test_saved_as_speedscope_json_and_indexed(self):
        self.assertEqual(self.client.get("/words/slow").status_code, 200)
        (record,) = self.saved()
        self.assertTrue(record["id"].endswith(files.SAMPLED_SUFFIX))
        self.assertEqual((record["engine"], record["interval_ms"]), ("sampling", 1.0))
        self.assertGreater(record["samples"], 10)
        self.assertEqual(record["view"][1:], [29, "words_slow"])
        self.assertTrue(record["view"][0].endswith(os.path.join("main", "views.py")))
        with open(os.path.join(self.profile_dir, record["id"]), encoding="utf-8") as file:
            data = json.load(file)
        self.assertEqual(data["profiles"][0]["type"], "sampled")
        stats = profile_stats.load_stats(os.path.join(self.profile_dir, record["id"]))
        names = {func[2] for func in stats.stats}
        self.assertIn("top_words_naive", names)
        self.assertNotIn("_run_app", names)  # cut at the middleware's call of the app
        self.assertAlmostEqual(record["total_time"], stats.total_tt, places=5)

    def test_the_console_tree_is_whole_with_ms_and_percent(self):
        app = self.make_app("profile", PROFILER_ENGINE="sampling", TRACKER_ENABLED=False)
        with LiveServer(app) as server:
            with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
                statuses = list(pool.map(lambda _: fetch(server.url + "/words/slow")[0],
                                         range(6)))
        self.assertEqual(statuses, [200] * 6)
        blocks = tree_blocks(self.report.getvalue())  # whole reports, never interleaved
        self.assertEqual(len(blocks), 6)
        self.assertEqual({block["id"] for block in blocks},
                         {record["id"] for record in self.saved()})
        rows = blocks[0]["rows"].splitlines()
        percents = [float(re.search(r"([\d.]+)%", row)[1]) for row in rows]
        self.assertTrue(all(percent >= 1.0 for percent in percents), rows)
        self.assertTrue([row for row in rows if "top_words_naive  (main/wordcount.py:" in row])
        self.assertIn(" wsgi_app  (", rows[0])  # Tracker's wrapper frames are left out
        self.assertFalse([row for row in rows if "capture.py" in row or "middleware.py" in row])

    def test_listed_opened_downloaded_and_exported(self):
        self.make_app("profile", PROFILER_ENGINE="sampling", TRACKER_ENABLED=False,
                      DASHBOARD_ENABLED=True)
        client = self.apps[-1].test_client()
        client.get("/words/slow")
        (record,) = self.saved()
        listed = client.get("/dashboard/api/profiles").get_json()
        self.assertEqual([item["id"] for item in listed["items"]], [record["id"]])
        self.assertEqual(listed["items"][0]["engine"], "sampling")
        self.assertEqual(client.get(f"/dashboard/profiles/{record['id']}").status_code, 200)
        page = client.get(f"/dashboard/api/profiles/{record['id']}").get_json()
        self.assertEqual(page["table"]["rows"][0]["name"], "list.count")  # the bottleneck
        download = client.get(f"/dashboard/profiles/{record['id']}/download")
        sent = download.data
        download.close()  # the file it sent
        with open(os.path.join(self.profile_dir, record["id"]), "rb") as file:
            self.assertEqual(sent, file.read())
        stem = record["id"][: -len(files.SAMPLED_SUFFIX)]
        export = client.get(f"/dashboard/profiles/{record['id']}/export/speedscope")
        self.assertIn(f'filename={stem}.speedscope.json', export.headers["Content-Disposition"])
        cli = self.apps[-1].test_cli_runner().invoke(args=["profiles", "list"])
        self.assertIn(record["id"], cli.output)
        merged = client.get("/dashboard/profiles/route?method=GET&path=/words/slow")
        self.assertEqual(merged.status_code, 200)

    def test_pruned_and_retained(self):
        for _ in range(3):
            self.client.get("/words/fast")
        self.assertEqual(len(self.saved()), 3)
        retention = FolderRetention(self.profile_dir, max_files=2)
        self.assertEqual(len(retention.apply()), 1)
        self.assertEqual(len(listing.catalog_records(self.profile_dir)), 2)
        result = self.runner.invoke(args=["profiles", "prune", "--keep", "0"])
        self.assertIn("Removed 2 profiles.", result.output)
        self.assertEqual(self.saved(), [])

    def test_merging_sampled_profiles_keeps_stacks_and_refuses_cprofile_ones(self):
        self.client.get("/words/fast")
        self.client.get("/words/fast")
        paths = [os.path.join(self.profile_dir, record["id"]) for record in self.saved()]
        merged = profile_stats.merge(paths)
        self.assertAlmostEqual(merged.total_tt, sum(
            profile_stats.load_stats(path).total_tt for path in paths))
        self.assertEqual(merged.interval, 0.001)
        cprofile_app = self.make_app("profile", TRACKER_ENABLED=False,
                                     PROFILER_DIR=self.profile_dir)
        cprofile_app.test_client().get("/words/fast")
        mixed = [os.path.join(self.profile_dir, name) for name in os.listdir(self.profile_dir)
                 if name.endswith((".prof", ".json"))]
        with self.assertRaisesRegex(errors.MixedEngines, "cannot merge 1 cProfile and 2 sampled"):
            profile_stats.merge(mixed)
        result = self.runner.invoke(args=["profiles", "merge", "--path", "/words/fast"])
        self.assertIn("Error: cannot merge 1 cProfile and 2 sampled", result.output)
        record = [r for r in self.saved() if r["id"].endswith(".prof")][0]
        self.assertEqual((record["engine"], record["view"][2]), ("cprofile", "words_fast"))
        # The route's "merge all" link adds up the newest profile's engine and says so.
        page = self.client.get("/dashboard/profiles/route?method=GET&path=/words/fast")
        self.assertEqual(page.status_code, 200)
        text = page.get_data(as_text=True)
        self.assertIn("1 profiles added together", text)
        self.assertRegex(text, r'id="other-engine">2 profile\(s\) of this route')
        self.assertIn("(cprofile)", text)
        merged_json = self.client.get("/dashboard/api/profiles/route?method=GET&path=/words/fast")
        self.assertEqual(merged_json.get_json()["record"]["other_engine"], 2)

    def test_a_missing_sampled_file_is_not_found(self):
        with self.assertRaises(errors.ProfileNotFound):
            profile_stats.load_stats(os.path.join(self.tmp, "gone.speedscope.json"))
        folder = os.path.join(self.tmp, "a-folder.speedscope.json")
        os.mkdir(folder)
        with self.assertRaisesRegex(errors.CorruptProfile, "not a sampled profile"):
            profile_stats.load_stats(folder)


class NothingHiddenTestCase(ProfiledAppTestCase):
    """Requests served unprofiled: one console line, counts in the folder, the JSON and CLI."""

    settings = {"TRACKER_ENABLED": False, "DASHBOARD_ENABLED": True}

    def test_a_busy_profiler_is_counted_and_said(self):
        middleware = self.app.extensions["tracker_profiler"]
        with mock.patch.object(middleware, "_start_profile", return_value=None):
            self.client.get("/words/fast")
            self.client.get("/words/fast")
            self.client.get("/index")
        lines = [line for line in self.report.getvalue().splitlines() if "NOT PROFILED" in line]
        self.assertEqual(lines[0], "NOT PROFILED: GET /words/fast: another request held the "
                                   "profiler (one cProfile per process on Python 3.12+); "
                                   "PROFILER_ENGINE=sampling profiles every request")
        self.assertEqual(len(lines), 3)
        self.assertEqual(index.unprofiled_counts(self.profile_dir),
                         {("GET", "/words/fast"): 2, ("GET", "/index"): 1})
        listed = self.client.get("/dashboard/api/profiles").get_json()
        self.assertEqual(listed["unprofiled"], [
            {"method": "GET", "path": "/index", "count": 1},
            {"method": "GET", "path": "/words/fast", "count": 2}])
        self.assertEqual(listed["unprofiled_total"], 3)
        output = self.runner.invoke(args=["profiles", "list"]).output
        self.assertIn("Not profiled: 3 request(s)", output)
        self.assertRegex(output, r"\n +2  GET /words/fast\n +1  GET /index\n")

    def test_a_sampler_that_cannot_start_is_counted_with_its_reason(self):
        app = self.make_app("profile", PROFILER_ENGINE="sampling", TRACKER_ENABLED=False)
        holder = SampledProfile(0.001, self.make_app.__code__)  # as by an outer app
        holder.enable()
        try:  # the test client serves the request in this thread
            self.assertEqual(app.test_client().get("/words/fast").status_code, 200)
        finally:
            holder.disable()
        reason = {"setstatprofile": "another profiler is running in this thread",
                  "sys.monitoring": "this thread is sampled already"}[tick.current().name]
        self.assertIn(f"NOT PROFILED: GET /words/fast: the profiler could not start ({reason})",
                      self.report.getvalue())
        self.assertEqual(index.unprofiled_counts(self.profile_dir), {("GET", "/words/fast"): 1})
        self.assertEqual(app.extensions["tracker_profiler"].counts["not_profiled"], 1)

    def test_a_count_that_cannot_be_written_is_a_warning(self):
        middleware = self.app.extensions["tracker_profiler"]
        with mock.patch.object(middleware, "_start_profile", return_value=None), \
                mock.patch.object(unprofiled, "note_unprofiled", side_effect=OSError("full")), \
                self.assertLogs("tracker_07.profiles.middleware", "WARNING") as logs:
            self.assertEqual(self.client.get("/index").status_code, 200)
        self.assertIn("Could not count an unprofiled request", logs.output[0])
