"""The writer's pass over every queued request: the request path's tuples made into the
store's rows (``writes.INSERT_COLUMNS`` order), in C where ``_rows.c`` is compiled (a tenth of
the CPU a row) and in Python otherwise; the tests hold both to the same rows."""
import functools
import math

from ..sql.analysis import findings_count
from .store import BUCKET_COUNT, ENDPOINT_LENGTH, INVERSE_LOG_GROWTH, LOG_MIN_BUCKET, MIN_BUCKET_MS
from .writes import NO_SQL

try:
    from . import _rows
except ImportError:  # built without a C compiler
    _rows = None

KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
#: The store's constants as ``_rows.rows_from`` takes them.
ROW_SHAPE = (ENDPOINT_LENGTH, MIN_BUCKET_MS, LOG_MIN_BUCKET, INVERSE_LOG_GROWTH, BUCKET_COUNT,
             KNOWN_METHODS)


@functools.lru_cache(maxsize=256)
def status_code(status):
    """The numeric part of a WSGI status line such as ``"404 NOT FOUND"`` (an app uses
    a handful of status lines, so the writer looks each one up once)."""
    try:
        return int(status[:3])
    except (TypeError, ValueError):
        return 0


def sql_numbers(sql):
    """What a request's captured queries add to its row: how many, their ms, their findings."""
    return NO_SQL if not sql.count else (sql.count, sql.seconds * 1000.0, findings_count(sql))


def rows_from(batch, offset, slow_ms):
    """The rows of queued tuples ``(started, ended, endpoint, method, status, sql)``, their
    start moved by ``offset`` onto the wall clock, and the positions of those that took
    ``slow_ms`` or longer: ``(rows, slow)``."""
    made = None if _rows is None else _rows.rows_from(
        batch, offset, slow_ms, ROW_SHAPE, status_code, sql_numbers)
    return made if made is not None else rows_in_python(batch, offset, slow_ms)


def rows_in_python(batch, offset, slow_ms):  # pylint: disable=too-many-locals  # one pass, all local
    """``_rows.rows_from`` in Python: one pass with no call per row but ``math.log`` (and
    the numbers of a request that ran queries)."""
    log = math.log
    rows, slow = [], []
    append = rows.append
    for started, ended, endpoint, method, status, sql in batch:
        duration_ms = (ended - started) * 1000.0
        numbers = NO_SQL if sql is None else sql_numbers(sql)
        code = status_code(status)
        if endpoint is None:
            endpoint = f"<{code}>"
        elif len(endpoint) > ENDPOINT_LENGTH:
            endpoint = endpoint[:ENDPOINT_LENGTH]
        if method not in KNOWN_METHODS:
            method = "OTHER"
        if duration_ms < MIN_BUCKET_MS:
            bucket = 0
        else:  # store.bucket_of, inlined
            bucket = int((log(duration_ms) - LOG_MIN_BUCKET) * INVERSE_LOG_GROWTH) + 1
            if bucket >= BUCKET_COUNT:
                bucket = BUCKET_COUNT - 1
        if duration_ms >= slow_ms:
            slow.append(len(rows))
        append((started + offset, endpoint, method, code, duration_ms, *numbers, bucket))
    return rows, slow
