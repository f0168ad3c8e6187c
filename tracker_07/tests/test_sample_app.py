"""The sample app (a foreign Flask app for Tracker to attach to) passes its own suite."""
import io
import unittest

from tracker_07.tests.sample_app import create_app, sample_tests


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


if __name__ == "__main__":
    unittest.main()
