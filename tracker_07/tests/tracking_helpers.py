"""Shared pieces for the tracking tests: a small app, a temporary store, sample rows and
what a summary of them must say, for tests that run on SQLite and on PostgreSQL."""
import math
import random
import tempfile
import unittest

from flask import Flask, Response, abort

from tracker_07.tracking import reads, rollups, writes
from tracker_07.tracking.extension import Tracking
from tracker_07.tracking.filters import Filters
from tracker_07.tracking.schema import create_schema
from tracker_07.tracking.store import BUCKET_ERROR, create_store_engine, metadata

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
            return list(reads.export_rows(conn))


def sample_rows(count=3000, seed=7, start=BASE_TIME, span=5 * HOUR):
    """Deterministic requests over a few hours, several endpoints, methods and statuses."""
    generator = random.Random(seed)
    database = random.Random(seed + 1)  # the queries, drawn apart so the rest stays the same
    endpoints = ("/a", "/b/<int:id>", "/c")
    statuses = (200, 200, 200, 201, 302, 404, 500, 503)
    rows = []
    for _ in range(count):
        duration = generator.lognormvariate(1.5, 1.2)
        queries = database.choice((0, 0, 1, 3, 12, 120))
        rows.append((
            start + generator.random() * span,
            generator.choice(endpoints),
            generator.choice(("GET", "GET", "POST")),
            generator.choice(statuses),
            duration,
            queries,
            duration * database.random() if queries else 0.0,
            database.choice((0, 1, 2)) if queries >= 12 else 0,
        ))
    return rows


def nearest_rank(values, quantile):
    """Exact nearest-rank percentile, computed independently of the store."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]


def expected_summary(rows, since, until, **filters):
    """What ``reads.summary`` must report, computed straight from the rows."""
    groups = {}
    for started, endpoint, method, status, duration, *sql in rows:
        if not since <= started < until:
            continue
        if filters.get("endpoint") not in (None, endpoint):
            continue
        if filters.get("method") not in (None, method):
            continue
        groups.setdefault((endpoint, method), []).append((started, status, duration,
                                                          *(sql or (0, 0.0, 0))))
    result = {}
    for key, items in groups.items():
        durations = [item[2] for item in items]
        result[key] = {
            "queries": sum(item[3] for item in items) / len(items),
            "queries_max": max(item[3] for item in items),
            "sql_ms": sum(item[4] for item in items) / len(items),
            "sql_share": sum(item[4] for item in items) / sum(durations),
            "findings": sum(item[5] for item in items),
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


class StoreMixin:
    """An empty store per test for the reads and writes tests run on SQLite and PostgreSQL."""

    def make_engine(self):
        """Return an engine on an empty store: a SQLite file unless a subclass says else."""
        tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(tmp.cleanup)
        return sqlite_engine(tmp.name)

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
            writes.insert_batch(conn, rows)
            if roll_up:
                rollups.roll_up(conn)

    def check_summary(self, since, until, **filters):
        """Compare summary() with the independent computation, within the bucket error."""
        with self.engine.connect() as conn:
            actual = reads.summary(conn, Filters(since=since, until=until, **filters))
        expected = expected_summary(self.rows, since, until, **filters)
        self.assertEqual({(row["endpoint"], row["method"]) for row in actual}, set(expected))
        for row in actual:
            wanted = expected[(row["endpoint"], row["method"])]
            for key in ("count", "count_4xx", "count_5xx", "queries_max", "findings"):
                self.assertEqual(row[key], wanted[key], key)
            for key in ("mean", "max", "last_seen", "queries", "sql_ms", "sql_share"):
                self.assertAlmostEqual(row[key], wanted[key], places=6, msg=key)
            for key in ("p50", "p95", "p99"):
                self.assertLessEqual(abs(row[key] - wanted[key]),
                                     wanted[key] * (BUCKET_ERROR + 1e-9), key)
        return actual


def sqlite_engine(tmpdir):
    """A fresh SQLite store in ``tmpdir``."""
    return create_store_engine(f"sqlite:///{tmpdir}/store.sqlite3")
