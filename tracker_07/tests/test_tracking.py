"""The tracking extension: what it records per request, and how it behaves under trouble."""
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import unittest
import warnings
import weakref
from unittest import mock

from flask import Flask
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import ClosingIterator

from tracker_07 import settings
from tracker_07.tracking import extension, filters, middleware, reads, store, writer, writes
from tracker_07.tracking.extension import Tracking
from tracker_07.tests.tracking_helpers import FakeClock, TrackedAppCase, get, make_app

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RecordingTest(TrackedAppCase):
    """What ends up in the store for each kind of request."""

    def test_endpoint_is_the_url_rule_not_the_path(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        for user_id in (1, 2, 30):
            get(client, f"/user/{user_id}")
        rows = self.stored_rows(tracking)
        self.assertEqual([row["endpoint"] for row in rows], ["/user/<int:user_id>"] * 3)
        self.assertEqual({row["method"] for row in rows}, {"GET"})
        self.assertEqual({row["status"] for row in rows}, {200})

    def test_unmatched_urls_share_one_label_and_never_store_the_path(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        for number in range(5):
            get(client, f"/attack/{number}/<script>")
        get(client, "/user/1", method="DELETE")
        get(client, "/user/1", method="BREW")
        rows = self.stored_rows(tracking)
        self.assertEqual([row["endpoint"] for row in rows], ["<404>"] * 5 + ["<405>"] * 2)
        self.assertEqual([row["method"] for row in rows][-2:], ["DELETE", "OTHER"])
        self.assertFalse(any("attack" in str(value) for row in rows for value in row.values()))

    def test_statuses_are_recorded(self):
        app, tracking = self.tracked_app(TRACKER_SLOW_MS=0)
        client = app.test_client()
        for code in (201, 302, 404, 503):
            get(client, f"/status/{code}")
        get(client, "/status/200", method="POST")
        with self.assertLogs(app.logger, "ERROR"):
            get(client, "/boom")
        rows = self.stored_rows(tracking)
        self.assertEqual([(row["endpoint"], row["method"], row["status"]) for row in rows], [
            ("/status/<int:code>", "GET", 201), ("/status/<int:code>", "GET", 302),
            ("/status/<int:code>", "GET", 404), ("/status/<int:code>", "GET", 503),
            ("/status/<int:code>", "POST", 200), ("/boom", "GET", 500),
        ])

    def test_propagated_exception_is_recorded_as_500(self):
        # With PROPAGATE_EXCEPTIONS no response is started, so the rule is never seen.
        app, tracking = self.tracked_app(TESTING=True)
        with self.assertRaisesRegex(RuntimeError, "boom"):
            get(app.test_client(), "/boom")
        rows = self.stored_rows(tracking)
        self.assertEqual([(row["endpoint"], row["status"]) for row in rows], [("<500>", 500)])

    def test_duration_covers_streaming_the_body(self):
        for path in ("/stream", "/passthrough"):
            with self.subTest(path=path):
                clock = FakeClock()
                with mock.patch.object(middleware, "perf_counter", clock):
                    app, tracking = self.tracked_app(
                        clock=clock, TRACKER_SLOW_MS=0,
                        TRACKER_DATABASE_URL=f"sqlite:///{self.tmpdir}/{path[1:]}.sqlite3")
                    response = app.test_client().get(path)
                    self.assertEqual(tracking.stats()["queued"], 0)  # not closed: not queued
                    self.assertEqual(response.get_data(as_text=True).count("chunk"), 3)
                    response.close()
                rows = self.stored_rows(tracking)
                self.assertEqual([row["endpoint"] for row in rows], [path])
                self.assertAlmostEqual(rows[0]["duration_ms"], 750.0)
        self.assertTrue(app.config["PASSTHROUGH_CLOSED"])  # the wrapper closed the body

    def test_duration_includes_the_responses_close_callbacks(self):
        clock = FakeClock()
        with mock.patch.object(middleware, "perf_counter", clock):
            app, tracking = self.tracked_app(clock=clock, TRACKER_SLOW_MS=0)
            get(app.test_client(), "/on-close")
        self.assertAlmostEqual(self.stored_rows(tracking)[0]["duration_ms"], 500.0)

    def test_flask_bodies_are_joined_other_bodies_wrapped(self):
        app, tracking = self.tracked_app()
        for path, kind in (("/user/1", ClosingIterator), ("/passthrough", middleware.TrackedBody)):
            with self.subTest(path=path):
                body = app.wsgi_app(EnvironBuilder(path=path).get_environ(),
                                    lambda status, headers, exc_info=None: None)
                self.assertIs(type(body), kind)
                self.assertTrue(b"".join(body))
                self.assertEqual(tracking.stats()["queued"], 0)
                body.close()
                self.assertEqual(tracking.stats()["queued"], 1)
                self.assertTrue(tracking.flush())
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>", "/passthrough"])

    def test_bodies_the_tracker_cannot_join_are_wrapped(self):
        _, tracking = self.tracked_app()
        odd = ClosingIterator([b"odd"])
        odd._callbacks = ()  # pylint: disable=protected-access  # not a list: not joined
        for inner_body, chunks in (([b"plain list"], [b"plain list"]), (odd, [b"odd"])):
            with self.subTest(body=type(inner_body).__name__):
                wrapper = middleware.TrackingMiddleware(
                    lambda environ, start_response, body=inner_body: body, tracking.settings)
                body = wrapper(EnvironBuilder(path="/raw").get_environ(), None)
                self.assertIs(type(body), middleware.TrackedBody)
                self.assertEqual(list(body), chunks)
                body.close()
                self.assertEqual(len(wrapper.queue), 1)
                self.assertEqual(wrapper.queue[0][2:], (None, "GET", "500"))

    def test_closing_twice_records_once(self):
        app, tracking = self.tracked_app()
        response = app.test_client().get("/user/1")
        response.close()
        response.close()
        self.assertEqual(len(self.stored_rows(tracking)), 1)

    def test_default_ignore_patterns(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        for path in ("/static/app.css", "/dashboard/", "/dashboard/endpoints", "/favicon.ico",
                     "/user/5"):
            get(client, path)
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>"])

    def test_custom_ignore_patterns_are_regular_expressions(self):
        app, tracking = self.tracked_app(TRACKER_IGNORE=[r"^/user/\d*7$", r"^/status/"])
        client = app.test_client()
        for path in ("/user/7", "/user/17", "/user/70", "/status/200", "/static-ish/x"):
            get(client, path)
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>", "/static-ish/<path:name>"])

    def test_ignore_matcher_prefixes_exact_paths_and_regexes(self):
        is_ignored = middleware.ignore_matcher(
            [r"^/static/", r"^/favicon\.ico$", r"^/a\-b", r"\.php$", r"^/x/.*/y"]
        )
        for path in ("/static/x", "/favicon.ico", "/a-b/c", "/wp/login.php", "/x/1/y"):
            self.assertTrue(is_ignored(path), path)
        for path in ("/statics", "/favicon.ico2", "/favicon_ico", "/a", "/x/y", "/"):
            self.assertFalse(is_ignored(path), path)
        self.assertFalse(middleware.ignore_matcher([])("/static/x"))

    def test_sampling(self):
        cases = ((0.0, 0), (1.0, 10))
        for rate, stored in cases:
            with self.subTest(rate=rate):
                app, tracking = self.tracked_app(TRACKER_SAMPLE_RATE=rate,
                                                 TRACKER_DATABASE_URL="sqlite://")
                client = app.test_client()
                for user_id in range(10):
                    get(client, f"/user/{user_id}")
                self.assertEqual(len(self.stored_rows(tracking)), stored)
        draws = iter([0.1, 0.9, 0.2, 0.7])
        with mock.patch.object(middleware, "random", lambda: next(draws)):
            app, tracking = self.tracked_app(TRACKER_SAMPLE_RATE=0.5,
                                             TRACKER_DATABASE_URL="sqlite://")
            for user_id in range(4):
                get(app.test_client(), f"/user/{user_id}")
        self.assertEqual(len(self.stored_rows(tracking)), 2)

    def test_slow_requests_log_a_warning(self):
        clock = FakeClock()
        with mock.patch.object(middleware, "perf_counter", clock):
            app, tracking = self.tracked_app(clock=clock, TRACKER_SLOW_MS=500)
            client = app.test_client()
            with self.assertLogs(app.logger, "WARNING") as logs:
                get(client, "/stream")  # 750 ms on the fake clock
                get(client, "/user/1")  # 0 ms
                tracking.flush()
        self.assertEqual(len(logs.records), 1)
        message = logs.records[0].getMessage()
        for part in ("GET", "/stream", "200", "750.0 ms"):
            self.assertIn(part, message)

    def test_slow_warning_disabled_with_zero(self):
        clock = FakeClock()
        with mock.patch.object(middleware, "perf_counter", clock):
            app, tracking = self.tracked_app(clock=clock, TRACKER_SLOW_MS=0)
            with self.assertNoLogs(app.logger, "WARNING"):
                get(app.test_client(), "/stream")
                tracking.flush()
        self.assertEqual(len(self.stored_rows(tracking)), 1)


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


class WriterTest(TrackedAppCase):
    """The background writer: batching, drops, failures, retention and shutdown."""

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

    def test_full_batches_are_written_without_waiting_for_the_interval(self):
        app, tracking = self.tracked_app(TRACKER_BATCH_SIZE=5, TRACKER_FLUSH_INTERVAL=3600)
        client = app.test_client()
        for user_id in range(7):
            get(client, f"/user/{user_id}")
        for _ in range(1000):  # bounded wait for the writer thread, not a timing check
            if tracking.stats()["written"] == 5 and not tracking.writer.busy:
                break
            time.sleep(0.01)
        # One full batch went out; the partial one waits for the interval or a flush.
        self.assertEqual((tracking.stats()["written"], tracking.stats()["queued"]), (5, 2))
        self.assertTrue(tracking.flush())
        self.assertEqual(tracking.stats()["written"], 7)

    def test_full_queue_drops_are_counted_logged_and_stored(self):
        with mock.patch.object(writer.Writer, "start"):
            app, tracking = self.tracked_app(TRACKER_QUEUE_SIZE=3)
        self.assertEqual(tracking.stats()["cost_us_per_request"], 0.0)
        client = app.test_client()
        for user_id in range(5):
            get(client, f"/user/{user_id}")
        self.assertEqual(tracking.stats()["queued"], 3)
        self.assertEqual(tracking.stats()["dropped"], 2)
        with self.assertLogs(app.logger, "WARNING") as logs:
            self.assertTrue(tracking.flush())
        self.assertIn("dropped 2 request records", logs.output[0])
        self.assertEqual(len(self.stored_rows(tracking)), 3)
        with tracking.engine.connect() as conn:
            self.assertEqual(reads.dropped_count(conn), 2)

    def test_dead_database_never_fails_a_request_and_counts_drops(self):
        with mock.patch.object(writer.Writer, "start"):  # flush() drains in this thread
            app, tracking = self.tracked_app()
        dead = OperationalError("INSERT", {}, Exception("unable to open database file"))
        client = app.test_client()
        with mock.patch.object(writer, "RETRY_BACKOFF_SECONDS", 0), \
                mock.patch.object(tracking.engine, "connect", side_effect=dead) as connect:
            with self.assertLogs(app.logger, "WARNING") as logs:
                responses = [get(client, f"/user/{user_id}") for user_id in range(4)]
                self.assertTrue(tracking.flush())
        self.assertEqual([response.status_code for response in responses], [200] * 4)
        # One try plus the retries for the batch, then one for recording the drop count.
        self.assertEqual(connect.call_count, writer.WRITE_RETRIES + 2)
        self.assertEqual(tracking.stats()["dropped"], 4)
        self.assertEqual(tracking.stats()["written"], 0)
        self.assertTrue(any("could not store 4 request records" in line for line in logs.output))
        self.assertTrue(any("could not record the drop count" in line for line in logs.output))
        # Once the database is back, rows flow again.
        get(client, "/user/9")
        self.assertEqual(len(self.stored_rows(tracking)), 1)

    def test_a_batch_is_one_autocommit_statement_that_leaves_no_lock(self):
        with mock.patch.object(writer.Writer, "start"):  # flush() drains in this thread
            app, tracking = self.tracked_app()
        client = app.test_client()
        with mock.patch.object(writes, "append_rows", wraps=writes.append_rows) as append:
            for user_id in range(3):
                get(client, f"/user/{user_id}")
            self.assertTrue(tracking.flush())
        self.assertEqual(append.call_count, 1)
        # The statement committed itself: another writer gets the lock without waiting.
        other = sqlite3.connect(f"{self.tmpdir}/tracker.sqlite3", timeout=0,
                                isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        self.assertEqual(other.execute("SELECT count(*) FROM tracker_requests").fetchone(), (3,))
        other.execute("ROLLBACK")

    def test_driver_errors_are_retried_and_the_batch_stored_once(self):
        with mock.patch.object(writer.Writer, "start"):
            app, tracking = self.tracked_app()
        outcomes = iter([sqlite3.OperationalError("database is locked"), None])
        original = writes.append_rows

        def locked_once(conn, rows):
            error = next(outcomes)
            if error is not None:
                raise error
            return original(conn, rows)

        with mock.patch.object(writer, "RETRY_BACKOFF_SECONDS", 0), \
                mock.patch.object(writes, "append_rows", side_effect=locked_once):
            with self.assertLogs(app.logger, "WARNING") as logs:
                get(app.test_client(), "/user/1")
                self.assertTrue(tracking.flush())
        self.assertIn("OperationalError: database is locked", logs.output[0])
        self.assertEqual(len(self.stored_rows(tracking)), 1)
        self.assertEqual(tracking.stats()["dropped"], 0)

    def test_batches_beyond_one_statement_are_one_transaction(self):
        with mock.patch.object(writer.Writer, "start"):
            app, tracking = self.tracked_app(TRACKER_BATCH_SIZE=5)
        client = app.test_client()
        for user_id in range(5):
            get(client, f"/user/{user_id}")
        inserts = []
        real_exec = Connection.exec_driver_sql

        def second_insert_fails_once(conn, sql, parameters=None):
            if sql.startswith("INSERT"):
                inserts.append(len(parameters))
                if len(inserts) == 2:
                    raise OperationalError("INSERT", {}, Exception("disk I/O error"))
            return real_exec(conn, sql, parameters)

        with mock.patch.object(writes, "ROWS_PER_INSERT", 2), \
                mock.patch.object(writer, "RETRY_BACKOFF_SECONDS", 0), \
                mock.patch.object(Connection, "exec_driver_sql", autospec=True,
                                  side_effect=second_insert_fails_once):
            with self.assertLogs(app.logger, "WARNING"):
                self.assertTrue(tracking.flush())
        columns = len(writes.INSERT_COLUMNS)
        self.assertEqual(inserts, [2 * columns, 2 * columns, 2 * columns, 2 * columns, columns])
        # Statements of 2 + 2 + 1 rows; the failed try rolled back its first statement.
        self.assertEqual(len(self.stored_rows(tracking)), 5)
        self.assertEqual(sorted(row["endpoint"] for row in self.stored_rows(tracking)),
                         ["/user/<int:user_id>"] * 5)

    def test_store_down_at_start_up_is_retried_by_the_writer(self):
        dead = OperationalError("CREATE", {}, Exception("connection refused"))
        app = make_app(self.tmpdir)
        with mock.patch.object(writer, "create_schema", side_effect=dead):
            with self.assertLogs(app.logger, "WARNING") as logs:
                tracking = Tracking(app)
        self.trackings.append(tracking)
        self.assertIn("could not create its tables yet", logs.output[0])
        self.assertFalse(tracking.writer.schema_ready)
        self.assertEqual(get(app.test_client(), "/user/1").status_code, 200)
        self.assertEqual(len(self.stored_rows(tracking)), 1)
        self.assertTrue(tracking.writer.schema_ready)

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

    def test_unparseable_status_is_stored_as_zero(self):
        _, tracking = self.tracked_app()
        rows = tracking.writer.rows_from([(1.0, 1.002, None, "GET", "bad status")])
        self.assertEqual(rows[0][1:4], ("<0>", "GET", 0))
        self.assertAlmostEqual(rows[0][4], 2.0)

    def test_rows_carry_the_stores_bucket_and_bounded_labels(self):
        _, tracking = self.tracked_app()
        durations_ms = [0.0, 0.004, store.MIN_BUCKET_MS, 0.0123, 1.0, 1.1892, 63.0, 999.9,
                        12_345.6, 1e7, 1e9]
        long_rule = "/" + "x" * 300
        batch = [(10.0, 10.0 + ms / 1000, long_rule, "GET", "200 OK") for ms in durations_ms]
        rows = tracking.writer.rows_from(batch)
        self.assertEqual([row[5] for row in rows],
                         [store.bucket_of(row[4]) for row in rows])
        self.assertEqual((rows[0][5], rows[-1][5]), (0, store.BUCKET_COUNT - 1))
        self.assertEqual({row[1] for row in rows}, {long_rule[:store.ENDPOINT_LENGTH]})

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



class MaintenanceTest(TrackedAppCase):
    """Roll-ups and retention, which the writer runs on its interval."""

    def test_retention_by_count_and_by_age(self):
        app, tracking = self.tracked_app(TRACKER_MAX_ROWS=5, TRACKER_RETENTION_DAYS=1)
        with tracking.engine.begin() as conn:
            writes.insert_batch(conn, [(filters.now() - 3 * 86400, "/old", "GET", 200, 1.0)])
        client = app.test_client()
        for user_id in range(8):
            get(client, f"/user/{user_id}")
        self.assertEqual(tracking.maintain_now(), 4)
        rows = self.stored_rows(tracking)
        self.assertEqual(len(rows), 5)
        self.assertNotIn("/old", {row["endpoint"] for row in rows})
        with tracking.engine.connect() as conn:
            summary = reads.summary(conn, filters.Filters(since=0, until=filters.now() + 3600))
        self.assertEqual([row["endpoint"] for row in summary], ["/user/<int:user_id>"])

    def test_maintenance_runs_on_its_interval(self):
        app, tracking = self.tracked_app(TRACKER_MAX_ROWS=2, TRACKER_MAINTENANCE_INTERVAL=3600)
        self.assertEqual(tracking.writer.maintain(force=True), 0)
        for user_id in range(4):
            get(app.test_client(), f"/user/{user_id}")
        self.assertTrue(tracking.flush())
        self.assertEqual(tracking.writer.maintain(), 0)  # too soon: nothing pruned
        self.assertEqual(len(self.stored_rows(tracking)), 4)
        self.assertEqual(tracking.maintain_now(), 2)

    def test_no_retention_configured_means_nothing_pruned(self):
        app, tracking = self.tracked_app(TRACKER_MAX_ROWS=0, TRACKER_RETENTION_DAYS=0)
        with tracking.engine.begin() as conn:
            writes.insert_batch(conn, [(1.0, "/ancient", "GET", 200, 1.0)])
        get(app.test_client(), "/user/1")
        self.assertEqual(tracking.maintain_now(), 0)
        self.assertEqual(len(self.stored_rows(tracking)), 2)

    def test_roll_up_and_retention_count_in_the_writers_cost(self):
        with mock.patch.object(writer.Writer, "start"):  # flush() drains in this thread
            app, tracking = self.tracked_app()
        get(app.test_client(), "/user/1")
        self.assertTrue(tracking.flush())
        before = tracking.writer.cpu_seconds
        with mock.patch.object(writer.time, "thread_time", side_effect=[10.0, 10.25]):
            tracking.writer.maintain(force=True)
        self.assertAlmostEqual(tracking.writer.cpu_seconds - before, 0.25)

    def test_maintenance_failure_is_logged_not_raised(self):
        app, tracking = self.tracked_app()
        broken = OperationalError("DELETE", {}, Exception(""))
        with mock.patch.object(writer.writes, "prune", side_effect=broken):
            with self.assertLogs(app.logger, "WARNING") as logs:
                self.assertEqual(tracking.maintain_now(), 0)
        self.assertIn("maintenance failed: OperationalError", logs.output[0])


if __name__ == "__main__":
    unittest.main()
