"""Creating the tracking tables, upgrading a store made by an older Tracker, and the
counters in ``tracker_meta`` that the roll-ups, the writer and the readers share."""
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError

from . import spans
from .statements import run
from .store import (
    IMMEDIATE,
    OLD_TIME_INDEX,
    daily_table,
    endpoints_table,
    hourly_table,
    meta_table,
    metadata,
    status_daily_table,
    status_hourly_table,
    totals_table,
)

#: ``tracker_meta`` keys: the store's layout; the first day not yet in the daily roll-up;
#: the first hour not yet in the per-bucket totals.
SCHEMA_KEY = "schema_version"
#: ``tracker_meta`` key: the highest raw id folded into the roll-ups.
ROLLED_UP_KEY = "rolled_up_id"
DAILY_UNTIL_KEY = "daily_until"
TOTALS_UNTIL_KEY = "totals_until"
#: 2: the daily roll-up holds finished days only; totals, status and endpoint tables.
#: 3: the totals hold finished hours only (before ``totals_until``); spans of ids instead
#: of an index on the raw rows' start time.
SCHEMA_VERSION = 3
#: A rollup's value columns and how two groups' values combine.
VALUE_AGGREGATES = (("count", "sum"), ("sum_ms", "sum"), ("max_ms", "max"),
                    ("last_at", "max"), ("queries_sum", "sum"), ("queries_max", "max"),
                    ("sql_ms_sum", "sum"), ("findings_sum", "sum"))


def create_schema(engine, attempts=3):
    """Create the tracking tables and indexes if they are missing, and add the columns a
    store made by an older Tracker lacks (safe to repeat)."""
    for attempt in range(attempts):
        try:
            with engine.connect() as connection:
                connection.execution_options(**{IMMEDIATE: True})
                with connection.begin():
                    metadata.create_all(connection, checkfirst=True)
                    add_missing_columns(connection)
                    upgrade(connection)
            return
        except DBAPIError:
            # Another process may have created the same tables between our check and CREATE.
            if attempt == attempts - 1:
                raise


def add_missing_columns(connection):
    """``ALTER TABLE ... ADD COLUMN`` for every column of ours a table lacks (each such
    column has a server default, so the rows already there get 0)."""
    inspector = inspect(connection)
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind} NOT NULL "
                    f"DEFAULT {column.server_default.arg}")
                added.append(f"{table.name}.{column.name}")
    return added


def meta_value(conn, key):
    """Read one shared counter (0 when unset)."""
    return meta_values(conn, key)[0]


def meta_values(conn, *keys):
    """Read shared counters in one statement (0 for each unset)."""
    found = dict(run(conn, f'SELECT "key", value FROM {meta_table.name} WHERE "key" IN '
                           f'({", ".join("?" * len(keys))})', *keys).all())
    return [int(found.get(key) or 0) for key in keys]


def set_meta(conn, key, value):
    """Insert or overwrite one shared counter."""
    run(conn, f'INSERT INTO {meta_table.name} ("key", value) VALUES (?, ?) '
              f'ON CONFLICT ("key") DO UPDATE SET value = excluded.value', key, value)


def summed_values():
    """SQL for a rollup's value columns summed over a GROUP BY (in column order)."""
    return ", ".join(f'{how}("{column}")' for column, how in VALUE_AGGREGATES)


def upgrade(conn):
    """Bring a store made by an older Tracker to ``SCHEMA_VERSION`` (once; True if it did).
    From 1: the daily roll-ups are emptied (the next roll-up sums finished days from the
    hourly ones), the hourly status groups and endpoint list are summed from the hourly
    roll-up.  From 1 or 2: the totals are emptied (the next roll-up sums finished hours
    from the hourly roll-up; until then the dashboard reads every hour from it), the
    rolled-up rows get their spans and the index on the start time goes."""
    version = meta_value(conn, SCHEMA_KEY)
    if version >= SCHEMA_VERSION:
        return False
    hourly = hourly_table.name
    if version < 2:
        for table in (daily_table, endpoints_table, status_hourly_table, status_daily_table):
            conn.exec_driver_sql(f"DELETE FROM {table.name}")
        conn.exec_driver_sql(
            f"INSERT INTO {status_hourly_table.name} SELECT period_start, endpoint, method, "
            f"status, {summed_values()} FROM {hourly} "
            f"GROUP BY period_start, endpoint, method, status")
        conn.exec_driver_sql(
            f"INSERT INTO {endpoints_table.name} SELECT endpoint, method, max(period_start) "
            f"FROM {hourly} GROUP BY endpoint, method")
        set_meta(conn, DAILY_UNTIL_KEY, 0)
    conn.exec_driver_sql(f"DELETE FROM {totals_table.name}")
    set_meta(conn, TOTALS_UNTIL_KEY, 0)
    spans.add_existing(conn, meta_value(conn, ROLLED_UP_KEY))
    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {OLD_TIME_INDEX}")
    set_meta(conn, SCHEMA_KEY, SCHEMA_VERSION)
    return True
