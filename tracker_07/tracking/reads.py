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

from sqlalchemy import (
    BigInteger, Double, Integer, SmallInteger, case, cast, func, literal, null, select, union,
    union_all,
)
from sqlalchemy.sql.functions import coalesce

from .filters import Filters
from .store import (
    BUCKET_COUNT,
    DAY,
    HOUR,
    bucket_bounds,
    bucket_middle,
    daily_table,
    endpoints_table,
    hourly_table,
    meta_table,
    requests_table,
    status_daily_table,
    status_hourly_table,
    totals_table,
)
from .rollups import ROLLED_UP_KEY
from .schema import DAILY_UNTIL_KEY, VALUE_AGGREGATES, meta_value
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


def _rolled_up_id():
    """SQL for the highest raw id already folded into the rollup (0 before the first)."""
    marker = select(meta_table.c.value).where(meta_table.c.key == ROLLED_UP_KEY)
    return coalesce(marker.scalar_subquery(), literal(0))


def _not_rolled_up(conn, done):
    """Conditions for the raw rows not yet in the rollups: after the marker as the query
    reads it (``done``, so the rows and the rollups come from one snapshot), and after
    the marker read just before, a value the planner can see (PostgreSQL plans an
    unknown bound as a third of the table and would read all of it)."""
    raw = requests_table.c
    return raw.id > meta_value(conn, ROLLED_UP_KEY), raw.id > done


#: What each part of :func:`_grouped_rows` gives per group, raw rows being groups of one.
VALUE_LABELS = ("n", "total", "top", "last", "queries", "queries_max", "sql_ms", "findings")
#: Which of the outer query's totals are whole numbers: count, queries, findings, errors.
_WHOLE = (0, 4, 7, 8, 9)
#: How the outer query combines each of them.
VALUE_TOTALS = (func.sum, func.sum, func.max, func.max, func.sum, func.max, func.sum, func.sum)
#: The bucket of a summary's rows that carry an endpoint's exact figures.
EXACT = -1
_NO_VALUES = tuple(cast(null(), kind) for kind in (
    Double, Double, Double, BigInteger, BigInteger, Double, BigInteger))


def _part(table, keys, where, counts_only=False):
    # ``keys``: (columns, the ones to group by: not the constants)
    """One SELECT of :func:`_grouped_rows`' union: ``keys`` and the value columns of the
    raw table or of a rollup table (only the counts, when ``counts_only``), grouped (each
    part is read in its own key order, so a daily rollup groups without sorting)."""
    columns = table.c
    is_raw = table is requests_table
    if counts_only:
        values = (func.count() if is_raw else func.sum(columns["count"]), *_NO_VALUES)
    elif is_raw:
        values = (func.count(), func.sum(columns.duration_ms), func.max(columns.duration_ms),
                  func.max(columns.started_at), func.sum(columns.queries),
                  func.max(columns.queries), func.sum(columns.sql_ms),
                  func.sum(columns.findings))
    else:
        values = tuple(getattr(func, how)(columns[name]) for name, how in VALUE_AGGREGATES)
    columns, grouped = keys
    return select(*columns, *(value.label(label) for value, label in zip(values, VALUE_LABELS))
                  ).where(*where).group_by(*grouped)


def _rollup_spans(first_hour, last_hour, hours, days, daily_until):
    """Which rollup covers which whole periods: finished ``days`` (before ``daily_until``,
    ``None`` for hours only) where possible, ``hours`` around them."""
    if daily_until is not None:
        first_day = math.ceil(first_hour / DAY) * DAY
        last_day = min(math.floor(last_hour / DAY) * DAY, daily_until)
        if first_day < last_day:
            return [(days, first_day, last_day), (hours, first_hour, first_day),
                    (hours, last_day, last_hour)]
    return [(hours, first_hour, last_hour)]


# pylint: disable-next=too-many-arguments,too-many-positional-arguments,too-many-locals
def _grouped_rows(conn, filters, group=(), time_index=None, use_rollup=True, errors=False):
    """Totals per ``group`` columns and latency bucket of the ``filters``' requests, summed
    by the database in one statement (so PostgreSQL answers from a single snapshot).

    Rows already folded into the rollups are read from the daily rollups for finished
    whole days, from an hourly rollup for the remaining whole hours (the per-bucket totals
    when nothing narrows the read to endpoints or statuses) and from the raw table for the
    partial hours at either end (the last hour, too, when no row is stored after the
    range); rows not yet folded in are read raw.  ``time_index(column)``, if given, adds a
    leading time-bucket key (and then days are read hour by hour).  Yields ``([idx,]
    *group, bucket, count, sum_ms, max_ms, last_at, queries, queries_max, sql_ms,
    findings)``, one row per key.

    With ``errors`` (a summary), the buckets' rows carry their counts only, and a row in
    bucket ``EXACT`` per group carries the exact figures, read from the status rollups,
    with the 4xx and 5xx counts added at the end.
    """
    since, until = filters.window()
    raw = requests_table.c
    first_hour = math.ceil(since / HOUR) * HOUR
    last_hour = math.floor(until / HOUR) * HOUR
    detailed = bool(group or errors or filters.conditions(raw))
    if last_hour < until:
        newest = conn.execute(select(func.max(raw.started_at))).scalar()
        if newest is not None and newest < until:
            # Nothing stored at or after ``until``: the hour holding it is whole for this
            # read, so the rollup gives it instead of its raw rows (the current hour's).
            last_hour += HOUR
    shapes = [(hourly_table if detailed else totals_table, daily_table, False)]
    if errors:
        shapes = [(hourly_table, daily_table, True),
                  (status_hourly_table, status_daily_table, False)]
    whole = use_rollup and first_hour < last_hour
    daily_until = None
    if whole and detailed and time_index is None:
        daily_until = meta_value(conn, DAILY_UNTIL_KEY)
    done = _rolled_up_id()
    parts = []
    for hours, days, counts_only in shapes:
        exact = errors and not counts_only

        def keys(table, period_column, exact=exact):
            grouped = [table.c[name].label(name) for name in group]
            if time_index is not None:
                grouped.insert(0, time_index(period_column).label("idx"))
            if not errors:
                grouped.append(table.c.bucket.label("bucket"))
                return grouped, grouped
            if exact:  # per status, in the one bucket EXACT
                status = table.c.status.label("status")
                return [*grouped, status, literal(EXACT).label("bucket")], [*grouped, status]
            bucket = table.c.bucket.label("bucket")  # per bucket, any status
            return [*grouped, cast(null(), SmallInteger).label("status"), bucket], [
                *grouped, bucket]

        def raw_part(*where, counts_only=counts_only, keys=keys):
            return _part(requests_table, keys(requests_table, raw.started_at),
                         (*where, *filters.conditions(raw)), counts_only)

        if not whole:
            parts.append(raw_part(raw.started_at >= since, raw.started_at < until))
            continue
        parts += [
            _part(table, keys(table, table.c.period_start),
                  (table.c.period_start >= start, table.c.period_start < end,
                   *filters.conditions(table.c)), counts_only)
            for table, start, end in _rollup_spans(first_hour, last_hour, hours, days,
                                                   daily_until)
        ] + [
            raw_part(raw.id <= done, raw.started_at >= since, raw.started_at < first_hour),
            raw_part(raw.id <= done, raw.started_at >= last_hour, raw.started_at < until),
            # "+ 0" keeps SQLite from scanning the time index when the id range is tiny.
            raw_part(*_not_rolled_up(conn, done), raw.started_at + 0 >= since,
                     raw.started_at + 0 < until),
        ]
    every = union_all(*parts).subquery()
    outer = [every.c[name] for name in (*(("idx",) if time_index else ()), *group, "bucket")]
    totals = [total(every.c[label]) for total, label in zip(VALUE_TOTALS, VALUE_LABELS)]
    if errors:
        status, count = every.c.status, every.c.n
        totals += [func.sum(case((status.between(400, 499), count), else_=0)),
                   func.sum(case((status >= 500, count), else_=0))]
    # Whole numbers as integers (PostgreSQL sums BIGINT as NUMERIC, slow to convert).
    totals = [cast(total, BigInteger) if index in _WHOLE else total
              for index, total in enumerate(totals)]
    return conn.execute(select(*outer, *totals).group_by(*outer))


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
    if sort not in SUMMARY_SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SUMMARY_SORT_KEYS)}; got {sort!r}")
    groups = {}
    for row in _grouped_rows(conn, filters, group=("endpoint", "method"), errors=True):
        group = groups.get((row[0], row[1]))
        if group is None:
            group = groups[(row[0], row[1])] = _Aggregate()
        group.add(*row[2:])
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
    for bucket, count, *_ in _grouped_rows(conn, filters):
        counts[bucket] = counts.get(bucket, 0) + int(count)
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
    rows = _grouped_rows(
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
        select(raw.endpoint, raw.method).where(*_not_rolled_up(conn, _rolled_up_id())),
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


def dropped_count(conn):
    """Number of records that every writer of this store had to drop."""
    return meta_value(conn, DROPPED_KEY)
