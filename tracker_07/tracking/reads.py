"""Reads on the tracking store for the dashboard and ``flask tracker``: summaries,
percentiles, time series, histograms, endpoint lists, exports and counters.

Every function takes a SQLAlchemy connection first and a :class:`~.filters.Filters`
saying which requests to read.  Durations are milliseconds.

Counts, means, maxima, 4xx/5xx counts and last-seen times are exact.  Percentiles come
from logarithmic latency buckets (see :mod:`tracker_07.tracking.store`): each is the
geometric middle of the bucket holding the nearest-rank percentile, capped at the
group's maximum, so it is within ``store.BUCKET_ERROR`` (9.05 %) of the exact value
(durations below 0.01 ms are reported as 0.005 ms, and percentiles falling beyond the
last edge, about 30 minutes, as the maximum).

Summaries read whole days and hours from the rollup tables and only the partial hours
at either end of the range (plus the rows written since the last roll-up) from the raw
rows, and the database sums them per key, so their cost depends on the number of
endpoints and periods, not of requests, and Python sees one row per key.
"""
import math
from bisect import bisect_left
from itertools import accumulate

from sqlalchemy import Integer, cast, func, select, union

from .filters import Filters
from .grouped import EXACT, grouped_rows, not_rolled_up, rolled_up_id
from .schema import ROLLED_UP_KEY, meta_value
from .store import (
    BUCKET_COUNT,
    HOUR,
    bucket_bounds,
    bucket_middle,
    endpoints_table,
    requests_table,
)
from .writes import DROPPED_KEY

SUMMARY_SORT_KEYS = (
    "endpoint", "method", "count", "mean", "p50", "p95", "p99", "max",
    "count_4xx", "count_5xx", "last_seen", "queries", "queries_max", "sql_ms", "sql_share",
    "findings",
)
EXPORT_COLUMNS = ("id", "started_at", "endpoint", "method", "status", "duration_ms",
                  "queries", "sql_ms", "findings")
#: Reads with no filters: every request, at any time.
EVERYTHING = Filters()


class _Aggregate:  # pylint: disable=too-many-instance-attributes  # one per summary column
    """Running totals for one group: exact count, sum, max, 4xx/5xx, last; bucket counts."""

    __slots__ = ("buckets", "count", "total_ms", "max_ms", "count_4xx", "count_5xx", "last",
                 "queries", "queries_max", "sql_ms", "findings")

    def __init__(self):
        self.buckets = {}
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.count_4xx = 0
        self.count_5xx = 0
        self.last = 0.0
        self.queries = 0
        self.queries_max = 0
        self.sql_ms = 0.0
        self.findings = 0

    def add(self, bucket, count, total_ms, max_ms, last,  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one per column
            queries=0, queries_max=0, sql_ms=0.0, findings=0, count_4xx=0, count_5xx=0):
        """Fold in one grouped row: a bucket's count and, unless it has only that, the
        exact figures (a summary's ``EXACT`` rows have those only)."""
        count = int(count)
        if bucket != EXACT:
            self.buckets[bucket] = self.buckets.get(bucket, 0) + count
        if total_ms is None:
            return
        self.count_4xx += int(count_4xx)
        self.count_5xx += int(count_5xx)
        self.queries += int(queries)
        self.queries_max = max(self.queries_max, int(queries_max))
        self.sql_ms += sql_ms
        self.findings += int(findings)
        self.count += count
        self.total_ms += total_ms
        self.max_ms = max(self.max_ms, max_ms)
        self.last = max(self.last, last)

    def percentile(self, quantile):
        """Nearest-rank percentile estimated from the bucket counts."""
        rank = max(1, math.ceil(quantile * sum(self.buckets.values())))
        ordered = sorted(self.buckets)
        cumulative = list(accumulate(self.buckets[bucket] for bucket in ordered))
        bucket = ordered[bisect_left(cumulative, rank)]
        if bucket >= BUCKET_COUNT - 1:
            return self.max_ms
        return min(bucket_middle(bucket), self.max_ms)


def summary(conn, filters, sort="count", descending=True):
    """Per (endpoint, method) statistics for the dashboard's table and ``flask tracker stats``.

    ``filters`` must have ``since`` and ``until`` (as for every read but the export).
    Returns a list of dicts with ``endpoint``, ``method``, ``count``, ``mean``, ``p50``,
    ``p95``, ``p99``, ``max`` (ms), ``count_4xx``, ``count_5xx``, ``last_seen``
    (epoch seconds), and the database's share: ``queries`` (mean per request),
    ``queries_max``, ``sql_ms`` (mean per request), ``sql_share`` (SQL time over request
    time, 0 to 1) and ``findings`` (N+1, duplicate and slow findings, in all), sorted by
    ``sort`` (one of ``SUMMARY_SORT_KEYS``).
    """
    _check_sort(sort)
    return _summary_rows(_summary_groups(conn, filters), sort, descending)


def summary_and_histogram(conn, filters, sort="count", descending=True):
    """:func:`summary` and :func:`histogram` of the same requests from one read, as the
    dashboard shows them together: the histogram's counts are the summary's buckets summed
    over its endpoints, so the database is not asked for them again."""
    _check_sort(sort)
    groups = _summary_groups(conn, filters)
    counts = {}
    for group in groups.values():
        for bucket, count in group.buckets.items():
            counts[bucket] = counts.get(bucket, 0) + count
    return _summary_rows(groups, sort, descending), _histogram_rows(counts)


def _check_sort(sort):
    """Refuse a sort key the summary has no column for, before anything is read."""
    if sort not in SUMMARY_SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SUMMARY_SORT_KEYS)}; got {sort!r}")


def _summary_groups(conn, filters):
    """The running totals of each (endpoint, method) of the ``filters``' requests."""
    groups = {}
    for row in grouped_rows(conn, filters, group=("endpoint", "method"), errors=True):
        group = groups.get((row[0], row[1]))
        if group is None:
            group = groups[(row[0], row[1])] = _Aggregate()
        group.add(*row[2:])
    return groups


def _summary_rows(groups, sort, descending):
    """The summary's dicts of ``groups``, sorted by ``sort``."""
    result = [
        {
            "endpoint": key[0], "method": key[1], "count": group.count,
            "mean": group.total_ms / group.count, "p50": group.percentile(0.50),
            "p95": group.percentile(0.95), "p99": group.percentile(0.99),
            "max": group.max_ms, "count_4xx": group.count_4xx,
            "count_5xx": group.count_5xx, "last_seen": group.last,
            "queries": group.queries / group.count, "queries_max": group.queries_max,
            "sql_ms": group.sql_ms / group.count,
            "sql_share": group.sql_ms / group.total_ms if group.total_ms else 0.0,
            "findings": group.findings,
        }
        for key, group in groups.items()
    ]
    result.sort(key=lambda item: (item["endpoint"], item["method"]))
    result.sort(key=lambda item: item[sort], reverse=descending)
    return result


def histogram(conn, filters):
    """Latency distribution for a chart: the non-empty range of logarithmic buckets.

    Returns a list of ``{"low_ms", "high_ms", "count"}`` from the first to the last
    non-empty bucket (empty buckets in between are included with count 0).
    """
    counts = {}
    for bucket, count, *_ in grouped_rows(conn, filters):
        counts[bucket] = counts.get(bucket, 0) + int(count)
    return _histogram_rows(counts)


def _histogram_rows(counts):
    """The histogram's dicts of ``counts`` per bucket."""
    if not counts:
        return []
    result = []
    for bucket in range(min(counts), max(counts) + 1):
        low, high = bucket_bounds(bucket)
        result.append({"low_ms": low, "high_ms": high, "count": counts.get(bucket, 0)})
    return result


def _time_index(conn, column, since, width):
    """SQL for the 0-based time bucket of ``column`` (CAST truncates in SQLite only)."""
    scaled = (column - since) / width
    if conn.dialect.name == "sqlite":
        return cast(scaled, Integer)
    return func.floor(scaled)


def time_series(conn, filters, buckets=60):
    """Traffic and latency over time for the dashboard's charts.

    Returns ``buckets`` dicts with ``start``, ``end`` (epoch seconds), ``count``, and
    ``mean``, ``p95``, ``max`` in ms (``None`` for empty buckets).  When buckets are an
    hour or wider, whole hours come from the rollup and each is counted in the bucket
    holding the hour's start (exact when ``since`` is on the hour and the width a whole
    number of hours).
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise ValueError(f"buckets must be a positive integer, got {buckets!r}")
    since, until = filters.window()
    width = (until - since) / buckets
    rows = grouped_rows(
        conn, filters,
        time_index=lambda column: _time_index(conn, column, since, width),
        use_rollup=width >= HOUR,
    )
    series = [_Aggregate() for _ in range(buckets)]
    for row in rows:
        series[min(max(int(row[0]), 0), buckets - 1)].add(*row[1:])
    return [
        {
            "start": since + index * width, "end": since + (index + 1) * width,
            "count": point.count,
            "mean": point.total_ms / point.count if point.count else None,
            "p95": point.percentile(0.95) if point.count else None,
            "max": point.max_ms if point.count else None,
        }
        for index, point in enumerate(series)
    ]


def endpoints(conn):
    """Distinct (endpoint, method) pairs for the dashboard's filter drop-downs."""
    raw, known = requests_table.c, endpoints_table.c
    pairs = union(  # union (not union_all) removes the duplicates
        select(known.endpoint, known.method),
        select(raw.endpoint, raw.method).where(*not_rolled_up(conn, rolled_up_id())),
    ).subquery()
    rows = conn.execute(select(pairs.c.endpoint, pairs.c.method).order_by(
        pairs.c.endpoint, pairs.c.method))
    return [{"endpoint": row.endpoint, "method": row.method} for row in rows]


def export_rows(conn, filters=EVERYTHING, chunk_size=1000):
    """Stream raw rows as dicts (oldest first) so exports of any size use little memory."""
    raw = requests_table.c
    statement = (
        select(*(raw[name] for name in EXPORT_COLUMNS))
        .where(*filters.conditions(raw, raw.started_at))
        .order_by(raw.started_at, raw.id)
        .execution_options(yield_per=chunk_size)
    )
    for row in conn.execute(statement):
        yield dict(row._mapping)  # pylint: disable=protected-access  # documented public API


def row_count(conn):
    """Number of raw request rows kept."""
    return int(conn.execute(select(func.count()).select_from(requests_table)).scalar())


def rows_behind(conn):
    """How many raw ids lie past the roll-up mark: rows each read goes through one by one
    until the next roll-up (two primary-key lookups)."""
    top = conn.execute(select(func.max(requests_table.c.id))).scalar()
    return max(0, (top or 0) - meta_value(conn, ROLLED_UP_KEY))


def dropped_count(conn):
    """Number of records that every writer of this store had to drop."""
    return meta_value(conn, DROPPED_KEY)
