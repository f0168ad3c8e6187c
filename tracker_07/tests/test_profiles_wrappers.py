"""Tests that Tracker's own wrapper frames are left out of every view of a profile."""
import json
import os
import pstats
import unittest

from tracker_07.profiles import analysis, paths, sampled, wrappers
from tracker_07.tests.test_dashboard_profiles import DashboardTestCase

PROFILER = ("/srv/venv/site-packages/tracker_07/profiles/middleware.py", 169, "_profiled_call")
CAPTURE = ("/srv/venv/site-packages/tracker_07/sql/capture.py", 182, "__call__")
TRACKING = ("C:\\venv\\tracker_07\\tracking\\middleware.py", 174, "__call__")
FLASK = ("/srv/venv/site-packages/flask/app.py", 1479, "wsgi_app")
VIEW = ("/srv/app/views.py", 3, "home")


class IsWrapperTestCase(unittest.TestCase):
    """Wrappers are named by Tracker's file and function, never by a name alone."""

    def test_names(self):
        for func in (PROFILER, CAPTURE, TRACKING,
                     ("tracker_07/toolbar/middleware.py", 93, "__call__"),
                     ("/x/tracker_07/tracking/middleware.py", 131, "__iter__"),
                     ("C:\\x\\tracker_07\\sql\\capture.py", 182, "__call__")):
            with self.subTest(func):
                self.assertTrue(wrappers.is_wrapper(func))
        for func in (("/x/tracker_07/main/views.py", 1, "__call__"),
                     ("/x/my_tracker_07/sql/capture.py", 1, "__call__"),
                     ("/x/tracker_07/sql/capture.py", 118, "_before_cursor_execute"),
                     ("C:\\x\\tracker_07\\sql\\capture.py", 118, "_before_cursor_execute"),
                     FLASK, VIEW):
            with self.subTest(func):
                self.assertFalse(wrappers.is_wrapper(func))

    def test_sampled_stacks_lose_them(self):
        stats = sampled.stats_from_stacks(
            [((PROFILER, CAPTURE, TRACKING, FLASK, VIEW), 0.004),
             ((PROFILER, CAPTURE, TRACKING, FLASK), 0.001), ((PROFILER,), 0.0005)],
            interval=0.002)
        kept = wrappers.without_wrappers(stats)
        self.assertEqual(kept.stacks, [((FLASK, VIEW), 0.004), ((FLASK,), 0.001)])
        self.assertEqual(kept.interval, 0.002)
        self.assertEqual(set(kept.stats), {FLASK, VIEW})
        self.assertEqual(len(stats.stacks), 3)  # the loaded (cached) profile is not changed

    def test_server_frames_above_the_outermost_wrapper_go_too(self):
        thread = ("/usr/lib/python3.12/threading.py", 1010, "_bootstrap")
        serve = ("/srv/venv/site-packages/werkzeug/serving.py", 331, "run_wsgi")
        stats = sampled.stats_from_stacks(
            [((thread, serve, TRACKING, PROFILER, CAPTURE, FLASK, VIEW), 0.004),
             ((thread, serve), 0.001)], interval=0.001)
        self.assertEqual(wrappers.without_wrappers(stats).stacks,
                         [((FLASK, VIEW), 0.004), ((thread, serve), 0.001)])

    def test_a_profile_without_wrappers_is_returned_as_it_is(self):
        stats = sampled.stats_from_stacks([((FLASK, VIEW), 0.001)], interval=0.001)
        self.assertIs(wrappers.without_wrappers(stats), stats)


class RealChainTestCase(DashboardTestCase):
    """A profile recorded through the real middleware chain shows the app, not Tracker."""

    def setUp(self):
        super().setUp()
        (self.record,) = self.save_profiles("/words/slow")
        self.url = "/dashboard/profiles/" + self.record["id"]
        self.raw = pstats.Stats(os.path.join(self.profile_dir, self.record["id"]))

    def assert_no_wrapper(self, labels):
        """Check that labels name the app's functions and none of Tracker's wrappers."""
        labels = list(labels)
        self.assertTrue(any("(top_words_naive)" in label for label in labels), labels[:5])
        self.assertTrue(any("(words_slow)" in label for label in labels))
        for label in labels:
            self.assertNotRegex(label, r"tracker_07[/\\](profiles|tracking|toolbar)[/\\]middleware")
            self.assertNotIn("capture.py:182(__call__)", label)

    def test_the_recorded_profile_has_them(self):
        """The views below can only fail if the raw profile holds wrapper frames."""
        self.assertTrue(any(map(wrappers.is_wrapper, self.raw.stats)))

    def test_table_icicle_and_json(self):
        data = self.client.get(f"/dashboard/api/profiles/{self.record['id']}?limit=all").get_json()
        self.assert_no_wrapper(row["label"] for row in data["table"]["rows"])
        labels = [node["label"] for node, _ in analysis.iter_tree(data["flame"]["root"])]
        self.assert_no_wrapper(labels)
        self.assertTrue(labels[1].endswith("flask/app.py:1479(wsgi_app)")
                        or "(wsgi_app)" in labels[1], labels[1])
        graph = self.page(self.url).split('id="flame-graph"', 1)[1].split("</svg>", 1)[0]
        self.assertNotIn("middleware.py", graph)
        self.assertIn("(top_words_naive)", graph)

    def test_totals_of_the_app_stay_right(self):
        kept = wrappers.without_wrappers(self.raw)
        for func, entry in kept.stats.items():
            self.assertEqual(entry[:4], self.raw.stats[func][:4])
        wsgi_app = next(func for func in kept.stats if func[2] == "wsgi_app")
        self.assertEqual(kept.stats[wsgi_app][4], {})  # a root now
        tree = paths.flame_tree(kept, min_fraction=0.0)
        self.assertEqual(tree["root"]["children"][0]["label"],
                         analysis.function_label(wsgi_app))
        self.assertAlmostEqual(tree["root"]["children"][0]["time"], self.raw.stats[wsgi_app][3])

    def test_exports(self):
        collapsed = self.client.get(self.url + "/export/collapsed").get_data(as_text=True)
        self.assert_no_wrapper(frame for line in collapsed.splitlines()
                               for frame in line.rsplit(" ", 1)[0].split(";"))
        document = json.loads(self.client.get(self.url + "/export/speedscope").data)
        self.assert_no_wrapper(f"{frame.get('file', '~')}:{frame.get('line', 0)}({frame['name']})"
                               for frame in document["shared"]["frames"])

    def test_cli_show_and_export(self):
        shown = self.runner.invoke(args=["profiles", "show", self.record["id"], "--limit", "500"])
        self.assertEqual(shown.exit_code, 0, shown.output)
        self.assertIn("(top_words_naive)", shown.output)
        self.assertNotIn("middleware.py", shown.output)
        exported = self.runner.invoke(args=["profiles", "export", self.record["id"]])
        self.assertIn("(words_slow)", exported.output)
        self.assertNotIn("middleware.py", exported.output)


if __name__ == "__main__":
    unittest.main()
