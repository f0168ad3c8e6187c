"""Writes on the tracking store, as the writer thread runs them: batches of rows, retention
and the dropped-records counter (the roll-ups are in :mod:`.rollups`).

Every function takes a SQLAlchemy connection first.  The batch inserts are the writer's
hot path: they pay per batch (one statement or one COPY), never per row, beyond the
driver's own work.
"""
import math
import sqlite3
from itertools import chain

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import spans
from .filters import to_epoch
from .rollups import prune_periods
from .schema import ROLLED_UP_KEY, meta_value, set_meta
from .statements import copy_in, run
from .store import bucket_of, meta_table, requests_table, spans_table

#: ``tracker_meta`` key: records dropped.
DROPPED_KEY = "dropped"
ROW_FIELDS = ("started_at", "endpoint", "method", "status", "duration_ms")
#: What a request's database queries add to its row: how many, their ms, their findings.
SQL_FIELDS = ("queries", "sql_ms", "findings")
INSERT_COLUMNS = (*ROW_FIELDS, *SQL_FIELDS, "bucket")
NO_SQL = (0, 0.0, 0)
#: Rows per INSERT statement: few statements mean few GIL hand-overs for the writer.
#: 6 parameters a row stay under SQLite's limit (999 before 3.32, 32766 since).
ROWS_PER_INSERT = 1000 if sqlite3.sqlite_version_info >= (3, 32) else 166
#: Rows per statement of a write that is not a full batch (:func:`append_rows_in_steps`).
ROWS_PER_STEP = 100
_INSERT_SQL = {}


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
        copy_rows(conn, rows)
        return len(rows)
    # Multi-row VALUES straight to the driver: an executemany would release and retake
    # the GIL for every row (starving this thread while requests run) and SQLAlchemy's
    # per-row parameter processing costs more than SQLite's insert itself.
    for first in range(0, len(rows), ROWS_PER_INSERT):
        conn.exec_driver_sql(*_multi_row_insert(rows[first:first + ROWS_PER_INSERT]))
    return len(rows)


def copy_rows(conn, rows):
    """Store complete rows on PostgreSQL with COPY (its fastest way in), inside the caller's
    transaction.

    Returns the id the first row would have if the rows got consecutive ids: this session's
    last id from the sequence, less the rows.  As on SQLite (:func:`append_rows`), the
    roll-up merges the writer's counted groups only when they are as many as the ids after
    its mark, which another session's ids among them would break."""
    table = requests_table.name
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        copy_in(cursor, table, [requests_table.c[name] for name in INSERT_COLUMNS], rows)
        cursor.execute(f"SELECT currval(pg_get_serial_sequence('{table}', 'id'))")
        last_id = cursor.fetchone()[0]
    finally:
        cursor.close()
    return last_id - len(rows) + 1


def append_rows(conn, rows):
    """Store up to ``ROWS_PER_INSERT`` complete rows on SQLite with one statement in
    autocommit mode: taking the write lock (waiting up to the busy timeout), inserting
    and committing all happen inside a single driver call.  The writer thread then gives
    up the GIL once per batch instead of at BEGIN, INSERT and COMMIT, and every time it
    takes the GIL back it costs the request threads a switch.

    Returns the id of the first row: one statement holding the write lock gives its rows
    consecutive ids, the last one being the cursor's ``lastrowid``."""
    cursor = conn.connection.dbapi_connection.execute(*_multi_row_insert(rows))
    return cursor.lastrowid - len(rows) + 1


def append_rows_in_steps(conn, rows, step=None):
    """Store complete rows on SQLite in one transaction of statements of ``step`` rows
    (``ROWS_PER_STEP``; the last one fewer).  SQLite prepares a statement for each number
    of rows (about 1.5 µs a row, more than the insert), so a batch that is not a full one
    reuses one prepared statement instead of preparing one for its size; a full batch
    stays one autocommit statement (:func:`append_rows`), as the GIL hand-overs of more
    calls would cost more under load than the prepare, which is done once.

    Returns the id of the first row, or None if the ids are not consecutive: holding the
    write lock from ``BEGIN IMMEDIATE``, the statements number their rows one after the
    other."""
    step = step or ROWS_PER_STEP
    dbapi_connection = conn.connection.dbapi_connection
    dbapi_connection.execute("BEGIN IMMEDIATE")
    try:
        first_id = last_id = None
        for first in range(0, len(rows), step):
            chunk = rows[first:first + step]
            last_id = dbapi_connection.execute(*_multi_row_insert(chunk)).lastrowid
            if first_id is None:
                first_id = last_id - len(chunk) + 1
        dbapi_connection.execute("COMMIT")
    except BaseException:
        if dbapi_connection.in_transaction:
            dbapi_connection.execute("ROLLBACK")
        raise
    return first_id if last_id == first_id + len(rows) - 1 else None


def _multi_row_insert(rows):
    """The SQLite statement and flat parameters that insert ``rows`` in one go."""
    return _insert_sql(len(rows)), tuple(chain.from_iterable(rows))


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
    oldest raw row that is left (in one go for both).
    """
    if keep_rows is not None and (
            isinstance(keep_rows, bool) or not isinstance(keep_rows, int) or keep_rows < 0):
        raise ValueError(f"keep_rows must be an integer >= 0, got {keep_rows!r}")
    deleted = 0
    done = meta_value(conn, ROLLED_UP_KEY)
    periods_before = -math.inf
    if older_than is not None:
        periods_before = to_epoch(older_than)
        deleted += spans.delete_older(conn, periods_before, done)
    if keep_rows is not None:
        # Two primary-key lookups and a range delete: the cost follows the rows deleted, not
        # the size of the store (counting back keep_rows rows with OFFSET read them all).
        # (Two subqueries: SQLite answers min() or max() alone from the key, both together
        # by reading every row.)
        highest, lowest = run(conn, f"SELECT (SELECT max(id) FROM {requests_table.name}), "
                                    f"(SELECT min(id) FROM {requests_table.name})").one()
        if highest is not None and lowest <= highest - keep_rows:
            deleted += spans.delete_through(conn, highest - keep_rows)
            oldest = spans.oldest(conn, done)
            periods_before = max(periods_before, math.inf if oldest is None else oldest)
    if periods_before > -math.inf:
        prune_periods(conn, periods_before)
    if deleted and conn.dialect.name == "sqlite" and run(
            conn, f"SELECT max(id) FROM {requests_table.name}").scalar() is None:
        # SQLite numbers a new row after the largest id left: with none left (an app idle
        # longer than its retention), from 1 again, below the mark, where no read and no
        # roll-up would see it.  So the mark starts again too.
        conn.execute(delete(spans_table))
        set_meta(conn, ROLLED_UP_KEY, 0)
    return deleted
