"""Always-on endpoint tracking: a WSGI wrapper that queues one tuple per request and a
background thread that writes them to the store in batches.

The request path only reads the clock twice, notes the status and the matched URL rule
when the application starts its response, and appends one tuple of strings and floats
to a bounded ``collections.deque`` when the server closes the body (an atomic operation
under the GIL, so no lock).  Converting, storing, slow-request warnings, the rollups and
retention all happen in the writer thread, which stores a batch with as few calls into
the database driver as it can: each call lets go of the GIL, and taking it back costs
the request threads a switch.
"""
import atexit
import functools
import itertools
import math
import os
import re
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from random import random

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wsgi import ClosingIterator

from . import filters, writes
from .cli import EXTENSION_KEY, tracker_cli
from .store import (
    BUCKET_COUNT,
    ENDPOINT_LENGTH,
    IMMEDIATE,
    INVERSE_LOG_GROWTH,
    LOG_MIN_BUCKET,
    MIN_BUCKET_MS,
    create_schema,
    create_store_engine,
    parse_url,
)

perf_counter = time.perf_counter

DEFAULT_IGNORE = (r"^/static/", r"^/dashboard/", r"^/favicon\.ico$")
DEFAULTS = {
    "TRACKER_IGNORE": DEFAULT_IGNORE,
    "TRACKER_SAMPLE_RATE": 1.0,
    "TRACKER_RETENTION_DAYS": 30,
    "TRACKER_MAX_ROWS": 1_000_000,
    "TRACKER_QUEUE_SIZE": 10_000,
    "TRACKER_BATCH_SIZE": 1000,
    "TRACKER_FLUSH_INTERVAL": 1.0,
    "TRACKER_SLOW_MS": 500,
    "TRACKER_MAINTENANCE_INTERVAL": 60.0,
}
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
WRITE_RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.1
#: One request in this many also measures the wrapper's own cost.
COST_SAMPLE_EVERY = 64
_COST_SMOOTHING = 0.05
_PLAIN_PREFIX = re.compile(r"\^(?:[\w/~-]|\\[.\-/~])*")


@dataclass(frozen=True)
class Settings:
    """Validated ``TRACKER_*`` settings."""

    database_url: str
    ignore: tuple
    sample_rate: float
    retention_days: float
    max_rows: int
    queue_size: int
    batch_size: int
    flush_interval: float
    slow_ms: float
    maintenance_interval: float


def _number(config, key, low, high=math.inf, integer=False):
    """Read a numeric setting, or fail start-up with a message naming it."""
    value = config[key]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        upper = "" if high == math.inf else f" and <= {high}"
        raise ValueError(f"{key} must be {kind} >= {low}{upper}, got {value!r}")
    return value


def read_settings(app):
    """Apply the ``TRACKER_*`` defaults to ``app.config`` and validate every value."""
    config = app.config
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)
    if config.get("TRACKER_DATABASE_URL") is None:
        os.makedirs(app.instance_path, exist_ok=True)
        config["TRACKER_DATABASE_URL"] = "sqlite:///" + os.path.join(
            app.instance_path, "tracker.sqlite3"
        )
    url = config["TRACKER_DATABASE_URL"]
    parse_url(url)
    ignore = config["TRACKER_IGNORE"]
    if isinstance(ignore, str):
        ignore = (ignore,)
    if not isinstance(ignore, (list, tuple, set, frozenset)) or not all(
        isinstance(pattern, str) for pattern in ignore
    ):
        raise ValueError(f"TRACKER_IGNORE must be a list of regex strings, got {ignore!r}")
    for pattern in ignore:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"TRACKER_IGNORE has an invalid regular expression {pattern!r}: {error}"
            ) from None
    return Settings(
        database_url=url,
        ignore=tuple(ignore),
        sample_rate=_number(config, "TRACKER_SAMPLE_RATE", 0.0, 1.0),
        retention_days=_number(config, "TRACKER_RETENTION_DAYS", 0),
        max_rows=_number(config, "TRACKER_MAX_ROWS", 0, integer=True),
        queue_size=_number(config, "TRACKER_QUEUE_SIZE", 1, integer=True),
        batch_size=_number(config, "TRACKER_BATCH_SIZE", 1, integer=True),
        flush_interval=_number(config, "TRACKER_FLUSH_INTERVAL", 0.001),
        slow_ms=_number(config, "TRACKER_SLOW_MS", 0),
        maintenance_interval=_number(config, "TRACKER_MAINTENANCE_INTERVAL", 0),
    )


def ignore_rules(patterns):
    """Split ``patterns`` into the cheapest tests: a tuple of plain prefixes for
    ``str.startswith``, a set of plain exact paths, and one compiled regex (or None)
    for the rest, so the common case costs no regex call."""
    prefixes, exact, others = [], set(), []
    for pattern in patterns:
        literal = _PLAIN_PREFIX.fullmatch(pattern.removesuffix("$"))
        if literal is None:
            others.append(pattern)
            continue
        text = re.sub(r"\\(.)", r"\1", pattern[1:].removesuffix("$"))
        if pattern.endswith("$"):
            exact.add(text)
        else:
            prefixes.append(text)
    regex = re.compile("|".join(f"(?:{p})" for p in others)) if others else None
    return tuple(prefixes), frozenset(exact), regex


def ignore_matcher(patterns):
    """A predicate telling whether a path matches any of ``patterns``."""
    prefixes, exact, regex = ignore_rules(patterns)

    def is_ignored(path):
        return (path.startswith(prefixes) or path in exact
                or (regex is not None and regex.search(path) is not None))

    return is_ignored


class RequestRecord:
    """One tracked request: it notes the status and the URL rule as the response starts,
    and queues the request's tuple when the server closes the body."""

    __slots__ = ("_middleware", "_environ", "_start_response", "_started", "measured",
                 "endpoint", "status")

    def __init__(self, middleware, environ, start_response, started):
        self._middleware = middleware
        self._environ = environ
        self._start_response = start_response
        self._started = started
        self.measured = 0.0
        self.endpoint = None
        self.status = "500"

    def start_response(self, status, headers, exc_info=None):
        """Note the status and the matched URL rule, then pass the call on.

        The application calls this while its request context is still active, so
        Werkzeug's request object (and Flask's ``url_rule`` on it) is still in the environ.
        The rule's string is kept, not the rule: a queued record then holds no object the
        garbage collector has to visit.
        """
        self.status = status
        rule = getattr(self._environ.get("werkzeug.request"), "url_rule", None)
        if rule is not None:
            self.endpoint = rule.rule
        return self._start_response(status, headers, exc_info)

    def finish(self):
        """Queue the request's record: the only per-request bookkeeping is one tuple
        appended to the bounded queue.  A second call records nothing."""
        ended = perf_counter()
        started = self._started
        if started is None:
            return
        self._started = None
        middleware = self._middleware
        queue = middleware.queue
        queued = len(queue)
        if queued < middleware.capacity:
            queue.append((started, ended, self.endpoint,
                          self._environ.get("REQUEST_METHOD", ""), self.status))
            if queued >= middleware.batch_size and not middleware.wake.is_set():
                middleware.wake.set()
        else:
            middleware.count_dropped()
        if self.measured:
            middleware.cost.note(self.measured + (perf_counter() - ended))


class TrackedBody:
    """A response body that is not Werkzeug's: passed through, recorded when closed."""

    __slots__ = ("body", "record")

    def __init__(self, body, record):
        self.body = body
        self.record = record

    def __iter__(self):
        return iter(self.body)

    def close(self):
        """Close the application's body, then record the request."""
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.record.finish()


class CostMeter:
    """Exponential moving average of the wrapper's own time, sampled every Nth request."""

    def __init__(self):
        self.ticks = itertools.count(1)
        self.seconds = 0.0

    def note(self, seconds):
        """Fold one measurement into the average."""
        if self.seconds:
            self.seconds += (seconds - self.seconds) * _COST_SMOOTHING
        else:
            self.seconds = seconds


class TrackingMiddleware:
    """WSGI wrapper around ``app.wsgi_app`` that times whole requests, body included."""

    def __init__(self, wsgi_app, settings):
        self.wsgi_app = wsgi_app
        self.queue = deque()
        self.capacity = settings.queue_size
        self.batch_size = settings.batch_size - 1
        self.wake = threading.Event()
        self.sample_rate = settings.sample_rate
        self.ignore = ignore_rules(settings.ignore)
        self.dropped = 0
        self.cost = CostMeter()
        self._drop_lock = threading.Lock()

    def __call__(self, environ, start_response):
        started = perf_counter()
        path = environ.get("PATH_INFO", "")
        prefixes, exact, regex = self.ignore
        if path.startswith(prefixes) or path in exact or (
            regex is not None and regex.search(path) is not None
        ):
            return self.wsgi_app(environ, start_response)
        if self.sample_rate < 1.0 and random() >= self.sample_rate:
            return self.wsgi_app(environ, start_response)
        record = RequestRecord(self, environ, start_response, started)
        if not next(self.cost.ticks) % COST_SAMPLE_EVERY:
            record.measured = perf_counter() - started
        try:
            body = self.wsgi_app(environ, record.start_response)
        except BaseException:
            record.finish()
            raise
        if type(body) is ClosingIterator:  # pylint: disable=unidiomatic-typecheck
            callbacks = getattr(body, "_callbacks", None)
            if type(callbacks) is list:  # pylint: disable=unidiomatic-typecheck
                # Every Flask response comes back as Werkzeug's ClosingIterator, which
                # calls its callbacks when the server closes it.  Joining them times the
                # body to its end without a wrapper around it (an object and a call less
                # per request); anything else falls back to the wrapper.
                callbacks.append(record.finish)
                return body
        return TrackedBody(body, record)

    def count_dropped(self):
        """Count a record the full queue could not take (rare, so a lock is fine)."""
        with self._drop_lock:
            self.dropped += 1

    def reset_after_fork(self):
        """Forget the parent's queue and lock: the parent writes its own records."""
        self.queue = deque()
        self._drop_lock = threading.Lock()
        self.wake = threading.Event()
        self.dropped = 0


@functools.lru_cache(maxsize=256)
def status_code(status):
    """The numeric part of a WSGI status line such as ``"404 NOT FOUND"`` (an app uses
    a handful of status lines, so the writer looks each one up once)."""
    try:
        return int(status[:3])
    except (TypeError, ValueError):
        return 0


class Writer:
    """Background thread that drains the queue into the store, with retries and retention."""

    def __init__(self, tracking):
        self.tracking = tracking
        self.stopping = threading.Event()
        self.written = 0
        self.db_dropped = 0
        self.recorded_drops = 0
        self.busy = False
        self.cpu_seconds = 0.0
        self.thread = None
        self.last_maintenance = time.monotonic()
        self.flush_requested = False

    def start(self):
        """Start the daemon thread (again, in a forked child)."""
        self.thread = threading.Thread(target=self.run, name="tracker-writer", daemon=True)
        self.thread.start()

    def run(self):
        """Write full batches as they fill up; everything every flush interval, on
        flush() and once more on stop."""
        settings = self.tracking.settings
        while not self.stopping.is_set():
            wake = self.tracking.middleware.wake
            full_batch = wake.wait(settings.flush_interval)
            wake.clear()
            flush_requested, self.flush_requested = self.flush_requested, False
            # Under load only full batches are written: a stream of small batches would
            # pay the per-transaction cost (and GIL hand-overs) over and over.
            self.drain(full_batches_only=full_batch and not flush_requested)
            self.maintain()
        self.drain()
        self.maintain(force=True)

    def drain(self, full_batches_only=False):
        """Write what is queued, one transaction per batch."""
        queue = self.tracking.middleware.queue
        batch_size = self.tracking.settings.batch_size
        minimum = batch_size if full_batches_only else 1
        self.busy = True
        try:
            while len(queue) >= minimum:
                batch = []
                try:
                    for _ in range(batch_size):
                        batch.append(queue.popleft())
                except IndexError:
                    pass
                cpu_before = time.thread_time()
                self.write(batch)
                self.cpu_seconds += time.thread_time() - cpu_before
            self.report_drops()
        finally:
            self.busy = False

    def rows_from(self, batch):
        """Turn queued tuples into rows in ``writes.INSERT_COLUMNS`` order; also where
        slow requests are reported.  One pass with no call per row but ``math.log``:
        this loop is most of what the writer spends in Python for every request."""
        offset = time.time() - perf_counter()
        slow_ms = self.tracking.settings.slow_ms or math.inf
        log = math.log
        rows = []
        append = rows.append
        for started, ended, endpoint, method, status in batch:
            duration_ms = (ended - started) * 1000.0
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
            append((started + offset, endpoint, method, code, duration_ms, bucket))
            if duration_ms >= slow_ms:
                self.tracking.logger.warning(
                    "Slow request: %s %s returned %d in %.1f ms",
                    method, endpoint, code, duration_ms,
                )
        return rows

    def ensure_schema(self):
        """Create the tables now if the store was down when the app started."""
        tracking = self.tracking
        if not tracking.schema_ready:
            create_schema(tracking.engine)
            tracking.schema_ready = True

    def transaction(self, work):
        """Run ``work(conn)`` in a write transaction; SQLite takes its lock at BEGIN."""
        self.ensure_schema()
        with self.tracking.engine.connect() as conn:
            conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                return work(conn)

    def insert(self, rows):
        """Store complete rows atomically: on SQLite a batch that fits one statement is
        that one autocommit statement, anything else is a transaction."""
        engine = self.tracking.engine
        if engine.dialect.name == "sqlite" and len(rows) <= writes.ROWS_PER_INSERT:
            self.ensure_schema()
            with engine.connect() as conn:
                writes.append_rows(conn, rows)
        else:
            self.transaction(lambda conn: writes.insert_rows(conn, rows))

    def write(self, batch):
        """Store one batch, retrying with backoff; count it as dropped if the store refuses."""
        rows = self.rows_from(batch)
        logger = self.tracking.logger
        for attempt in range(1, WRITE_RETRIES + 2):
            try:
                self.insert(rows)
            except self.tracking.store_errors as error:
                logger.warning("Tracker could not store %d request records (attempt %d of %d):"
                               " %s", len(rows), attempt, WRITE_RETRIES + 1,
                               _first_line(error))
                if attempt <= WRITE_RETRIES:
                    self.stopping.wait(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            self.written += len(rows)
            return
        self.db_dropped += len(rows)

    def total_dropped(self):
        """Records lost to a full queue plus records the store refused."""
        return self.tracking.middleware.dropped + self.db_dropped

    def report_drops(self):
        """Log new losses and add them to the store's shared counter."""
        pending = self.total_dropped() - self.recorded_drops
        if pending <= 0:
            return
        self.tracking.logger.warning(
            "Tracker dropped %d request records (%d in total: queue full %d, store errors %d)",
            pending, self.total_dropped(), self.tracking.middleware.dropped, self.db_dropped,
        )
        self.recorded_drops += pending
        try:
            self.transaction(lambda conn: writes.add_dropped(conn, pending))
        except self.tracking.store_errors as error:
            self.tracking.logger.warning("Tracker could not record the drop count: %s",
                                         _first_line(error))

    def maintain(self, force=False):
        """Now and then fold new rows into the rollup and apply retention (both cheap)."""
        settings = self.tracking.settings
        now = time.monotonic()
        if not force and now - self.last_maintenance < settings.maintenance_interval:
            return 0
        self.last_maintenance = now
        older_than = None
        if settings.retention_days:
            older_than = filters.now() - settings.retention_days * 86400

        def work(conn):
            deleted = writes.prune(conn, older_than=older_than,
                                   keep_rows=settings.max_rows or None)
            writes.roll_up(conn)
            return deleted

        cpu_before = time.thread_time()
        try:
            return self.transaction(work)
        except self.tracking.store_errors as error:
            self.tracking.logger.warning("Tracker maintenance failed: %s", _first_line(error))
            return 0
        finally:  # part of what tracking costs, so part of the cost shown per row
            self.cpu_seconds += time.thread_time() - cpu_before


def _first_line(error):
    """A one-line description of a database error for the log."""
    detail = str(getattr(error, "orig", None) or error).strip()
    name = type(error).__name__
    return f"{name}: {detail.splitlines()[0]}" if detail else name


class Tracking:
    """Flask extension: ``Tracking(app)`` or ``Tracking().init_app(app)``."""

    def __init__(self, app=None):
        self.app = None
        self.settings = None
        self.engine = None
        self.store_errors = (SQLAlchemyError,)
        self.middleware = None
        self.writer = None
        self.schema_ready = False
        self.logger = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        """Wrap ``app.wsgi_app``, create the schema and start the writer thread."""
        if self.app is not None:
            raise RuntimeError("a Tracking instance serves one app; create one per app")
        self.settings = read_settings(app)
        self.engine = create_store_engine(self.settings.database_url)
        # The writer sends rows straight to the driver, whose errors SQLAlchemy has not
        # wrapped; both kinds mean the store refused, never that the request failed.
        self.store_errors = (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error)
        self.app = app
        self.logger = app.logger
        try:
            create_schema(self.engine)
            self.schema_ready = True
        except SQLAlchemyError as error:
            # Requests must not fail because the store is down; the writer retries.
            self.logger.warning("Tracker could not create its tables yet: %s",
                                _first_line(error))
        self.middleware = TrackingMiddleware(app.wsgi_app, self.settings)
        app.wsgi_app = self.middleware
        app.extensions[EXTENSION_KEY] = self
        app.cli.add_command(tracker_cli)
        self.writer = Writer(self)
        self.writer.start()
        atexit.register(self.shutdown)
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: restart_in_child(reference))
        return self

    def flush(self, timeout=5.0):
        """Wait until everything queued so far is stored; False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        writer = self.writer
        while self.middleware.queue or writer.busy:
            if writer.thread is None or not writer.thread.is_alive():
                writer.drain()
                continue
            if time.monotonic() >= deadline:
                return False
            writer.flush_requested = True
            self.middleware.wake.set()
            time.sleep(0.002)
        return True

    def stats(self):
        """Counters for the dashboard, including Tracker's own cost per request."""
        writer = self.writer
        request_us = self.middleware.cost.seconds * 1e6
        writer_us = writer.cpu_seconds / writer.written * 1e6 if writer.written else 0.0
        return {
            "queued": len(self.middleware.queue),
            "written": writer.written,
            "dropped": writer.total_dropped(),
            "cost_us_per_request": request_us + writer_us,
            "request_path_us": request_us,
            "writer_us_per_row": writer_us,
        }

    def maintain_now(self):
        """Roll up and apply retention immediately (the writer does it every minute);
        returns the number of rows deleted."""
        self.flush()
        return self.writer.maintain(force=True)

    def shutdown(self, timeout=10.0):
        """Stop the writer after it has stored what is queued; runs at exit and on SIGTERM."""
        atexit.unregister(self.shutdown)
        writer = self.writer
        writer.stopping.set()
        self.middleware.wake.set()
        if writer.thread is not None and writer.thread.is_alive():
            writer.thread.join(timeout)
        else:
            writer.drain()
        self.engine.dispose()

    def _restart_after_fork(self):
        """In a forked child: new queue, fresh connections and a new writer thread."""
        self.middleware.reset_after_fork()
        self.engine.dispose(close=False)
        if not self.writer.stopping.is_set():
            self.writer = Writer(self)
            self.writer.start()


def restart_in_child(reference):
    """Fork hook (takes a weak reference so it never keeps an extension alive)."""
    tracking = reference()
    if tracking is not None:
        tracking._restart_after_fork()  # pylint: disable=protected-access  # own hook
