"""A real ``gunicorn -w 2``: every request is stored or counted, even across SIGTERM."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from tracker_07.tracking import reads, store

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUESTS = 2000
CLIENTS = 4


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url):
    """GET ``url`` and return the status code (HTTP errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class GunicornTest(unittest.TestCase):
    """Two gunicorn workers share one SQLite store."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(self._tmp.cleanup)
        self.database = os.path.join(self._tmp.name, "gunicorn.sqlite3")
        self.log_path = os.path.join(self._tmp.name, "gunicorn.log")
        self.port = free_port()

    def start_gunicorn(self):
        """Start gunicorn and wait until it answers (on an ignored path, so untracked)."""
        env = dict(os.environ, PYTHONPATH=REPO_ROOT,
                   TRACKER_GUNICORN_DATABASE_URL=f"sqlite:///{self.database}")
        with open(self.log_path, "wb") as log:
            server = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped below
                [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.port}",
                 "--graceful-timeout", "30", "tracker_07.tests.tracking_app:app"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.addCleanup(self.kill_if_running, server)
        for _ in range(300):
            try:
                fetch(f"http://127.0.0.1:{self.port}/favicon.ico")
                return server
            except OSError:
                self.assertIsNone(server.poll(), self.read_log())
                time.sleep(0.1)
        return self.fail("gunicorn did not start:\n" + self.read_log())

    @staticmethod
    def kill_if_running(server):
        """Last-resort clean-up if an assertion stopped the test early."""
        if server.poll() is None:
            server.kill()
            server.wait(30)

    def read_log(self):
        """Everything gunicorn and the app logged."""
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def test_every_request_is_stored_or_counted_after_sigterm(self):
        server = self.start_gunicorn()
        statuses = []
        lock = threading.Lock()

        def client(first):
            for number in range(first, REQUESTS, CLIENTS):
                status = fetch(f"http://127.0.0.1:{self.port}/item/{number}")
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=client, args=(first,)) for first in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        self.assertEqual(statuses, [200] * REQUESTS)

        server.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(90), 0, self.read_log())

        engine = store.create_store_engine(f"sqlite:///{self.database}")
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            stored = reads.row_count(conn)
            dropped = reads.dropped_count(conn)
            endpoints = reads.endpoints(conn)
        log = self.read_log()
        print(f"\ngunicorn -w 2: {stored} rows stored, {dropped} dropped", file=sys.stderr)
        self.assertEqual(stored + dropped, REQUESTS, log)
        self.assertEqual(stored, REQUESTS, f"{dropped} dropped\n{log}")
        self.assertEqual(endpoints, [{"endpoint": "/item/<int:item_id>", "method": "GET"}])
        self.assertNotIn("database is locked", log)
        self.assertNotIn("Traceback", log)


if __name__ == "__main__":
    unittest.main()
