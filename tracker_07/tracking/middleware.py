"""The request path of endpoint tracking: a WSGI wrapper that queues one tuple per request.

It reads the clock twice, notes the status and the matched URL rule when the application
starts its response, and appends one tuple of strings and floats (and the request's
database queries, when they are captured: :mod:`tracker_07.sql`) to a bounded
``collections.deque`` when the server closes the body (an atomic operation under the GIL,
so no lock).  Everything else happens in the writer thread (:mod:`.writer`).
"""
import itertools
import re
import threading
import time
from collections import deque
from random import random

from werkzeug.wsgi import ClosingIterator

from ..sql.capture import ENVIRON_KEY as SQL_KEY

perf_counter = time.perf_counter

#: One request in this many also measures the wrapper's own time: before and after the
#: app is called, in ``start_response`` and when the body is closed.
COST_SAMPLE_EVERY = 64
_COST_SMOOTHING = 0.05
_COST_OUTLIER = 4.0
_PLAIN_PREFIX = re.compile(r"\^(?:[\w/~-]|\\[.\-/~])*")


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

    __slots__ = ("_middleware", "_environ", "_start_response", "_started", "_responded",
                 "measured", "endpoint", "status")

    def __init__(self, middleware, environ, start_response, started):
        self._middleware = middleware
        self._environ = environ
        self._start_response = start_response
        self._started = started
        self._responded = None
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
        self._responded = responded = perf_counter()
        rule = getattr(self._environ.get("werkzeug.request"), "url_rule", None)
        if rule is not None:
            self.endpoint = rule.rule
        if self.measured:
            self.measured += perf_counter() - responded
        return self._start_response(status, headers, exc_info)

    def __del__(self):
        """Record a request whose body was never closed when it is let go: Flask's test
        client never closes it, and a close callback that raises skips the ones after it.
        Such a request ends, as far as can be known, when its response started."""
        if self._started is not None:
            self.finish(self._responded)

    def finish(self, ended=None):
        """Queue the request's record: the only per-request bookkeeping is one tuple
        appended to the bounded queue.  A second call records nothing."""
        finishing = perf_counter()
        if ended is None:
            ended = finishing
        started = self._started
        if started is None:
            return
        self._started = None
        middleware = self._middleware
        queue = middleware.queue
        queued = len(queue)
        if queued < middleware.capacity:
            environ = self._environ
            queue.append((started, ended, self.endpoint, environ.get("REQUEST_METHOD", ""),
                          self.status, environ.get(SQL_KEY)))
            if queued >= middleware.wake_at - 1 and not middleware.wake.is_set():
                middleware.wake.set()
        else:
            middleware.count_dropped()
        if self.measured:
            middleware.cost.note(self.measured + (perf_counter() - finishing))


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
        """Fold one measurement into the average, at most ``_COST_OUTLIER`` times the
        average so far: the clock is the wall clock, and a sample during which another
        thread held the GIL (the writer's statement, a switch interval of 5 ms) or the
        process was descheduled would otherwise add hundreds of µs of time that is not
        the wrapper's (a real change still moves the average, a step at a time)."""
        average = self.seconds
        if average:
            seconds = min(seconds, average * _COST_OUTLIER)
            self.seconds = average + (seconds - average) * _COST_SMOOTHING
        else:
            self.seconds = seconds


class TrackingMiddleware:
    """WSGI wrapper around ``app.wsgi_app`` that times whole requests, body included."""

    def __init__(self, wsgi_app, settings):
        self.wsgi_app = wsgi_app
        self.queue = deque()
        self.capacity = settings.queue_size
        #: The writer is woken when this many rows wait (a full batch, or a tenth of a
        #: small queue so that it never fills up); otherwise it wakes on its own timer.
        self.wake_at = max(1, min(settings.batch_size, self.capacity // 10))
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
        returned = perf_counter() if record.measured else 0.0
        # pylint: disable-next=unidiomatic-typecheck  # exactly Werkzeug's, not a subclass
        callbacks = getattr(body, "_callbacks", None) if type(body) is ClosingIterator else None
        if type(callbacks) is list:  # pylint: disable=unidiomatic-typecheck
            # Every Flask response comes back as Werkzeug's ClosingIterator, which calls
            # its callbacks when the server closes it.  Joining them times the body to its
            # end without a wrapper around it (an object and a call less per request);
            # anything else falls back to the wrapper.
            callbacks.append(record.finish)
        else:
            body = TrackedBody(body, record)
        if returned:
            record.measured += perf_counter() - returned
        return body

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
