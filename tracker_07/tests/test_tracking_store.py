"""The tracking store on SQLite: engine set-up, schema and latency buckets."""
import sqlite3
import tempfile
import unittest
from unittest import mock

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from tracker_07.tracking import reads, schema, store, writes
from tracker_07.tests.tracking_helpers import sqlite_engine


class EngineTest(unittest.TestCase):
    """Engine creation, URL validation and schema creation."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(self._tmp.cleanup)

    def test_sqlite_pragmas_allow_several_writers(self):
        engine = sqlite_engine(self._tmp.name)
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            self.assertEqual(conn.exec_driver_sql("PRAGMA journal_mode").scalar(), "wal")
            self.assertEqual(conn.exec_driver_sql("PRAGMA busy_timeout").scalar(),
                             store.SQLITE_BUSY_TIMEOUT_MS)
            self.assertEqual(conn.exec_driver_sql("PRAGMA synchronous").scalar(), 1)

    def test_immediate_transactions_take_the_write_lock_at_begin(self):
        engine = sqlite_engine(self._tmp.name)
        other = sqlite_engine(self._tmp.name)
        self.addCleanup(engine.dispose)
        self.addCleanup(other.dispose)
        schema.create_schema(engine)
        with engine.connect() as conn:
            conn.execution_options(**{store.IMMEDIATE: True})
            with conn.begin():
                conn.exec_driver_sql("SELECT 1")
                with other.connect() as blocked:
                    blocked.exec_driver_sql("PRAGMA busy_timeout=0")
                    blocked.commit()
                    blocked.execution_options(**{store.IMMEDIATE: True})
                    with self.assertRaisesRegex(OperationalError, "locked"):
                        with blocked.begin():
                            pass

    def test_schema_is_created_by_create_schema_only(self):
        engine = sqlite_engine(self._tmp.name)
        self.addCleanup(engine.dispose)
        self.assertEqual(inspect(engine).get_table_names(), [])
        schema.create_schema(engine)
        schema.create_schema(engine)
        self.assertEqual(sorted(inspect(engine).get_table_names()),
                         ["tracker_endpoints", "tracker_meta", "tracker_requests",
                          "tracker_rollup_daily",
                          "tracker_rollup_hourly", "tracker_rollup_totals", "tracker_spans",
                          "tracker_staged_hourly", "tracker_staged_status",
                          "tracker_status_daily", "tracker_status_hourly"])
        # Retention deletes raw rows without an index entry each to delete too.
        self.assertEqual(inspect(engine).get_indexes("tracker_requests"), [])

    def test_a_new_store_gets_large_pages_and_an_older_one_keeps_its_own(self):
        engine = sqlite_engine(self._tmp.name)
        self.addCleanup(engine.dispose)
        schema.create_schema(engine)
        with engine.connect() as conn:
            self.assertEqual(conn.exec_driver_sql("PRAGMA page_size").scalar(),
                             store.SQLITE_PAGE_SIZE)
        older = f"{self._tmp.name}/older.sqlite3"
        made = sqlite3.connect(older)
        made.execute("CREATE TABLE made_before (x)")
        made.close()
        engine = store.create_store_engine(f"sqlite:///{older}")
        self.addCleanup(engine.dispose)
        schema.create_schema(engine)
        with engine.connect() as conn:
            self.assertEqual(conn.exec_driver_sql("PRAGMA page_size").scalar(), 4096)
            self.assertEqual(reads.row_count(conn), 0)

    def test_create_schema_retries_a_race_then_gives_up(self):
        engine = sqlite_engine(self._tmp.name)
        self.addCleanup(engine.dispose)
        race = OperationalError("CREATE TABLE", {}, Exception("table already exists"))
        create_all = store.metadata.create_all
        effects = iter([race, None])  # the other process wins, then our retry creates them

        def racing(*args, **kwargs):
            effect = next(effects)
            if effect is not None:
                raise effect
            return create_all(*args, **kwargs)

        with mock.patch.object(store.metadata, "create_all", side_effect=racing) as create:
            schema.create_schema(engine)
        self.assertEqual(create.call_count, 2)
        with mock.patch.object(store.metadata, "create_all", side_effect=race):
            with self.assertRaises(OperationalError):
                schema.create_schema(engine)

    def test_in_memory_database_is_shared_between_threads(self):
        engine = store.create_store_engine("sqlite://")
        self.addCleanup(engine.dispose)
        schema.create_schema(engine)
        with engine.begin() as conn:
            writes.insert_batch(conn, [(1.0, "/x", "GET", 200, 2.0)])
        with engine.connect() as conn:
            self.assertEqual(reads.row_count(conn), 1)

    def test_bad_urls_are_clear_errors(self):
        cases = {
            "not a url": "not a valid database URL: 'not a url'",
            "": "must be a non-empty database URL",
            "mysql://user:secret@db/x": "unsupported database 'mysql'",
            "sqlite+nosuchdriver:///x.db": "driver that is not installed",
        }
        for url, message in cases.items():
            with self.subTest(url=url):
                with self.assertRaisesRegex(ValueError, "TRACKER_DATABASE_URL") as caught:
                    store.create_store_engine(url)
                self.assertIn(message, str(caught.exception))
                self.assertNotIn("secret", str(caught.exception))
        with self.assertRaisesRegex(ValueError, "must be a non-empty"):
            store.parse_url(None)


class BucketTest(unittest.TestCase):
    """The logarithmic latency buckets behind every percentile."""

    def test_every_duration_lies_in_its_bucket(self):
        value = 0.004
        while value < 3e6:
            low, high = store.bucket_bounds(store.bucket_of(value))
            self.assertLessEqual(low, value * (1 + 1e-12))
            self.assertLess(value, high * (1 + 1e-12))
            value *= 1.07
        self.assertEqual(store.bucket_of(0.0), 0)
        self.assertEqual(store.bucket_of(1e12), store.BUCKET_COUNT - 1)
        self.assertEqual(store.bucket_bounds(0), (0.0, store.MIN_BUCKET_MS))

    def test_bucket_middle_is_within_the_documented_error(self):
        for index in range(1, store.BUCKET_COUNT - 1):
            low, high = store.bucket_bounds(index)
            middle = store.bucket_middle(index)
            self.assertLessEqual(middle / low - 1, store.BUCKET_ERROR + 1e-12)
            self.assertLessEqual(1 - middle / high, store.BUCKET_ERROR)
        self.assertEqual(store.bucket_middle(0), store.MIN_BUCKET_MS / 2)
        self.assertLess(store.BUCKET_ERROR, 0.091)


if __name__ == "__main__":
    unittest.main()


class OlderStoreTest(unittest.TestCase):
    """A store made before the database columns existed gets them, with 0 in old rows."""

    def test_missing_columns_are_added_and_old_rows_read_as_zero(self):
        with tempfile.TemporaryDirectory() as tmpdir:
            engine = sqlite_engine(tmpdir)
            self.addCleanup(engine.dispose)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE TABLE tracker_requests (id INTEGER PRIMARY KEY, started_at FLOAT "
                    "NOT NULL, endpoint VARCHAR(200) NOT NULL, method VARCHAR(16) NOT NULL, "
                    "status SMALLINT NOT NULL, duration_ms FLOAT NOT NULL, "
                    "bucket SMALLINT NOT NULL)")
                conn.exec_driver_sql("INSERT INTO tracker_requests (started_at, endpoint, method,"
                                     " status, duration_ms, bucket) VALUES (1.0, '/', 'GET', "
                                     "200, 2.0, 5)")
            schema.create_schema(engine)
            columns = {column["name"] for column in inspect(engine).get_columns("tracker_requests")}
            self.assertLessEqual({"queries", "sql_ms", "findings"}, columns)
            with engine.begin() as conn:
                self.assertEqual(schema.add_missing_columns(conn), [])
                (row,) = reads.export_rows(conn)
            self.assertEqual((row["queries"], row["sql_ms"], row["findings"]), (0, 0, 0))
