"""Shared test scaffolding: an app per test, temporary folders, and a live threaded server."""
import contextlib
import io
import os
import shutil
import socket
import tempfile
import threading
import unittest
import urllib.error
import urllib.request

from werkzeug.serving import make_server

from tracker_07 import create_app


class AppTestCase(unittest.TestCase):
    """Build ``create_app(config_name, **settings)`` with its folders in a temporary directory."""

    config_name = "testing"
    settings = {}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-test-")
        self.apps = []
        self.app = self.make_app(self.config_name, **self.settings)
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.client = self.app.test_client()
        self.runner = self.app.test_cli_runner()

    def tearDown(self):
        self.ctx.pop()
        for app in self.apps:
            stop_tracking(app)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def make_app(self, config_name="testing", **settings):
        """Build an app whose files (tracking store, profiles) live in this test's folder."""
        settings.setdefault("TRACKER_DATABASE_URL", self.database_url())
        settings.setdefault("SQLALCHEMY_DATABASE_URI",
                            "sqlite:///" + os.path.join(self.tmp, "demo.sqlite3"))
        app = create_app(config_name, **settings)
        app.instance_path = os.path.join(self.tmp, "instance")
        self.apps.append(app)
        return app

    def database_url(self):
        """Return the URL of a tracking store in this test's folder."""
        return "sqlite:///" + os.path.join(self.tmp, "tracker.sqlite3")


class ProfiledAppTestCase(AppTestCase):
    """An app in profile mode that saves into a temporary folder and prints into a buffer."""

    config_name = "profile"

    def make_app(self, config_name="profile", **settings):
        self.profile_dir = os.path.join(self.tmp, "profiles")
        self.report = io.StringIO()
        settings.setdefault("PROFILER_DIR", self.profile_dir)
        with contextlib.redirect_stdout(self.report):
            return super().make_app(config_name, **settings)

    def counts(self):
        """Return the profiler's counters: profiled, not_profiled, ignored, saved, save_failed."""
        return self.app.extensions["tracker_profiler"].counts

    def prof_files(self):
        """Return the names of the ``.prof`` files saved so far."""
        if not os.path.isdir(self.profile_dir):
            return []
        return sorted(name for name in os.listdir(self.profile_dir) if name.endswith(".prof"))


def stop_tracking(app):
    """Stop an app's tracking writer thread, if it has one."""
    extension = app.extensions.get("tracker_tracking")
    if extension is not None:
        extension.shutdown()


def free_port():
    """Ask the kernel for a free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """Serve a WSGI app with Werkzeug's threaded development server on 127.0.0.1."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def fetch(url, timeout=60):
    """GET ``url`` and return ``(status, body)``, also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
