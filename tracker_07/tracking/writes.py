"""Writes on the tracking store, as the writer thread runs them: batches of rows, the
roll-up into hourly and daily totals, retention, and the counters in ``tracker_meta``.

Every function takes a SQLAlchemy connection first.  The batch inserts are the writer's
hot path: they pay per batch (one statement or one COPY), never per row, beyond the
driver's own work.
"""
import math
import sqlite3
from itertools import chain

from sqlalchemy import BigInteger, Integer, case, cast, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .filters import to_epoch
from .store import (
    DAY,
    HOUR,
    ROLLUP_KEY,
    ROLLUPS,
    bucket_of,
    daily_table,
    hourly_table,
    meta_table,
    requests_table,
)

#: ``tracker_meta`` keys: the highest raw id folded into the rollups; records dropped.
ROLLED_UP_KEY = "rolled_up_id"
DROPPED_KEY = "dropped"
ROW_FIELDS = ("started_at", "endpoint", "method", "status", "duration_ms")
#: What a request's database queries add to its row: how many, their ms, their findings.
SQL_FIELDS = ("queries", "sql_ms", "findings")
INSERT_COLUMNS = (*ROW_FIELDS, *SQL_FIELDS, "bucket")
NO_SQL = (0, 0.0, 0)
#: Rows per INSERT statement: few statements mean few GIL hand-overs for the writer.
#: 6 parameters a row stay under SQLite's limit (999 before 3.32, 32766 since).
ROWS_PER_INSERT = 1000 if sqlite3.sqlite_version_info >= (3, 32) else 166
_INSERT_SQL = {}
ROLLUP_COLUMNS = (*ROLLUP_KEY, "count", "sum_ms", "max_ms", "last_at",
                  "queries_sum", "queries_max", "sql_ms_sum", "findings_sum")


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
    (see ``ROW_FIELDS``), optionally followed by ``(queries, sql_ms, findings)``, adding
    each one's latency bucket.  Returns the number stored."""
    return insert_rows(conn, [(*row, *(() if len(row) > len(ROW_FIELDS) else NO_SQL),
                               bucket_of(row[4])) for row in rows])


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


def meta_value(conn, key):
    """Read one shared counter (0 when unset); the readers use it too."""
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
    done = meta_value(conn, ROLLED_UP_KEY)
    top = conn.execute(select(func.max(raw.id))).scalar()
    if top is None or top <= done:
        return 0
    keys = (_period_of(conn, raw.started_at, HOUR), raw.endpoint, raw.method, raw.status,
            raw.bucket)
    hours = conn.execute(
        select(*keys, func.count(), func.sum(raw.duration_ms), func.max(raw.duration_ms),
               func.max(raw.started_at), func.sum(raw.queries), func.max(raw.queries),
               func.sum(raw.sql_ms), func.sum(raw.findings))
        .where(raw.id > done, raw.id <= top).group_by(*keys)
    ).all()
    days = {}
    for group in hours:  # (hour, *key, count, sum, max, last, queries, max, SQL ms, findings)
        hour = group[0]
        _fold_day(days, (hour - hour % DAY, *group[1:5]), group[5:])
    _merge_groups(conn, hourly_table, [tuple(group) for group in hours])
    _merge_groups(conn, daily_table, [(*key, *totals) for key, totals in days.items()])
    _set_meta(conn, ROLLED_UP_KEY, top)
    return sum(group[5] for group in hours)


#: Which of a group's totals are maxima (max ms, last start, most queries); the rest add up.
_MAXIMA = (2, 3, 5)


def _fold_day(days, day_key, totals):
    """Add one hour's totals (count, sum, max, last, queries sum and max, SQL ms, findings)
    to its day's."""
    known = days.get(day_key)
    if known is None:
        days[day_key] = list(totals)
        return
    for index, value in enumerate(totals):
        known[index] = max(known[index], value) if index in _MAXIMA else known[index] + value


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
                "queries_sum": old.queries_sum + new.queries_sum,
                "queries_max": case((new.queries_max > old.queries_max, new.queries_max),
                                    else_=old.queries_max),
                "sql_ms_sum": old.sql_ms_sum + new.sql_ms_sum,
                "findings_sum": old.findings_sum + new.findings_sum,
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


def prune(conn, older_than=None, keep_rows=None):
    """Apply retention: delete rows started before ``older_than`` and all but the newest
    ``keep_rows`` ids (fewer rows are kept where ids have gaps, e.g. from a batch that was
    rolled back); returns the number of raw rows deleted.

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
        # Two primary-key lookups and a range delete: the cost follows the rows deleted, not
        # the size of the store (counting back keep_rows rows with OFFSET read them all).
        lowest, highest = conn.execute(select(func.min(raw.id), func.max(raw.id))).one()
        if highest is not None and lowest <= highest - keep_rows:
            deleted += conn.execute(
                delete(requests_table).where(raw.id <= highest - keep_rows)
            ).rowcount
            oldest = conn.execute(select(func.min(raw.started_at))).scalar()
            _prune_rollups(conn, math.inf if oldest is None else oldest)
    return deleted


def _prune_rollups(conn, cutoff):
    """Delete rollup periods that end at or before ``cutoff`` (all of them for infinity)."""
    for table, period in ROLLUPS:
        stale = table.c.period_start.isnot(None) if math.isinf(cutoff) else (
            table.c.period_start <= cutoff - period  # compared as stored: the index serves it
        )
        conn.execute(delete(table).where(stale))
