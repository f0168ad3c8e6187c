"""What the request path costs a request in this process, all of it, measured once.

The request path times its own code on every 64th request, but a request pays more than
that code: calling into it, the record's creation and finaliser, and the caches its code
and data take from the app's.  No timer inside the path sees those, so the first time the
dashboard asks, a private one-route Werkzeug app (routing, request and response: the core
of a Flask request, without Flask's signals, which other extensions may listen to) is
called here with and without Tracker's wrapper, in interleaved blocks, and the difference
of this thread's CPU is the whole cost per warm request.  The path's own timings in that
run tell how much of it they see, and the live figure is scaled by how much slower (or
faster) those timings run live.
"""
import threading
import time
from dataclasses import dataclass, replace

from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from .middleware import TrackingMiddleware, ignore_matcher

#: Blocks of each kind, interleaved; the cheapest block of each kind is compared, as
#: anything else the machine does can only add to a block's time.
ROUNDS = 12
REQUESTS_PER_BLOCK = 200
CALIBRATION_PATH = "/tracker-calibration/1"


@dataclass(frozen=True)
class Calibration:
    """One calibration: the wrapper's whole cost and what its own timings said, per request."""

    added_seconds: float
    sampled_seconds: float
    recorded: int
    cpu_seconds: float

    def request_path_seconds(self, live_sampled):
        """The whole request path per live request: the calibrated cost scaled by the
        path's own timings live against the same timings here (0 before any live one).
        The whole is never less than the part its timings see, whatever the noise."""
        if not live_sampled or not self.sampled_seconds:
            return 0.0
        return max(self.added_seconds, self.sampled_seconds) * live_sampled / self.sampled_seconds


def _ignore_nothing_tracked(settings):
    """``settings`` for the calibration's wrapper: every request recorded, never a wake-up,
    the app's own ignore patterns unless they would skip the calibration's path."""
    ignore = () if ignore_matcher(settings.ignore)(CALIBRATION_PATH) else settings.ignore
    return replace(settings, ignore=ignore, sample_rate=1.0,
                   queue_size=10 * (REQUESTS_PER_BLOCK + 1), batch_size=REQUESTS_PER_BLOCK + 1)


class _RoutedRequest(Request):
    """A request that notes its URL rule, as Flask's does (the request path reads it)."""

    url_rule = None


_URL_MAP = Map([Rule("/tracker-calibration/<int:number>", endpoint="calibration")])


def _calibration_app(environ, start_response):
    """The private app: route the request, answer "ok"."""
    request = _RoutedRequest(environ)
    request.url_rule, _arguments = _URL_MAP.bind_to_environ(environ).match(return_rule=True)
    return Response("ok")(environ, start_response)


def calibrate(settings):
    """Measure the wrapper around the private app in this thread (some 0.1 s of CPU); its
    records go to a queue of its own that is thrown away."""
    cpu_started = time.thread_time()
    bare = _calibration_app
    wrapped = TrackingMiddleware(bare, _ignore_nothing_tracked(settings))
    environ = EnvironBuilder(path=CALIBRATION_PATH).get_environ()

    def start_response(_status, _headers, _exc_info=None):
        return None

    def block(wsgi_app):
        started = time.thread_time()
        for _ in range(REQUESTS_PER_BLOCK):
            body = wsgi_app(dict(environ), start_response)
            for _chunk in body:
                pass
            body.close()
        return time.thread_time() - started

    block(bare)  # warm-up: the first request compiles the URL map's rule
    block(wrapped)
    wrapped.queue.clear()
    wrapped.cost.seconds = 0.0
    bare_blocks, wrapped_blocks, recorded = [], [], 0
    for _ in range(ROUNDS):
        bare_blocks.append(block(bare))
        wrapped_blocks.append(block(wrapped))
        recorded += len(wrapped.queue)
        wrapped.queue.clear()
    added = max(min(wrapped_blocks) - min(bare_blocks), 0.0) / REQUESTS_PER_BLOCK
    return Calibration(added_seconds=added, sampled_seconds=wrapped.cost.seconds,
                       recorded=recorded, cpu_seconds=time.thread_time() - cpu_started)


class Calibrated:
    """The process's calibration, made the first time it is needed (once, under a lock)."""

    def __init__(self, settings):
        self.settings = settings
        self.calibration = None
        self._lock = threading.Lock()

    def get(self):
        """The calibration, measured now if this is the first call."""
        with self._lock:
            if self.calibration is None:
                self.calibration = calibrate(self.settings)
            return self.calibration
