"""Apps for the sampling engine's tests: twenty routes with twenty named functions, and paths.

``flask --app "tracker_07.tests.sampling_app:create_app()" run --with-threads`` serves
``/work/00`` ... ``/work/19``; each runs its own function ``work_00`` ... ``work_19``,
which keeps the CPU busy for ``SAMPLING_WORK_MS`` (default 150 ms) so that requests
overlap.  ``/paths`` runs ``c()`` for 4 units through ``a()`` and 1 unit through
``b() -> a()``.  Settings come from ``FLASK_*`` variables (``FLASK_PROFILER_DIR``).
"""
import os
import time

from flask import Flask

from tracker_07 import Tracker

ROUTES = 20
#: One unit of ``/paths``: long enough for tens of samples at 1 ms.
UNIT_SECONDS = 0.04


def busy(seconds):
    """Keep the CPU busy for ``seconds`` of wall time, the time a sampler measures (it sees
    this thread running Python code throughout)."""
    ended = time.perf_counter() + seconds
    while time.perf_counter() < ended:
        pass


def _work(seconds):
    """The body of every ``work_NN`` function (each gets its own name)."""
    busy(seconds)


def named_work(number):
    """A copy of ``_work`` whose code is called ``work_NN``, as profilers name it."""
    name = f"work_{number:02d}"
    function = type(_work)(_work.__code__.replace(co_name=name, co_qualname=name),
                           _work.__globals__, name)
    return function


def c(units):
    """The function reached through two paths: one busy unit at a time, so that a wait for
    the CPU at the end of a unit (a busy machine) stretches both paths alike."""
    for _ in range(units):
        busy(UNIT_SECONDS)


def a(units):
    """Calls c directly."""
    c(units)


def b():
    """Calls c through a, for one unit."""
    a(1)


def create_app():
    """The test app with Tracker attached (settings from the environment)."""
    app = Flask(__name__)
    app.config.update(TRACKER_ENABLED=False, DASHBOARD_ENABLED=False, PROFILER_ENABLED=True,
                      PROFILER_ENGINE="sampling")
    app.config.from_prefixed_env()
    seconds = float(os.environ.get("SAMPLING_WORK_MS", "150")) / 1000.0
    for number in range(ROUTES):
        app.add_url_rule(f"/work/{number:02d}", f"work_{number:02d}",
                         _view(named_work(number), seconds))

    @app.route("/paths")
    def paths():
        a(4)
        b()
        return "paths"

    Tracker(app)
    return app


def _view(work, seconds):
    """A view that runs ``work``."""
    def view():
        work(seconds)
        return work.__name__

    return view
