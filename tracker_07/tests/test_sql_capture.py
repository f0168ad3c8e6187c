"""Capture (tracker_07/sql/capture.py): every query of a watched engine, per request, with
its time, rows and the app line that ran it; nothing from engines that are not watched or
from Tracker's own store.  The request tests run on an SQLite file and, with
TRACKER_TEST_DATABASE_URL set, on the real PostgreSQL server."""
import logging
import os
import tempfile
import threading
import unittest

from sqlalchemy import create_engine, text

from tracker_07.profiles import index
from tracker_07.sql import capture
from tracker_07.tests import sql_app
from tracker_07.tests.sql_app import (
    ITEMS, SLOW_QUERY_MS, create_sql_app, site_line, template_line,
)
from tracker_07.tests.tracking_helpers import get
from tracker_07.tracking import reads

DATABASE_URL = os.environ.get("TRACKER_TEST_DATABASE_URL", "")
APP_FILE = "tracker_07/tests/sql_app.py"


class CaptureMixin:
    """Request-level capture tests shared by SQLite and PostgreSQL."""

    database_url = None
    store_url = None

    def setUp(self):  # pylint: disable=invalid-name  # unittest's name
        """Build the test app on this class's database."""
        self._tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.tmpdir = self._tmp.name
        settings = {"TRACKER_DATABASE_URL": self.store_url} if self.store_url else {}
        self.app, self.tracker, self.engine = create_sql_app(
            self.tmpdir, self.database_url, **settings)
        self.client = self.app.test_client()

    def tearDown(self):  # pylint: disable=invalid-name  # unittest's name
        """Stop the writer and drop the test tables."""
        self.app.extensions["tracker_tracking"].shutdown()
        sql_app.Base.metadata.drop_all(self.engine)
        self.engine.dispose()
        self._tmp.cleanup()

    def record(self, path):
        """Request ``path`` and return its profile's index record."""
        response = get(self.client, path)
        self.assertEqual(response.status_code, 200, response.data)
        records = index.read_index(os.path.join(self.tmpdir, "profiles"))
        self.assertEqual(records[-1]["path"], path)
        return records[-1]

    def test_exact_query_counts_per_request(self):
        expected = {"/lazy-loop": 1 + ITEMS, "/query-per-item": ITEMS, "/template": 1 + ITEMS,
                    "/nested": 1 + ITEMS + 2 * ITEMS, "/one-query-loop": 1,
                    "/loop-one-query": 1, "/batch-in": 1, "/duplicate": 3, "/nothing": 0}
        for path, count in expected.items():
            with self.subTest(path=path):
                record = self.record(path)
                self.assertEqual(record["queries"], count)
                if count:
                    self.assertEqual(record["sql"]["queries"]["count"], count)
                    self.assertEqual(sum(item["count"] for item in
                                         record["sql"]["queries"]["statements"]), count)
                    self.assertGreater(record["sql_ms"], 0)
                else:
                    self.assertNotIn("sql", record)
                    self.assertEqual(record["sql_ms"], 0)

    def test_findings_on_every_n_plus_one_shape_and_none_on_the_clean_ones(self):
        shapes = {"/lazy-loop": [("lazy-loop", ITEMS)], "/query-per-item": [("per-item", ITEMS)],
                  "/nested": [("nested-inner", 2 * ITEMS), ("nested-outer", ITEMS)]}
        for path, expected in shapes.items():
            with self.subTest(path=path):
                findings = self.record(path)["sql"]["findings"]
                # Which findings, not their order: "worst first" follows measured times.
                self.assertEqual(sorted((finding["kind"], finding["site"]["line"],
                                         finding["count"]) for finding in findings),
                                 sorted(("n_plus_one", site_line(name), count)
                                        for name, count in expected))
        template = self.record("/template")["sql"]["findings"]
        self.assertEqual([(finding["kind"], finding["site"]["line"]) for finding in template],
                         [("n_plus_one", template_line("template"))])
        for path in ("/one-query-loop", "/loop-one-query", "/batch-in"):
            with self.subTest(path=path):
                self.assertEqual(self.record(path)["sql"]["findings"], [])
        duplicate = self.record("/duplicate")["sql"]["findings"]
        self.assertEqual([(finding["kind"], finding["count"], finding["site"]["line"])
                          for finding in duplicate], [("duplicate", 3, site_line("dup"))])

    def test_tracking_stores_each_requests_queries_and_findings(self):
        for path in ("/lazy-loop", "/nested", "/batch-in", "/nothing"):
            get(self.client, path)
        self.assertTrue(self.tracker.flush())
        with self.app.extensions["tracker_tracking"].engine.connect() as conn:
            rows = {row["endpoint"]: row for row in reads.export_rows(conn)}
        self.assertEqual({path: rows[path]["queries"] for path in rows},
                         {"/lazy-loop": 11, "/nested": 31, "/batch-in": 1, "/nothing": 0})
        self.assertEqual({path: rows[path]["findings"] for path in rows},
                         {"/lazy-loop": 1, "/nested": 2, "/batch-in": 0, "/nothing": 0})
        self.assertGreater(rows["/nested"]["sql_ms"], 0)
        self.assertEqual(rows["/nothing"]["sql_ms"], 0)

    def test_call_sites_point_at_the_apps_lines(self):
        statements = self.record("/lazy-loop")["sql"]["queries"]["statements"]
        sites = sorted((item["site"]["line"], item["count"]) for item in statements)
        self.assertEqual(sites, [(site_line("lazy-list"), 1), (site_line("lazy-loop"), ITEMS)])
        for item in statements:
            self.assertEqual(item["site"]["file"], APP_FILE)
            self.assertEqual(item["site"]["function"], "lazy_loop")

    def test_a_query_run_by_a_template_points_at_the_templates_line(self):
        statements = self.record("/template")["sql"]["queries"]["statements"]
        lazy = [item for item in statements if item["count"] == ITEMS][0]
        self.assertEqual(lazy["site"]["file"], "tracker_07/tests/templates/sql_posts.html")
        self.assertEqual(lazy["site"]["line"], template_line("template"))

    def test_the_slow_query_is_logged_on_the_apps_logger(self):
        with self.assertLogs(self.app.logger, logging.WARNING) as logs:
            record = self.record("/slow")
        slow = [line for line in logs.output if "Slow query" in line]
        self.assertEqual(len(slow), 1, logs.output)
        self.assertIn(f"{APP_FILE}:{site_line('slow')} in slow()", slow[0])
        self.assertIn("during GET /slow", slow[0])
        self.assertNotIn("with parameters", slow[0])
        findings = record["sql"]["findings"]
        self.assertEqual([finding["kind"] for finding in findings], ["slow"])
        self.assertGreaterEqual(findings[0]["total_ms"], SLOW_QUERY_MS)

    def test_nothing_is_captured_from_trackers_own_store(self):
        get(self.client, "/nothing")
        self.assertTrue(self.tracker.flush())
        record = self.record("/store")
        self.assertEqual(record["queries"], 0)
        self.assertFalse(capture.is_watched(self.app.extensions["tracker_tracking"].engine))


class SqliteCaptureTest(CaptureMixin, unittest.TestCase):
    """On an SQLite file."""

    def test_parameters_are_logged_only_when_asked_for(self):
        self.app.extensions["tracker_sql"].options.keep_params = True
        with self.assertLogs(self.app.logger, logging.WARNING) as logs:
            record = self.record("/duplicate")
            self.record("/slow")
        self.assertIn("with parameters ()", "".join(logs.output))
        self.assertEqual(record["sql"]["queries"]["statements"][0]["params"], "(1,)")


@unittest.skipUnless(DATABASE_URL, "set TRACKER_TEST_DATABASE_URL (see .ci/postgres-start)")
class PostgresCaptureTest(CaptureMixin, unittest.TestCase):
    """On the real PostgreSQL server, with Tracker's store there too (a different engine)."""

    database_url = DATABASE_URL
    store_url = DATABASE_URL

    def tearDown(self):
        super().tearDown()
        from tracker_07.tracking import store  # pylint: disable=import-outside-toplevel  # cleanup only
        engine = store.create_store_engine(DATABASE_URL)
        with engine.begin() as conn:
            store.metadata.drop_all(conn)
        engine.dispose()

    def test_rows_come_from_the_driver(self):
        statements = self.record("/one-query-loop")["sql"]["queries"]["statements"]
        self.assertEqual(statements[0]["rows"], 2 * ITEMS)


class EngineCaptureTest(unittest.TestCase):
    """Capture outside any app: watched engines only, inside a collecting context only."""

    def setUp(self):
        self.engine = create_engine("sqlite://")
        self.addCleanup(self.engine.dispose)

    def test_an_engine_that_is_not_watched_is_never_captured(self):
        with capture.collect() as queries, self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        self.assertEqual(queries.count, 0)

    def test_watched_engine_outside_a_request_is_not_captured(self):
        self.assertTrue(capture.watch(self.engine))
        self.assertFalse(capture.watch(self.engine))
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            with capture.collect() as queries:
                conn.execute(text("SELECT 2"))
                with capture.paused():
                    conn.execute(text("SELECT 3"))
        self.assertEqual([query.statement for query in queries.queries], ["SELECT 2"])
        # A test is app code: the site is this file's line.
        self.assertEqual(queries.queries[0].site[0], os.path.abspath(__file__))
        self.assertTrue(capture.unwatch(self.engine))
        self.assertFalse(capture.unwatch(self.engine))
        self.assertFalse(capture.is_watched(self.engine))

    def test_executemany_is_one_query_and_unhashable_parameters_are_fine(self):
        capture.watch(self.engine)
        with self.engine.begin() as conn, capture.collect() as queries:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t (x) VALUES (:x)"), [{"x": 1}, {"x": 2}])
        self.assertEqual(queries.count, 2)
        self.assertTrue(queries.queries[1].many)
        self.assertIsInstance(capture.hash_params([{"x": 1}]), int)
        self.assertEqual(capture.hash_params({"a": 1}), capture.hash_params({"a": 1}))

    def test_watching_from_several_threads_at_once_adds_the_listeners_once(self):
        threads = [threading.Thread(target=capture.watch, args=(self.engine,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with self.engine.connect() as conn, capture.collect() as queries:
            conn.execute(text("SELECT 1"))
        self.assertEqual(queries.count, 1)

    def test_the_query_cap_keeps_the_totals_exact(self):
        capture.watch(self.engine)
        options = capture.CaptureOptions(max_queries=2, slow_ms=0)
        with self.engine.connect() as conn, capture.collect(options) as queries:
            for _ in range(5):
                conn.execute(text("SELECT 1"))
        self.assertEqual((queries.count, len(queries.queries)), (5, 2))
        self.assertGreater(queries.total_ms, 0)

    def test_a_request_without_queries_allocates_no_collector(self):
        environ = {}
        app = capture.QueryCapture(lambda environ, start_response: [b""], None)
        app(environ, None)
        self.assertIsNone(environ[capture.ENVIRON_KEY])
        self.assertTrue(capture.is_captured(environ))
        self.assertFalse(capture.is_captured({}))
        self.assertIsNone(capture.CURRENT.get())

    def test_an_unfinished_query_is_not_counted(self):
        queries = capture.RequestQueries(capture.CaptureOptions())
        token = capture.CURRENT.set({capture.ENVIRON_KEY: queries})
        try:
            capture._after_cursor_execute(  # pylint: disable=protected-access  # the listener
                None, object(), "SELECT 1", (), None, False)
        finally:
            capture.CURRENT.reset(token)
        self.assertEqual(queries.count, 0)
        token = capture.CURRENT.set({capture.ENVIRON_KEY: None})
        try:
            capture._after_cursor_execute(  # pylint: disable=protected-access  # the listener
                None, object(), "SELECT 1", (), None, False)
        finally:
            capture.CURRENT.reset(token)
