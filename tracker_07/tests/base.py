"""Shared test scaffolding: an app per test, temporary folders, a live threaded server, and
loud skips for tests that need a system dependency (Chromium, a PostgreSQL server)."""
import atexit
import contextlib
import io
import os
import shutil
import socket
import sys
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


#: Suites skipped in this run for a missing system dependency: name -> problem, for the summary.
SKIPPED_SUITES = {}


def missing_dependency_action(problem, required):
    """Decide what a test needing a system dependency does: "run", "skip" or "fail".

    :param problem: why the dependency is unusable, or None when it is there.
    :param required: the value of the suite's ``TRACKER_REQUIRE_*`` variable; CI sets it to 1
        so that a missing dependency fails the run instead of quietly shrinking it.
    """
    if problem is None:
        return "run"
    return "fail" if required.strip() not in ("", "0") else "skip"


def needs(suite, problem, variable, install):
    """Return a class decorator for test cases that need a system dependency.

    Present: the class is unchanged. Missing: every test is skipped with a reason that says so
    loudly (and the suite is named in a summary line on stderr at exit), or, when ``variable``
    is set, the class fails in ``setUpClass``.

    :param suite: what is skipped, e.g. "browser tests".
    :param problem: why the dependency is unusable, e.g. "Chromium not found", or None.
    :param variable: the environment variable that makes the dependency required.
    :param install: how to get the dependency, e.g. "apt-get install chromium".
    """
    action = missing_dependency_action(problem, os.environ.get(variable, ""))
    if action == "run":
        return lambda cls: cls
    if action == "fail":
        message = f"{problem}, and {variable} requires the {suite}: {install}"

        def fail_class(cls):
            def set_up_class(_cls):
                raise RuntimeError(message)
            cls.setUpClass = classmethod(set_up_class)
            return cls
        return fail_class
    reason = f"{problem}: {suite} SKIPPED ({install})"
    if not SKIPPED_SUITES:
        atexit.register(print_skipped_suites)
    SKIPPED_SUITES[suite] = problem
    return unittest.skip(reason)


def print_skipped_suites(stream=None):
    """Name the skipped suites in one line at exit, below unittest's report, where people look."""
    if SKIPPED_SUITES:
        suites = ", ".join(f"{suite} ({problem})" for suite, problem in SKIPPED_SUITES.items())
        print(f"SKIPPED for a missing system dependency: {suites}", file=stream or sys.stderr)
