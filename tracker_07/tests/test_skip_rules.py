"""Tests that need Chromium or PostgreSQL skip loudly on a laptop and fail in CI."""
import io
import unittest
from unittest import mock

from tracker_07.tests import base, browser


class MissingDependencyActionTest(unittest.TestCase):
    """The decision itself, for every combination of present/missing and required or not."""

    def test_present_dependency_runs_whether_required_or_not(self):
        for required in ("", "0", "1"):
            self.assertEqual(base.missing_dependency_action(None, required), "run")

    def test_missing_dependency_is_skipped_unless_required(self):
        for required in ("", "0", " "):
            self.assertEqual(base.missing_dependency_action("gone", required), "skip")

    def test_missing_dependency_fails_when_required(self):
        for required in ("1", "yes", "true"):
            self.assertEqual(base.missing_dependency_action("gone", required), "fail")


@mock.patch.dict(base.SKIPPED_SUITES, clear=True)
@mock.patch.object(base.atexit, "register")
class NeedsDecoratorTest(unittest.TestCase):
    """What the decorator does to a test case, without uninstalling anything."""

    @staticmethod
    def run_case(decorator):
        """Decorate a one-test case, run it and return the result."""
        @decorator
        class Case(unittest.TestCase):
            """Stands for a browser or PostgreSQL test case."""

            def test_something(self):
                self.assertEqual(sum((1, 1)), 2)

        result = unittest.TestResult()
        unittest.defaultTestLoader.loadTestsFromTestCase(Case).run(result)
        return result

    def decorator(self, problem, required):
        """Build the decorator with TRACKER_REQUIRE_THING set to ``required``."""
        with mock.patch.dict("os.environ", {"TRACKER_REQUIRE_THING": required}):
            return base.needs("thing tests", problem, "TRACKER_REQUIRE_THING", "apt install it")

    def test_present_runs_the_tests(self, register):
        result = self.run_case(self.decorator(None, "1"))
        self.assertEqual((result.testsRun, result.skipped, result.errors), (1, [], []))
        register.assert_not_called()

    def test_missing_skips_loudly_and_names_the_suite_at_exit(self, register):
        result = self.run_case(self.decorator("Thing not found", ""))
        reason = "Thing not found: thing tests SKIPPED (apt install it)"
        self.assertEqual([why for _, why in result.skipped], [reason])
        register.assert_called_once_with(base.print_skipped_suites)
        stream = io.StringIO()
        base.print_skipped_suites(stream)
        self.assertEqual(stream.getvalue(), "SKIPPED for a missing system dependency: "
                                            "thing tests (Thing not found)\n")

    def test_missing_but_required_fails(self, register):
        result = self.run_case(self.decorator("Thing not found", "1"))
        self.assertEqual(result.skipped, [])
        self.assertEqual(len(result.errors), 1)
        error = result.errors[0][1]
        self.assertIn("Thing not found, and TRACKER_REQUIRE_THING requires the thing tests",
                      error)
        self.assertFalse(result.wasSuccessful())
        register.assert_not_called()


class ChromiumProblemTest(unittest.TestCase):
    """The browser tests' check names what is missing."""

    def test_names_each_missing_program(self):
        with mock.patch.object(browser, "CHROMIUM", "/nowhere/chromium"), \
                mock.patch.object(browser, "CHROMEDRIVER", "/nowhere/chromedriver"):
            self.assertEqual(browser.chromium_problem(), "Chromium and chromedriver not found")
        with mock.patch.object(browser, "CHROMEDRIVER", "/nowhere/chromedriver"), \
                mock.patch.object(browser.os.path, "exists", lambda path: "nowhere" not in path):
            self.assertEqual(browser.chromium_problem(), "chromedriver not found")
        with mock.patch.object(browser.os.path, "exists", lambda path: True):
            self.assertIsNone(browser.chromium_problem())


if __name__ == "__main__":
    unittest.main()
