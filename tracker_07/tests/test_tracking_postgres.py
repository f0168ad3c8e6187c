"""The tracking store and extension on a real PostgreSQL server.

CI sets TRACKER_TEST_DATABASE_URL from ``.ci/postgres-start``; without it these tests are
skipped with a message saying so, or fail when TRACKER_REQUIRE_POSTGRES is set (as in CI).
"""
import os
import tempfile
import unittest
from unittest import mock

from sqlalchemy import inspect

from tracker_07.tracking import filters, reads, rollups, store
from tracker_07.tests import test_tracking_filters
from tracker_07.tests.base import needs
from tracker_07.tests.test_tracking_reads import ReadsMixin
from tracker_07.tests.test_tracking_rollups import UpgradeMixin, WriterCountsMixin
from tracker_07.tests.test_tracking_spans import SpansMixin
from tracker_07.tests.test_tracking_writes import WritesMixin
from tracker_07.tests.tracking_helpers import TrackedAppCase, get

DATABASE_URL = os.environ.get("TRACKER_TEST_DATABASE_URL", "")
NEEDS_POSTGRES = needs(
    "PostgreSQL store tests",
    None if DATABASE_URL else "TRACKER_TEST_DATABASE_URL not set",
    "TRACKER_REQUIRE_POSTGRES",
    'start a throwaway server: eval "$(.ci/postgres-start)"',
)


def empty_store_url():
    """The test server's URL, its tracking tables dropped."""
    engine = store.create_store_engine(DATABASE_URL)
    with engine.begin() as conn:
        store.metadata.drop_all(conn)
    engine.dispose()
    return DATABASE_URL


@NEEDS_POSTGRES
class PostgresStoreTest(ReadsMixin, WritesMixin, UpgradeMixin, SpansMixin, unittest.TestCase):
    """The shared read, write, upgrade and span tests on PostgreSQL."""

    def make_engine(self):
        engine = store.create_store_engine(DATABASE_URL)
        with engine.begin() as conn:
            store.metadata.drop_all(conn)
        return engine

    def test_tables_exist_with_the_expected_types(self):
        columns = {column["name"]: column for column in
                   inspect(self.engine).get_columns("tracker_requests")}
        self.assertEqual(str(columns["id"]["type"]), "BIGINT")
        self.assertEqual(str(columns["started_at"]["type"]), "DOUBLE PRECISION")

    def test_statements_are_planned_without_parallel_workers(self):
        # Every connection of the pool, a new one after a rollback included.
        for _ in range(2):
            with self.engine.connect() as conn:
                setting = conn.exec_driver_sql("SHOW max_parallel_workers_per_gather")
                self.assertEqual(setting.scalar(), "0")
                conn.rollback()
            self.engine.dispose()
        with self.engine.connect() as conn:  # the server's own default is left alone
            default = conn.exec_driver_sql(
                "SELECT boot_val FROM pg_settings WHERE name = 'max_parallel_workers_per_gather'")
            self.assertNotEqual(default.scalar(), "0")

    def test_a_server_refusing_the_setting_still_serves_the_store(self):
        import psycopg  # pylint: disable=import-outside-toplevel  # the driver of the URL
        execute = psycopg.Cursor.execute

        def refuse_the_setting(cursor, query, *args, **kwargs):
            if str(query).startswith("SET max_parallel_workers_per_gather"):
                raise psycopg.errors.UndefinedObject("unrecognized configuration parameter")
            return execute(cursor, query, *args, **kwargs)

        engine = store.create_store_engine(DATABASE_URL)
        try:
            with mock.patch.object(psycopg.Cursor, "execute", refuse_the_setting):
                with engine.connect() as conn:
                    self.assertEqual(conn.exec_driver_sql("SELECT 41 + 1").scalar(), 42)
                    setting = conn.exec_driver_sql("SHOW max_parallel_workers_per_gather")
                    self.assertNotEqual(setting.scalar(), "0")  # the server's own, left
        finally:
            engine.dispose()


@NEEDS_POSTGRES
class PostgresWriterCountsTest(WriterCountsMixin, unittest.TestCase):
    """The writer's counted groups, late ones and ones sharing a total included, merge into
    PostgreSQL's roll-ups (through COPY) exactly as its database sums the raw rows."""

    def database_url(self):
        return empty_store_url()


@NEEDS_POSTGRES
class PostgresTrackingTest(TrackedAppCase):
    """Requests tracked by the extension land in PostgreSQL."""

    def test_requests_are_stored_and_summarised(self):
        with tempfile.TemporaryDirectory() as tmpdir:
            app, tracking = self.tracked_app(TRACKER_DATABASE_URL=empty_store_url(),
                                             TRACKER_SLOW_MS=0)
            client = app.test_client()
            for user_id in range(20):
                get(client, f"/user/{user_id}")
            get(client, f"/missing/{tmpdir}")
            self.assertEqual(tracking.flush(10), True)
            tracking.maintain_now()
            with tracking.engine.connect() as conn:
                rows = reads.summary(conn, filters.Filters(since=0, until=filters.now() + 60),
                                     sort="endpoint", descending=False)
                self.assertEqual(reads.dropped_count(conn), 0)
            self.assertEqual([(row["endpoint"], row["count"]) for row in rows],
                             [("/user/<int:user_id>", 20), ("<404>", 1)])


    def test_the_writers_counted_groups_are_merged_exactly(self):
        tracking, client = self.empty_store_app()
        paths = [f"/user/{number}" for number in range(30)] + ["/status/404"] * 7
        for path in paths:
            get(client, path)
        self.assertTrue(tracking.flush(10))
        self.assertEqual(tracking.writer.pending.count, len(paths))
        with mock.patch.object(rollups, "_roll_up_rows", side_effect=AssertionError("read back")):
            tracking.maintain_now()
        self.assertEqual(self.summary(tracking),
                         [("/status/<int:code>", 7, 7), ("/user/<int:user_id>", 30, 0)])

    def test_ids_drawn_by_another_session_between_make_the_roll_up_read_rows_back(self):
        tracking, client = self.empty_store_app()
        for number in range(5):
            get(client, f"/user/{number}")
        self.assertTrue(tracking.flush(10))
        with tracking.engine.begin() as conn:  # every other id goes elsewhere from now on
            conn.exec_driver_sql("ALTER SEQUENCE tracker_requests_id_seq INCREMENT BY 2")
        for number in range(4):
            get(client, f"/status/{500 + number}")
        self.assertTrue(tracking.flush(10))
        with mock.patch.object(rollups, "_roll_up_rows", wraps=rollups._roll_up_rows) as read_back:  # pylint: disable=protected-access
            tracking.maintain_now()
        read_back.assert_called_once()
        self.assertEqual(self.summary(tracking),
                         [("/status/<int:code>", 4, 0), ("/user/<int:user_id>", 5, 0)])

    def empty_store_app(self):
        """A tracked app on an empty PostgreSQL store, and its test client."""
        app, tracking = self.tracked_app(TRACKER_DATABASE_URL=empty_store_url(),
                                         TRACKER_SLOW_MS=0)
        return tracking, app.test_client()

    def summary(self, tracking):
        """(endpoint, count, 4xx count) of every stored row, all rolled up."""
        with tracking.engine.connect() as conn:
            self.assertEqual(reads.rows_behind(conn), 0)
            rows = reads.summary(conn, filters.Filters(since=0, until=filters.now() + 60),
                                 sort="endpoint", descending=False)
        return [(row["endpoint"], row["count"], row["count_4xx"]) for row in rows]


@NEEDS_POSTGRES
class PostgresDashboardAndCliTest(test_tracking_filters.DashboardAndCliTest):
    """The dashboard and ``flask tracker`` read the same rows from PostgreSQL."""

    def database_url(self):
        return empty_store_url()


if __name__ == "__main__":
    unittest.main()
