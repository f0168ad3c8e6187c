"""Where tracked requests live: engine creation, SQLite pragmas and the table definitions.

The tables, created (and upgraded from an older Tracker's store) by
:func:`~.schema.create_schema`, never at import time:

``tracker_requests``
    One row per tracked request (kept for export and exact per-request data), with the
    number of database queries it ran, their time and the number of findings (N+1,
    duplicate, slow) they gave.
``tracker_rollup_hourly``
    Per hour x endpoint x method x status x latency bucket: count, sum, max and the last
    start time.  The writer folds new raw rows into it every minute or few, so dashboard
    summaries read hours from here instead of sorting millions of raw rows.
``tracker_rollup_daily``
    The same per day, for the days before ``daily_until`` in ``tracker_meta``: each day
    is summed from the hourly roll-up once, when it is over (rows that arrive later for
    such a day are added to both).
``tracker_rollup_totals``
    Per hour x latency bucket over every endpoint, for the hours before ``totals_until``
    in ``tracker_meta`` (each summed from the hourly roll-up once, an hour after it
    ended): what the unfiltered charts read (later hours from the hourly roll-up).
``tracker_status_hourly`` and ``tracker_status_daily``
    Per hour (finished day) x endpoint x method x status, no buckets: a summary's exact
    figures.
``tracker_spans``
    Per roll-up pass, the ids of the raw rows it folded in and the earliest and latest
    start among them: what finds rolled-up raw rows by time (a range of ids), as an index
    on the start time would, but without an index entry to delete per row.
``tracker_endpoints``
    The (endpoint, method) pairs in the hourly roll-up, with their latest hour: the
    dashboard's filter list.
``tracker_meta``
    Counters shared by every process writing to the store (for instance the number of
    records that could not be written, the schema version and the roll-up's marks).

The latency buckets are logarithmic: bucket ``i >= 1`` holds durations in
``[MIN_BUCKET_MS * GROWTH ** (i - 1), MIN_BUCKET_MS * GROWTH ** i)`` with
``GROWTH = 2 ** (1 / 4)`` (four buckets per doubling); bucket 0 holds everything below
``MIN_BUCKET_MS`` and the last bucket everything above the top edge (about 30 minutes).
A percentile read from the buckets is the geometric middle of its bucket, which is within
``BUCKET_ERROR`` (9.05 %) of the exact value.
"""
import math
import os

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Page size of a new SQLite store (an existing one keeps its own): retention's deletes and
#: the roll-ups write and checkpoint a quarter as many pages as with SQLite's 4 KiB, which
#: took maintenance at 100 requests/s from about 1.2 to 0.7 µs per row.
SQLITE_PAGE_SIZE = 16384
#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
IMMEDIATE = "tracker_begin_immediate"

MIN_BUCKET_MS = 0.01
GROWTH = 2 ** (1 / 4)
BUCKET_COUNT = 110
#: Largest relative error of a percentile computed from the buckets.
BUCKET_ERROR = math.sqrt(GROWTH) - 1
INVERSE_LOG_GROWTH = 1 / math.log(GROWTH)
LOG_MIN_BUCKET = math.log(MIN_BUCKET_MS)

ENDPOINT_LENGTH = 200
METHOD_LENGTH = 16

metadata = MetaData()

requests_table = Table(
    "tracker_requests",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("started_at", Double, nullable=False, comment="Epoch seconds"),
    Column("endpoint", String(ENDPOINT_LENGTH), nullable=False),
    Column("method", String(METHOD_LENGTH), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("bucket", SmallInteger, nullable=False),
    Column("queries", Integer, nullable=False, server_default="0"),
    Column("sql_ms", Double, nullable=False, server_default="0"),
    Column("findings", SmallInteger, nullable=False, server_default="0"),
)
#: The index on the start time that stores made before version 3 have (retention spent
#: two thirds of its delete on it); the spans below replace it.
OLD_TIME_INDEX = "ix_tracker_requests_started_at"


def _rollup(name, period, key, keyed=True):
    """A rollup table: per period x the ``key``'s other columns (endpoint, method, status,
    latency bucket), counts, sums and maxima (without ``keyed``, a key may come twice)."""
    kinds = {"endpoint": String(ENDPOINT_LENGTH), "method": String(METHOD_LENGTH),
             "status": SmallInteger, "bucket": SmallInteger}
    keys = [Column("period_start", BigInteger, nullable=False,
                   comment=f"Epoch seconds, multiple of {period}")]
    keys += [Column(column, kinds[column], nullable=False)
             for column in ROLLUP_KEY[1:] if column in key]
    return Table(
        name,
        metadata,
        *keys,
        Column("count", BigInteger, nullable=False),
        Column("sum_ms", Double, nullable=False),
        Column("max_ms", Double, nullable=False),
        Column("last_at", Double, nullable=False),
        Column("queries_sum", BigInteger, nullable=False, server_default="0"),
        Column("queries_max", Integer, nullable=False, server_default="0"),
        Column("sql_ms_sum", Double, nullable=False, server_default="0"),
        Column("findings_sum", BigInteger, nullable=False, server_default="0"),
        # SQLite stores the rows in key order, so reads in that order need no sorting.
        *((PrimaryKeyConstraint(*key),) if keyed else ()),
        **({"sqlite_with_rowid": False} if keyed else {}),
    )


HOUR = 3600
DAY = 86400
ROLLUP_KEY = ("period_start", "endpoint", "method", "status", "bucket")
# Hours are read by short time ranges; days by whole ranges grouped per endpoint, so the
# daily key starts with the grouping columns (SQLite then aggregates without a sort).
hourly_table = _rollup("tracker_rollup_hourly", HOUR, ROLLUP_KEY)
# (No index on its period_start: SQLite would prefer it and sort again.)
daily_table = _rollup("tracker_rollup_daily", DAY, (*ROLLUP_KEY[1:], ROLLUP_KEY[0]))
TOTALS_KEY = ("period_start", "bucket")
totals_table = _rollup("tracker_rollup_totals", HOUR, TOTALS_KEY)
# Per endpoint and status without the buckets: the exact figures of a summary, from a
# fraction of the rows (SQLite's cost is per row and aggregate).
STATUS_KEY = ROLLUP_KEY[:4]
status_hourly_table = _rollup("tracker_status_hourly", HOUR, STATUS_KEY)
status_daily_table = _rollup("tracker_status_daily", DAY, (*STATUS_KEY[1:], STATUS_KEY[0]))
# A roll-up a dashboard read asks for between passes adds the writer's groups here as they
# are, a plain insert instead of an upsert (PostgreSQL's costs 5-10 µs a group), and the
# next pass merges them into the hourly roll-ups; reads take both.
staged_hourly_table = _rollup("tracker_staged_hourly", HOUR, ROLLUP_KEY, keyed=False)
staged_status_table = _rollup("tracker_staged_status", HOUR, STATUS_KEY, keyed=False)
#: Each hourly roll-up with its key and the table of its groups staged for the next pass.
STAGED = ((hourly_table, ROLLUP_KEY, staged_hourly_table),
          (status_hourly_table, STATUS_KEY, staged_status_table))
#: Each rollup table with the length of its periods in seconds.
ROLLUPS = ((hourly_table, HOUR), (daily_table, DAY), (totals_table, HOUR),
           (status_hourly_table, HOUR), (status_daily_table, DAY))

endpoints_table = Table(
    "tracker_endpoints",
    metadata,
    Column("endpoint", String(ENDPOINT_LENGTH), nullable=False),
    Column("method", String(METHOD_LENGTH), nullable=False),
    Column("last_hour", BigInteger, nullable=False, comment="Its latest hourly period"),
    PrimaryKeyConstraint("endpoint", "method"),
)

spans_table = Table(
    "tracker_spans",
    metadata,
    Column("first_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("last_id", BigInteger, nullable=False),
    Column("earliest", Double, nullable=False, comment="Epoch seconds"),
    Column("latest", Double, nullable=False, comment="Epoch seconds"),
)

meta_table = Table(
    "tracker_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

def bucket_of(duration_ms):
    """Index of the logarithmic latency bucket holding ``duration_ms``."""
    if duration_ms < MIN_BUCKET_MS:
        return 0
    index = int((math.log(duration_ms) - LOG_MIN_BUCKET) * INVERSE_LOG_GROWTH) + 1
    return index if index < BUCKET_COUNT else BUCKET_COUNT - 1


def bucket_bounds(index):
    """Lower and upper edge in ms of bucket ``index`` (the last bucket is open-ended)."""
    if index <= 0:
        return 0.0, MIN_BUCKET_MS
    low = MIN_BUCKET_MS * GROWTH ** (index - 1)
    high = math.inf if index >= BUCKET_COUNT - 1 else low * GROWTH
    return low, high


def bucket_middle(index):
    """Representative value of a bucket: the geometric middle of its edges."""
    if index <= 0:
        return MIN_BUCKET_MS / 2
    low = MIN_BUCKET_MS * GROWTH ** (index - 1)
    return low * math.sqrt(GROWTH)


def parse_url(url, setting="TRACKER_DATABASE_URL"):
    """Turn a database URL into a SQLAlchemy URL, or a ValueError naming the setting."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{setting} must be a non-empty database URL string, got {url!r}")
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ValueError(f"{setting} is not a valid database URL: {url!r} ({error})") from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"{setting} uses the unsupported database {parsed.get_backend_name()!r} in "
            f"{parsed.render_as_string(hide_password=True)!r}; "
            f"use one of: {', '.join(SUPPORTED_BACKENDS)}"
        )
    return parsed


def create_store_engine(url, setting="TRACKER_DATABASE_URL"):
    """Build an engine that several threads and processes can write through."""
    parsed = parse_url(url, setting)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    # A server connection can go stale; a SQLite file cannot, so it skips the ping.
    options = {"pool_pre_ping": not is_sqlite}
    in_memory = is_sqlite and parsed.database in (None, "", ":memory:")
    if in_memory:
        # One shared connection, or every thread would see its own empty database.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as error:
        raise ValueError(
            f"{setting} names a driver that is not installed: "
            f"{parsed.render_as_string(hide_password=True)!r} ({error})"
        ) from None
    if is_sqlite:
        if not in_memory:  # a new app has no instance folder yet
            _make_folder_of(parsed.database)
        _configure_sqlite(engine, wal=not in_memory)
    else:  # PostgreSQL, the other of SUPPORTED_BACKENDS
        _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine):
    """Plan Tracker's statements without parallel workers: they are many and small, and
    PostgreSQL plans a parallel scan for a read of the rows not rolled up yet once the raw
    table is large (the upper id bound is the mark, read in the statement, so it guesses),
    whose workers take 5-10 ms to start for a part that reads next to nothing."""
    refused = engine.dialect.loaded_dbapi.Error

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
            dbapi_connection.commit()  # a setting made in a transaction lasts once committed
        except refused:  # a server that speaks PostgreSQL's protocol without the setting
            dbapi_connection.rollback()
        finally:
            cursor.close()


def _make_folder_of(path):
    """Create a SQLite file's folder; if that fails, connecting will say why, and the writer
    retries and counts instead of failing the app's start."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError:
        pass


def _configure_sqlite(engine, wal):
    """Set the pragmas and explicit transactions that let gunicorn workers share one file."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # Before anything writes the file's header (WAL mode does): a no-op afterwards.
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A writer that takes the lock up front waits on busy_timeout instead of failing
        # with SQLITE_BUSY when it upgrades a read transaction to a write.
        if connection.get_execution_options().get(IMMEDIATE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def first_line(error):
    """A one-line description of a database error, for the log and the dashboard."""
    detail = str(getattr(error, "orig", None) or error).strip()
    name = type(error).__name__
    return f"{name}: {detail.splitlines()[0]}" if detail else name
