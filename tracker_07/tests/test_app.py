"""The app factory, the named configurations and the demo pages."""
import os
import platform
import unittest
from importlib import metadata
from unittest import mock

import flask

from tracker_07.app_utils import SystemCheckError
from tracker_07.config import ConfigError, config
from tracker_07.main import wordcount
from tracker_07.tests.base import AppTestCase


class FactoryTestCase(AppTestCase):
    """``create_app`` builds every named configuration and rejects the rest clearly."""

    def test_every_named_configuration_builds(self):
        with mock.patch.dict(os.environ, {"FLASK_SECRET_KEY": "k" * 32}):
            for name in ("default", "development", "testing", "production", "profile"):
                with self.subTest(name=name):
                    app = self.make_app(name, PROFILER_DIR="")
                    self.assertIsInstance(app, flask.Flask)
                    self.assertEqual(app.config["CONFIG_NAME"], name)

    def test_testing_sets_testing_and_default_is_development(self):
        self.assertTrue(self.make_app("testing").testing)
        self.assertTrue(self.make_app("default").debug)
        self.assertFalse(self.make_app("default").testing)

    def test_unknown_name_lists_the_valid_ones(self):
        with self.assertRaises(ConfigError) as caught:
            self.make_app("prod")
        message = str(caught.exception)
        self.assertIn("'prod'", message)
        for name in config:
            self.assertIn(name, message)

    def test_keyword_settings_override_the_class_and_the_environment(self):
        with mock.patch.dict(os.environ, {"FLASK_PROFILER_MIN_MS": "5"}):
            self.assertEqual(self.make_app("testing").config["PROFILER_MIN_MS"], 5)
            app = self.make_app("testing", PROFILER_MIN_MS=9)
        self.assertEqual(app.config["PROFILER_MIN_MS"], 9)

    def test_environment_values_are_parsed_as_json(self):
        env = {"FLASK_PROFILER_RESTRICTIONS": "[10, \"tracker\"]",
               "FLASK_PROFILER_SORT_BY": "cumulative"}
        with mock.patch.dict(os.environ, env):
            app = self.make_app("testing")
        self.assertEqual(app.config["PROFILER_RESTRICTIONS"], (10, "tracker"))
        self.assertEqual(app.config["PROFILER_SORT_BY"], ("cumulative",))

    def test_bad_environment_value_names_the_setting(self):
        with mock.patch.dict(os.environ, {"FLASK_PROFILER_MIN_MS": "fast"}):
            with self.assertRaisesRegex(ConfigError, "PROFILER_MIN_MS must be a number"):
                self.make_app("testing")

    def test_production_refuses_to_start_without_a_secret_key(self):
        env = {key: value for key, value in os.environ.items()
               if key not in ("SECRET_KEY", "FLASK_SECRET_KEY")}
        with mock.patch.dict(os.environ, env, clear=True):
            with self.assertRaisesRegex(ConfigError, "FLASK_SECRET_KEY"):
                self.make_app("production")

    def test_production_takes_the_secret_key_from_the_environment(self):
        for variable in ("SECRET_KEY", "FLASK_SECRET_KEY"):
            with self.subTest(variable=variable):
                with mock.patch.dict(os.environ, {variable: "from-the-environment"}):
                    app = self.make_app("production")
                self.assertEqual(app.config["SECRET_KEY"], "from-the-environment")

    def test_other_configurations_make_a_random_key_per_process(self):
        env = {key: value for key, value in os.environ.items()
               if key not in ("SECRET_KEY", "FLASK_SECRET_KEY")}
        with mock.patch.dict(os.environ, env, clear=True):
            first, second = self.make_app("development"), self.make_app("development")
        self.assertGreaterEqual(len(first.config["SECRET_KEY"]), 32)
        self.assertNotEqual(first.config["SECRET_KEY"], second.config["SECRET_KEY"])

    def test_system_check_failure_stops_the_factory_with_its_message(self):
        with mock.patch("tracker_07.app_utils.flask_version", return_value="2.2.5"):
            with self.assertRaisesRegex(SystemCheckError, "Flask 3.0 or newer is required"):
                self.make_app("testing")

    def test_hello_module_uses_flask_config(self):
        with mock.patch.dict(os.environ, {"FLASK_CONFIG": "testing"}):
            import hello  # pylint: disable=import-outside-toplevel
            hello = __import__("importlib").reload(hello)
        self.assertEqual(hello.app.config["CONFIG_NAME"], "testing")


class DemoPagesTestCase(AppTestCase):
    """The index page and the slow page with its fast twin."""

    def test_index_names_configuration_and_versions(self):
        for url in ("/", "/index"):
            response = self.client.get(url)
            self.assertEqual(response.status_code, 200)
            page = response.get_data(as_text=True)
            self.assertIn('id="config-name">testing<', page)
            self.assertIn(platform.python_version(), page)
            self.assertIn(f'id="flask-version">{metadata.version("flask")}<', page)
            self.assertIn("/static/landscape.png", page)
            self.assertIn("/static/demo.js", page)
            self.assertIn("/words/slow", page)
            self.assertIn("/words/fast", page)

    def test_static_image_and_script_are_served(self):
        image = self.client.get("/static/landscape.png")
        self.assertEqual(image.status_code, 200)
        self.assertTrue(image.data.startswith(b"\x89PNG"))
        self.assertGreater(len(image.data), 1_000_000)
        image.close()
        script = self.client.get("/static/demo.js")
        self.assertEqual(script.status_code, 200)
        self.assertIn(b"script-status", script.data)
        script.close()

    def test_slow_and_fast_pages_agree(self):
        slow = self.client.get("/words/slow").get_data(as_text=True)
        fast = self.client.get("/words/fast").get_data(as_text=True)
        top = wordcount.top_words_fast(wordcount.corpus())
        word, count = top[0]
        for page in (slow, fast):
            self.assertIn(f"<strong>{word}</strong> {count}", page)
        self.assertIn("(slow)", slow)
        self.assertIn("(fast)", fast)

    def test_unknown_page_is_a_404(self):
        self.assertEqual(self.client.get("/no-such-page").status_code, 404)


class WordCountTestCase(unittest.TestCase):
    """Both ways of counting give the same, correct answer."""

    def test_naive_and_fast_agree_with_a_hand_count(self):
        words = ("b", "a", "b", "c", "b", "a")
        expected = [("b", 3), ("a", 2), ("c", 1)]
        self.assertEqual(wordcount.top_words_naive(words), expected)
        self.assertEqual(wordcount.top_words_fast(words), expected)
        self.assertEqual(wordcount.top_words_fast(words, limit=1), [("b", 3)])

    def test_corpus_is_fixed(self):
        self.assertEqual(len(wordcount.corpus()), wordcount.CORPUS_WORDS)
        self.assertEqual(wordcount.corpus(), wordcount.corpus.__wrapped__())


if __name__ == "__main__":
    unittest.main()
