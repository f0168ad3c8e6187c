"""The roll-ups: new raw rows folded into hourly groups by the database itself, finished
hours summed into the per-bucket totals once and finished days into the daily roll-up
once, and old periods removed as retention removes raw rows.

Every step is one ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`` or a delete by
key range, so no row or group passes through Python, and what a pass costs follows the rows
it adds or removes, not the size of the store.  The writer's own counted groups, merged
instead of rows read back, or staged for the next pass: :mod:`.counted`.
"""
import math

from sqlalchemy import BigInteger, Integer, case, cast, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import filters, spans
from .counted import merge_pending, merge_staged, stage
from .schema import (
    DAILY_UNTIL_KEY, ROLLED_UP_KEY, TOTALS_UNTIL_KEY, VALUE_AGGREGATES, meta_value,
    meta_values, set_meta,
)
from .statements import run
from .store import (
    DAY,
    HOUR,
    ROLLUP_KEY,
    ROLLUPS,
    STATUS_KEY,
    TOTALS_KEY,
    daily_table,
    endpoints_table,
    hourly_table,
    requests_table,
    status_daily_table,
    staged_hourly_table,
    staged_status_table,
    status_hourly_table,
    totals_table,
)

#: ``tracker_meta`` key: the last day boundary pruned.
DAILY_PRUNED_KEY = "daily_pruned"
#: A day is summed into the daily roll-up this long after it ended; rows that come later
#: for it are added to both roll-ups as they come.
DAY_GRACE = HOUR
#: An hour is summed into the per-bucket totals this long after it ended (until then the
#: dashboard reads it from the hourly roll-up); rows that come later for it are added to
#: both.  Merging every pass's groups into the totals cost as much as into the hourly
#: roll-up at low rates, where a pass's groups are nearly as many as its rows.
HOUR_GRACE = HOUR


def _period_of(conn, column, period):
    """SQL for the start of the hour or day holding ``column`` (epoch seconds, UTC)."""
    if conn.dialect.name == "sqlite":
        return cast(column / period, Integer) * period
    return cast(func.floor(column / period), BigInteger) * period


def _raw_values():
    """The value columns of a rollup group, aggregated over raw rows (in column order)."""
    raw = requests_table.c
    return (func.count(), func.sum(raw.duration_ms), func.max(raw.duration_ms),
            func.max(raw.started_at), func.sum(raw.queries), func.max(raw.queries),
            func.sum(raw.sql_ms), func.sum(raw.findings))


def _rollup_values(table):
    """The value columns of a rollup group, aggregated over groups of ``table``."""
    return tuple(getattr(func, how)(table.c[name]) for name, how in VALUE_AGGREGATES)


def _merge(conn, table, key, source):
    """Add the groups ``source`` selects (in the table's column order) to ``table``'s: sums
    add up, maxima stay maxima; one statement run by the database."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = insert(table).from_select([column.name for column in table.columns], source)
    new, old = statement.excluded, table.c
    conn.execute(statement.on_conflict_do_update(index_elements=list(key), set_={
        name: old[name] + new[name] if how == "sum"
        else case((new[name] > old[name], new[name]), else_=old[name])
        for name, how in VALUE_AGGREGATES
    }))

def roll_up(conn, now=None, pending=None, staged=False):
    """Fold raw rows written since the last call into the rollups; returns how many.

    Rows are taken by id, so each is counted exactly once however late it arrives: the
    writer's ``pending`` groups when they are exactly those rows, otherwise the rows read
    back and grouped by the database.  Run it inside a write transaction; on PostgreSQL it
    first waits for in-flight inserts so no smaller id can commit after the new
    high-water mark.  Then hours and days that ended more than ``HOUR_GRACE`` and
    ``DAY_GRACE`` before ``now`` (epoch seconds, default the clock) are summed from the
    hourly roll-up into the totals and the daily roll-up.

    With ``staged`` (a dashboard read is waiting), the writer's groups go to the staged
    tables as they are, unless some are of hours or days already summed; that roll-up
    sums nothing, and the next one without ``staged`` first merges them.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"LOCK TABLE {requests_table.name} IN SHARE ROW EXCLUSIVE MODE"
        )
    done, daily_until, totals_until = meta_values(
        conn, ROLLED_UP_KEY, DAILY_UNTIL_KEY, TOTALS_UNTIL_KEY)
    top = run(conn, f"SELECT max(id) FROM {requests_table.name}").scalar()
    new = top is not None and top > done
    counted = new and pending is not None and pending.covers(done, top)
    if staged and counted and pending.earliest >= max(totals_until, daily_until):
        stage(conn, pending)
        spans.add(conn, done, top, (pending.earliest, pending.latest))
        set_meta(conn, ROLLED_UP_KEY, top)
        return pending.count
    merge_staged(conn)
    rolled = 0
    if counted:
        rolled = pending.count
        merge_pending(conn, pending, daily_until, totals_until)
        spans.add(conn, done, top, (pending.earliest, pending.latest))
        set_meta(conn, ROLLED_UP_KEY, top)
    elif new:
        rolled = _roll_up_rows(conn, done, top, daily_until, totals_until)
        spans.add(conn, done, top)
        set_meta(conn, ROLLED_UP_KEY, top)
    now = filters.now() if now is None else now
    fold_hours(conn, now, totals_until)
    fold_days(conn, now, daily_until)
    return rolled


def _roll_up_rows(conn, done, top, daily_until, totals_until):
    """Group the raw rows ``done < id <= top`` in the database into every roll-up (the
    totals and daily ones: those of hours and days already summed)."""
    raw = requests_table.c
    new = (raw.id > done, raw.id <= top)
    rolled = conn.execute(select(func.count()).where(*new)).scalar()
    hour = _period_of(conn, raw.started_at, HOUR)
    detail = (raw.endpoint, raw.method, raw.status, raw.bucket)
    _merge(conn, hourly_table, ROLLUP_KEY,
           select(hour, *detail, *_raw_values()).where(*new).group_by(hour, *detail))
    # Rows of an hour or day already summed: added to it too ("+ 0" keeps the id range
    # the plan).
    _merge(conn, totals_table, TOTALS_KEY,
           select(hour, raw.bucket, *_raw_values())
           .where(*new, raw.started_at + 0 < totals_until).group_by(hour, raw.bucket))
    _merge(conn, status_hourly_table, STATUS_KEY,
           select(hour, *detail[:3], *_raw_values()).where(*new).group_by(hour, *detail[:3]))
    _add_endpoints(conn, select(raw.endpoint, raw.method, func.max(hour))
                   .where(*new).group_by(raw.endpoint, raw.method))
    day = _period_of(conn, raw.started_at, DAY)
    late = raw.started_at + 0 < daily_until
    for table, key, columns in ((daily_table, ROLLUP_KEY, detail),
                                (status_daily_table, STATUS_KEY, detail[:3])):
        _merge(conn, table, key, select(day, *columns, *_raw_values())
               .where(*new, late).group_by(day, *columns))
    return rolled


def _add_endpoints(conn, source):
    """Add (endpoint, method, latest hour) pairs to the endpoint list."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = insert(endpoints_table).from_select(["endpoint", "method", "last_hour"],
                                                    source)
    new, old = statement.excluded, endpoints_table.c
    conn.execute(statement.on_conflict_do_update(
        index_elements=["endpoint", "method"],
        set_={"last_hour": case((new.last_hour > old.last_hour, new.last_hour),
                                else_=old.last_hour)}))


def fold_hours(conn, now, start):
    """Sum the hourly roll-up's hours that ended ``HOUR_GRACE`` before ``now`` and are not
    yet in the per-bucket totals into them (one statement, about once an hour); ``start``:
    the first hour not yet summed."""
    target = math.floor((now - HOUR_GRACE) / HOUR) * HOUR
    if start >= target:
        return
    hours = hourly_table.c
    _merge(conn, totals_table, TOTALS_KEY,
           select(hours.period_start, hours.bucket, *_rollup_values(hourly_table))
           .where(hours.period_start >= start, hours.period_start < target)
           .group_by(hours.period_start, hours.bucket))
    set_meta(conn, TOTALS_UNTIL_KEY, target)


def fold_days(conn, now=None, start=None):
    """Sum the hours of every finished day not yet in the daily roll-up into it (one
    statement, about once a day); returns the new ``daily_until``.  ``start``: its value,
    if the caller has read it already."""
    now = filters.now() if now is None else now
    target = math.floor((now - DAY_GRACE) / DAY) * DAY
    if start is None:
        start = meta_value(conn, DAILY_UNTIL_KEY)
    if start >= target:
        return start
    for hourly, daily, key in ((hourly_table, daily_table, ROLLUP_KEY),
                               (status_hourly_table, status_daily_table, STATUS_KEY)):
        hours = hourly.c
        day = hours.period_start - hours.period_start % literal(DAY)
        detail = [hours[name] for name in key[1:]]
        _merge(conn, daily, key, select(day, *detail, *_rollup_values(hourly))
               .where(hours.period_start >= start, hours.period_start < target)
               .group_by(day, *detail))
    set_meta(conn, DAILY_UNTIL_KEY, target)
    return target


def prune_periods(conn, cutoff):
    """Delete rollup periods that end at or before ``cutoff`` (all of them for infinity).

    Hours go by a key range every time; days only when ``cutoff`` passes a day boundary
    (the daily roll-up is keyed by endpoint first, so its delete reads the whole table).
    """
    if math.isinf(cutoff):
        for table in (*(table for table, _period in ROLLUPS), staged_hourly_table,
                      staged_status_table, endpoints_table):
            conn.execute(delete(table))
        return
    for table in (hourly_table, totals_table, status_hourly_table, staged_hourly_table,
                  staged_status_table):
        # Compared as stored: the primary key serves it (the staged tables are small).
        run(conn, f"DELETE FROM {table.name} WHERE period_start <= ?", cutoff - HOUR)
    run(conn, f"DELETE FROM {endpoints_table.name} WHERE last_hour <= ?", cutoff - HOUR)
    day_mark = math.floor((cutoff - DAY) / DAY) * DAY
    if day_mark > meta_value(conn, DAILY_PRUNED_KEY):
        for table in (daily_table, status_daily_table):
            run(conn, f"DELETE FROM {table.name} WHERE period_start <= ?", cutoff - DAY)
        set_meta(conn, DAILY_PRUNED_KEY, day_mark)
