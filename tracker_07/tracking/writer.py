"""The writer thread of endpoint tracking: it drains the request path's queue into the store.

It stores a batch with as few calls into the database driver as it can (each call lets go
of the GIL, and taking it back costs the request threads a switch), reports slow requests,
counts what the store refused, and now and then rolls up and applies retention.
"""
import math
import os
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from . import counted, filters, rollups, writes
from .rows import rows_from
from .schema import create_schema
from .store import IMMEDIATE, first_line

perf_counter = time.perf_counter

WRITE_RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.1
#: A maintenance pass costs a few ms besides its rows, and merging a group costs about as
#: much for one new row as for many, so with fewer new rows than this a pass waits, up to
#: ``MAX_DEFERRED_INTERVALS`` maintenance intervals: every interval at high rates, less
#: often at low ones.  The count also bounds the rows the dashboard reads raw meanwhile
#: (2-3 µs each a read), which is why it is not larger (benchmarks/README_tracking.md).
ROWS_PER_PASS = 30_000
#: Ten minutes by default: down to 50 requests/s a pass still holds about ``ROWS_PER_PASS``
#: rows, no more than the dashboard reads raw at 100 requests/s.
MAX_DEFERRED_INTERVALS = 10
#: A write costs some 0.5 ms besides its rows (a connection from the pool, a commit), so
#: below a full batch the writer sleeps ``MAX_DEFERRED_FLUSHES`` flush intervals between
#: writes: one wake-up per write, none per request or per interval.
MAX_DEFERRED_FLUSHES = 5


class StoreFile:
    """The SQLite file behind an engine, so that one deleted under a running app is noticed
    (its open connections would go on writing into the deleted file, losing every row)."""

    def __init__(self, engine):
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.path = database if database and database != ":memory:" else None
        self.identity = None

    def _stat(self):
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def remember(self):
        """Note which file the schema was just created in."""
        if self.path is not None:
            self.identity = self._stat()

    def replaced(self):
        """Tell whether the file is gone or another one took its name (one stat per batch)."""
        return self.identity is not None and self._stat() != self.identity


class Writer:  # pylint: disable=too-many-instance-attributes  # its collaborators and counters
    """Background thread that drains the queue into the store, with retries and retention."""

    def __init__(self, middleware, engine, settings, logger):
        self.middleware = middleware
        self.engine = engine
        self.settings = settings
        self.logger = logger
        # Rows go straight to the driver, whose errors SQLAlchemy has not wrapped; both
        # kinds mean the store refused, never that the request failed.
        self.store_errors = (SQLAlchemyError, engine.dialect.loaded_dbapi.Error)
        self.store_file = StoreFile(engine)
        self.schema_ready = False
        self.stopping = threading.Event()
        self.written = 0
        self.db_dropped = 0
        self.recorded_drops = 0
        self.busy = False
        #: CPU of drain() and maintain() run by other threads (flush() without a writer
        #: thread, maintain_now()); the writer thread's own is ``thread_cpu_seconds``.
        self.cpu_seconds = 0.0
        self.thread_cpu_seconds = 0.0
        self.thread = None
        self.last_maintenance = time.monotonic()
        self.maintained_at_written = 0
        self.flush_requested = False
        #: A reader asked for a roll-up (:meth:`roll_up`); how many this writer has run.
        self.roll_up_requested = False
        self.roll_ups = 0
        self.pending = counted.Pending()

    def start(self):
        """Start the daemon thread (again, in a forked child)."""
        self.thread = threading.Thread(target=self.run, name="tracker-writer", daemon=True)
        self.thread.start()

    def run(self):
        """Write full batches as the request path signals them; the rest when the wait
        ends (``MAX_DEFERRED_FLUSHES`` flush intervals), on flush() and once more on stop.
        All of this thread's CPU, waking up included, is Tracker's cost (noted as it
        writes and maintains)."""
        settings = self.settings
        wait_seconds = settings.flush_interval * MAX_DEFERRED_FLUSHES
        while not self.stopping.is_set():
            wake = self.middleware.wake
            full_batch = wake.wait(wait_seconds)
            wake.clear()
            flush_requested, self.flush_requested = self.flush_requested, False
            self.write_queued(signalled=full_batch,
                              everything=flush_requested or self.stopping.is_set())
            if self.roll_up_requested:
                self.roll_up_requested = False
                self.roll_up(staged=True)
            self.maintain()
        self.drain()
        self.maintain(force=True)

    def write_queued(self, signalled, everything=False):
        """One wake-up's write: everything (flush() and stop), whole batches when the
        request path signalled them, else whole steps of ``writes.ROWS_PER_STEP`` rows
        (statements of as many rows, :func:`.writes.append_rows_in_steps`), leaving the
        newest few for the next write (they wait at most two waits), so no statement is
        ever prepared for an odd size."""
        queued = len(self.middleware.queue)
        if everything:
            self.drain()
        elif signalled:
            # Under load only whole batches are written: a stream of small batches
            # would pay the per-write cost (and GIL hand-overs) over and over.
            self.drain(multiple_of=self.middleware.wake_at)
        else:
            step = writes.ROWS_PER_STEP
            self.drain(multiple_of=step if queued >= step else 1)

    def in_own_thread(self):
        """Whether the caller is the writer thread (whose CPU is counted as a whole)."""
        return self.thread is not None and threading.current_thread() is self.thread

    def count_cpu(self, cpu_before):
        """Add the CPU since ``cpu_before`` to the cost; in the writer thread, note its
        whole CPU so far instead (idle wake-ups included), before flush() sees it idle."""
        if self.in_own_thread():
            self.thread_cpu_seconds = time.thread_time()
        else:
            self.cpu_seconds += time.thread_time() - cpu_before

    def cost_seconds(self):
        """All CPU spent writing, rolling up and applying retention, in every thread."""
        return self.cpu_seconds + self.thread_cpu_seconds

    def drain(self, multiple_of=1):
        """Write what is queued, one statement or transaction per batch: everything (also
        what comes meanwhile), or the largest multiple of ``multiple_of`` rows queued."""
        queue = self.middleware.queue
        batch_size = self.settings.batch_size
        left = None if multiple_of == 1 else len(queue) - len(queue) % multiple_of
        self.busy = True
        try:
            while queue and (left is None or left > 0):
                size = batch_size if left is None else min(batch_size, left)
                batch = []
                try:
                    for _ in range(size):
                        batch.append(queue.popleft())
                except IndexError:
                    pass
                if left is not None:
                    left -= len(batch)
                cpu_before = time.thread_time()
                self.write(batch)
                self.count_cpu(cpu_before)
            self.report_drops()
        finally:
            self.busy = False

    def rows_from(self, batch):
        """Turn queued tuples into rows in ``writes.INSERT_COLUMNS`` order
        (:func:`.rows.rows_from`), reporting the slow requests among them."""
        rows, slow = rows_from(batch, time.time() - perf_counter(),
                               self.settings.slow_ms or math.inf)
        for position in slow:
            _started, endpoint, method, code, duration_ms = rows[position][:5]
            self.logger.warning("Slow request: %s %s returned %d in %.1f ms",
                                method, endpoint, code, duration_ms)
        return rows

    def ensure_schema(self):
        """Create the tables now if the store was down when the app started."""
        if self.store_file.replaced():
            self.logger.warning("Tracker's store file %s was deleted or replaced while the app "
                                "ran; writing to a new one from now on.", self.store_file.path)
            self.engine.dispose()
            self.schema_ready = False
        if not self.schema_ready:
            create_schema(self.engine)
            self.store_file.remember()
            self.schema_ready = True

    def transaction(self, work):
        """Run ``work(conn)`` in a write transaction; SQLite takes its lock at BEGIN."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                return work(conn)

    def insert(self, rows):
        """Store complete rows atomically: on SQLite a full batch (or a few rows) that fits
        one statement is that one autocommit statement, anything else a transaction."""
        engine = self.engine
        if engine.dialect.name == "sqlite" and len(rows) <= writes.ROWS_PER_INSERT:
            self.ensure_schema()
            with engine.connect() as conn:
                if len(rows) == self.settings.batch_size or len(rows) <= writes.ROWS_PER_STEP:
                    first_id = writes.append_rows(conn, rows)
                else:
                    first_id = writes.append_rows_in_steps(conn, rows)
        elif engine.dialect.name == "postgresql":
            first_id = self.transaction(lambda conn: writes.copy_rows(conn, rows))
        else:  # ids unknown: the next roll-up reads these rows back
            self.transaction(lambda conn: writes.insert_rows(conn, rows))
            first_id = None
        self.pending.add(rows, first_id)

    def write(self, batch):
        """Store one batch, retrying with backoff; count it as dropped if the store refuses."""
        rows = self.rows_from(batch)
        logger = self.logger
        for attempt in range(1, WRITE_RETRIES + 2):
            try:
                self.insert(rows)
            except self.store_errors as error:
                logger.warning("Tracker could not store %d request records (attempt %d of %d):"
                               " %s", len(rows), attempt, WRITE_RETRIES + 1,
                               first_line(error))
                if attempt <= WRITE_RETRIES:
                    self.stopping.wait(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            self.written += len(rows)
            return
        self.db_dropped += len(rows)

    def total_dropped(self):
        """Records lost to a full queue plus records the store refused."""
        return self.middleware.dropped + self.db_dropped

    def report_drops(self):
        """Log new losses and add them to the store's shared counter."""
        pending = self.total_dropped() - self.recorded_drops
        if pending <= 0:
            return
        self.logger.warning(
            "Tracker dropped %d request records (%d in total: queue full %d, store errors %d)",
            pending, self.total_dropped(), self.middleware.dropped, self.db_dropped,
        )
        self.recorded_drops += pending
        try:
            self.transaction(lambda conn: writes.add_dropped(conn, pending))
        except self.store_errors as error:
            self.logger.warning("Tracker could not record the drop count: %s",
                                         first_line(error))

    def maintenance_due(self, now):
        """Whether a pass is due at ``now`` (monotonic seconds): an interval has passed and
        enough rows came to spread its fixed cost thin, or several intervals passed."""
        interval = self.settings.maintenance_interval
        waited = now - self.last_maintenance
        if waited < interval:
            return False
        return (self.written - self.maintained_at_written >= ROWS_PER_PASS
                or waited >= interval * MAX_DEFERRED_INTERVALS)

    def roll_up(self, staged=False):
        """Fold what is stored into the roll-ups now, without retention: a dashboard read
        asked, as reading many rows raw costs it more than the roll-up (run in the writer
        thread, which alone counts rows into its pending groups); ``staged``: its groups
        staged for the next pass to merge, the quickest for the waiting read."""
        try:
            self.fold(lambda conn: rollups.roll_up(conn, pending=self.pending, staged=staged),
                      "Tracker could not roll up: %s")
        finally:
            self.roll_ups += 1

    def maintain(self, force=False, now=None):
        """Now and then fold new rows into the rollups and apply retention (both cheap)."""
        settings = self.settings
        now = time.monotonic() if now is None else now
        if not force and not self.maintenance_due(now):
            return 0
        self.last_maintenance = now
        self.maintained_at_written = self.written
        older_than = None
        if settings.retention_days:
            older_than = filters.now() - settings.retention_days * 86400

        def work(conn):
            # Rolled up first: retention may remove rows the roll-up has not seen yet.
            rollups.roll_up(conn, pending=self.pending)
            return writes.prune(conn, older_than=older_than,
                                keep_rows=settings.max_rows or None)

        return self.fold(work, "Tracker maintenance failed: %s")

    def fold(self, work, failure):
        """Run ``work`` (a roll-up, and retention) in a transaction, its CPU counted as
        tracking's cost; ``failure`` is logged if the store refuses (then 0)."""
        cpu_before = time.thread_time()
        try:
            return self.transaction(work)
        except self.store_errors as error:
            self.logger.warning(failure, first_line(error))
            return 0
        finally:  # part of what tracking costs, so part of the cost shown per row
            self.pending.clear()  # rolled up, or to be read back from the raw rows
            self.count_cpu(cpu_before)
