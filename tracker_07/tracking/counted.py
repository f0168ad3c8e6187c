"""The writer's counted groups: the hourly groups of the rows it stores, counted as it
stores them (:class:`Pending`), and how a roll-up merges them into the roll-ups, or stages
them for the next pass when a dashboard read is waiting (:data:`.store.STAGED`).

The groups are the tables' rows (key, then values), so they go to the database as they
are: an ``executemany`` on SQLite, a binary ``COPY`` on PostgreSQL.
"""
import math

from .schema import VALUE_AGGREGATES, summed_values
from .statements import copy_in, mark
from .store import (
    DAY,
    HOUR,
    ROLLUP_KEY,
    STAGED,
    STATUS_KEY,
    TOTALS_KEY,
    daily_table,
    endpoints_table,
    hourly_table,
    staged_hourly_table,
    staged_status_table,
    status_daily_table,
    status_hourly_table,
    totals_table,
)

try:
    from . import _rows
except ImportError:  # built without a C compiler
    _rows = None

#: Beyond this many groups a writer stops counting (and its memory is given back) until
#: the next roll-up, which then reads the rows back.
MAX_PENDING_GROUPS = 200_000


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

    def add(self, rows, first_id):
        """Count stored rows (``writes.INSERT_COLUMNS`` order) whose ids start at
        ``first_id`` (``None`` when unknown: then the roll-up reads them back)."""
        if first_id is None or not self.usable or len(self.groups) > MAX_PENDING_GROUPS:
            # Unknown ids, or maintenance has not run for long: read the rows back instead.
            self.usable = False
            self.groups, self.statuses = {}, {}
            return
        self.low = first_id if self.low is None else min(self.low, first_id)
        self.count += len(rows)
        # (Per row and not folded from the groups at the roll-up: cheaper at low rates,
        # where the groups are almost as many as the rows.)
        spanned = None if _rows is None else _rows.count_groups(
            rows, self.groups, self.statuses, HOUR)
        earliest, latest = spanned or count_in_python(rows, self.groups, self.statuses)
        self.earliest = min(self.earliest, earliest)
        self.latest = max(self.latest, latest)

    def covers(self, done, top):
        """Whether the counted rows are exactly the ids after ``done`` up to ``top``: as
        many rows as ids, none of them at or below ``done``."""
        return self.usable and self.low is not None and self.low > done and (
            self.count == top - done)


def count_in_python(rows, buckets, statuses):  # pylint: disable=too-many-branches  # written out
    """``_rows.count_groups`` in Python: count ``rows`` into their status and bucket groups;
    returns the earliest and latest start among them."""
    # The two groups' updates written out, not looped over: a quarter less CPU a row.
    # A group is its table's row (key, then values), so the roll-up binds it as it is.
    for started, endpoint, method, status, duration, queries, sql_ms, findings, bucket in rows:
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
    # Rows compare by their start first: two passes in C, cheaper than two tests a row.
    return min(rows)[0], max(rows)[0]


def merge_rows(conn, table, key, rows):
    """Add ``rows`` (sequences in the table's column order; several may share a key) to a
    rollup table's groups: one executemany by the driver itself on SQLite, and on
    PostgreSQL a COPY and one statement (:func:`_copy_and_merge`).  No per-row work in
    SQLAlchemy, and the writer's groups go as they are (its errors are the driver's,
    which the writer counts as the store's)."""
    if conn.dialect.name == "postgresql":
        _copy_and_merge(conn, table, key, rows)
    else:
        upsert_rows(conn, table, key, rows)


def upsert_rows(conn, table, key, rows):
    """Add ``rows`` (no two with one key) to ``table``'s groups with one upsert per row,
    sent by the driver's executemany (PostgreSQL's merge before the COPY, too)."""
    name = table.name
    columns = ", ".join(f'"{column.name}"' for column in table.columns)
    marks = ", ".join([mark(conn)] * len(table.columns))
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO {name} ({columns}) VALUES ({marks}) "
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


def stage(conn, pending):
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


def merge_pending(conn, pending, daily_until, totals_until):
    """Merge a writer's counted groups into the hourly, status, endpoint and (for hours
    before ``totals_until`` and days before ``daily_until``, already summed) totals and
    daily tables."""
    rows = list(pending.groups.values())
    statuses = list(pending.statuses.values())
    merge_rows(conn, hourly_table, ROLLUP_KEY, rows)
    merge_rows(conn, status_hourly_table, STATUS_KEY, statuses)
    # Late rows are rare: only when the earliest row is, are the groups looked through.
    # Groups of the same hour and bucket merge into one totals row as the upserts run
    # (adding them up in Python first, or counting totals per row, measured no cheaper).
    if pending.earliest < totals_until:
        merge_rows(conn, totals_table, TOTALS_KEY,
                    [(row[0], *row[4:]) for row in rows if row[0] < totals_until])
    _add_endpoint_hours(conn, statuses)
    if pending.earliest < daily_until:
        for table, key, groups in ((daily_table, ROLLUP_KEY, rows),
                                   (status_daily_table, STATUS_KEY, statuses)):
            merge_rows(conn, table, key, [(group[0] - group[0] % DAY, *group[1:])
                                           for group in groups if group[0] < daily_until])


def _add_endpoint_hours(conn, statuses):
    """Note each endpoint's latest hour among a writer's status groups in the list."""
    latest = {}
    for group in statuses:
        pair = group[1], group[2]
        if group[0] > latest.get(pair, -1):
            latest[pair] = group[0]
    name = endpoints_table.name
    marks = ", ".join([mark(conn)] * 3)
    conn.exec_driver_sql(
        f"INSERT INTO {name} (endpoint, method, last_hour) VALUES ({marks}) "
        f"ON CONFLICT (endpoint, method) DO UPDATE SET last_hour = CASE WHEN "
        f"excluded.last_hour > {name}.last_hour THEN excluded.last_hour "
        f"ELSE {name}.last_hour END", [(*pair, hour) for pair, hour in latest.items()])
