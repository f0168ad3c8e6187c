"""The dashboard stands alone on any app: its header, its menu, its errors and its forms."""
import re
import unittest

from flask import Flask

from tracker_07 import Tracker
from tracker_07.tests.test_extension import TrackerTestCase


def links(html):
    """The ``href`` of every link in the page's header."""
    header = html.split("<header", 1)[1].split("</header>", 1)[0]
    return re.findall(r'href="([^"]*)"', header)


class StandAloneTestCase(TrackerTestCase):
    """No template of the dashboard needs the demo app."""

    def test_the_header_links_back_to_the_host_apps_root(self):
        app = self.shop_app()
        Tracker(app)
        for script_root in ("", "/shop"):
            with self.subTest(script_root=script_root):
                response = app.test_client().get(
                    "/dashboard/", environ_overrides={"SCRIPT_NAME": script_root})
                self.assertEqual(response.status_code, 200)
                self.assertIn(script_root + "/", links(response.get_data(as_text=True)))

    def test_the_menu_links_only_to_pages_that_are_on(self):
        cases = {
            "everything": ({}, {"/dashboard/", "/dashboard/profiles/"}),
            "no tracking": ({"TRACKER_ENABLED": False}, {"/dashboard/profiles/"}),
            "no saved profiles": ({"PROFILER_DIR": ""}, {"/dashboard/"}),
        }
        for name, (settings, expected) in cases.items():
            with self.subTest(name):
                app = self.shop_app(name.replace(" ", "-"), **settings)
                Tracker(app)
                html = app.test_client().get("/dashboard/").get_data(as_text=True)
                menu = set(links(html)) - {"/"}
                self.assertEqual(menu & {"/dashboard/", "/dashboard/profiles/"}, expected)
                self.assertEqual("/dashboard/profiles/compare" in menu,
                                 "/dashboard/profiles/" in expected)

    def test_profile_pages_say_why_they_are_off(self):
        app = self.shop_app(PROFILER_DIR="")
        Tracker(app)
        response = app.test_client().get("/dashboard/profiles/")
        self.assertEqual(response.status_code, 404)
        self.assertIn("Profiles are not saved by this app", response.get_data(as_text=True))
        self.assertIn("<header", response.get_data(as_text=True))  # the dashboard's own page

    def test_profiles_page_says_profile_mode_is_off(self):
        app = self.shop_app()
        Tracker(app)
        html = app.test_client().get("/dashboard/profiles/").get_data(as_text=True)
        self.assertIn('id="profiling-off"', html)


class JsonErrorsTestCase(TrackerTestCase):
    """Every error under ``/api/`` is JSON with its status and a message, never HTML."""

    def test_api_errors_are_json(self):
        app = self.shop_app()
        Tracker(app)
        client = app.test_client()
        cases = [
            (client.get("/dashboard/api/nothing-here"), 404, "No such API route"),
            (client.get("/dashboard/api/endpoints?status=6xx"), 400, "status must be"),
            (client.get("/dashboard/api/profiles?method=BREW"), 400, "method must be"),
            (client.get("/dashboard/api/profiles/nope.prof"), 404, "nope.prof"),
            (client.get("/dashboard/api/endpoints",
                        environ_overrides={"REMOTE_ADDR": "203.0.113.9"}), 403, "local clients"),
        ]
        for response, status, words in cases:
            with self.subTest(status=status, words=words):
                self.assertEqual(response.status_code, status)
                self.assertEqual(response.mimetype, "application/json")
                body = response.get_json()
                self.assertEqual(body["status"], status)
                self.assertIn(words, body["message"])

    def test_page_errors_are_the_dashboards_pages(self):
        app = self.shop_app()
        Tracker(app)
        response = app.test_client().get("/dashboard/?status=6xx")
        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.mimetype, "text/html")
        self.assertIn("status must be", response.get_data(as_text=True))
        self.assertIn("<header", response.get_data(as_text=True))

    def test_a_password_challenge_keeps_its_header(self):
        app = self.shop_app(DASHBOARD_USERNAME="ops", DASHBOARD_PASSWORD="s3cret-pass")
        Tracker(app)
        response = app.test_client().get("/dashboard/api/endpoints")
        self.assertEqual(response.status_code, 401)
        self.assertIn("Basic realm=", response.headers["WWW-Authenticate"])
        self.assertEqual(response.get_json()["status"], 401)


class NoSecretKeyTestCase(TrackerTestCase):
    """An app without a secret key gets read-only pages, never a fallback key."""

    def test_forms_are_left_out_and_posts_refused(self):
        app = Flask("keyless", instance_path=self.tmp + "/instance")
        self.apps.append(app)
        Tracker(app)
        client = app.test_client()
        page = client.get("/dashboard/profiles/")
        self.assertEqual(page.status_code, 200)
        self.assertNotIn("csrf_token", page.get_data(as_text=True))
        response = client.post("/dashboard/profiles/prune", data={"keep": "1"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("SECRET_KEY", response.get_data(as_text=True))
        self.assertIsNone(app.secret_key)


if __name__ == "__main__":
    unittest.main()
