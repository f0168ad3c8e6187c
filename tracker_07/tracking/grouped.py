"""The one query behind summaries, time series and histograms: the whole periods from the
rollups, the partial hours at either end and the rows not yet rolled up from the raw
table, summed per key by the database in one statement."""
import math

from sqlalchemy import (
    BigInteger, Double, SmallInteger, case, cast, func, literal, null, select, union_all,
)
from sqlalchemy.sql.functions import coalesce

from . import spans
from .schema import (
    DAILY_UNTIL_KEY, ROLLED_UP_KEY, TOTALS_UNTIL_KEY, VALUE_AGGREGATES, meta_value,
)
from .store import (
    DAY,
    HOUR,
    STAGED,
    daily_table,
    hourly_table,
    meta_table,
    requests_table,
    status_daily_table,
    status_hourly_table,
    totals_table,
)


def rolled_up_id():
    """SQL for the highest raw id already folded into the rollup (0 before the first)."""
    marker = select(meta_table.c.value).where(meta_table.c.key == ROLLED_UP_KEY)
    return coalesce(marker.scalar_subquery(), literal(0))


def not_rolled_up(conn, done):
    """Conditions for the raw rows not yet in the rollups: after the marker as the query
    reads it (``done``, so the rows and the rollups come from one snapshot), and after
    the marker read just before, a value the planner can see (PostgreSQL plans an
    unknown bound as a third of the table and would read all of it)."""
    raw = requests_table.c
    return raw.id > meta_value(conn, ROLLED_UP_KEY), raw.id > done


#: What each part of :func:`grouped_rows` gives per group, raw rows being groups of one.
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
    """One SELECT of :func:`grouped_rows`' union: ``keys`` and the value columns of the
    raw table or of a rollup table (only the counts, when ``counts_only``), grouped (each
    part is read in its own key order, so a daily rollup groups without sorting)."""
    columns = table.c
    is_raw = table is requests_table
    if counts_only:
        values = (func.count() if is_raw else _rolled_total(columns["count"], "sum"),
                  *_NO_VALUES)
    elif is_raw:
        values = (func.count(), func.sum(columns.duration_ms), func.max(columns.duration_ms),
                  func.max(columns.started_at), func.sum(columns.queries),
                  func.max(columns.queries), func.sum(columns.sql_ms),
                  func.sum(columns.findings))
    else:
        values = tuple(_rolled_total(columns[name], how) for name, how in VALUE_AGGREGATES)
    columns, grouped = keys
    return select(*columns, *(value.label(label) for value, label in zip(values, VALUE_LABELS))
                  ).where(*where).group_by(*grouped)


def _rolled_total(column, how):
    """A rollup column's total (``how``: "sum" or "max"); a sum of whole numbers cast back
    to BIGINT, as PostgreSQL makes it NUMERIC, some 10% slower for the outer query to add
    up again."""
    total = getattr(func, how)(column)
    if how == "sum" and isinstance(column.type, BigInteger):
        return cast(total, BigInteger)
    return total


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


def _totals_spans(periods, totals_until):
    """The hours the per-bucket totals hold (before ``totals_until``) from them, the rest
    from the hourly roll-up."""
    parts = []
    for table, start, end in periods:
        if table is totals_table:
            parts += [(totals_table, start, min(end, totals_until)),
                      (hourly_table, max(start, totals_until), end)]
        else:
            parts.append((table, start, end))
    return [(table, start, end) for table, start, end in parts if start < end]


#: Each hourly roll-up's table of staged groups.
_STAGED_OF = {table: staged for table, _key, staged in STAGED}


def _with_staged(periods):
    """The periods of the hourly roll-ups read from their staged groups too."""
    return periods + [(_STAGED_OF[table], start, end)
                      for table, start, end in periods if table in _STAGED_OF]


def _raw_window(conn, start, end, marked, done=None):
    """Conditions for the raw rows up to ``marked`` that started in ``[start, end)``, by
    the ids their spans give, and (with ``done``, the mark as the query reads it) for
    those rolled up since ``marked`` was read, by their ids ("+ 0": there is no index on
    the time, and the planner should not guess at one)."""
    raw = requests_table.c
    ids = spans.ids_between(conn, start, end, marked)
    where = [] if ids is None else [(raw.id >= ids[0], raw.id <= ids[1],
                                     raw.started_at >= start, raw.started_at < end)]
    if done is not None:
        where.append((raw.id > marked, raw.id <= done, raw.started_at + 0 >= start,
                      raw.started_at + 0 < end))
    return where


# pylint: disable-next=too-many-arguments,too-many-positional-arguments,too-many-locals
def grouped_rows(conn, filters, group=(), time_index=None, use_rollup=True, errors=False):
    """Totals per ``group`` columns and latency bucket of the ``filters``' requests, summed
    by the database in one statement (so PostgreSQL answers from a single snapshot).

    Rows already folded into the rollups are read from the daily rollups for finished
    whole days, from an hourly rollup and its staged groups for the remaining whole hours
    (the per-bucket totals, for the hours they hold, when nothing narrows the read to
    endpoints or statuses) and from the raw table for the
    partial hours at either end (the last hour, too, when no row is stored after the
    range); rows not yet folded in are read raw.  ``time_index(column)``, if given, adds a
    leading time-bucket key (and then days are read hour by hour).  Returns ``([idx,]
    *group, bucket, count, sum_ms, max_ms, last_at, queries, queries_max, sql_ms,
    findings)``, one row per key, as a list (fetched at once, quicker than a row at a time).

    With ``errors`` (a summary), the buckets' rows carry their counts only, and a row in
    bucket ``EXACT`` per group carries the exact figures, read from the status rollups,
    with the 4xx and 5xx counts added at the end.
    """
    since, until = filters.window()
    raw = requests_table.c
    first_hour = math.ceil(since / HOUR) * HOUR
    last_hour = math.floor(until / HOUR) * HOUR
    detailed = bool(group or errors or filters.conditions(raw))
    # The mark as read before the spans: rows up to it are found through the spans.
    marked = meta_value(conn, ROLLED_UP_KEY)
    if last_hour < until:
        newest = spans.newest(conn, marked)
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
    done = rolled_up_id()
    # Whole: the partial hours at either end, the rows rolled up since the mark was read
    # included; else the whole window, the rows after the mark read below.
    raw_reads = [_raw_window(conn, start, end, marked, done)
                 for start, end in ((since, first_hour), (last_hour, until)) if start < end
                 ] if whole else [_raw_window(conn, since, until, marked)]
    totals_until = meta_value(conn, TOTALS_UNTIL_KEY) if whole and not detailed else None
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

        parts += [raw_part(*where) for window in raw_reads for where in window]
        if not whole:  # the raw rows of the window, rolled up or not
            parts.append(raw_part(raw.id > marked, raw.started_at + 0 >= since,
                                  raw.started_at + 0 < until))
            continue
        parts += [
            _part(table, keys(table, table.c.period_start),
                  (table.c.period_start >= start, table.c.period_start < end,
                   *filters.conditions(table.c)), counts_only)
            for table, start, end in _with_staged(_totals_spans(
                _rollup_spans(first_hour, last_hour, hours, days, daily_until), totals_until))
        ] + [
            raw_part(raw.id > marked, raw.id > done, raw.started_at + 0 >= since,
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
    return conn.execute(select(*outer, *totals).group_by(*outer)).all()
