"""Who may open the dashboard, what a form must carry, and what never leaves the folder."""
import base64
import os
import re

from tracker_07.config import ConfigError
from tracker_07.dashboard import security
from tracker_07.profiles import index
from tracker_07.tests.base import AppTestCase
from tracker_07.tests.test_dashboard_profiles import DashboardTestCase

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


def basic(username, password):
    """Build an HTTP basic Authorization header."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class LoopbackOnlyTestCase(DashboardTestCase):
    """Without credentials only this machine gets in."""

    def test_local_clients_get_in(self):
        for address in ("127.0.0.1", "127.3.2.1", "::1"):
            response = self.client.get("/dashboard/profiles/",
                                       environ_base={"REMOTE_ADDR": address})
            self.assertEqual(response.status_code, 200, address)

    def test_other_clients_are_refused_everywhere(self):
        for url in ("/dashboard/", "/dashboard/profiles/", "/dashboard/api/profiles",
                    "/dashboard/static/dashboard.css", "/dashboard/profiles/compare"):
            response = self.client.get(url, environ_base=REMOTE)
            self.assertEqual(response.status_code, 403, url)
            self.assertIn(b"only local clients", response.data)

    def test_unparseable_address_is_not_local(self):
        self.assertFalse(security.is_loopback("localhost"))
        self.assertFalse(security.is_loopback(None))
        self.assertTrue(security.is_loopback("::1"))

    def test_demo_app_stays_public(self):
        self.assertEqual(self.client.get("/index", environ_base=REMOTE).status_code, 200)

    def test_security_headers(self):
        response = self.client.get("/dashboard/profiles/")
        self.assertIn("script-src 'self'", response.headers["Content-Security-Policy"])
        self.assertEqual(response.headers["X-Content-Type-Options"], "nosniff")
        self.assertEqual(response.headers["X-Frame-Options"], "DENY")


class BasicAuthTestCase(DashboardTestCase):
    """With credentials every client must send them; no defaults exist."""

    settings = {"PROFILER_PRINT": False, "DASHBOARD_USERNAME": "ada",
                "DASHBOARD_PASSWORD": "correct horse"}

    def test_no_or_wrong_credentials_get_401_with_a_challenge(self):
        for headers in ({}, basic("ada", "wrong"), basic("bob", "correct horse"), basic("", ""),
                        {"Authorization": "Bearer token"}):
            response = self.client.get("/dashboard/profiles/", headers=headers)
            self.assertEqual(response.status_code, 401, headers)
            self.assertIn("Basic", response.headers["WWW-Authenticate"])

    def test_right_credentials_from_anywhere(self):
        for environ in ({}, REMOTE):
            response = self.client.get("/dashboard/profiles/", environ_base=environ,
                                       headers=basic("ada", "correct horse"))
            self.assertEqual(response.status_code, 200)

class CredentialSettingsTestCase(AppTestCase):
    """Credentials come only from the configuration, both or neither."""

    def test_no_default_credentials(self):
        for name in ("development", "profile"):
            app = self.make_app(name, PROFILER_DIR="")
            self.assertIsNone(app.config["DASHBOARD_USERNAME"])
            self.assertIsNone(app.config["DASHBOARD_PASSWORD"])
            response = app.test_client().get("/dashboard/profiles/", environ_base=REMOTE,
                                             headers=basic("admin", "admin"))
            self.assertEqual(response.status_code, 403)

    def test_half_the_credentials_is_an_error(self):
        with self.assertRaisesRegex(ConfigError, "both DASHBOARD_USERNAME and DASHBOARD_PASSWORD"):
            self.make_app("development", DASHBOARD_USERNAME="ada")


class ProductionTestCase(DashboardTestCase):
    """Production never exposes the dashboard without a password."""

    def test_refuses_to_start_with_an_open_dashboard(self):
        with self.assertRaisesRegex(ConfigError, "without a password"):
            self.make_app("production", SECRET_KEY="s" * 32, DASHBOARD_ENABLED=True)

    def test_dashboard_is_off_by_default(self):
        app = self.make_app("production", SECRET_KEY="s" * 32)
        self.assertEqual(app.test_client().get("/dashboard/profiles/").status_code, 404)

    def test_starts_with_credentials(self):
        app = self.make_app("production", SECRET_KEY="s" * 32, DASHBOARD_ENABLED=True,
                         DASHBOARD_USERNAME="ops", DASHBOARD_PASSWORD="long secret")
        response = app.test_client().get("/dashboard/", headers=basic("ops", "long secret"))
        self.assertIn(response.status_code, (200, 302))


class CsrfTestCase(DashboardTestCase):
    """Deleting takes a POST with the session's token."""

    def setUp(self):
        super().setUp()
        self.records = self.save_profiles("/index", "/words/fast", "/index")

    def token(self):
        """Open the list page and return the CSRF token in its prune form."""
        text = self.page("/dashboard/profiles/")
        return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)

    def test_prune_without_or_with_a_wrong_token_is_refused(self):
        self.token()
        for form in ({"keep": "0"}, {"keep": "0", "csrf_token": "forged"}):
            response = self.client.post("/dashboard/profiles/prune", data=form)
            self.assertEqual(response.status_code, 400)
            self.assertIn(b"CSRF", response.data)
        self.assertEqual(len(self.prof_files()), 3)

    def test_a_get_never_deletes(self):
        for url in ("/dashboard/profiles/prune?keep=0",
                    f"/dashboard/profiles/{self.records[0]['id']}/delete"):
            self.assertIn(self.client.get(url).status_code, (404, 405), url)
        self.assertEqual(len(self.prof_files()), 3)

    def test_prune_with_the_token_keeps_the_newest(self):
        response = self.client.post("/dashboard/profiles/prune",
                                    data={"keep": "1", "csrf_token": self.token()},
                                    follow_redirects=True)
        self.assertIn(b"Removed 2 profile(s).", response.data)
        newest = max(self.records, key=lambda record: record["time"])
        self.assertEqual(self.prof_files(), [newest["id"]])
        self.assertEqual([r["id"] for r in index.read_index(self.profile_dir)], [newest["id"]])

    def test_prune_needs_a_count_or_an_age(self):
        response = self.client.post("/dashboard/profiles/prune",
                                    data={"csrf_token": self.token()}, follow_redirects=True)
        self.assertIn(b"Give a number of profiles to keep", response.data)
        response = self.client.post("/dashboard/profiles/prune",
                                    data={"keep": "-1", "csrf_token": self.token()})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(len(self.prof_files()), 3)

    def test_delete_one(self):
        doomed = self.records[0]["id"]
        response = self.client.post(f"/dashboard/profiles/{doomed}/delete",
                                    data={"csrf_token": self.token()})
        self.assertEqual(response.status_code, 302)
        self.assertNotIn(doomed, self.prof_files())
        self.assertEqual(len(self.prof_files()), 2)
        self.assertEqual(self.client.post(f"/dashboard/profiles/{doomed}/delete").status_code, 400)


class FolderBoundaryTestCase(DashboardTestCase):
    """Profiles are fetched only by id, from inside the folder; bad files give a clear page."""

    def test_traversal_ids_are_404(self):
        outside = os.path.join(self.tmp, "secret.prof")
        with open(outside, "wb") as file:
            file.write(b"secret")
        os.makedirs(self.profile_dir, exist_ok=True)
        os.symlink(outside, os.path.join(self.profile_dir, "link.prof"))
        for profile_id in ("..%2Fsecret.prof", "%2E%2E%2Fsecret.prof", "..", "link.prof",
                           "%00.prof", "sub%2F..%2F..%2Fsecret.prof", "nothing.prof"):
            for suffix in ("", "/download", "/export/collapsed"):
                response = self.client.get(f"/dashboard/profiles/{profile_id}{suffix}")
                self.assertIn(response.status_code, (404, 405), profile_id + suffix)
                self.assertNotIn(b"secret", response.data.replace(b"secret.prof", b""))

    def test_corrupt_profile_is_a_clear_page(self):
        os.makedirs(self.profile_dir, exist_ok=True)
        for name, content in (("GET.bad.1ms.1700000000000.1-1.prof", b"not marshal data"),
                              ("GET.empty.1ms.1700000000000.1-2.prof", b"")):
            with open(os.path.join(self.profile_dir, name), "wb") as file:
                file.write(content)
            text = self.page(f"/dashboard/profiles/{name}", 422)
            self.assertIn("This profile cannot be read", text)
            self.assertIn(name, text)
        self.assertIn("GET.bad.1ms", self.page("/dashboard/profiles/"))

    def test_no_folder_configured(self):
        app = self.make_app(PROFILER_DIR="")
        response = app.test_client().get("/dashboard/profiles/")
        self.assertEqual(response.status_code, 404)
        self.assertIn(b"Profiles are not saved", response.data)
