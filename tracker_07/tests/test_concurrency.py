"""Profile mode under Flask's default threaded server: no request ever fails.

On Python 3.12+ the stock ``ProfilerMiddleware`` answers most overlapping
requests with HTTP 500 (Werkzeug issue 2909).  ``.ci/run`` runs this module
under Python 3.11, 3.12 and 3.13.
"""
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import unittest

from tracker_07 import profiler
from tracker_07.profiles import index
from tracker_07.tests.base import LiveServer, ProfiledAppTestCase, fetch, free_port
from tracker_07.tests.test_profiler import REPORT_BLOCK, report_blocks

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVERLAPPING_REQUESTS = 40


def fetch_all(url, count=OVERLAPPING_REQUESTS):
    """Send ``count`` requests to ``url`` at once and return their statuses."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        return [status for status, _body in pool.map(lambda _: fetch(url), range(count))]


def read_text(path):
    """Return the whole text of a file."""
    with open(path, encoding="utf-8") as file:
        return file.read()


class ThreadedServerTestCase(ProfiledAppTestCase):
    """Forty overlapping requests to the slow page on Werkzeug's threaded server."""

    def test_overlapping_requests_all_succeed_and_are_accounted_for(self):
        with LiveServer(self.app) as server:
            statuses = fetch_all(server.url + "/words/slow")
        self.assertEqual(statuses, [200] * OVERLAPPING_REQUESTS)
        counts = self.counts()
        self.assertEqual(counts["profiled"] + counts["not_profiled"], OVERLAPPING_REQUESTS)
        self.assertGreaterEqual(counts["profiled"], 1)
        if not profiler.ONE_PROFILER_PER_PROCESS:
            self.assertEqual(counts["not_profiled"], 0)
        self.assertEqual(len(self.prof_files()), counts["profiled"])
        self.assertEqual(len(index.read_index(self.profile_dir)), counts["profiled"])
        blocks = report_blocks(self.report.getvalue())  # whole reports, never interleaved
        self.assertEqual(len(blocks), counts["profiled"])
        self.assertEqual(self.report.getvalue().count("NOT PROFILED: GET /words/slow: "),
                         counts["not_profiled"])


class FlaskRunTestCase(unittest.TestCase):
    """The README's command, with and without threads, in a real ``flask run`` process."""

    def run_server(self, tmp, *extra):
        """Start ``flask run`` in profile mode on a free port and wait until it answers."""
        port = free_port()
        env = dict(os.environ, FLASK_PROFILER_DIR=os.path.join(tmp, "profiles"),
                   FLASK_TRACKER_DATABASE_URL="sqlite:///" + os.path.join(tmp, "t.sqlite3"),
                   PYTHONUNBUFFERED="1")
        env.pop("FLASK_DEBUG", None)
        log = open(os.path.join(tmp, "server.log"), "w+", encoding="utf-8")  # pylint: disable=consider-using-with
        command = [sys.executable, "-B", "-m", "flask", "--app", "tracker_07:create_app('profile')",
                   "run", "--port", str(port), *extra]
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,  # pylint: disable=consider-using-with
                                   stderr=subprocess.STDOUT)
        self.addCleanup(log.close)
        self.addCleanup(process.wait, 10)
        self.addCleanup(process.terminate)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if fetch(url + "/static/demo.js", timeout=2)[0] == 200:
                    return url, log
            except OSError:
                time.sleep(0.1)
        raise AssertionError("flask run did not start:\n" + read_text(log.name))

    def test_default_threaded_server(self):
        with tempfile.TemporaryDirectory() as tmp:
            url, log = self.run_server(tmp)
            statuses = fetch_all(url + "/words/slow")
            output = read_text(log.name)
            saved = len(index.read_index(os.path.join(tmp, "profiles")))
        self.assertEqual(statuses, [200] * OVERLAPPING_REQUESTS)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("Another profiling tool is already active", output)
        self.assertEqual(output.count('"GET /words/slow HTTP/1.1" 200'), OVERLAPPING_REQUESTS)
        self.assertEqual(output.count("PATH: '/words/slow'"), saved)
        self.assertGreaterEqual(saved, 1)

    def test_without_threads_profiles_every_request(self):
        with tempfile.TemporaryDirectory() as tmp:
            url, log = self.run_server(tmp, "--without-threads")
            statuses = fetch_all(url + "/index", count=8)
            output = read_text(log.name)
            records = index.read_index(os.path.join(tmp, "profiles"))
        self.assertEqual(statuses, [200] * 8)
        self.assertNotIn("Traceback", output)
        self.assertEqual(len(records), 8)
        self.assertEqual([record["overlapped"] for record in records], [0] * 8)
        reports = [block for block in REPORT_BLOCK.finditer(output) if block["path"] == "/index"]
        self.assertEqual(len(reports), 8)
        self.assertEqual(reports[0]["order"], "internal time, call count")
        self.assertIn("due to restriction <30>", reports[0].group())


if __name__ == "__main__":
    unittest.main()
