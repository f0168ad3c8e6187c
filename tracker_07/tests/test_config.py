"""The demo app's named configurations: what each turns on, and where it keeps its files."""
import os
import re
import tempfile
import unittest

from tracker_07 import config, create_app
from tracker_07.config import ConfigError


class NamedConfigurationsTestCase(unittest.TestCase):
    """The configurations differ only where they should."""

    def test_unknown_name_lists_the_valid_ones(self):
        for name in ("prod", None, 3):
            with self.subTest(name=name), self.assertRaises(ConfigError) as caught:
                config.get_config(name)
            self.assertIn("valid names are: default, development, production, profile, testing",
                          str(caught.exception))

    def test_development_reads_the_profiles_that_profile_mode_saves(self):
        for name, config_class in config.config.items():
            self.assertFalse(hasattr(config_class, "PROFILER_DIR"), name)
        app = create_app("development", TRACKER_ENABLED=False)
        self.assertEqual(app.config["PROFILER_DIR"], os.path.join(app.instance_path, "profiles"))

    def test_profile_mode_only_in_the_profile_configuration(self):
        for name in config.config:
            with self.subTest(name=name):
                app = create_app(name, TRACKER_ENABLED=False, SECRET_KEY="k",
                                 DASHBOARD_ENABLED=False, PROFILER_DIR="")
                self.assertEqual(app.config["PROFILER_ENABLED"], name == "profile")

    def test_the_session_cookie_is_same_site_lax(self):
        with tempfile.TemporaryDirectory() as folder:
            app = create_app("development", TRACKER_ENABLED=False, PROFILER_DIR=folder)
            response = app.test_client().get("/dashboard/profiles/")
        cookie = response.headers.get("Set-Cookie", "")
        self.assertRegex(cookie, r"^session=")
        self.assertTrue(re.search(r"SameSite=Lax", cookie), cookie)
        self.assertIn("HttpOnly", cookie)


if __name__ == "__main__":
    unittest.main()
