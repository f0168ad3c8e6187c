"""A roll-up's merge of the writer's counted groups into PostgreSQL's hourly roll-up: this
code (COPY into a temporary table, one ``INSERT ... SELECT ... ON CONFLICT``) against the
``executemany`` upsert it replaced, alternated round by round in one process.

    python benchmarks/bench_rollup_merge.py --url "$TRACKER_TEST_DATABASE_URL" \
        [--groups 3800,8000] [--rounds 7] [--endpoints 50]

The database must be empty (its tracking tables are dropped at the end).  The hourly
roll-up is first filled with a week of groups (``--endpoints`` endpoints, two methods,
four statuses, the latency buckets a lognormal spread gives: about 300,000 rows, as the
1M-row store of ``bench_tracking_store.py`` has; the current hour all of them) and
vacuumed, as autovacuum would; each
round then merges ``--groups`` groups of the current hour, most of them already there
(updates), as a pass a minute into the hour does: 3,800 are 30,000 requests' groups, 8,000
those of 240,000.  Prints the median and range of each variant's ms and their paired ratio.
"""
import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position,import-error  # the path above makes it importable
from tracker_07.tracking import counted, store  # noqa: E402
from tracker_07.tracking.schema import create_schema  # noqa: E402
from tracker_07.tracking.store import ROLLUP_KEY, hourly_table  # noqa: E402

HOUR = 3600
STATUSES = (200, 302, 404, 500)


def hour_groups(hour, endpoints, generator):
    """One hour's groups: every endpoint, method and status, in the buckets a lognormal
    latency reaches (fewer for the rarer methods and statuses)."""
    groups = []
    for endpoint in range(endpoints):
        for method, statuses in (("GET", STATUSES), ("POST", STATUSES[:2])):
            for status in statuses:
                centre = 60 + generator.randint(-5, 5)
                for bucket in range(centre - 15, centre + 15):
                    count = generator.randint(1, 20)
                    groups.append([hour, f"/api/v1/resource{endpoint}/<int:id>", method,
                                   status, bucket, count, count * 9.5, 40.0, hour + 1800.0,
                                   0, 0, 0.0, 0])
    return groups


def fill(engine, now, args, generator):
    """A week of hourly groups and the current hour's, vacuumed; returns the latter."""
    create_schema(engine)
    with engine.begin() as conn:
        for hour in range(now - 7 * 24 * HOUR, now + HOUR, HOUR):
            groups = hour_groups(hour, args.endpoints, generator)
            if hour < now:  # a past hour: as many groups as the 1M-row store's (1,800)
                groups = generator.sample(groups, min(len(groups), 1800))
            counted.merge_rows(
                conn, hourly_table, ROLLUP_KEY, groups)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        filled = conn.exec_driver_sql(f"SELECT count(*) FROM {hourly_table.name}").scalar()
    print(f"hourly roll-up: {filled:,} rows; merging into the current hour", file=sys.stderr)
    return groups


def time_merges(engine, now, size, current, args, generator):  # pylint: disable=too-many-locals,too-many-arguments,too-many-positional-arguments  # one sequence
    """Both merges of ``size`` groups, alternated for ``--rounds``; table lines."""
    variants = (("COPY and one INSERT ... SELECT", counted.merge_rows),
                ("executemany (before)", counted.upsert_rows))
    times = {name: [] for name, _merge in variants}
    for round_number in range(args.rounds):
        for name, merge in variants[::1 if round_number % 2 else -1]:
            rows = [list(group) for group in generator.sample(current, min(size, len(current)))]
            rows += [[now, f"/new/{index}", "GET", 200, 1, 1, 1.0, 1.0, now + 1.0, 0, 0, 0.0, 0]
                     for index in range(size - len(rows))]  # beyond the hour's
            started = time.perf_counter()
            with engine.begin() as conn:
                merge(conn, hourly_table, ROLLUP_KEY, rows)
            times[name].append((time.perf_counter() - started) * 1000)
    new, old = (times[name] for name, _merge in variants)
    ratio = statistics.median(a / b for a, b in zip(new, old))
    return [f"| {size:,} | {name} | {statistics.median(values):.1f} | "
            f"{min(values):.1f}–{max(values):.1f} | {f'{ratio:.2f}' if values is new else ''} |"
            for name, values in times.items()]


def main():
    """Fill, then time the two merges alternately; print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--url", required=True, help="an empty PostgreSQL database")
    parser.add_argument("--groups", default="3800,8000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--endpoints", type=int, default=50)
    args = parser.parse_args()
    engine = store.create_store_engine(args.url)
    generator = random.Random(1)
    now = int(time.time()) // HOUR * HOUR
    current = fill(engine, now, args, generator)
    print("| groups | variant | median ms | range | paired ratio |\n|---|---|---:|---:|---:|")
    for size in (int(number) for number in args.groups.split(",")):
        print("\n".join(time_merges(engine, now, size, current, args, generator)))
    with engine.begin() as conn:
        store.metadata.drop_all(conn)


if __name__ == "__main__":
    main()
