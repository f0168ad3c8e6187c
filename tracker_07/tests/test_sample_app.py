"""The sample app (a foreign Flask app for Tracker to attach to) passes its own suite,
with and without Tracker, and with Tracker every request of that suite is a row."""
import collections
import io
import os
import shutil
import tempfile
import unittest

from tracker_07 import Tracker
from tracker_07.tests.base import stop_tracking
from tracker_07.tests.sample_app import create_app, sample_tests
from tracker_07.tracking import reads
from tracker_07.tracking.filters import Filters


def run_suite(extensions=()):
    """Run the sample app's suite with ``extensions`` attached; return the result."""
    return unittest.TextTestRunner(stream=io.StringIO(), verbosity=2).run(
        sample_tests.suite(extensions))


class SampleAppTest(unittest.TestCase):
    """The suite itself stays green, so a failure with Tracker attached is Tracker's."""

    def test_its_suite_passes_on_the_bare_app(self):
        result = run_suite()
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
        self.assertEqual(result.testsRun, 8)

    def test_extensions_are_called_with_the_app_after_its_routes(self):
        seen = []
        app = create_app({"TESTING": True}, extensions=[
            lambda app: seen.append(("first", sorted(app.view_functions))),
            lambda app: seen.append(("second", app)),
        ])
        self.assertEqual(seen[0], ("first", ["notes.add", "notes.boom", "notes.index",
                                             "notes.note", "static"]))
        self.assertEqual(seen[1], ("second", app))

    def test_every_test_builds_its_own_app_with_the_extensions(self):
        apps = []
        result = run_suite([apps.append])
        self.assertTrue(result.wasSuccessful())
        self.assertEqual(len(apps), result.testsRun)
        self.assertEqual(len({id(app) for app in apps}), len(apps))



class TrackerOnTheSampleAppTest(unittest.TestCase):
    """Tracker attached with one call: the suite still passes and nothing goes unrecorded."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-sample-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.apps = []
        self.requests = collections.Counter()
        self.settings = {
            "TRACKER_DATABASE_URL": f"sqlite:///{self.tmp}/tracker.sqlite3",
            "PROFILER_ENABLED": True, "PROFILER_PRINT": False,
            "PROFILER_DIR": os.path.join(self.tmp, "profiles"),
        }

    def tearDown(self):
        for app in self.apps:
            stop_tracking(app)

    def attach(self, app):
        """Attach Tracker, then count what reaches the app from outside all of it."""
        tracker = Tracker(app, **self.settings)
        tracked = app.wsgi_app

        def counting(environ, start_response):
            self.requests[environ["REQUEST_METHOD"], environ["PATH_INFO"]] += 1
            return tracked(environ, start_response)

        app.wsgi_app = counting
        self.apps.append(app)
        return tracker

    def stored(self, app):
        """Every row of the shared store, as (method, endpoint, status)."""
        with app.extensions["tracker_tracking"].engine.connect() as conn:
            return [(row["method"], row["endpoint"], row["status"])
                    for row in reads.export_rows(conn, Filters())]

    def test_its_suite_passes_and_every_request_is_a_row(self):
        result = run_suite([self.attach])
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
        self.assertEqual(len(self.apps), result.testsRun)
        for app in self.apps:
            self.assertTrue(app.extensions["tracker"].flush(app))
        rows = self.stored(self.apps[0])
        self.assertEqual(len(rows), sum(self.requests.values()))
        self.assertGreaterEqual(len(rows), 12)
        self.assertEqual({status for _, _, status in rows} >= {200, 303, 400, 404, 500}, True)
        self.assertIn(("POST", "/notes", 303), rows)
        self.assertIn(("GET", "/notes/<int:note_id>", 200), rows)
        saved = [name for name in os.listdir(self.settings["PROFILER_DIR"])
                 if name.endswith(".prof")]
        self.assertEqual(len(saved), len(rows))

    def test_dashboard_profiles_and_both_command_groups_work_on_it(self):
        app = create_app({"TESTING": True, "PROPAGATE_EXCEPTIONS": False},
                         extensions=[self.attach])
        client = app.test_client()
        for path in ("/", "/notes/1", "/boom"):
            client.get(path)
        client.post("/notes", data={"text": "hello"})
        self.assertTrue(app.extensions["tracker"].flush())
        endpoints = client.get("/dashboard/api/endpoints").get_json()
        self.assertEqual({row["endpoint"] for row in endpoints["summary"]},
                         {"/", "/notes/<int:note_id>", "/boom", "/notes"})
        self.assertEqual(client.get("/dashboard/").status_code, 200)
        listed = client.get("/dashboard/api/profiles").get_json()
        self.assertEqual(listed["total"], 4)
        first = listed["items"][0]["id"]
        self.assertEqual(client.get(f"/dashboard/profiles/{first}").status_code, 200)
        runner = app.test_cli_runner()
        stats = runner.invoke(args=["tracker", "stats"])
        self.assertEqual(stats.exit_code, 0, stats.output)
        self.assertIn("/notes/<int:note_id>", stats.output)
        profiles = runner.invoke(args=["profiles", "list"])
        self.assertEqual(profiles.exit_code, 0, profiles.output)
        self.assertIn("4 of 4 profiles.", profiles.output)

if __name__ == "__main__":
    unittest.main()
