"""Attaching tracking to an app, and its life: flush, shutdown, exit and fork."""
import os
import subprocess
import sys
import textwrap
import threading
import time
import unittest
import warnings
import weakref
from unittest import mock

from flask import Flask
from sqlalchemy.exc import OperationalError

from tracker_07 import settings
from tracker_07.tracking import extension, middleware, reads, rollups, store, writer
from tracker_07.tracking.extension import Tracking
from tracker_07.tracking.filters import Filters
from tracker_07.tests.tracking_helpers import TrackedAppCase, get, make_app

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ExtensionSetupTest(TrackedAppCase):
    """Attaching the extension and validating its settings."""

    def test_init_app_styles_and_extension_registry(self):
        app = make_app(self.tmpdir)
        tracking = Tracking()
        self.assertIs(tracking.init_app(app), tracking)
        self.trackings.append(tracking)
        self.assertIs(app.extensions["tracker_tracking"], tracking)
        self.assertIn("tracker", app.cli.commands)
        with self.assertRaisesRegex(RuntimeError, "one app"):
            tracking.init_app(make_app(self.tmpdir))
        other_app = make_app(self.tmpdir)
        other = Tracking(other_app)
        self.trackings.append(other)
        self.assertIsInstance(other, Tracking)
        self.assertIs(other_app.extensions["tracker_tracking"], other)

    def test_defaults_and_instance_folder_database(self):
        app = Flask(__name__, instance_path=os.path.join(self.tmpdir, "inst"))
        tracking = Tracking(app)
        self.trackings.append(tracking)
        expected = "sqlite:///" + os.path.join(self.tmpdir, "inst", "tracker.sqlite3")
        self.assertEqual(app.config["TRACKER_DATABASE_URL"], expected)
        self.assertTrue(os.path.exists(os.path.join(self.tmpdir, "inst", "tracker.sqlite3")))
        for key, value in settings.DEFAULTS.items():
            if key.startswith("TRACKER_") and key != "TRACKER_DATABASE_URL":
                self.assertEqual(app.config[key], value)
        self.assertEqual(tracking.settings.ignore,
                         settings.STATIC_PATHS + (r"^/dashboard/",))

    def test_bad_settings_are_clear_errors(self):
        cases = [
            ({"TRACKER_DATABASE_URL": "no-scheme"}, "TRACKER_DATABASE_URL .*'no-scheme'"),
            ({"TRACKER_DATABASE_URL": 5}, "TRACKER_DATABASE_URL must be"),
            ({"TRACKER_SAMPLE_RATE": 1.5}, "TRACKER_SAMPLE_RATE must be a number >= 0 and <= 1"),
            ({"TRACKER_SAMPLE_RATE": "all"}, "TRACKER_SAMPLE_RATE .*'all'"),
            ({"TRACKER_QUEUE_SIZE": 0}, "TRACKER_QUEUE_SIZE must be a whole number >= 1"),
            ({"TRACKER_BATCH_SIZE": 2.5}, "TRACKER_BATCH_SIZE must be a whole number"),
            ({"TRACKER_MAX_ROWS": True}, "TRACKER_MAX_ROWS must be a whole number"),
            ({"TRACKER_RETENTION_DAYS": -1}, "TRACKER_RETENTION_DAYS must be a number >= 0"),
            ({"TRACKER_SLOW_MS": None}, "TRACKER_SLOW_MS"),
            ({"TRACKER_FLUSH_INTERVAL": 0}, "TRACKER_FLUSH_INTERVAL"),
            ({"TRACKER_IGNORE": ["^/ok", "(unclosed"]},
             r"TRACKER_IGNORE: '\(unclosed' is not a regular expression"),
            ({"TRACKER_IGNORE": [1]}, "TRACKER_IGNORE must be regular expressions"),
        ]
        for config, message in cases:
            with self.subTest(config=config):
                app = make_app(self.tmpdir, **config)
                with self.assertRaisesRegex(settings.ConfigError, message):
                    Tracking(app)
                self.assertNotIn("tracker_tracking", app.extensions)

    def test_single_ignore_string_is_accepted(self):
        app, tracking = self.tracked_app(TRACKER_IGNORE=r"^/user/")
        get(app.test_client(), "/user/1")
        get(app.test_client(), "/status/200")
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/status/<int:code>"])




class LifecycleTest(TrackedAppCase):
    """Flush, shutdown, exit and fork: nothing queued is lost."""

    def test_stats_count_written_rows_and_own_cost(self):
        app, tracking = self.tracked_app(TRACKER_BATCH_SIZE=10)
        client = app.test_client()
        for user_id in range(2 * middleware.COST_SAMPLE_EVERY + 1):
            get(client, f"/user/{user_id}")
        self.assertTrue(tracking.flush())
        stats = tracking.stats()
        self.assertEqual(stats["queued"], 0)
        self.assertEqual(stats["written"], 2 * middleware.COST_SAMPLE_EVERY + 1)
        self.assertEqual(stats["dropped"], 0)
        self.assertGreater(stats["request_path_us"], 0)
        self.assertGreater(stats["writer_us_per_row"], 0)
        self.assertAlmostEqual(stats["cost_us_per_request"],
                               stats["request_path_us"] + stats["writer_us_per_row"])

    def test_shutdown_writes_what_is_queued(self):
        with mock.patch.object(writer.Writer, "start"):
            app, tracking = self.tracked_app()
        for user_id in range(3):
            get(app.test_client(), f"/user/{user_id}")
        self.assertEqual(tracking.stats()["queued"], 3)
        tracking.shutdown()
        self.trackings.remove(tracking)
        with tracking.engine.connect() as conn:
            self.assertEqual(reads.row_count(conn), 3)

    def test_shutdown_stops_the_writer_thread(self):
        app, tracking = self.tracked_app()
        get(app.test_client(), "/user/1")
        thread = tracking.writer.thread
        tracking.shutdown()
        self.trackings.remove(tracking)
        self.assertFalse(thread.is_alive())
        with tracking.engine.connect() as conn:
            self.assertEqual(reads.row_count(conn), 1)

    def test_flush_times_out_when_the_writer_is_stuck(self):
        app, tracking = self.tracked_app()
        with mock.patch.object(tracking.writer, "drain"):
            get(app.test_client(), "/user/1")
            self.assertFalse(tracking.flush(timeout=0.05))
        self.assertTrue(tracking.flush())
        self.assertEqual(len(self.stored_rows(tracking)), 1)

    def test_roll_up_now_runs_in_the_writer_thread_or_here_without_one(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        for user_id in range(3):
            get(client, f"/user/{user_id}")
        self.assertTrue(tracking.flush())
        self.assertEqual(self.behind(tracking), 3)
        threads, real_roll_up = [], rollups.roll_up

        def recording(*args, **kwargs):
            threads.append(threading.current_thread())
            return real_roll_up(*args, **kwargs)

        with mock.patch.object(rollups, "roll_up", recording):
            self.assertTrue(tracking.roll_up_now())
        self.assertEqual(threads, [tracking.writer.thread])
        self.assertEqual(self.behind(tracking), 0)
        tracking.shutdown()  # no writer thread: this thread rolls up
        self.trackings.remove(tracking)
        get(client, "/user/4")
        tracking.writer.drain()
        self.assertEqual(self.behind(tracking), 1)
        self.assertTrue(tracking.roll_up_now())
        self.assertEqual(self.behind(tracking), 0)

    def test_roll_up_now_times_out_when_the_writer_is_stuck(self):
        app, tracking = self.tracked_app()
        get(app.test_client(), "/user/1")
        self.assertTrue(tracking.flush())
        with mock.patch.object(tracking.writer, "roll_up"):  # requested, never done
            self.assertFalse(tracking.roll_up_now(timeout=0.05))
        self.assertEqual(self.behind(tracking), 1)

    def test_a_failed_roll_up_is_logged_and_read_back_later(self):
        app, tracking = self.tracked_app()
        get(app.test_client(), "/user/1")
        self.assertTrue(tracking.flush())
        self.assertEqual(tracking.writer.pending.count, 1)
        with mock.patch.object(rollups, "roll_up", side_effect=OperationalError("x", {}, "gone")), \
                self.assertLogs(app.logger, "WARNING") as logs:
            self.assertTrue(tracking.roll_up_now())
        self.assertIn("could not roll up", logs.output[0])
        self.assertEqual(tracking.writer.pending.count, 0)  # the rows are read back instead
        self.assertTrue(tracking.roll_up_now())
        self.assertEqual(self.behind(tracking), 0)
        with tracking.engine.connect() as conn:
            summary = reads.summary(conn, Filters(since=0, until=time.time() + 1))
        self.assertEqual([(row["endpoint"], row["count"]) for row in summary],
                         [("/user/<int:user_id>", 1)])

    @staticmethod
    def behind(tracking):
        """Rows stored past the roll-up mark."""
        with tracking.engine.connect() as conn:
            return reads.rows_behind(conn)

    def test_queue_is_flushed_at_interpreter_exit(self):
        database = os.path.join(self.tmpdir, "exit.sqlite3")
        script = textwrap.dedent(f"""
            from tracker_07.tests.tracking_helpers import make_app, get
            from tracker_07.tracking.extension import Tracking
            app = make_app({self.tmpdir!r}, TRACKER_DATABASE_URL="sqlite:///{database}",
                           TRACKER_FLUSH_INTERVAL=3600)
            Tracking(app)
            client = app.test_client()
            for user_id in range(25):
                get(client, f"/user/{{user_id}}")
        """)
        subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO_ROOT, timeout=60)
        engine = store.create_store_engine(f"sqlite:///{database}")
        with engine.connect() as conn:
            self.assertEqual(reads.row_count(conn), 25)
        engine.dispose()

    def test_fork_hook_discards_the_parents_queue_and_starts_a_writer(self):
        with mock.patch.object(writer.Writer, "start"):
            app, tracking = self.tracked_app()
        get(app.test_client(), "/user/1")  # queued in the "parent", never written
        self.assertEqual(tracking.stats()["queued"], 1)
        extension.restart_in_child(weakref.ref(tracking))
        self.assertEqual(tracking.stats()["queued"], 0)
        self.assertTrue(tracking.writer.thread.is_alive())
        get(app.test_client(), "/user/2")
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>"])
        tracking.shutdown()
        self.trackings.remove(tracking)
        extension.restart_in_child(weakref.ref(tracking))  # a stopped extension stays stopped
        self.assertFalse(tracking.writer.thread.is_alive())
        extension.restart_in_child(lambda: None)  # a collected extension is skipped

    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_forked_child_gets_its_own_writer(self):
        app, tracking = self.tracked_app()
        get(app.test_client(), "/user/1")
        self.assertTrue(tracking.flush())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12)
            pid = os.fork()
        if pid == 0:  # pragma: no cover  # the child's coverage is not collected
            code = 1
            try:
                get(app.test_client(), "/user/2")
                code = 0 if tracking.flush(10) and tracking.writer.thread.is_alive() else 2
            finally:
                os._exit(code)  # pylint: disable=protected-access  # the child must not clean up
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(len(self.stored_rows(tracking)), 2)


if __name__ == "__main__":
    unittest.main()
