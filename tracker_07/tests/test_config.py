"""Every setting is checked, and a bad one is an error that says what is allowed."""
import unittest

from flask import Flask

from tracker_07 import config
from tracker_07.config import ConfigError


def checked(**settings):
    """Run ``config.finalize`` on an app with the base settings plus ``settings``."""
    app = Flask(__name__)
    app.config.from_object(config.TestingConfig)
    app.config.update(settings)
    config.finalize(app)
    return app.config


class SettingChecksTestCase(unittest.TestCase):
    """Good values are normalised, bad values rejected with the setting's name."""

    def test_defaults_pass_unchanged(self):
        settings = checked()
        self.assertEqual(settings["PROFILER_RESTRICTIONS"], (30,))
        self.assertEqual(settings["PROFILER_SORT_BY"], ("tottime", "calls"))
        self.assertEqual(settings["PROFILER_IGNORE"], (r"^/static/", r"^/favicon\.ico$"))

    def test_single_values_become_tuples(self):
        settings = checked(PROFILER_RESTRICTIONS=10, PROFILER_SORT_BY="cumulative",
                           PROFILER_IGNORE="^/health$")
        self.assertEqual(settings["PROFILER_RESTRICTIONS"], (10,))
        self.assertEqual(settings["PROFILER_SORT_BY"], ("cumulative",))
        self.assertEqual(settings["PROFILER_IGNORE"], ("^/health$",))

    def test_mixed_restrictions(self):
        self.assertEqual(checked(PROFILER_RESTRICTIONS=[0.5, "flask", 20])["PROFILER_RESTRICTIONS"],
                         (0.5, "flask", 20))

    def test_bad_values(self):
        cases = {
            "PROFILER_RESTRICTIONS": [-1, 1.5, True, [None], "(unclosed"],
            "PROFILER_SORT_BY": ["speed", [], ["tottime", 3]],
            "PROFILER_IGNORE": [3, ["[bad"]],
            "PROFILER_DIR": [42],
            "PROFILER_MIN_MS": [-1, "10", True],
            "PROFILER_ENABLED": ["yes", 1],
            "PROFILER_PRINT": [None],
            "PROFILER_MAX_FILES": [-1, 2.5, "10"],
            "PROFILER_RETENTION_DAYS": [-0.5, None],
            "DASHBOARD_PREFIX": ["dashboard", "/a/", "/a b", 3],
            "DASHBOARD_USERNAME": ["", 5],
            "TRACKER_IGNORE": [["("]],
        }
        for key, values in cases.items():
            for value in values:
                with self.subTest(key=key, value=value):
                    with self.assertRaises(ConfigError) as caught:
                        checked(**{key: value})
                    self.assertIn(key, str(caught.exception))

    def test_sort_error_lists_the_allowed_keys(self):
        with self.assertRaisesRegex(ConfigError, "cumulative.*tottime"):
            checked(PROFILER_SORT_BY="speed")

    def test_regex_error_explains_itself(self):
        with self.assertRaisesRegex(ConfigError, "is not a regular expression"):
            checked(PROFILER_IGNORE="[bad")

    def test_profile_dir_accepts_none_and_empty(self):
        self.assertIsNone(checked(PROFILER_DIR=None)["PROFILER_DIR"])
        self.assertEqual(checked(PROFILER_DIR="")["PROFILER_DIR"], "")


if __name__ == "__main__":
    unittest.main()
