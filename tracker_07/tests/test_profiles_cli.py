"""The ``flask profiles`` commands, run through Flask's CLI test runner on real profiles."""
import json
import os
import pstats
import unittest
from unittest import mock

from flask import Flask

from tracker_07 import create_app
from tracker_07.profiles import analysis, cli, index
from tracker_07.profiles.index import append_index, read_index
from tracker_07.tests import profile_fixtures as fx


def make_app(folder):
    """Build a minimal app whose profile folder is ``folder``."""
    app = Flask(__name__)
    app.config["PROFILER_DIR"] = folder
    cli.init_app(app)
    return app


class CliTestCase(fx.TempFolderTestCase):
    """Runs ``flask profiles ...`` against a temporary folder."""

    def setUp(self):
        """Make the app and its runner."""
        super().setUp()
        self.app = make_app(self.folder)
        self.runner = self.app.test_cli_runner()

    def run_cli(self, *args):
        """Invoke ``flask profiles *args`` and return the result."""
        return self.runner.invoke(args=["profiles", *args])

    def assert_one_line_error(self, result, *fragments):
        """Check a failed command: exit 1, one ``Error:`` line naming the problem, no traceback."""
        self.assertEqual(result.exit_code, 1, result.output)
        lines = result.output.strip().splitlines()
        self.assertEqual(len(lines), 1, result.output)
        self.assertTrue(lines[0].startswith("Error: "), lines[0])
        self.assertNotIn("Traceback", result.output)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])


class ListCommandTest(CliTestCase):
    """``flask profiles list``."""

    def test_lists_profiles_newest_first(self):
        """Each profile is a line with its path, status and id; the newest comes first."""
        old = fx.write_profile(self.folder, path="/old", start=1_700_000_000.0)
        new = fx.write_profile(self.folder, path="/new", status=503, start=1_700_000_100.0)
        result = self.run_cli("list")
        self.assertEqual(result.exit_code, 0, result.output)
        lines = result.output.splitlines()
        self.assertIn("ID", lines[0])
        self.assertIn(new, lines[1])
        self.assertIn("503", lines[1])
        self.assertIn(old, lines[2])
        self.assertIn("2 of 2 profiles.", lines[-1])

    def test_sort_filters_and_limit(self):
        """Options reach the listing: ascending order, path, method, status, ms and limit."""
        fx.write_profile(self.folder, path="/old", start=1_700_000_000.0)
        fx.write_profile(self.folder, path="/new", method="POST", start=1_700_000_100.0)
        fx.write_raw(self.folder, fx.fake_name(slug="bare", elapsed=900), {})
        asc = self.run_cli("list", "--sort", "time", "--asc").output.splitlines()
        self.assertIn("/bare", asc[1])
        self.assertIn("/new", asc[3])
        self.assertIn("/new", self.run_cli("list", "--method", "post").output)
        self.assertNotIn("/old", self.run_cli("list", "--path", "NEW").output)
        self.assertIn("No profiles", self.run_cli("list", "--status", 404).output)
        only_slow = self.run_cli("list", "--min-ms", "800").output
        self.assertIn("/bare", only_slow)
        self.assertIn("1 of 1", only_slow)
        self.assertIn("1 of 3", self.run_cli("list", "--limit", "1").output)

    def test_unsafe_path_is_escaped_and_long_path_cut(self):
        """Control characters in a request path cannot reach the terminal; long paths are cut."""
        fx.write_profile(self.folder, path="/x\x1b[2J" + "y" * 100)
        output = self.run_cli("list").output
        self.assertNotIn("\x1b", output)
        self.assertIn("\\x1b[2J", output)
        self.assertIn("...", output)

    def test_empty_folder(self):
        """An empty folder says so, and how to fill it."""
        result = self.run_cli("list")
        self.assertEqual(result.exit_code, 0)
        self.assertIn("No profiles in", result.output)
        self.assertIn("profile mode is off", result.output)
        self.assertIn("--app \"tracker_07:create_app('profile')\"", result.output)
        self.app.config["PROFILER_ENABLED"] = True
        self.assertIn("yet: profile mode saves one per request there",
                      self.run_cli("list").output)
        self.assertEqual(self.run_cli("list", "--method", "POST").output.strip(),
                         f"No profiles in {self.folder}.")

    def test_development_lists_what_profile_mode_saved(self):
        """The development app reads the profiles the profile app saved in the instance folder."""
        saving = create_app("profile", TRACKER_ENABLED=False, PROFILER_PRINT=False,
                            PROFILER_DIR=self.folder)
        saving.test_client().get("/words/fast").close()
        reading = create_app("development", TRACKER_ENABLED=False, PROFILER_DIR=self.folder)
        result = reading.test_cli_runner().invoke(args=["profiles", "list"])
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("/words/fast", result.output)
        self.assertIn("1 of 1 profiles.", result.output)

    def test_missing_setting(self):
        """Without PROFILER_DIR every command fails with one clear line."""
        self.app.config["PROFILER_DIR"] = ""
        self.assert_one_line_error(self.run_cli("list"), "PROFILER_DIR")

    def test_unknown_values_show_as_dashes(self):
        """Fields the index does not know are shown as '-' or '?'."""
        line = cli.list_line(
            {"id": "x.prof", "time": None, "method": None, "path": None, "status": None,
             "elapsed_ms": None, "calls": None, "overlapped": None}
        )
        self.assertTrue(line.startswith("-"))
        self.assertIn("?", line)
        self.assertTrue(line.endswith("x.prof"))

    def test_routes_summary(self):
        """--routes prints count, median, p95, slowest and not profiled per route."""
        self.assertIn("No profiles in", self.run_cli("list", "--routes").output)
        for number, elapsed in enumerate((4.0, 1.0, 2.0, 30.0)):
            name = fx.fake_name(slug="r", seq=number)
            fx.write_raw(self.folder, name, {})
            append_index(self.folder, fx.index_entry(name, path="/r", elapsed_ms=elapsed))
        other = fx.fake_name(method="POST", slug="p", seq=9)
        fx.write_raw(self.folder, other, {})
        append_index(self.folder, fx.index_entry(other, method="POST", path="/p", elapsed_ms=7.5))
        with mock.patch.object(index, "unprofiled_counts", return_value={("GET", "/r"): 5}):
            result = self.run_cli("list", "--routes")
        self.assertEqual(result.exit_code, 0, result.output)
        lines = result.output.splitlines()
        self.assertEqual(lines[0].split(), ["METHOD", "COUNT", "MEDIAN", "P95", "MAX", "UNPROF",
                                            "ROUTE"])
        self.assertEqual(lines[1].split(), ["GET", "4", "3.0", "30.0", "30.0", "5", "/r"])
        self.assertEqual(lines[2].split(), ["POST", "1", "7.5", "7.5", "7.5", "0", "/p"])
        self.assertEqual(lines[3], "2 of 2 routes, most time first.")
        only_post = self.run_cli("list", "--routes", "--method", "post", "--limit", "1")
        self.assertEqual(only_post.output.splitlines()[1:],
                         ["POST         1      7.5      7.5      7.5      0  /p",
                          "1 of 1 routes, most time first."])
        self.assertEqual(self.run_cli("list", "--routes", "--path", "nothing").output,
                         f"No routes in {self.folder}.\n")

    def test_bad_sort_is_a_usage_error(self):
        """A sort key outside the list is refused by click."""
        self.assertEqual(self.run_cli("list", "--sort", "__class__").exit_code, 2)


class ShowCommandTest(CliTestCase):
    """``flask profiles show``."""

    def setUp(self):
        """Save one profile."""
        super().setUp()
        self.profile_id = fx.write_profile(self.folder, path="/work?q=<script>")

    def test_report_looks_like_werkzeug(self):
        """Dashes, the PATH line, pstats' header and default order, then dashes again."""
        result = self.run_cli("show", self.profile_id)
        self.assertEqual(result.exit_code, 0, result.output)
        lines = result.output.splitlines()
        self.assertEqual(lines[0], "-" * 80)
        self.assertEqual(lines[1], "PATH: '/work?q=<script>'")
        stats = pstats.Stats(os.path.join(self.folder, self.profile_id))
        self.assertIn(f"{stats.total_calls} function calls", result.output)
        self.assertIn("Ordered by: internal time, call count", result.output)
        self.assertEqual(lines[-2:], ["-" * 80, ""])
        self.assertIn("(shared)", result.output)

    def test_sort_limit_and_filter(self):
        """Options reach pstats: order, a limit and a case-insensitive text filter."""
        result = self.run_cli("show", self.profile_id, "--sort", "cumulative", "--limit", "3")
        self.assertIn("Ordered by: cumulative time", result.output)
        self.assertIn("due to restriction <3>", result.output)
        filtered = self.run_cli("show", self.profile_id, "--filter", "(SHARED)").output
        self.assertIn("(shared)", filtered)
        self.assertNotIn("(countdown)", filtered)

    def test_unique_prefix_and_outside_path(self):
        """An id prefix, or the path of a file elsewhere, also names a profile."""
        self.assertEqual(self.run_cli("show", self.profile_id[:12]).exit_code, 0)
        outside = fx.TempFolderTestCase("setUp")
        outside.setUp()
        self.addCleanup(outside.doCleanups)
        path = fx.write_raw(outside.folder, "theirs.prof", fx.synthetic_stats())
        result = self.run_cli("show", path)
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("PATH: 'theirs.prof'", result.output)

    def test_unknown_and_ambiguous_ids(self):
        """A missing id, an empty id or an ambiguous prefix is a one-line error."""
        self.assert_one_line_error(self.run_cli("show", "nope"), "no profile 'nope'")
        self.assert_one_line_error(self.run_cli("show", ""), "no profile ''")
        fx.write_profile(self.folder)
        self.assert_one_line_error(self.run_cli("show", "GET."), "matches 2 profiles")

    def test_corrupt_file(self):
        """A corrupt file is a one-line error naming it."""
        name = fx.fake_name(seq=77)
        fx.write_raw(self.folder, name, b"\x00garbage")
        self.assert_one_line_error(self.run_cli("show", name), name, "not pstats data")

    def test_help(self):
        """Every command explains itself and its options."""
        for command in ("list", "show", "compare", "export", "prune", "merge"):
            result = self.run_cli(command, "--help")
            self.assertEqual(result.exit_code, 0, command)
            self.assertIn("--help", result.output)
        self.assertIn("compare", self.run_cli("--help").output)


class CompareExportTest(CliTestCase):
    """``flask profiles compare`` and ``flask profiles export``."""

    def setUp(self):
        """Save a fast and a slow profile of one route."""
        super().setUp()
        self.fast = fx.write_profile(self.folder, work=2000, start=1_700_000_000.0)
        self.slow = fx.write_profile(self.folder, work=200_000, start=1_700_000_100.0)

    def test_compare_shows_the_regression_first(self):
        """The slowed function comes first, marked regressed; --limit cuts the rest."""
        result = self.run_cli("compare", self.fast, self.slow, "--limit", "1")
        self.assertEqual(result.exit_code, 0, result.output)
        lines = result.output.splitlines()
        self.assertTrue(lines[0].startswith("before: "))
        self.assertTrue(lines[2].startswith("regressed"))
        self.assertIn("(shared)", lines[2])
        self.assertRegex(lines[-1], r"^\.\.\. \d+ more functions\.$")

    def test_compare_cumtime_and_only_one_side(self):
        """Functions present on one side are new or gone; all rows fit under a big limit."""
        other = fx.write_raw(self.folder, "other.prof", fx.synthetic_stats())
        result = self.run_cli("compare", self.fast, other, "--key", "cumtime", "--limit", "100")
        self.assertEqual(result.exit_code, 0, result.output)
        statuses = {line.split()[-1]: line.split()[0] for line in result.output.splitlines()[2:]}
        self.assertEqual(statuses["app.py:1(main)"], "new")  # only in other.prof, the after side
        self.assertEqual(statuses["x.py:1(deeper)"], "new")
        workload = f":{fx.workload.__code__.co_firstlineno}(workload)"
        self.assertTrue(any(label.endswith(workload) and status == "gone"
                            for label, status in statuses.items()), result.output)
        self.assertNotIn("slower", result.output)
        self.assertNotRegex(result.output, r"(?m)^(regressed|improved) .*(main|workload)\)$")
        self.assertNotIn("more functions", result.output)

    def test_compare_missing(self):
        """A missing side is a one-line error."""
        result = self.run_cli("compare", self.fast, "missing.prof")
        self.assert_one_line_error(result, "missing.prof")

    def test_export_collapsed(self):
        """Collapsed stacks go to stdout by default, one stack per line."""
        result = self.run_cli("export", self.slow)
        self.assertEqual(result.exit_code, 0, result.output)
        stats = pstats.Stats(os.path.join(self.folder, self.slow))
        self.assertEqual(result.output.splitlines(), analysis.collapsed_stacks(stats))

    def test_export_speedscope_to_file(self):
        """The speedscope export is valid JSON named after the profile."""
        target = os.path.join(self.folder, "out.speedscope.json")
        result = self.run_cli("export", self.slow, "--format", "speedscope", "--output", target)
        self.assertEqual(result.exit_code, 0, result.output)
        with open(target, encoding="utf-8") as file:
            document = json.load(file)
        self.assertEqual(document["name"], self.slow)
        self.assertEqual(document["profiles"][0]["type"], "sampled")

    def test_export_prof_copies_bytes(self):
        """The prof export is the file, byte for byte, to a file or to stdout."""
        with open(os.path.join(self.folder, self.fast), "rb") as file:
            original = file.read()
        target = os.path.join(self.folder, "copy.bin")
        self.run_cli("export", self.fast, "--format", "prof", "--output", target)
        with open(target, "rb") as file:
            self.assertEqual(file.read(), original)
        to_stdout = self.run_cli("export", self.fast, "--format", "prof")
        self.assertEqual(to_stdout.stdout_bytes, original)

    def test_export_corrupt(self):
        """A corrupt profile is not exported."""
        fx.write_raw(self.folder, "bad.prof", b"")
        self.assert_one_line_error(self.run_cli("export", "bad.prof"), "bad.prof")


class FolderIsAFileTest(CliTestCase):
    """A file where PROFILER_DIR should be is a one-line error, not a traceback."""

    def test_list_says_the_folder_is_a_file(self):
        folder = fx.write_raw(self.folder, "plain-file", b"x")
        runner = make_app(folder).test_cli_runner()
        for args in (["list"], ["prune", "--keep", "1"], ["merge", "--path", "/r"]):
            with self.subTest(args=args):
                result = runner.invoke(args=["profiles", *args])
                self.assert_one_line_error(result, f"PROFILER_DIR {folder} is not a folder.")


class PruneMergeTest(CliTestCase):
    """``flask profiles prune`` and ``flask profiles merge``."""

    def setUp(self):
        """Save three profiles of /r, oldest first."""
        super().setUp()
        self.ids = [
            fx.write_profile(self.folder, path="/r", start=1_700_000_000.0 + second)
            for second in range(3)
        ]

    def test_prune_needs_a_criterion(self):
        """Without --keep or --older-than prune is a usage error and removes nothing."""
        result = self.run_cli("prune")
        self.assertEqual(result.exit_code, 2)
        self.assertIn("--keep", result.output)
        self.assertEqual(len(read_index(self.folder)), 3)

    def test_prune_refuses_odd_numbers(self):
        """Superscript digits, NaN and 400 nines are usage errors that remove nothing."""
        for option in ("--keep", "--older-than"):
            for value in ("²", "9" * 400, "nan", "-1"):
                with self.subTest(option=option, value=value):
                    result = self.run_cli("prune", option, value)
                    self.assertEqual(result.exit_code, 2, result.output)
                    self.assertIn(f"Invalid value for '{option}'", result.output)
                    self.assertNotIn("Traceback", result.output)
        self.assertEqual(len(read_index(self.folder)), 3)
        self.assertEqual(len(os.listdir(self.folder)), 4)

    def test_prune_keep(self):
        """--keep 1 removes the two oldest and says which."""
        result = self.run_cli("prune", "--keep", "1")
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("Removed 2 profiles.", result.output)
        for profile_id in self.ids[:2]:
            self.assertIn(profile_id, result.output)
            self.assertFalse(os.path.exists(os.path.join(self.folder, profile_id)))
        self.assertEqual([r["id"] for r in read_index(self.folder)], self.ids[2:])

    def test_prune_dry_run_and_age(self):
        """A dry run lists what --older-than would remove and removes nothing."""
        result = self.run_cli("prune", "--older-than", "1", "--dry-run")
        self.assertIn("Would remove 3 profiles.", result.output)
        self.assertEqual(len(os.listdir(self.folder)), 4)
        keep_two = self.run_cli("prune", "--keep", "2", "--dry-run")
        self.assertIn("Would remove 1 profile.", keep_two.output)

    def test_merge_route(self):
        """Merging a route adds its profiles' calls and prints one report."""
        result = self.run_cli("merge", "--path", "/r", "--limit", "5")
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("MERGED: 3 profiles of GET '/r'", result.output)
        parts = [pstats.Stats(os.path.join(self.folder, i)) for i in self.ids]
        self.assertIn(f"{sum(p.total_calls for p in parts)} function calls", result.output)

    def test_merge_errors(self):
        """An unknown route or a corrupt member is a one-line error."""
        self.assert_one_line_error(self.run_cli("merge", "--path", "/none"), "no profiles of GET")
        name = fx.fake_name(slug="r", seq=5)
        fx.write_raw(self.folder, name, b"junk")
        append_index(self.folder, dict(fx.index_record(name, {}, "GET", "/r", 200, 1.0)))
        self.assert_one_line_error(self.run_cli("merge", "--path", "/r"), name)


if __name__ == "__main__":
    unittest.main()
