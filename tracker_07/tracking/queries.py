"""Reads and writes on the tracking store; every function takes a SQLAlchemy connection first.

Times are epoch seconds (``int``/``float``) or ``datetime`` objects (naive ones are UTC);
``since`` is inclusive and ``until`` exclusive.  Durations are milliseconds.

Counts, means, maxima, 4xx/5xx counts and last-seen times are exact.  Percentiles come
from logarithmic latency buckets (see :mod:`tracker_07.tracking.store`): each is the
geometric middle of the bucket holding the nearest-rank percentile, capped at the
group's maximum, so it is within ``store.BUCKET_ERROR`` (9.05 %) of the exact value
(durations below 0.01 ms are reported as 0.005 ms, and percentiles falling beyond the
last edge, about 30 minutes, as the maximum).

Summaries read whole days and hours from the rollup tables and only the partial hours
at either end of the range (plus the rows written since the last roll-up) from the raw
rows, so their cost depends on the number of endpoints and periods, not of requests.
"""
import math
import sqlite3
import time
from bisect import bisect_left
from datetime import datetime, timezone
from itertools import accumulate, chain

from sqlalchemy import (
    BigInteger, Integer, case, cast, delete, func, literal, select, union, union_all,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.functions import coalesce

from .store import (
    BUCKET_COUNT,
    ROLLUP_KEY,
    bucket_bounds,
    bucket_middle,
    bucket_of,
    meta_table,
    requests_table,
    ROLLUPS,
    daily_table,
    hourly_table,
)

HOUR, DAY = 3600, 86400
SUMMARY_SORT_KEYS = (
    "endpoint", "method", "count", "mean", "p50", "p95", "p99", "max",
    "count_4xx", "count_5xx", "last_seen",
)
DROPPED_KEY = "dropped"
EXPORT_COLUMNS = ("id", "started_at", "endpoint", "method", "status", "duration_ms")

ROLLED_UP_KEY = "rolled_up_id"
ROW_FIELDS = ("started_at", "endpoint", "method", "status", "duration_ms")
INSERT_COLUMNS = (*ROW_FIELDS, "bucket")
#: Rows per INSERT statement: few statements mean few GIL hand-overs for the writer.
#: 6 parameters a row stay under SQLite's limit (999 before 3.32, 32766 since).
ROWS_PER_INSERT = 1000 if sqlite3.sqlite_version_info >= (3, 32) else 166
_INSERT_SQL = {}
ROLLUP_COLUMNS = (*ROLLUP_KEY, "count", "sum_ms", "max_ms", "last_at")


def to_epoch(value):
    """Accept epoch seconds or datetimes so callers can pass whichever they hold."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected epoch seconds or a datetime, got {value!r}")
    return float(value)


def status_range(status):
    """Turn a status filter (404, "404" or "4xx") into a half-open range of codes."""
    text = str(status).strip().lower()
    if len(text) == 3 and text[0] in "12345" and text.endswith("xx"):
        low = int(text[0]) * 100
        return low, low + 100
    if text.isdigit() and 100 <= int(text) <= 599:
        return int(text), int(text) + 1
    raise ValueError(f"status must be a code like 404 or a class like '5xx', got {status!r}")


def _filters(columns, endpoint, method, status):
    """Bound-parameter WHERE clauses for the optional dashboard filters."""
    clauses = []
    if endpoint is not None:
        clauses.append(columns.endpoint == endpoint)
    if method is not None:
        clauses.append(columns.method == method.upper())
    if status is not None:
        low, high = status_range(status)
        clauses.append(columns.status >= low)
        clauses.append(columns.status < high)
    return clauses


# --- writing ---------------------------------------------------------------------------


def _insert_sql(rows_in_statement):
    """A multi-row SQLite INSERT with ``?`` placeholders (built from the table metadata)."""
    sql = _INSERT_SQL.get(rows_in_statement)
    if sql is None:
        row = f"({', '.join(['?'] * len(INSERT_COLUMNS))})"
        sql = _INSERT_SQL[rows_in_statement] = (
            f"INSERT INTO {requests_table.name} ({', '.join(INSERT_COLUMNS)}) "
            f"VALUES {', '.join([row] * rows_in_statement)}"
        )
    return sql


def insert_batch(conn, rows):
    """Store ``rows``, tuples ``(started_at, endpoint, method, status, duration_ms)``
    (see ``ROW_FIELDS``), adding each one's latency bucket.  Returns the number stored."""
    return insert_rows(conn, [(*row, bucket_of(row[4])) for row in rows])


def insert_rows(conn, rows):
    """Store complete rows (``INSERT_COLUMNS`` order) in one go, SQLite with multi-row
    INSERTs and PostgreSQL with COPY, so the writer pays per batch, not per row."""
    if not rows:
        return 0
    if conn.dialect.name != "sqlite":
        # PostgreSQL takes rows fastest through COPY, inside the caller's transaction.
        cursor = conn.connection.dbapi_connection.cursor()
        columns = ", ".join(INSERT_COLUMNS)
        with cursor.copy(f"COPY {requests_table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.close()
        return len(rows)
    # Multi-row VALUES straight to the driver: an executemany would release and retake
    # the GIL for every row (starving this thread while requests run) and SQLAlchemy's
    # per-row parameter processing costs more than SQLite's insert itself.
    for first in range(0, len(rows), ROWS_PER_INSERT):
        conn.exec_driver_sql(*_multi_row_insert(rows[first:first + ROWS_PER_INSERT]))
    return len(rows)


def append_rows(conn, rows):
    """Store up to ``ROWS_PER_INSERT`` complete rows on SQLite with one statement in
    autocommit mode: taking the write lock (waiting up to the busy timeout), inserting
    and committing all happen inside a single driver call.  The writer thread then gives
    up the GIL once per batch instead of at BEGIN, INSERT and COMMIT, and every time it
    takes the GIL back it costs the request threads a switch."""
    conn.connection.dbapi_connection.execute(*_multi_row_insert(rows))
    return len(rows)


def _multi_row_insert(rows):
    """The SQLite statement and flat parameters that insert ``rows`` in one go."""
    return _insert_sql(len(rows)), tuple(chain.from_iterable(rows))


def _period_of(conn, column, period):
    """SQL for the start of the hour or day holding ``column`` (epoch seconds, UTC)."""
    if conn.dialect.name == "sqlite":
        return cast(column / period, Integer) * period
    return cast(func.floor(column / period), BigInteger) * period


def _set_meta(conn, key, value):
    """Insert or overwrite one shared counter."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = insert(meta_table).values(key=key, value=value)
    conn.execute(statement.on_conflict_do_update(
        index_elements=["key"], set_={"value": statement.excluded.value}))


def _meta(conn, key):
    """Read one shared counter (0 when unset)."""
    value = conn.execute(select(meta_table.c.value).where(meta_table.c.key == key)).scalar()
    return int(value or 0)


def roll_up(conn):
    """Fold raw rows written since the last call into the rollups; returns how many.

    Rows are taken by id, so each is counted exactly once however late it arrives.  Run it
    inside a write transaction; on PostgreSQL it first waits for in-flight inserts so no
    smaller id can commit after the new high-water mark.  The new rows are read once,
    grouped by hour; the days are summed from those groups.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"LOCK TABLE {requests_table.name} IN SHARE ROW EXCLUSIVE MODE"
        )
    raw = requests_table.c
    done = _meta(conn, ROLLED_UP_KEY)
    top = conn.execute(select(func.max(raw.id))).scalar()
    if top is None or top <= done:
        return 0
    keys = (_period_of(conn, raw.started_at, HOUR), raw.endpoint, raw.method, raw.status,
            raw.bucket)
    hours = conn.execute(
        select(*keys, func.count(), func.sum(raw.duration_ms), func.max(raw.duration_ms),
               func.max(raw.started_at))
        .where(raw.id > done, raw.id <= top).group_by(*keys)
    ).all()
    days = {}
    for hour, *key, count, sum_ms, max_ms, last_at in hours:
        day_key = (hour - hour % DAY, *key)
        known = days.get(day_key)
        if known is None:
            days[day_key] = [count, sum_ms, max_ms, last_at]
        else:
            known[0] += count
            known[1] += sum_ms
            known[2] = max(known[2], max_ms)
            known[3] = max(known[3], last_at)
    _merge_groups(conn, hourly_table, [tuple(group) for group in hours])
    _merge_groups(conn, daily_table, [(*key, *totals) for key, totals in days.items()])
    _set_meta(conn, ROLLED_UP_KEY, top)
    return sum(group[5] for group in hours)


def _merge_groups(conn, table, groups):
    """Add ``groups`` (``ROLLUP_COLUMNS`` tuples) to a rollup table, merging with the
    groups already there: one statement, compiled once, executed for every group."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = insert(table)
    new, old = statement.excluded, table.c
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY),
            set_={
                "count": old["count"] + new["count"],
                "sum_ms": old.sum_ms + new.sum_ms,
                "max_ms": case((new.max_ms > old.max_ms, new.max_ms), else_=old.max_ms),
                "last_at": case((new.last_at > old.last_at, new.last_at), else_=old.last_at),
            },
        ),
        [dict(zip(ROLLUP_COLUMNS, group)) for group in groups],
    )


def add_dropped(conn, count):
    """Record lost records in the store so every process's losses can be read back."""
    if count <= 0:
        return
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = insert(meta_table).values(key=DROPPED_KEY, value=count)
    statement = statement.on_conflict_do_update(
        index_elements=["key"], set_={"value": meta_table.c.value + statement.excluded.value}
    )
    conn.execute(statement)


def dropped_count(conn):
    """Number of records that every writer of this store had to drop."""
    return _meta(conn, DROPPED_KEY)


def row_count(conn):
    """Number of raw request rows kept."""
    return int(conn.execute(select(func.count()).select_from(requests_table)).scalar())


def prune(conn, older_than=None, keep_rows=None):
    """Apply retention: delete rows started before ``older_than`` and beyond the newest
    ``keep_rows``; returns the number of raw rows deleted.

    Rollup hours and days are deleted once they lie wholly before the cutoff or before the
    oldest raw row that is left.
    """
    raw = requests_table.c
    deleted = 0
    if older_than is not None:
        cutoff = to_epoch(older_than)
        deleted += conn.execute(delete(requests_table).where(raw.started_at < cutoff)).rowcount
        _prune_rollups(conn, cutoff)
    if keep_rows is not None:
        if isinstance(keep_rows, bool) or not isinstance(keep_rows, int) or keep_rows < 0:
            raise ValueError(f"keep_rows must be an integer >= 0, got {keep_rows!r}")
        lowest, highest = conn.execute(select(func.min(raw.id), func.max(raw.id))).one()
        if highest is not None and highest - lowest + 1 > keep_rows:
            boundary = conn.execute(
                select(raw.id).order_by(raw.id.desc()).offset(keep_rows).limit(1)
            ).scalar()
            if boundary is not None:
                deleted += conn.execute(
                    delete(requests_table).where(raw.id <= boundary)
                ).rowcount
                oldest = conn.execute(select(func.min(raw.started_at))).scalar()
                _prune_rollups(conn, math.inf if oldest is None else oldest)
    return deleted


def _prune_rollups(conn, cutoff):
    """Delete rollup periods that end at or before ``cutoff`` (all of them for infinity)."""
    for table, period in ROLLUPS:
        stale = table.c.period_start.isnot(None) if math.isinf(cutoff) else (
            table.c.period_start + period <= cutoff
        )
        conn.execute(delete(table).where(stale))


# --- reading ---------------------------------------------------------------------------


def _rolled_up_id():
    """SQL for the highest raw id already folded into the rollup (0 before the first)."""
    marker = select(meta_table.c.value).where(meta_table.c.key == ROLLED_UP_KEY)
    return coalesce(marker.scalar_subquery(), literal(0))


def _part(table, keys, count, where):
    """One SELECT of :func:`_grouped_rows` over the raw table or a rollup table."""
    columns = table.c
    is_raw = table is requests_table
    return select(
        *keys,
        count.label("n"),
        func.sum(columns.duration_ms if is_raw else columns.sum_ms).label("total"),
        func.max(columns.duration_ms if is_raw else columns.max_ms).label("top"),
        func.max(columns.started_at if is_raw else columns.last_at).label("last"),
    ).where(*where).group_by(*keys)


def _rollup_spans(first_hour, last_hour, use_days):
    """Which rollup covers which whole periods: days where possible, hours around them."""
    first_day = math.ceil(first_hour / DAY) * DAY
    last_day = math.floor(last_hour / DAY) * DAY
    if not use_days or first_day >= last_day:
        return [(hourly_table, first_hour, last_hour)]
    return [(daily_table, first_day, last_day), (hourly_table, first_hour, first_day),
            (hourly_table, last_day, last_hour)]


def _grouped_rows(conn, window, filters, group=("endpoint", "method", "status"),
                  time_index=None, use_rollup=True):
    """Aggregates per ``group`` columns and latency bucket over ``[since, until)``.

    Rows already folded into the rollups are read from the daily rollup for whole days,
    from the hourly rollup for the remaining whole hours and from the raw table for the
    partial hours at either end; rows not yet folded in are read raw.  It is one
    statement, so PostgreSQL answers from a single snapshot.  ``time_index(column)``, if
    given, adds a leading time-bucket key (and then days are read hour by hour).
    Yields ``([idx,] *group, bucket, count, sum_ms, max_ms, last_at)``; a key can come
    from several parts, so callers add them up.
    """
    since, until = window
    raw = requests_table.c
    first_hour = math.ceil(since / HOUR) * HOUR
    last_hour = math.floor(until / HOUR) * HOUR

    def keys(table, period_column):
        columns = [table.c[name].label(name) for name in (*group, "bucket")]
        if time_index is not None:
            columns.insert(0, time_index(period_column).label("idx"))
        return columns

    def raw_part(*where):
        return _part(requests_table, keys(requests_table, raw.started_at), func.count(),
                     (*where, *_filters(raw, *filters)))

    if not use_rollup or first_hour >= last_hour:
        return conn.execute(raw_part(raw.started_at >= since, raw.started_at < until))
    parts = [
        _part(table, keys(table, table.c.period_start), func.sum(table.c["count"]),
              (table.c.period_start >= start, table.c.period_start < end,
               *_filters(table.c, *filters)))
        for table, start, end in _rollup_spans(first_hour, last_hour, time_index is None)
    ]
    done = _rolled_up_id()
    # Callers merge the parts in Python: cheaper than SQLite re-grouping the union.
    return conn.execute(union_all(
        *parts,
        raw_part(raw.id <= done, raw.started_at >= since, raw.started_at < first_hour),
        raw_part(raw.id <= done, raw.started_at >= last_hour, raw.started_at < until),
        # "+ 0" keeps SQLite from scanning the time index when the id range is tiny.
        raw_part(raw.id > done, raw.started_at + 0 >= since, raw.started_at + 0 < until),
    ))


class _Aggregate:
    """Running totals for one group: exact count, sum, max, 4xx/5xx, last; bucket counts."""

    __slots__ = ("buckets", "count", "total_ms", "max_ms", "count_4xx", "count_5xx", "last")

    def __init__(self):
        self.buckets = {}
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.count_4xx = 0
        self.count_5xx = 0
        self.last = 0.0

    def add(self, status, bucket, count, total_ms, max_ms, last):
        """Fold in one grouped row."""
        count = int(count)
        self.buckets[bucket] = self.buckets.get(bucket, 0) + count
        self.count += count
        self.total_ms += total_ms
        self.max_ms = max(self.max_ms, max_ms)
        self.last = max(self.last, last)
        if 400 <= status < 500:
            self.count_4xx += count
        elif status >= 500:
            self.count_5xx += count

    def percentile(self, quantile):
        """Nearest-rank percentile estimated from the bucket counts."""
        rank = max(1, math.ceil(quantile * self.count))
        ordered = sorted(self.buckets)
        cumulative = list(accumulate(self.buckets[bucket] for bucket in ordered))
        bucket = ordered[bisect_left(cumulative, rank)]
        if bucket >= BUCKET_COUNT - 1:
            return self.max_ms
        return min(bucket_middle(bucket), self.max_ms)


def _window(since, until):
    """Validate a time range and return it as epoch floats."""
    since, until = to_epoch(since), to_epoch(until)
    if until <= since:
        raise ValueError(f"until ({until}) must be later than since ({since})")
    return since, until


def summary(conn, since, until, endpoint=None, method=None, status=None, sort="count",
            descending=True):
    """Per (endpoint, method) statistics for the dashboard's main table.

    Returns a list of dicts with ``endpoint``, ``method``, ``count``, ``mean``, ``p50``,
    ``p95``, ``p99``, ``max`` (ms), ``count_4xx``, ``count_5xx`` and ``last_seen``
    (epoch seconds), sorted by ``sort`` (one of ``SUMMARY_SORT_KEYS``).
    """
    if sort not in SUMMARY_SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SUMMARY_SORT_KEYS)}; got {sort!r}")
    groups = {}
    for row in _grouped_rows(conn, _window(since, until), (endpoint, method, status)):
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
        }
        for key, group in groups.items()
    ]
    result.sort(key=lambda item: (item["endpoint"], item["method"]))
    result.sort(key=lambda item: item[sort], reverse=descending)
    return result


def histogram(conn, since, until, endpoint=None, method=None, status=None):
    """Latency distribution for a chart: the non-empty range of logarithmic buckets.

    Returns a list of ``{"low_ms", "high_ms", "count"}`` from the first to the last
    non-empty bucket (empty buckets in between are included with count 0).
    """
    counts = {}
    rows = _grouped_rows(conn, _window(since, until), (endpoint, method, status), group=())
    for bucket, count, *_ in rows:
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


def time_series(conn, since, until, buckets=60, endpoint=None, method=None, status=None):
    """Traffic and latency over time for the dashboard's charts.

    Returns ``buckets`` dicts with ``start``, ``end`` (epoch seconds), ``count``, and
    ``mean``, ``p95``, ``max`` in ms (``None`` for empty buckets).  When buckets are an
    hour or wider, whole hours come from the rollup and each is counted in the bucket
    holding the hour's start (exact when ``since`` is on the hour and the width a whole
    number of hours).
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise ValueError(f"buckets must be a positive integer, got {buckets!r}")
    since, until = _window(since, until)
    width = (until - since) / buckets
    rows = _grouped_rows(
        conn, (since, until), (endpoint, method, status), group=(),
        time_index=lambda column: _time_index(conn, column, since, width),
        use_rollup=width >= HOUR,
    )
    series = [_Aggregate() for _ in range(buckets)]
    for row in rows:
        series[min(max(int(row[0]), 0), buckets - 1)].add(0, *row[1:])
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
    raw, rollup = requests_table.c, hourly_table.c
    pairs = union(  # union (not union_all) removes the duplicates
        select(rollup.endpoint, rollup.method),
        select(raw.endpoint, raw.method).where(raw.id > _rolled_up_id()),
    ).subquery()
    rows = conn.execute(select(pairs.c.endpoint, pairs.c.method).order_by(
        pairs.c.endpoint, pairs.c.method))
    return [{"endpoint": row.endpoint, "method": row.method} for row in rows]


def export_rows(conn, since=None, until=None, endpoint=None, method=None, status=None,
                chunk_size=1000):
    """Stream raw rows as dicts (oldest first) so exports of any size use little memory."""
    raw = requests_table.c
    clauses = _filters(raw, endpoint, method, status)
    if since is not None:
        clauses.append(raw.started_at >= to_epoch(since))
    if until is not None:
        clauses.append(raw.started_at < to_epoch(until))
    statement = (
        select(*(raw[name] for name in EXPORT_COLUMNS))
        .where(*clauses)
        .order_by(raw.started_at, raw.id)
        .execution_options(yield_per=chunk_size)
    )
    for row in conn.execute(statement):
        yield dict(row._mapping)  # pylint: disable=protected-access  # documented public API


def now():
    """Current epoch seconds (a function so callers and tests share one clock)."""
    return time.time()
