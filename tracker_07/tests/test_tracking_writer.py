"""The writer thread: batches, retries, drops, roll-ups and retention."""
import os
import sqlite3
import time
import unittest
from unittest import mock

from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from tracker_07.tracking import filters, reads, store, writer, writes
from tracker_07.tracking.extension import Tracking
from tracker_07.tests.tracking_helpers import TrackedAppCase, get, make_app

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WriterTest(TrackedAppCase):
    """The background writer: batching, drops, failures, retention and shutdown."""

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

    def test_unparseable_status_is_stored_as_zero(self):
        _, tracking = self.tracked_app()
        rows = tracking.writer.rows_from([(1.0, 1.002, None, "GET", "bad status", None)])
        self.assertEqual(rows[0][1:4], ("<0>", "GET", 0))
        self.assertAlmostEqual(rows[0][4], 2.0)

    def test_rows_carry_the_stores_bucket_and_bounded_labels(self):
        _, tracking = self.tracked_app()
        durations_ms = [0.0, 0.004, store.MIN_BUCKET_MS, 0.0123, 1.0, 1.1892, 63.0, 999.9,
                        12_345.6, 1e7, 1e9]
        long_rule = "/" + "x" * 300
        batch = [(10.0, 10.0 + ms / 1000, long_rule, "GET", "200 OK", None)
                 for ms in durations_ms]
        rows = tracking.writer.rows_from(batch)
        self.assertEqual([row[-1] for row in rows],
                         [store.bucket_of(row[4]) for row in rows])
        self.assertEqual((rows[0][-1], rows[-1][-1]), (0, store.BUCKET_COUNT - 1))
        self.assertEqual({row[1] for row in rows}, {long_rule[:store.ENDPOINT_LENGTH]})


    def test_a_store_file_deleted_while_running_is_noticed_and_made_anew(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        get(client, "/user/1")
        self.assertEqual(len(self.stored_rows(tracking)), 1)
        database = f"{self.tmpdir}/tracker.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(database + suffix):
                os.remove(database + suffix)
        with self.assertLogs(app.logger, "WARNING") as logs:
            for user_id in range(2, 5):
                get(client, f"/user/{user_id}")
            self.assertTrue(tracking.flush(10))
        self.assertIn("was deleted or replaced", logs.output[0])
        self.assertTrue(os.path.exists(database))
        with sqlite3.connect(database) as conn:  # a fresh reader sees the new rows in the file
            count = conn.execute("SELECT count(*) FROM tracker_requests").fetchone()[0]
        self.assertEqual(count, 3)
        self.assertEqual(tracking.stats()["dropped"], 0)

    def test_a_file_that_was_never_created_is_not_a_replacement(self):
        app, tracking = self.tracked_app(TRACKER_DATABASE_URL="sqlite://")
        get(app.test_client(), "/user/1")
        self.assertEqual(len(self.stored_rows(tracking)), 1)
        self.assertIsNone(tracking.writer.store_file.path)
        self.assertFalse(tracking.writer.store_file.replaced())

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

    def test_few_new_rows_defer_maintenance_up_to_ten_intervals(self):
        app, tracking = self.tracked_app(TRACKER_MAX_ROWS=2, TRACKER_MAINTENANCE_INTERVAL=60)
        started = tracking.writer.last_maintenance
        for user_id in range(4):
            get(app.test_client(), f"/user/{user_id}")
        self.assertTrue(tracking.flush())
        # Four rows are far fewer than a pass needs to pay its fixed cost: it waits.
        for minutes in (1, 5, 9.9):
            self.assertEqual(tracking.writer.maintain(now=started + minutes * 60), 0)
        self.assertEqual(len(self.stored_rows(tracking)), 4)
        self.assertEqual(tracking.writer.maintain(now=started + 10 * 60), 2)
        self.assertEqual(len(self.stored_rows(tracking)), 2)
        with tracking.engine.connect() as conn:  # the deferred rows were rolled up too
            self.assertEqual(sum(row["count"] for row in reads.summary(
                conn, filters.Filters(since=0, until=filters.now() + 3600))), 4)

    def test_many_new_rows_make_maintenance_run_every_interval(self):
        app, tracking = self.tracked_app(TRACKER_MAX_ROWS=2, TRACKER_MAINTENANCE_INTERVAL=60)
        started = tracking.writer.last_maintenance
        for user_id in range(4):
            get(app.test_client(), f"/user/{user_id}")
        self.assertTrue(tracking.flush())
        with mock.patch.object(writer, "ROWS_PER_PASS", 4):
            self.assertEqual(tracking.writer.maintain(now=started + 59), 0)  # too soon
            self.assertEqual(tracking.writer.maintain(now=started + 60), 2)
            get(app.test_client(), "/user/9")
            self.assertTrue(tracking.flush())
            # One new row since that pass: the next one waits again.
            self.assertEqual(tracking.writer.maintain(now=started + 120), 0)
        self.assertEqual(len(self.stored_rows(tracking)), 3)

    def test_the_writer_threads_whole_cpu_is_its_cost_per_row(self):
        app, tracking = self.tracked_app(TRACKER_BATCH_SIZE=5)
        # Whatever the writer thread did (waking up, writing, maintaining) so far: 2 s.
        with mock.patch.object(writer.time, "thread_time", return_value=2.0):
            for user_id in range(8):
                get(app.test_client(), f"/user/{user_id}")
            self.assertTrue(tracking.flush())
        stats = tracking.stats()
        self.assertEqual((stats["written"], stats["writer_cpu_seconds"]), (8, 2.0))
        self.assertAlmostEqual(stats["writer_us_per_row"], 2.0 / 8 * 1e6)
        self.assertAlmostEqual(stats["cost_us_per_request"],
                               stats["request_path_us"] + 2.0 / 8 * 1e6)

    def test_work_done_in_other_threads_adds_to_the_writer_threads(self):
        app, tracking = self.tracked_app()
        get(app.test_client(), "/user/1")
        self.assertTrue(tracking.flush())
        in_thread = tracking.writer.thread_cpu_seconds
        self.assertGreater(in_thread, 0)
        with mock.patch.object(writer.time, "thread_time", side_effect=[10.0, 10.25]):
            tracking.writer.maintain(force=True)  # maintain_now() runs in the caller
        self.assertAlmostEqual(tracking.stats()["writer_cpu_seconds"],
                               in_thread + tracking.writer.cpu_seconds)
        self.assertAlmostEqual(tracking.writer.cpu_seconds, 0.25)

    def queued_app(self, requests, **config):
        """An app whose writer thread never started, with ``requests`` records queued."""
        with mock.patch.object(writer.Writer, "start"):
            app, tracking = self.tracked_app(**config)
        client = app.test_client()
        for user_id in range(requests):
            get(client, f"/user/{user_id}")
        return app, tracking

    def test_the_request_path_wakes_the_writer_only_for_a_full_batch(self):
        _app, tracking = self.queued_app(4, TRACKER_BATCH_SIZE=5)
        self.assertFalse(tracking.middleware.wake.is_set())  # no wake-up per request
        get(_app.test_client(), "/user/5")
        self.assertTrue(tracking.middleware.wake.is_set())

    def test_a_small_queue_wakes_the_writer_at_a_tenth(self):
        _app, tracking = self.queued_app(3, TRACKER_QUEUE_SIZE=30)
        self.assertTrue(tracking.middleware.wake.is_set())
        tracking.writer.write_queued(signalled=True)
        self.assertEqual((tracking.writer.written, len(tracking.middleware.queue)), (3, 0))

    def test_a_signal_writes_whole_batches_and_leaves_the_rest(self):
        _app, tracking = self.queued_app(7, TRACKER_BATCH_SIZE=3)
        tracking.writer.write_queued(signalled=True)
        self.assertEqual((tracking.writer.written, len(tracking.middleware.queue)), (6, 1))

    def test_the_timer_writes_whole_steps_so_few_statements_are_ever_prepared(self):
        _app, tracking = self.queued_app(1)
        step = writes.ROWS_PER_STEP
        queue = tracking.middleware.queue
        queue.extend([queue[0]] * (2 * step + 48))
        newest = (*queue[-1][:2], "/newest", *queue[-1][3:])
        queue.append(newest)
        with mock.patch.object(writes, "_multi_row_insert",
                               wraps=writes._multi_row_insert) as statement:  # pylint: disable=protected-access
            tracking.writer.write_queued(signalled=False)
            self.assertEqual(len(queue), 50)
            self.assertIs(queue[-1], newest)  # the newest rows wait for the next write
            queue.extend([queue[0]] * (step - 50))
            tracking.writer.write_queued(signalled=False)
        # Three statements of one size: two in a transaction, then one on its own.
        self.assertEqual([len(call.args[0]) for call in statement.call_args_list], [step] * 3)
        self.assertEqual(tracking.writer.written, 3 * step)
        stored = self.stored_rows(tracking)
        # Sorted: each write dates its rows from its own reading of the wall clock, so the
        # export's time order can put the second write's copies a microsecond earlier.
        self.assertEqual(sorted(row["id"] for row in stored), list(range(1, 3 * step + 1)))
        tracking.maintain_now()  # the roll-up merges what the writer counted, once each
        with tracking.engine.connect() as conn:
            self.assertEqual(conn.exec_driver_sql(
                "SELECT sum(count) FROM tracker_rollup_hourly").scalar(), 3 * step)

    def test_the_timer_writes_fewer_rows_than_a_step_all_at_once(self):
        _app, tracking = self.queued_app(3)
        tracking.writer.write_queued(signalled=False)
        self.assertEqual((tracking.writer.written, len(tracking.middleware.queue)), (3, 0))

    def test_the_writer_sleeps_five_flush_intervals_between_timed_writes(self):
        with mock.patch.object(writer.Writer, "start"):
            _app, tracking = self.tracked_app(TRACKER_FLUSH_INTERVAL=2.0)
        waits = []

        def wait(timeout):
            waits.append(timeout)
            tracking.writer.stopping.set()
            return False

        with mock.patch.object(tracking.middleware.wake, "wait", side_effect=wait):
            tracking.writer.run()
        self.assertEqual(waits, [2.0 * writer.MAX_DEFERRED_FLUSHES])

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
