"""Profile mode: every request through Werkzeug's ``ProfilerMiddleware``, made safe for threads.

With ``PROFILER_ENABLED`` (set by the ``profile`` configuration), :func:`init_app`
wraps ``app.wsgi_app`` in :class:`SafeProfilerMiddleware`, a drop-in subclass of
Werkzeug's middleware (see :mod:`tracker_07.profiles.middleware`).  Every request
is profiled and its report printed as the original README shows; its ``.prof``
file is saved in ``PROFILER_DIR``.  ``PROFILER_SORT_BY``, ``PROFILER_RESTRICTIONS``,
``PROFILER_IGNORE``, ``PROFILER_MIN_MS``, ``PROFILER_PRINT`` and the retention
settings tune it.  ``PROFILER_ENGINE`` picks cProfile (the default) or the sampling
engine, which profiles every request, overlapping ones too, every
``PROFILER_INTERVAL_MS``.  Each report names its saved profile and, with the dashboard on, the
URL of its page (``PROFILE: <id> <url>``).  A request that cannot be profiled (Python
3.12+ allows one cProfile per process) is served normally, counted as not profiled in
the folder and named on the console.
Each request's view function goes into its record (``view``).  Usage::

    app.config.update(PROFILER_ENABLED=True, PROFILER_DIR="profiles")
    profiler.init_app(app)
"""
import inspect
import os
import re
import sys
from urllib.parse import quote

from flask import request, request_started
from werkzeug.wsgi import get_current_url

from . import settings
from .profiles.middleware import VIEW_KEY, ONE_PROFILER_PER_PROCESS, SafeProfilerMiddleware
from .profiles.retention import FolderRetention

__all__ = ["ONE_PROFILER_PER_PROCESS", "SafeProfilerMiddleware", "init_app"]


def init_app(app, stream=None):
    """Wrap ``app.wsgi_app`` in the profiler when ``PROFILER_ENABLED`` is set.

    Reports go to ``stream``, by default the standard output at the time of this call.
    """
    folder = settings.apply(app)["PROFILER_DIR"] or None  # absolute, or "" for print only
    if not app.config["PROFILER_ENABLED"]:
        return None
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise settings.ConfigError(f"PROFILER_DIR {folder!r} cannot be the profile folder: "
                                       f"{error.strerror or error}.") from None
    patterns = app.config["PROFILER_IGNORE"] + settings.dashboard_paths(app.config)
    middleware = SafeProfilerMiddleware(
        app.wsgi_app,
        stream=(sys.stdout if stream is None else stream) if app.config["PROFILER_PRINT"] else None,
        sort_by=app.config["PROFILER_SORT_BY"],
        restrictions=app.config["PROFILER_RESTRICTIONS"],
        profile_dir=folder,
        ignore=re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None,
        min_ms=app.config["PROFILER_MIN_MS"],
        engine=app.config["PROFILER_ENGINE"],
        interval=app.config["PROFILER_INTERVAL_MS"] / 1000.0,
    )
    request_started.connect(note_view, app)
    if folder is not None and (app.config["PROFILER_MAX_FILES"]
                               or app.config["PROFILER_RETENTION_DAYS"]):
        middleware.retention = FolderRetention(folder, app.config["PROFILER_MAX_FILES"],
                                               app.config["PROFILER_RETENTION_DAYS"])
        middleware.retention.apply()
    if app.config["DASHBOARD_ENABLED"]:
        middleware.page_url = profile_page_url(app.config["DASHBOARD_PREFIX"])
    app.wsgi_app = middleware
    app.extensions["tracker_profiler"] = middleware
    return middleware


def note_view(app, **_extra):
    """Put the request's view function in its environ, for the profile's record."""
    view = app.view_functions.get(request.endpoint)
    if view is not None:
        request.environ[VIEW_KEY] = view_key(view)


def view_key(view):
    """``[file, line, name]`` of a view function, as pstats names it, or None."""
    view_class = getattr(view, "view_class", None)
    function = inspect.unwrap(view_class.dispatch_request if view_class else view)
    code = getattr(function, "__code__", None)
    return None if code is None else [code.co_filename, code.co_firstlineno, code.co_name]


def profile_page_url(prefix):
    """Build ``page_url(environ, profile_id)``: the dashboard page of a saved profile, as
    an absolute URL on the host the request came to, for the console report."""
    def page_url(environ, profile_id):
        root = get_current_url(environ, root_only=True).rstrip("/")
        return f"{root}{prefix}/profiles/{quote(profile_id, safe='')}"

    return page_url
