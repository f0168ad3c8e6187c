"""Shared pieces for the tracking tests: a small app, a temporary store, and store/query
tests that run against SQLite here and against PostgreSQL in test_tracking_postgres."""
import math
import random
import tempfile
import unittest

from flask import Flask, Response, abort

from tracker_07.tracking import queries
from tracker_07.tracking.extension import Tracking
from tracker_07.tracking.store import (
    BUCKET_ERROR, create_schema, create_store_engine, metadata, requests_table,
)

HOUR = 3600
# 2024-05-01 10:20:00 UTC: deliberately not on an hour, so ranges have partial hours.
BASE_TIME = 1714558800.0


class FakeClock:
    """A perf_counter stand-in that only moves when a test says so."""

    def __init__(self, start=1000.0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        """Move the clock forward."""
        self.now += seconds


def make_app(tmpdir, clock=None, **config):
    """A plain Flask app with a few routes, tracked into a SQLite file in ``tmpdir``."""
    app = Flask(__name__, instance_path=f"{tmpdir}/instance")
    app.config["TRACKER_DATABASE_URL"] = f"sqlite:///{tmpdir}/tracker.sqlite3"
    app.config.update(config)

    @app.route("/user/<int:user_id>")
    def user(user_id):
        return f"user {user_id}"

    @app.route("/status/<int:code>", methods=["GET", "POST"])
    def status(code):
        if code >= 400:
            abort(code)
        return Response("ok", status=code)

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    @app.route("/stream")
    def stream():
        def chunks():
            for number in range(3):
                if clock is not None:
                    clock.advance(0.25)
                yield f"chunk {number}\n"
        return Response(chunks())

    @app.route("/passthrough")
    def passthrough():
        # Werkzeug hands a direct_passthrough body to the server as it is, not wrapped in
        # its ClosingIterator, so the tracker has to wrap it itself.
        def chunks():
            try:
                for number in range(3):
                    if clock is not None:
                        clock.advance(0.25)
                    yield f"chunk {number}\n".encode()
            finally:
                app.config["PASSTHROUGH_CLOSED"] = True
        return Response(chunks(), direct_passthrough=True)

    @app.route("/on-close")
    def on_close():
        response = Response("ok")
        if clock is not None:
            response.call_on_close(lambda: clock.advance(0.5))
        return response

    @app.route("/static-ish/<path:name>")
    def anything(name):
        return name

    return app


def get(client, path, method="GET"):
    """Send one request and close the response the way a WSGI server does."""
    response = client.open(path, method=method, buffered=True)
    response.close()
    return response


class TrackedAppCase(unittest.TestCase):
    """A temporary directory plus helpers to build tracked apps that are shut down after."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.tmpdir = self._tmp.name
        self.trackings = []

    def tearDown(self):
        for tracking in self.trackings:
            tracking.shutdown()
        self._tmp.cleanup()

    def tracked_app(self, clock=None, **config):
        """Build an app with Tracking attached; it is shut down in tearDown."""
        app = make_app(self.tmpdir, clock=clock, **config)
        tracking = Tracking(app)
        self.trackings.append(tracking)
        return app, tracking

    def stored_rows(self, tracking):
        """Every stored row, after the writer has caught up."""
        self.assertTrue(tracking.flush(10))
        with tracking.engine.connect() as conn:
            return list(queries.export_rows(conn))


def sample_rows(count=3000, seed=7, start=BASE_TIME, span=5 * HOUR):
    """Deterministic requests over a few hours, several endpoints, methods and statuses."""
    generator = random.Random(seed)
    endpoints = ("/a", "/b/<int:id>", "/c")
    statuses = (200, 200, 200, 201, 302, 404, 500, 503)
    rows = []
    for _ in range(count):
        rows.append((
            start + generator.random() * span,
            generator.choice(endpoints),
            generator.choice(("GET", "GET", "POST")),
            generator.choice(statuses),
            generator.lognormvariate(1.5, 1.2),
        ))
    return rows


def nearest_rank(values, quantile):
    """Exact nearest-rank percentile, computed independently of the store."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]


def expected_summary(rows, since, until, **filters):
    """What ``queries.summary`` must report, computed straight from the rows."""
    groups = {}
    for started, endpoint, method, status, duration in rows:
        if not since <= started < until:
            continue
        if filters.get("endpoint") not in (None, endpoint):
            continue
        if filters.get("method") not in (None, method):
            continue
        groups.setdefault((endpoint, method), []).append((started, status, duration))
    result = {}
    for key, items in groups.items():
        durations = [item[2] for item in items]
        result[key] = {
            "count": len(items),
            "mean": sum(durations) / len(items),
            "max": max(durations),
            "count_4xx": sum(1 for item in items if 400 <= item[1] < 500),
            "count_5xx": sum(1 for item in items if item[1] >= 500),
            "last_seen": max(item[0] for item in items),
            "p50": nearest_rank(durations, 0.50),
            "p95": nearest_rank(durations, 0.95),
            "p99": nearest_rank(durations, 0.99),
        }
    return result


class StoreQueriesMixin:
    """Store and query tests shared by SQLite and PostgreSQL; needs ``make_engine()``."""

    def make_engine(self):
        """Return an engine on an empty store (overridden per database)."""
        raise NotImplementedError

    def setUp(self):  # pylint: disable=invalid-name  # unittest's name
        """Start each test from an empty store and the same sample rows."""
        self.engine = self.make_engine()
        create_schema(self.engine)
        self.rows = sample_rows()

    def tearDown(self):  # pylint: disable=invalid-name  # unittest's name
        """Drop the tables so the next test (or database user) starts clean."""
        with self.engine.begin() as conn:
            metadata.drop_all(conn)
        self.engine.dispose()

    def insert(self, rows, roll_up=False):
        """Insert rows through the writer's own code path."""
        with self.engine.begin() as conn:
            queries.insert_batch(conn, rows)
            if roll_up:
                queries.roll_up(conn)

    def check_summary(self, since, until, **filters):
        """Compare summary() with the independent computation, within the bucket error."""
        with self.engine.connect() as conn:
            actual = queries.summary(conn, since, until, **filters)
        expected = expected_summary(self.rows, since, until, **filters)
        self.assertEqual({(row["endpoint"], row["method"]) for row in actual}, set(expected))
        for row in actual:
            wanted = expected[(row["endpoint"], row["method"])]
            for key in ("count", "count_4xx", "count_5xx"):
                self.assertEqual(row[key], wanted[key], key)
            for key in ("mean", "max", "last_seen"):
                self.assertAlmostEqual(row[key], wanted[key], places=6, msg=key)
            for key in ("p50", "p95", "p99"):
                self.assertLessEqual(abs(row[key] - wanted[key]),
                                     wanted[key] * (BUCKET_ERROR + 1e-9), key)
        return actual

    def test_summary_matches_raw_rows_before_and_after_roll_up(self):
        self.insert(self.rows[:2000])
        # Half rolled up, half still raw: every read path is used at once.
        with self.engine.begin() as conn:
            self.assertEqual(queries.roll_up(conn), 2000)
            self.assertEqual(queries.roll_up(conn), 0)
        self.insert(self.rows[2000:])
        ranges = [
            (BASE_TIME, BASE_TIME + 5 * HOUR),
            (BASE_TIME + 1234.5, BASE_TIME + 4 * HOUR - 77.25),
            (BASE_TIME + 60, BASE_TIME + 600),
        ]
        before = [self.check_summary(since, until) for since, until in ranges]
        with self.engine.begin() as conn:
            self.assertEqual(queries.roll_up(conn), 1000)
        after = [self.check_summary(since, until) for since, until in ranges]
        self.assertEqual(len(before), len(after))
        for old, new in zip(before, after):
            self.assertEqual([row["count"] for row in old], [row["count"] for row in new])

    def test_summary_across_days_uses_every_level(self):
        self.rows = sample_rows(count=4000, seed=11, span=4 * 86400)
        self.insert(self.rows[:3000], roll_up=True)
        self.insert(self.rows[3000:])
        self.check_summary(BASE_TIME + 777.7, BASE_TIME + 3.5 * 86400)
        self.check_summary(BASE_TIME - 86400, BASE_TIME + 5 * 86400)
        self.check_summary(BASE_TIME + 86400, BASE_TIME + 2 * 86400, endpoint="/c")
        with self.engine.begin() as conn:
            queries.roll_up(conn)
        self.check_summary(BASE_TIME + 777.7, BASE_TIME + 3.5 * 86400, method="POST")

    def test_summary_filters(self):
        self.insert(self.rows, roll_up=True)
        since, until = BASE_TIME - 10, BASE_TIME + 6 * HOUR
        self.check_summary(since, until, endpoint="/a")
        self.check_summary(since, until, method="POST")
        with self.engine.connect() as conn:
            only_5xx = queries.summary(conn, since, until, status="5xx")
            only_404 = queries.summary(conn, since, until, status=404)
        expected_5xx = sum(1 for row in self.rows if row[3] >= 500)
        self.assertEqual(sum(row["count"] for row in only_5xx), expected_5xx)
        self.assertEqual(sum(row["count_5xx"] for row in only_5xx), expected_5xx)
        self.assertEqual(sum(row["count"] for row in only_404),
                         sum(1 for row in self.rows if row[3] == 404))

    def test_summary_sorting_and_limit(self):
        self.insert(self.rows, roll_up=True)
        since, until = BASE_TIME, BASE_TIME + 5 * HOUR
        with self.engine.connect() as conn:
            for key in queries.SUMMARY_SORT_KEYS:
                rows = queries.summary(conn, since, until, sort=key)
                self.assertEqual([row[key] for row in rows],
                                 sorted((row[key] for row in rows), reverse=True))
                rows = queries.summary(conn, since, until, sort=key, descending=False)
                self.assertEqual([row[key] for row in rows], sorted(row[key] for row in rows))
            with self.assertRaisesRegex(ValueError, "sort must be one of"):
                queries.summary(conn, since, until, sort="duration_ms; DROP TABLE x")
            with self.assertRaisesRegex(ValueError, "must be later"):
                queries.summary(conn, until, since)

    def test_time_series_counts_each_bucket(self):
        self.insert(self.rows[:1500], roll_up=True)
        self.insert(self.rows[1500:])
        cases = [
            (BASE_TIME + 100.0, BASE_TIME + 100.0 + 4 * HOUR, 48),  # 5-minute buckets
            (BASE_TIME - 1200.0, BASE_TIME - 1200.0 + 6 * HOUR, 3),  # on the hour, 2 h wide
        ]
        for since, until, buckets in cases:
            with self.engine.connect() as conn:
                series = queries.time_series(conn, since, until, buckets=buckets)
            self.assertEqual(len(series), buckets)
            width = (until - since) / buckets
            for index, point in enumerate(series):
                low, high = since + index * width, since + (index + 1) * width
                inside = [row[4] for row in self.rows if low <= row[0] < high]
                self.assertEqual(point["count"], len(inside), (since, index))
                self.assertAlmostEqual(point["start"], low)
                if inside:
                    self.assertAlmostEqual(point["mean"], sum(inside) / len(inside))
                    self.assertAlmostEqual(point["max"], max(inside))
                    exact = nearest_rank(inside, 0.95)
                    self.assertLessEqual(abs(point["p95"] - exact),
                                         exact * (BUCKET_ERROR + 1e-9))
                else:
                    self.assertIsNone(point["mean"])
        with self.engine.connect() as conn:
            with self.assertRaisesRegex(ValueError, "buckets must be"):
                queries.time_series(conn, BASE_TIME, BASE_TIME + 10, buckets=0)

    def test_time_series_filters(self):
        self.insert(self.rows, roll_up=True)
        with self.engine.connect() as conn:
            series = queries.time_series(conn, BASE_TIME, BASE_TIME + 5 * HOUR, buckets=5,
                                         endpoint="/c", method="GET", status="2xx")
        expected = sum(1 for row in self.rows
                       if row[1] == "/c" and row[2] == "GET" and 200 <= row[3] < 300)
        self.assertEqual(sum(point["count"] for point in series), expected)

    def test_histogram_buckets_hold_their_rows(self):
        self.insert(self.rows, roll_up=True)
        with self.engine.connect() as conn:
            buckets = queries.histogram(conn, BASE_TIME, BASE_TIME + 5 * HOUR, endpoint="/a")
            empty = queries.histogram(conn, BASE_TIME - 100, BASE_TIME - 50)
        durations = [row[4] for row in self.rows if row[1] == "/a"]
        self.assertEqual(sum(bucket["count"] for bucket in buckets), len(durations))
        self.assertEqual(empty, [])
        for bucket in buckets:
            inside = sum(1 for value in durations if bucket["low_ms"] <= value < bucket["high_ms"])
            # Values sitting exactly on an edge may fall either side by rounding.
            self.assertLessEqual(abs(inside - bucket["count"]), 1)
        self.assertGreater(buckets[0]["count"], 0)
        self.assertGreater(buckets[-1]["count"], 0)

    def test_endpoints_lists_rolled_up_and_new_pairs(self):
        self.insert(self.rows, roll_up=True)
        self.insert([(BASE_TIME, "/new", "DELETE", 204, 1.0)])
        with self.engine.connect() as conn:
            pairs = queries.endpoints(conn)
        expected = sorted({(row[1], row[2]) for row in self.rows} | {("/new", "DELETE")})
        self.assertEqual([(pair["endpoint"], pair["method"]) for pair in pairs], expected)

    def test_prune_by_age_and_by_count(self):
        self.insert(self.rows, roll_up=True)
        cutoff = BASE_TIME + 2.5 * HOUR
        with self.engine.begin() as conn:
            deleted = queries.prune(conn, older_than=cutoff)
            self.assertEqual(deleted, sum(1 for row in self.rows if row[0] < cutoff))
            self.assertEqual(queries.row_count(conn), len(self.rows) - deleted)
            self.assertEqual(queries.prune(conn, keep_rows=len(self.rows)), 0)
            remaining = sorted(row["id"] for row in queries.export_rows(conn))
            self.assertEqual(queries.prune(conn, keep_rows=100), len(remaining) - 100)
            self.assertEqual(queries.row_count(conn), 100)
            kept = sorted(row["id"] for row in queries.export_rows(conn))
            self.assertEqual(queries.prune(conn, keep_rows=0), 100)
            self.assertEqual(queries.endpoints(conn), [])
            with self.assertRaisesRegex(ValueError, "keep_rows"):
                queries.prune(conn, keep_rows=-1)
        # The newest rows are the ones kept.
        self.assertEqual(kept, remaining[-100:])

    def test_prune_by_count_with_gaps_in_the_ids(self):
        self.insert(self.rows[:10])
        with self.engine.begin() as conn:
            ids = sorted(row["id"] for row in queries.export_rows(conn))
            conn.execute(requests_table.delete().where(requests_table.c.id.in_(ids[2:8])))
            # Ids span 10 values but only 4 rows are left: nothing to delete for keep=5.
            self.assertEqual(queries.prune(conn, keep_rows=5), 0)
            self.assertEqual(queries.row_count(conn), 4)

    def test_durations_beyond_the_last_bucket_report_the_maximum(self):
        self.rows = [(BASE_TIME + 1, "/slow", "GET", 200, 5e6), (BASE_TIME + 2, "/slow", "GET",
                                                                  200, 4e6)]
        self.insert(self.rows)
        with self.engine.connect() as conn:
            rows = queries.summary(conn, BASE_TIME, BASE_TIME + 10)
        # Past the last edge (about 30 minutes) the buckets no longer resolve anything.
        self.assertEqual((rows[0]["p50"], rows[0]["p99"], rows[0]["max"]), (5e6, 5e6, 5e6))
        self.assertEqual(rows[0]["mean"], 4.5e6)

    def test_prune_removes_whole_rollup_hours_only(self):
        self.insert(self.rows, roll_up=True)
        cutoff = BASE_TIME + 2.5 * HOUR
        with self.engine.begin() as conn:
            queries.prune(conn, older_than=cutoff)
        since = math.floor(cutoff / HOUR) * HOUR + HOUR
        self.check_summary(since, BASE_TIME + 6 * HOUR)
        with self.engine.connect() as conn:
            early = queries.summary(conn, BASE_TIME - HOUR, math.floor(cutoff / HOUR) * HOUR)
        self.assertEqual(early, [])

    def test_export_rows_filters_and_order(self):
        self.insert(self.rows)
        since, until = BASE_TIME + HOUR, BASE_TIME + 2 * HOUR
        with self.engine.connect() as conn:
            exported = list(queries.export_rows(conn, since=since, until=until,
                                                endpoint="/a", method="get", status="2xx"))
            everything = list(queries.export_rows(conn, chunk_size=100))
        expected = sorted(row[0] for row in self.rows if since <= row[0] < until
                          and row[1] == "/a" and row[2] == "GET" and 200 <= row[3] < 300)
        self.assertEqual([row["started_at"] for row in exported], expected)
        self.assertEqual(len(everything), len(self.rows))
        self.assertEqual(set(everything[0]), set(queries.EXPORT_COLUMNS))

    def test_dropped_counter_accumulates(self):
        with self.engine.begin() as conn:
            self.assertEqual(queries.dropped_count(conn), 0)
            queries.add_dropped(conn, 3)
            queries.add_dropped(conn, 0)
            queries.add_dropped(conn, 4)
            self.assertEqual(queries.dropped_count(conn), 7)

    def test_insert_batch_of_nothing(self):
        with self.engine.begin() as conn:
            self.assertEqual(queries.insert_batch(conn, []), 0)
            self.assertEqual(queries.roll_up(conn), 0)
            self.assertEqual(queries.row_count(conn), 0)


def sqlite_engine(tmpdir):
    """A fresh SQLite store in ``tmpdir``."""
    return create_store_engine(f"sqlite:///{tmpdir}/store.sqlite3")
