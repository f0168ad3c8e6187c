"""Fill a tracking store with 1,000,000 requests through the real writer, then time the
dashboard queries, the dashboard page and its JSON, and maintenance at the row cap.

    python benchmarks/bench_tracking_store.py [--rows 1000000] [--days 7] [--url URL]
        [--store benchmarks/results/store-1m.tmp] [--rates 100,4000]
        [--behind 30000:300,240000:60] [--maintenance-only] [--page-only]

Rows go through ``Writer.write`` (the background writer's own code: tuple conversion,
one statement per batch of ``TRACKER_BATCH_SIZE``, the roll-up's counting).  The rollups
are then brought up to date once (in production the writer does this every minute, on
the minute's new rows only), and each query is run several times; medians are printed as
a markdown table.  ``--store`` keeps the filled SQLite file and reuses it on the next run
(``benchmarks/results/*.tmp*`` is git-ignored), reading a copy of it, so it stays as
filled; ``--maintenance-only`` measures only the maintenance of ``--rates`` on it.  On
PostgreSQL the fill is followed by ``VACUUM ANALYZE``, as autovacuum would run it
within a minute.  The page and its JSON are timed in a fresh process, as a server's (not
one that just built a million rows).  ``--behind`` also times the page with rows not
rolled up yet; ``--page-only --url URL`` times only that, on a store filled before (two
versions compared on one store).  ``--rates`` then
also measures maintenance at the cap on a copy of it: a minute of requests at each rate arrives, and
``Writer.maintain`` (roll-up and retention, ``TRACKER_MAX_ROWS`` = ``--rows``) runs;
process CPU per new row is reported, with the writer's own cost per row beside it.
"""
import argparse
import gc
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from unittest import mock

from flask import Flask
from sqlalchemy import select

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position,import-error  # the path above makes it importable
from tracker_07.dashboard import endpoint_views  # noqa: E402
from tracker_07.extension import Tracker  # noqa: E402
from tracker_07.tracking import filters, reads, rollups, writes  # noqa: E402
from tracker_07.tracking.extension import Tracking  # noqa: E402
from tracker_07.tracking.filters import Filters  # noqa: E402
from tracker_07.tracking.store import IMMEDIATE  # noqa: E402


def build_batches(rows, days, endpoint_count, batch_size, seed=1):
    """Queue tuples as the request path makes them, spread over the last ``days``."""
    generator = random.Random(seed)
    rules = [f"/api/v1/resource{i}/<int:id>" for i in range(endpoint_count)]
    weights = [1 / (i + 1) for i in range(endpoint_count)]  # a few hot endpoints
    statuses = ["200 OK"] * 90 + ["302 FOUND"] * 4 + ["404 NOT FOUND"] * 4 + ["500 ERR"] * 2
    now = time.perf_counter()
    # Requests reach the writer in time order, so rows are generated oldest first.
    start_times = sorted(now - generator.random() * days * 86400 for _ in range(rows))
    records = [
        (started, started + generator.lognormvariate(2.0, 1.0) / 1000.0, rule,
         "POST" if generator.random() < 0.1 else "GET", generator.choice(statuses), None)
        for rule, started in zip(generator.choices(rules, weights, k=rows), start_times)
    ]
    return [records[first:first + batch_size] for first in range(0, rows, batch_size)]


def timed(function, repeat):
    """Median wall time in ms of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def parse_args():
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--store", help="SQLite file to fill once and reuse")
    parser.add_argument("--minutes", type=int, default=15,
                        help="minutes of requests simulated for each of --rates")
    parser.add_argument("--rates", default="",
                        help="requests per second to measure maintenance at, e.g. 100,4000")
    parser.add_argument("--behind", default="",
                        help="also time the page with ROWS:SECONDS, rows written over the "
                             "last seconds since the last roll-up (e.g. 30000:300,240000:60: "
                             "five minutes at 100 requests/s, one at 4,000), rolled up first "
                             "as the page does and read raw as before, alternated")
    parser.add_argument("--page-only", action="store_true",
                        help="with --url of a filled store: only time the page (and --behind), "
                             "as the benchmark's fresh process does; to compare two versions "
                             "on one store")
    parser.add_argument("--maintenance-only", action="store_true",
                        help="with --store: only the maintenance of --rates, on a copy (the "
                             "store itself is not opened)")
    return parser.parse_args()


def fill(tracking, args):
    """Write the rows through the writer; returns the result lines for the table."""
    print(f"building {args.rows:,} requests over {args.days:g} days, "
          f"{args.endpoints} endpoints ...", file=sys.stderr)
    batches = build_batches(args.rows, args.days, args.endpoints, args.batch_size)
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        tracking.writer.write(batch)
    write_seconds = time.perf_counter() - started
    write_cpu = time.process_time() - cpu
    assert tracking.writer.written == args.rows, tracking.stats()

    def roll_up():
        with tracking.engine.connect() as conn:
            conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                return rollups.roll_up(conn)

    roll_up_ms, rolled = timed(roll_up, 1)
    if tracking.engine.dialect.name == "postgresql":
        # What autovacuum does within a minute of a load this size (PostgreSQL 13 and later
        # vacuum after inserts too): the planner's statistics, the pages' visibility marked
        # (until then every read of a fresh row checks its transaction's status).
        with tracking.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE")
    with tracking.engine.connect() as conn:
        rollup_rows = " + ".join(
            f"{conn.exec_driver_sql(f'SELECT count(*) FROM {name}').scalar():,}"
            for name in ("tracker_rollup_hourly", "tracker_rollup_daily"))
    return [
        ("batched write via Writer.write", f"{args.rows / write_seconds:,.0f} rows/s "
         f"({write_cpu / args.rows * 1e6:.1f} µs CPU/row)"),
        (f"roll_up of all {rolled:,} rows (one-off)", f"{roll_up_ms:,.0f} ms "
         f"→ {rollup_rows} hourly + daily rollup rows"),
    ]


def time_queries(engine, args):
    """Median time of each dashboard query; returns the result lines for the table."""
    now = filters.now()
    week, day = 7 * 86400, 86400

    def last(seconds, **more):
        return Filters(since=now - seconds, until=now + 1, **more)

    cases = [
        (f"summary, last {args.days + 1:g} days (all rows)",
         lambda conn: reads.summary(conn, last((args.days + 1) * day))),
        ("summary, last 24 h", lambda conn: reads.summary(conn, last(day))),
        ("summary, last 1 h", lambda conn: reads.summary(conn, last(3600))),
        ("summary, one endpoint, 7 d, sort p95",
         lambda conn: reads.summary(conn, last(week, endpoint="/api/v1/resource3/<int:id>"),
                                    sort="p95")),
        (f"time_series, {args.days:g} d in 84 buckets (2 h, rollup)",
         lambda conn: reads.time_series(conn, last(args.days * day), 84)),
        ("time_series, 24 h in 96 buckets (15 min, raw rows)",
         lambda conn: reads.time_series(conn, last(day), 96)),
        ("histogram, one endpoint, 7 d",
         lambda conn: reads.histogram(conn, last(week, endpoint="/api/v1/resource0/<int:id>"))),
        ("endpoints", reads.endpoints),
    ]
    lines = []
    for label, function in cases:
        def run(function=function):
            with engine.connect() as conn:
                return function(conn)
        median_ms, result = timed(run, args.repeat)
        if label.startswith("summary") and "all rows" in label:
            assert sum(row["count"] for row in result) == args.rows
        lines.append((label, f"{median_ms:,.1f} ms"))
    return lines


def time_retention(tracking, args, new_rows=6000):
    """Retention at the row cap, as the writer runs it once a minute: ``new_rows`` arrived
    (100 requests/s for a minute), then the oldest as many go.  Also timed: the statement
    that found the boundary before (``ORDER BY id DESC OFFSET cap``), for comparison."""
    raw = writes.requests_table.c

    def offset_boundary():
        with tracking.engine.connect() as conn:
            return conn.execute(select(raw.id).order_by(raw.id.desc())
                                .offset(args.rows).limit(1)).scalar()

    lines = []
    for _ in range(args.repeat):
        tracking.writer.write(build_batches(new_rows, 0.001, args.endpoints, new_rows,
                                            seed=random.random())[0])
    offset_ms, _ = timed(offset_boundary, args.repeat)
    times = []
    for _ in range(args.repeat):
        tracking.writer.write(build_batches(new_rows, 0.001, args.endpoints, new_rows,
                                            seed=random.random())[0])
        started = time.perf_counter()
        with tracking.engine.begin() as conn:
            deleted = writes.prune(conn, keep_rows=args.rows)
        times.append((time.perf_counter() - started) * 1000)
        assert deleted >= new_rows, deleted
    prune_ms = statistics.median(times)
    lines.append((f"retention at the {args.rows:,}-row cap after {new_rows:,} new rows "
                  "(prune by id)", f"{prune_ms:,.1f} ms ({prune_ms / new_rows * 1000:.2f} µs "
                  "per new row)"))
    lines.append(("the boundary as found before (ORDER BY id DESC OFFSET cap)",
                  f"{offset_ms:,.1f} ms"))
    return lines


def time_page(url, args):
    """Median time of the dashboard page a user opens, ``/dashboard/?range=7d``, and of its
    JSON, through the app (``Tracker(app)``, profiles off) and Flask's test client."""
    app = Flask(__name__)
    Tracker(app, TRACKER_DATABASE_URL=url, TRACKER_MAINTENANCE_INTERVAL=1e9, PROFILER_DIR="",
            TRACKER_RETENTION_DAYS=0, TRACKER_MAX_ROWS=0)
    client = app.test_client()
    lines = []
    for path in ("/dashboard/?range=7d", "/dashboard/api/endpoints?range=7d"):
        def get(path=path):
            response = client.get(path)
            assert response.status_code == 200, response.data[:300]
            return response
        get()  # warm: templates compiled, connections open
        median_ms, _ = timed(get, args.repeat)
        lines.append((f"GET {path}", f"{median_ms:,.1f} ms"))
    for case in filter(None, args.behind.split(",")):
        behind, seconds = (int(number) for number in case.split(":"))
        lines += time_page_behind(app, client, behind, seconds, args)
    app.extensions["tracker_tracking"].shutdown()
    return lines


def page_in_child(url, args):
    """:func:`time_page` in a fresh process, as a server's, not in the one that has just
    built and dropped a million rows (a full garbage collection there took 47 ms)."""
    command = [sys.executable, os.path.abspath(__file__), "--page-only", "--url", url,
               "--repeat", str(args.repeat), "--behind", args.behind,
               "--endpoints", str(args.endpoints), "--batch-size", str(args.batch_size)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [tuple(json.loads(line)) for line in output.splitlines()]


def time_page_behind(app, client, behind, seconds, args):  # pylint: disable=too-many-locals  # one sequence
    """The page and its JSON with ``behind`` rows written since the last roll-up (the last
    ``seconds``' requests, through the app's own writer, untimed), rolled up first as the
    page asks when they are many, and, alternated with it, read raw as the code before did;
    and each time, once they are rolled up, as a pass leaves the store (the paired
    reference).  Nothing is pruned: retention would remove the oldest rows, and with
    them the roll-ups' oldest hours and days, so the page would read less and less of the
    week than a store at its cap holds."""
    writer = app.extensions["tracker_tracking"].writer
    times = {}
    for run in range(args.repeat):
        for path in ("/dashboard/?range=7d", "/dashboard/api/endpoints?range=7d"):
            for how in (("rolled up first", "read raw") if run % 2 else
                        ("read raw", "rolled up first")):
                for batch in build_batches(behind, seconds / 86400, args.endpoints,
                                           args.batch_size, seed=run):
                    writer.write(batch)
                # The harness's writes, all at once in this thread, bring the collector
                # close to a full collection (22-48 ms here), which the next request's
                # allocations would start: collected here, so that each variant's own
                # allocations decide its collections (likewise after the roll-up below).
                gc.collect()
                threshold = 0 if how == "rolled up first" else math.inf
                with mock.patch.object(endpoint_views, "ROLL_UP_BEFORE_READING", threshold):
                    times.setdefault((path, how), []).append(timed_get(client, path))
                writer.roll_up()  # the next run starts from no rows behind
                gc.collect()
                times.setdefault((path, "just after the pass"), []).append(
                    timed_get(client, path))
    return [(f"GET {path}, {behind:,} rows not rolled up ({seconds:,} s), {how}",
             f"{statistics.median(values):,.1f} ms ({min(values):,.1f}–{max(values):,.1f})")
            for (path, how), values in times.items()]


def timed_get(client, path):
    """Wall time in ms of one request for ``path`` (which must succeed)."""
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.data[:300]
    return elapsed


def _remove(path):
    """Delete a SQLite file and its WAL files, if there."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def time_maintenance(path, args, rate):  # pylint: disable=too-many-locals  # one sequence
    """Maintenance at the row cap on a copy of the store: ``rate`` requests per second
    arrive through ``Writer.write`` minute by minute for ``--minutes`` minutes, and after
    each minute ``Writer.maintain`` is offered the minute's clock, so it runs when its own
    policy says (every minute at high rates, less often at low ones); process CPU per new
    row of each pass that ran, and the store's largest overshoot of its cap."""
    work = f"{path}.work.tmp"
    _remove(work)
    shutil.copyfile(path, work)
    if args.maintenance_only:  # the cap: the rows the store holds
        with closing(sqlite3.connect(work)) as conn:
            args.rows = conn.execute("SELECT count(*) FROM tracker_requests").fetchone()[0]
    app = Flask(__name__)
    app.config.update(TRACKER_DATABASE_URL=f"sqlite:///{work}", TRACKER_MAX_ROWS=args.rows,
                      TRACKER_RETENTION_DAYS=30, TRACKER_SLOW_MS=0,
                      TRACKER_MAINTENANCE_INTERVAL=60, TRACKER_BATCH_SIZE=args.batch_size)
    tracking = Tracking(app)
    writer = tracking.writer
    writer.maintain(force=True)  # the copy starts rolled up and at the cap
    per_minute = rate * 60
    # One pass over the cap, not measured: the store's first prunes the roll-ups up to its
    # oldest row (a catch-up a store at its cap does not repeat).
    for batch in build_batches(per_minute, 60 / 86400, args.endpoints, args.batch_size,
                               seed=-1):
        writer.write(batch)
    writer.maintain(force=True)
    clock = writer.last_maintenance
    writer_cpu, maintain_us, overshoot = 0.0, [], 0
    arrived, all_cpu, all_rows = 0, 0.0, 0
    for minute in range(args.minutes):
        batches = build_batches(per_minute, 60 / 86400, args.endpoints, args.batch_size,
                                seed=minute)
        cpu = time.process_time()
        for batch in batches:
            writer.write(batch)
        writer_cpu += time.process_time() - cpu
        arrived += per_minute
        overshoot = max(overshoot, arrived)
        cpu = time.process_time()
        if writer.maintain(now=clock + 60 * (minute + 1)):
            all_cpu += time.process_time() - cpu
            all_rows += arrived
            maintain_us.append((time.process_time() - cpu) / arrived * 1e6)
            arrived = 0
    with tracking.engine.connect() as conn:
        assert reads.row_count(conn) <= args.rows + arrived
    tracking.shutdown()
    _remove(work)
    print(f"{rate:,} requests/s, µs per row of each pass: "
          f"{' '.join(f'{value:.2f}' for value in maintain_us)}", file=sys.stderr)
    spread = f"{min(maintain_us):.2f}–{max(maintain_us):.2f}"
    return [(f"maintenance at the {args.rows:,}-row cap, {rate:,} requests/s, "
             f"{args.minutes} minutes",
             f"{statistics.median(maintain_us):.2f} µs CPU per row ({spread}, "
             f"{len(maintain_us)} passes; all together {all_cpu / all_rows * 1e6:.2f}); writer "
             f"{writer_cpu / (per_minute * args.minutes) * 1e6:.2f} µs per row; "
             f"at most {overshoot:,} rows over the cap")]


def main():
    """Run the benchmark and print a markdown table."""
    args = parse_args()
    if args.page_only:  # the child of page_in_child
        for line in time_page(args.url, args):
            print(json.dumps(line))
        return
    if args.maintenance_only:
        if not args.store:
            sys.exit("--maintenance-only needs --store")
        results = []
        for rate in filter(None, args.rates.split(",")):
            results += time_maintenance(args.store, args, int(rate))
        print_table(args, "sqlite", results)
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        path = args.store or f"{tmpdir}/bench.sqlite3"
        if args.store and os.path.exists(args.store) and os.path.getsize(args.store):
            # A filled store is read from a copy: the roll-up below writes, and every run
            # should start from the same store.
            path = f"{tmpdir}/store-copy.sqlite3"
            shutil.copyfile(args.store, path)
        url = args.url or f"sqlite:///{path}"
        app = Flask(__name__, instance_path=tmpdir)
        app.config.update(
            TRACKER_DATABASE_URL=url,
            TRACKER_RETENTION_DAYS=0, TRACKER_MAX_ROWS=0, TRACKER_SLOW_MS=0,
            TRACKER_BATCH_SIZE=args.batch_size, TRACKER_MAINTENANCE_INTERVAL=1e9,
        )
        tracking = Tracking(app)
        with tracking.engine.begin() as conn:
            stored = reads.row_count(conn)
        if stored and not args.store:
            sys.exit("the store is not empty; give an empty database")
        results = [] if stored else fill(tracking, args)
        if stored:
            print(f"reusing {path} ({stored:,} rows)", file=sys.stderr)
            args.rows = stored
            with tracking.engine.connect() as conn:  # as the writer would within a minute
                conn.execution_options(**{IMMEDIATE: True})
                with conn.begin():
                    rollups.roll_up(conn)
        results += time_queries(tracking.engine, args)
        results += page_in_child(url, args)
        if not args.store:
            results += time_retention(tracking, args)
        backend = tracking.engine.url.get_backend_name()
        tracking.shutdown()
        for rate in filter(None, args.rates.split(",")):
            results += time_maintenance(path, args, int(rate))

    print_table(args, backend, results)


def print_table(args, backend, results):
    """Print the results as a markdown table."""
    print(f"\n{args.rows:,} rows, {args.endpoints} endpoints, {args.days:g} days, "
          f"{backend}, batch {args.batch_size}, median of {args.repeat} runs\n")
    print("| operation | result |")
    print("|---|---|")
    for label, value in results:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
