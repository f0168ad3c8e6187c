"""Version checks and the facts shown on the index page."""
import platform
import unittest
from importlib import metadata

from tracker_07 import app_utils
from tracker_07.app_utils import SystemCheckError, check_system, version_tuple


class VersionTupleTestCase(unittest.TestCase):
    """Version strings compare as numbers, not text."""

    def test_release_and_pre_release_versions(self):
        self.assertEqual(version_tuple("3.1.3"), (3, 1, 3))
        self.assertEqual(version_tuple("3.2.0rc1"), (3, 2, 0))
        self.assertEqual(version_tuple("2.3.3.post1"), (2, 3, 3))
        self.assertGreater(version_tuple("10.0"), version_tuple("9.9"))

    def test_text_stops_at_the_first_non_number(self):
        self.assertEqual(version_tuple("3.x"), (3,))
        self.assertEqual(version_tuple("dev"), ())


class CheckSystemTestCase(unittest.TestCase):
    """Too old an interpreter or Flask is a clear error naming both versions."""

    def test_this_machine_passes(self):
        self.assertIsNone(check_system())

    def test_old_python(self):
        with self.assertRaisesRegex(SystemCheckError, r"Python 3.10 or newer .*, this is 3.8"):
            check_system(python=(3, 8), flask="3.1.0")

    def test_old_flask(self):
        with self.assertRaisesRegex(SystemCheckError, r"Flask 3.0 or newer .* 2.3.3 is installed"):
            check_system(python=(3, 12), flask="2.3.3")

    def test_both_problems_are_reported_together(self):
        with self.assertRaises(SystemCheckError) as caught:
            check_system(python=(3, 9), flask="1.1.4")
        self.assertIn("Python", str(caught.exception))
        self.assertIn("Flask", str(caught.exception))


class RuntimeFactsTestCase(unittest.TestCase):
    """The index page's facts come from the running interpreter and packages."""

    def test_facts(self):
        facts = app_utils.runtime_facts("profile")
        self.assertEqual(facts["config_name"], "profile")
        self.assertEqual(facts["python_version"], platform.python_version())
        self.assertEqual(facts["flask_version"], metadata.version("flask"))


if __name__ == "__main__":
    unittest.main()
