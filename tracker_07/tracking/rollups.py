"""The roll-ups: new raw rows folded into hourly groups by the database itself, finished
hours summed into the per-bucket totals once and finished days into the daily roll-up
once, and old periods removed as retention removes raw rows.

Every step is one ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`` or a delete by
key range, so no row or group passes through Python, and what a pass costs follows the rows
it adds or removes, not the size of the store.
"""
import math

from sqlalchemy import BigInteger, Integer, case, cast, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import filters, spans
from .schema import (
    DAILY_UNTIL_KEY, ROLLED_UP_KEY, TOTALS_UNTIL_KEY, VALUE_AGGREGATES, meta_value,
    meta_values, set_meta, summed_values,
)
from .statements import copy_in, run
from .store import (
    DAY,
    HOUR,
    ROLLUP_KEY,
    ROLLUPS,
    STAGED,
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
#: Beyond this many groups a writer stops counting (and its memory is given back) until
#: the next roll-up, which then reads the rows back.
MAX_PENDING_GROUPS = 200_000


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


class Pending:
    """The hourly groups of the rows one writer stored since its last roll-up, counted as it
    stored them, and which ids those rows got: when they are exactly the rows the roll-up
    is about to fold in (one writer on SQLite), it merges these groups instead of reading
    the rows back.  Also their earliest and latest start: the span the roll-up notes."""

    __slots__ = ("groups", "statuses", "count", "low", "usable", "earliest", "latest")

    def __init__(self):
        self.groups = {}
        self.statuses = {}
        self.count = 0
        self.low = None
        self.usable = True
        self.earliest = math.inf
        self.latest = -math.inf

    def clear(self):
        """Start again after a roll-up (or a failed one, which reads the rows back)."""
        self.__init__()  # pylint: disable=unnecessary-dunder-call  # the same fresh state

    def add(self, rows, first_id):  # pylint: disable=too-many-locals,too-many-branches  # one pass, written out
        # (Per row and not folded from the groups at the roll-up: cheaper at low rates,
        # where the groups are almost as many as the rows.)
        """Count stored rows (``writes.INSERT_COLUMNS`` order) whose ids start at
        ``first_id`` (``None`` when unknown: then the roll-up reads them back)."""
        if first_id is None or not self.usable or len(self.groups) > MAX_PENDING_GROUPS:
            # Unknown ids, or maintenance has not run for long: read the rows back instead.
            self.usable = False
            self.groups, self.statuses = {}, {}
            return
        self.low = first_id if self.low is None else min(self.low, first_id)
        self.count += len(rows)
        # Rows compare by their start first: two passes in C, cheaper than two tests a row.
        self.earliest = min(self.earliest, min(rows)[0])
        self.latest = max(self.latest, max(rows)[0])
        buckets, statuses = self.groups, self.statuses
        # The two groups' updates written out, not looped over: a quarter less CPU a row.
        # A group is its table's row (key, then values), so the roll-up binds it as it is.
        for started, endpoint, method, status, duration, queries, sql_ms, findings, bucket \
                in rows:
            # The hour as the SQL roll-up computes it: a truncating cast of the division.
            hour = int(started / 3600.0) * HOUR
            group = statuses.get((hour, endpoint, method, status))
            if group is None:
                statuses[hour, endpoint, method, status] = [
                    hour, endpoint, method, status, 1, duration, duration, started, queries,
                    queries, sql_ms, findings]
            else:
                group[4] += 1
                group[5] += duration
                if duration > group[6]:
                    group[6] = duration
                if started > group[7]:
                    group[7] = started
                if queries:
                    group[8] += queries
                    if queries > group[9]:
                        group[9] = queries
                    group[10] += sql_ms
                    group[11] += findings
            key = (hour, endpoint, method, status, bucket)
            group = buckets.get(key)
            if group is None:
                buckets[key] = [hour, endpoint, method, status, bucket, 1, duration, duration,
                                started, queries, queries, sql_ms, findings]
                continue
            group[5] += 1
            group[6] += duration
            if duration > group[7]:
                group[7] = duration
            if started > group[8]:
                group[8] = started
            if queries:
                group[9] += queries
                if queries > group[10]:
                    group[10] = queries
                group[11] += sql_ms
                group[12] += findings

    def covers(self, done, top):
        """Whether the counted rows are exactly the ids after ``done`` up to ``top``: as
        many rows as ids, none of them at or below ``done``."""
        return self.usable and self.low is not None and self.low > done and (
            self.count == top - done)


def _merge_rows(conn, table, key, rows):
    """Add ``rows`` (sequences in the table's column order; several may share a key) to a
    rollup table's groups: one executemany by the driver itself on SQLite, and on
    PostgreSQL a COPY and one statement (:func:`_copy_and_merge`).  No per-row work in
    SQLAlchemy, and the writer's groups go as they are (its errors are the driver's,
    which the writer counts as the store's)."""
    if conn.dialect.name == "postgresql":
        _copy_and_merge(conn, table, key, rows)
        return
    name = table.name
    columns = ", ".join(f'"{column.name}"' for column in table.columns)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO {name} ({columns}) VALUES ({', '.join('?' * len(table.columns))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {_combined(name)}", rows)
    finally:
        cursor.close()


def _combined(name):
    """SQL for an upsert's SET: each value of ``name``'s group combined with the new one's."""
    return ", ".join(
        f'"{column}" = {name}."{column}" + excluded."{column}"' if how == "sum" else
        f'"{column}" = CASE WHEN excluded."{column}" > {name}."{column}" '
        f'THEN excluded."{column}" ELSE {name}."{column}" END'
        for column, how in VALUE_AGGREGATES)


def _copy_and_merge(conn, table, key, rows):
    """PostgreSQL: COPY ``rows`` into a temporary table of the transaction, then merge them
    (:func:`_merge_from`): half the time of an executemany, whose every row is a statement
    of its own (8,000 groups: ~50 ms, not ~95; ``benchmarks/bench_rollup_merge.py``)."""
    incoming = f"tracker_incoming_{table.name}"
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {incoming} (LIKE {table.name})")
    _copy(conn, incoming, table, rows)
    _merge_from(conn, table, key, incoming)
    conn.exec_driver_sql(f"DROP TABLE {incoming}")


def _copy(conn, name, table, rows):
    """PostgreSQL: COPY ``rows`` (in ``table``'s column order) into table ``name``."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        copy_in(cursor, name, table.columns, rows)
    finally:
        cursor.close()


def _merge_from(conn, table, key, source):
    """Merge the rows of table ``source`` (``table``'s columns), summed per key, into
    ``table``'s groups with one ``INSERT ... SELECT ... ON CONFLICT`` (summing first lets
    rows share a key, which one upsert may not touch twice)."""
    keys = ", ".join(f'"{column}"' for column in key)
    values = ", ".join(f'"{column}"' for column, _how in VALUE_AGGREGATES)
    # (WHERE true: SQLite would read ON CONFLICT as a join's ON without it.)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({keys}, {values}) SELECT {keys}, {summed_values()} "
        f"FROM {source} WHERE true GROUP BY {keys} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {_combined(table.name)}")


def _stage_pending(conn, pending):
    """Store a writer's counted groups in the staged tables as they are, for the next
    roll-up to merge (:data:`.store.STAGED`), and their endpoints in the endpoint list."""
    statuses = list(pending.statuses.values())
    for table, rows in ((staged_hourly_table, list(pending.groups.values())),
                        (staged_status_table, statuses)):
        if conn.dialect.name == "postgresql":
            _copy(conn, table.name, table, rows)
        else:
            conn.connection.dbapi_connection.executemany(
                f"INSERT INTO {table.name} VALUES ({', '.join('?' * len(table.columns))})",
                rows)
    _add_endpoint_hours(conn, statuses)


def merge_staged(conn):
    """Merge the groups staged by reads' roll-ups into the hourly roll-ups, and empty the
    staged tables (two statements each, next to nothing when they are empty)."""
    for table, key, staged in STAGED:
        _merge_from(conn, table, key, staged.name)
        conn.exec_driver_sql(f"DELETE FROM {staged.name}")


def _merge_pending(conn, pending, daily_until, totals_until):
    """Merge a writer's counted groups into the hourly, status, endpoint and (for hours
    before ``totals_until`` and days before ``daily_until``, already summed) totals and
    daily tables."""
    rows = list(pending.groups.values())
    statuses = list(pending.statuses.values())
    _merge_rows(conn, hourly_table, ROLLUP_KEY, rows)
    _merge_rows(conn, status_hourly_table, STATUS_KEY, statuses)
    # Late rows are rare: only when the earliest row is, are the groups looked through.
    # Groups of the same hour and bucket merge into one totals row as the upserts run
    # (adding them up in Python first, or counting totals per row, measured no cheaper).
    if pending.earliest < totals_until:
        _merge_rows(conn, totals_table, TOTALS_KEY,
                    [(row[0], *row[4:]) for row in rows if row[0] < totals_until])
    _add_endpoint_hours(conn, statuses)
    if pending.earliest < daily_until:
        for table, key, groups in ((daily_table, ROLLUP_KEY, rows),
                                   (status_daily_table, STATUS_KEY, statuses)):
            _merge_rows(conn, table, key, [(group[0] - group[0] % DAY, *group[1:])
                                           for group in groups if group[0] < daily_until])


def _add_endpoint_hours(conn, statuses):
    """Note each endpoint's latest hour among a writer's status groups in the list."""
    latest = {}
    for group in statuses:
        pair = group[1], group[2]
        if group[0] > latest.get(pair, -1):
            latest[pair] = group[0]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    name = endpoints_table.name
    conn.exec_driver_sql(
        f"INSERT INTO {name} (endpoint, method, last_hour) VALUES ({mark}, {mark}, {mark}) "
        f"ON CONFLICT (endpoint, method) DO UPDATE SET last_hour = CASE WHEN "
        f"excluded.last_hour > {name}.last_hour THEN excluded.last_hour "
        f"ELSE {name}.last_hour END", [(*pair, hour) for pair, hour in latest.items()])


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
    if top is None or top <= done:
        rolled, counted = 0, False
    else:
        counted = pending is not None and pending.covers(done, top)
        rolled = pending.count if counted else None
    if staged and counted and pending.earliest >= max(totals_until, daily_until):
        _stage_pending(conn, pending)
        spans.add(conn, done, top, (pending.earliest, pending.latest))
        set_meta(conn, ROLLED_UP_KEY, top)
        return rolled
    merge_staged(conn)
    if counted:
        _merge_pending(conn, pending, daily_until, totals_until)
        spans.add(conn, done, top, (pending.earliest, pending.latest))
        set_meta(conn, ROLLED_UP_KEY, top)
    elif rolled is None:
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
