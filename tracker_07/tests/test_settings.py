"""One owner for every setting: each has a default and a check, with one message per problem."""
import os
import unittest

import click
from flask import Flask
from flask.testing import FlaskCliRunner

from tracker_07 import Tracker, create_app, settings
from tracker_07.config import ConfigError
from tracker_07.tracking.extension import Tracking


def checked(**values):
    """Apply Tracker's settings to a plain app that set ``values``; return its config."""
    app = Flask(__name__)
    app.config.update(values)
    return settings.apply(app)


def create_app_config(name):
    """The settings of a demo configuration, checked (without building the app)."""
    from tracker_07.config import get_config  # pylint: disable=import-outside-toplevel
    app = Flask(__name__)
    app.config.from_object(get_config(name))
    return settings.apply(app)


class SettingChecksTestCase(unittest.TestCase):
    """Good values are normalised, bad values rejected with the setting's name."""

    def test_defaults_pass_unchanged(self):
        config = checked()
        self.assertEqual(config["PROFILER_RESTRICTIONS"], (30,))
        self.assertEqual(config["PROFILER_SORT_BY"], ("tottime", "calls"))
        self.assertEqual(config["PROFILER_IGNORE"], (r"^/static/", r"^/favicon\.ico$"))
        self.assertEqual((config["TRACKER_SQL_ENABLED"], config["TRACKER_SQL_PARAMS"],
                          config["TRACKER_SLOW_QUERY_MS"], config["TRACKER_N_PLUS_ONE_MIN"],
                          config["TRACKER_SQL_MAX_QUERIES"]), (True, False, 100, 5, 10_000))

    def test_single_values_become_tuples(self):
        config = checked(PROFILER_RESTRICTIONS=10, PROFILER_SORT_BY="cumulative",
                         PROFILER_IGNORE="^/health$")
        self.assertEqual(config["PROFILER_RESTRICTIONS"], (10,))
        self.assertEqual(config["PROFILER_SORT_BY"], ("cumulative",))
        self.assertEqual(config["PROFILER_IGNORE"], ("^/health$",))

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
            "PROFILER_ENGINE": ["pyinstrument", "", None, 1],
            "PROFILER_INTERVAL_MS": [0, 0.05, 1001, "1", True, float("nan"), None],
            "DASHBOARD_PREFIX": ["dashboard", "/a/", "/a b", 3],
            "DASHBOARD_USERNAME": ["", 5],
            "TRACKER_IGNORE": [["("]],
            "TRACKER_SAMPLE_RATE": [1.5, -0.1, float("nan"), "all"],
            "TRACKER_DATABASE_URL": [5, "", "no-scheme", "mysql://x/y"],
            "TRACKER_MAX_ROWS": [True, 1.5],
            "TRACKER_SERVER_TIMING": ["yes", 1, "ALL"],
            "TOOLBAR_ENABLED": ["true", None],
            "TOOLBAR_TOP_FUNCTIONS": [0, 51, 2.5],
            "TRACKER_SQL_ENABLED": ["on"],
            "TRACKER_SQL_PARAMS": [1],
            "TRACKER_SLOW_QUERY_MS": [-1, "100"],
            "TRACKER_N_PLUS_ONE_MIN": [1, 2.5],
            "TRACKER_SQL_MAX_QUERIES": [-1, None],
        }
        for key, values in cases.items():
            for value in values:
                with self.subTest(key=key, value=value):
                    with self.assertRaises(ConfigError) as caught:
                        checked(**{key: value})
                    self.assertIn(key, str(caught.exception))

    def test_engine_and_interval(self):
        self.assertEqual(checked()["PROFILER_ENGINE"], "cprofile")
        self.assertEqual(checked()["PROFILER_INTERVAL_MS"], 1)
        config = checked(PROFILER_ENGINE="sampling", PROFILER_INTERVAL_MS=0.5)
        self.assertEqual((config["PROFILER_ENGINE"], config["PROFILER_INTERVAL_MS"]),
                         ("sampling", 0.5))
        with self.assertRaises(ConfigError) as caught:
            checked(PROFILER_INTERVAL_MS=0)
        self.assertEqual(str(caught.exception),
                         "PROFILER_INTERVAL_MS must be a number >= 0.1 and <= 1000; got 0.")
        with self.assertRaises(ConfigError) as caught:
            checked(PROFILER_ENGINE="pyinstrument")
        self.assertEqual(str(caught.exception),
                         "PROFILER_ENGINE must be 'cprofile' or 'sampling'; got 'pyinstrument'.")

    def test_toolbar_and_server_timing_values(self):
        config = checked()
        self.assertIs(config["TOOLBAR_ENABLED"], False)
        self.assertIsNone(config["TRACKER_SERVER_TIMING"])
        self.assertEqual(config["TOOLBAR_TOP_FUNCTIONS"], 5)
        for value in (True, False, "all", None):
            self.assertEqual(checked(TRACKER_SERVER_TIMING=value)["TRACKER_SERVER_TIMING"], value)
        with self.assertRaisesRegex(ConfigError,
                                    'TRACKER_SERVER_TIMING must be true, false, "all"'):
            checked(TRACKER_SERVER_TIMING="some")

    def test_the_toolbar_is_on_in_development_and_profile_only(self):
        for name, expected in (("development", True), ("profile", True), ("default", True),
                               ("testing", False), ("production", False)):
            with self.subTest(name):
                self.assertIs(create_app_config(name)["TOOLBAR_ENABLED"], expected)

    def test_sort_error_lists_the_allowed_keys(self):
        with self.assertRaisesRegex(ConfigError, "cumulative.*tottime"):
            checked(PROFILER_SORT_BY="speed")

    def test_regex_error_explains_itself(self):
        with self.assertRaisesRegex(ConfigError, "is not a regular expression"):
            checked(PROFILER_IGNORE="[bad")

    def test_profile_dir_none_is_the_instance_folder_and_empty_saves_nothing(self):
        app = Flask(__name__, instance_path="/srv/app/instance")
        settings.apply(app)
        self.assertEqual(app.config["PROFILER_DIR"], "/srv/app/instance/profiles")
        self.assertEqual(app.config["TRACKER_DATABASE_URL"],
                         "sqlite:////srv/app/instance/tracker.sqlite3")
        self.assertEqual(checked(PROFILER_DIR="")["PROFILER_DIR"], "")
        self.assertEqual(checked(PROFILER_DIR="rel")["PROFILER_DIR"], os.path.abspath("rel"))



class OneOwnerTestCase(unittest.TestCase):
    """Whichever way a feature is attached, its settings get the same defaults and errors."""

    def test_every_setting_has_a_default_and_a_check(self):
        self.assertEqual(set(settings.DEFAULTS), set(settings.CHECKS))
        for key in settings.DEFAULTS:
            self.assertTrue(key.startswith(settings.PREFIXES), key)

    def test_a_plain_app_gets_every_default(self):
        config = checked()
        for key, value in settings.DEFAULTS.items():
            if key not in ("PROFILER_DIR", "TRACKER_DATABASE_URL"):
                self.assertEqual(config[key], value, key)

    def test_the_same_message_from_every_entry_point(self):
        bad = {"TRACKER_SAMPLE_RATE": 2}

        def configured_then(attach):
            app = Flask(__name__, instance_path=os.path.join(os.sep, "nonexistent"))
            app.config.update(bad)
            attach(app)

        attempts = {
            "Tracker(app) after app.config": lambda: configured_then(Tracker),
            "Tracking(app) after app.config": lambda: configured_then(Tracking),
            "Tracker(app, **settings)": lambda: Tracker(Flask(__name__), **bad),
            "create_app": lambda: create_app("testing", **bad),
        }
        messages = set()
        for name, attempt in attempts.items():
            with self.subTest(name), self.assertRaises(ConfigError) as caught:
                attempt()
            messages.add(str(caught.exception))
        self.assertEqual(messages, {"TRACKER_SAMPLE_RATE must be a number >= 0 and <= 1; got 2."})

    def test_unknown_tracker_setting_in_overrides_is_an_error(self):
        with self.assertRaisesRegex(ConfigError, "Unknown Tracker setting.*PROFILER_ENABLE\\b"):
            Tracker(Flask(__name__), PROFILER_ENABLE=True)

    def test_a_config_error_is_one_error_line_from_any_flask_command(self):
        self.assertTrue(issubclass(ConfigError, click.ClickException))
        self.assertTrue(issubclass(ConfigError, ValueError))
        app = Flask(__name__)

        @app.cli.command("boom")
        def boom():
            create_app("nonsense")

        result = FlaskCliRunner(app).invoke(args=["boom"])
        self.assertEqual(result.exit_code, 1)
        self.assertEqual(result.output.strip().splitlines(),
                         ["Error: Unknown configuration 'nonsense'; valid names are: default, "
                          "development, production, profile, testing."])


if __name__ == "__main__":
    unittest.main()
