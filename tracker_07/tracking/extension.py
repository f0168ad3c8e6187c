"""The tracking component: ``Tracking(app)`` wires the request path, the store and the writer.

``Tracker(app)`` (:mod:`tracker_07.extension`) attaches it with everything else; it can
also be attached on its own.  Its settings come from :mod:`tracker_07.settings`.
"""
import atexit
import gc
import os
import time
import weakref

from sqlalchemy.exc import SQLAlchemyError

from .calibration import Calibrated
from .cli import EXTENSION_KEY, tracker_cli
from .middleware import TrackingMiddleware
from .settings import read_settings
from .store import create_store_engine, first_line
from .writer import Writer


class Tracking:
    """Flask extension: ``Tracking(app)`` or ``Tracking().init_app(app)``."""

    def __init__(self, app=None):
        self.app = None
        self.settings = None
        self.engine = None
        self.middleware = None
        self.writer = None
        self.logger = None
        self.calibrated = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        """Wrap ``app.wsgi_app``, create the schema and start the writer thread."""
        if self.app is not None:
            raise RuntimeError("a Tracking instance serves one app; create one per app")
        self.settings = read_settings(app)
        self.engine = create_store_engine(self.settings.database_url)
        self.app = app
        self.logger = app.logger
        self.middleware = TrackingMiddleware(app.wsgi_app, self.settings)
        self.calibrated = Calibrated(self.settings)
        self.writer = self._new_writer()
        try:
            self.writer.ensure_schema()
        except SQLAlchemyError as error:
            # Requests must not fail because the store is down; the writer retries.
            self.logger.warning("Tracker could not create its tables yet: %s",
                                first_line(error))
        app.wsgi_app = self.middleware
        app.extensions[EXTENSION_KEY] = self
        app.cli.add_command(tracker_cli)
        self.writer.start()
        atexit.register(self.shutdown)
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: restart_in_child(reference))
        return self

    def _new_writer(self):
        """A writer thread's worth of collaborators: the queue, the store, the settings."""
        return Writer(self.middleware, self.engine, self.settings, self.logger)

    @property
    def store_errors(self):
        """The exceptions that mean the store refused (SQLAlchemy's and the driver's)."""
        return self.writer.store_errors

    def flush(self, timeout=5.0, collect_garbage=True):
        """Wait until everything queued so far is stored; False if ``timeout`` ran out.

        It first collects garbage: a response whose body was never closed (Flask's test
        client) and that was caught in a reference cycle (an exception's traceback) is
        recorded when it is freed.  A server never needs this (it closes every body), and
        ``collect_garbage=False`` skips it.
        """
        if collect_garbage:
            gc.collect()
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

    def roll_up_now(self, timeout=5.0):
        """Have the writer fold what it stored into the roll-ups now (it does every few
        minutes), so that a read does not go through many raw rows; False if ``timeout``
        ran out first (the read then goes through them)."""
        writer = self.writer
        if writer.thread is None or not writer.thread.is_alive():
            writer.roll_up(staged=True)
            return True
        deadline = time.monotonic() + timeout
        done = writer.roll_ups
        writer.roll_up_requested = True
        self.middleware.wake.set()
        while writer.roll_ups == done:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def stats(self):
        """Counters for the dashboard, including Tracker's own cost per request: the
        request path's whole cost (its sampled timings, scaled by a calibration in this
        process, :mod:`.calibration`), and all the CPU of writing, rolling up and applying
        retention (the writer thread's, waking up included) per stored row."""
        writer = self.writer
        sampled = self.middleware.cost.seconds
        calibration = self.calibrated.get() if sampled else None
        request_us = calibration.request_path_seconds(sampled) * 1e6 if calibration else 0.0
        writer_seconds = writer.cost_seconds()
        writer_us = writer_seconds / writer.written * 1e6 if writer.written else 0.0
        return {
            "queued": len(self.middleware.queue),
            "written": writer.written,
            "dropped": writer.total_dropped(),
            "cost_us_per_request": request_us + writer_us,
            "request_path_us": request_us,
            "request_path_timed_us": sampled * 1e6,
            "calibration_cpu_ms": calibration.cpu_seconds * 1e3 if calibration else 0.0,
            "writer_us_per_row": writer_us,
            "writer_cpu_seconds": writer_seconds,
        }

    def maintain_now(self):
        """Roll up and apply retention immediately (the writer does it every minute, every
        few at low rates); returns the number of rows deleted."""
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
            self.writer = self._new_writer()
            self.writer.start()


def restart_in_child(reference):
    """Fork hook (takes a weak reference so it never keeps an extension alive)."""
    tracking = reference()
    if tracking is not None:
        tracking._restart_after_fork()  # pylint: disable=protected-access  # own hook
