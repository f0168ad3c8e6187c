"""Capture: the queries each request runs on the engines Tracker watches.

:class:`QueryCapture` wraps the app's WSGI callable and puts each request's WSGI environ
in a context variable; the request's first query creates its :class:`RequestQueries` in
the environ, where tracking and profile mode read it (a request that runs no query costs
one context variable set and reset, and allocates nothing).  :func:`watch` adds two
listeners to an engine, ``before_cursor_execute`` and ``after_cursor_execute``: when a
query runs outside a request (a script, the tracking writer) they return at once; inside
one they time the driver's execute (one query is one ``execute`` or ``executemany``) and
note the raw statement, the rows where the driver knows them, the app's call site and a
hash of the parameters (their values only with ``TRACKER_SQL_PARAMS``).  Normalising,
grouping and findings wait until someone reads them (:mod:`.analysis`).
"""
import contextvars
import logging
import threading
import time
import weakref

from sqlalchemy import event

from .callsite import display_file, find_site

perf_counter = time.perf_counter

#: Where a request's :class:`RequestQueries` is in the WSGI environ (None until a query).
ENVIRON_KEY = "tracker.sql"
#: Where the app's :class:`CaptureOptions` are in the environ of a captured request.
OPTIONS_KEY = "tracker.sql.options"
#: The environ of the request being served in this context (None: capture nothing).
CURRENT = contextvars.ContextVar("tracker_sql_environ", default=None)
#: Engines with Tracker's listeners (weakly: an engine disposed of is forgotten).
_watched = weakref.WeakSet()
#: Held while listeners are added or removed, so two first requests never add them twice.
_watch_lock = threading.Lock()


class Query:
    """One driver execute: statement, seconds, rows (None when unknown), call site
    ``(file, line, function)`` or None, parameters' hash and (if kept) their text."""

    __slots__ = ("statement", "seconds", "rows", "site", "params_key", "params", "many")

    def __init__(self, statement, seconds, rows, site, params_key, params, many):
        self.statement = statement
        self.seconds = seconds
        self.rows = rows
        self.site = site
        self.params_key = params_key
        self.params = params
        self.many = many


class CaptureOptions:
    """What a watched app asks of capture (read once per request, not per query)."""

    __slots__ = ("keep_params", "slow_ms", "slow_seconds", "n_plus_one", "max_queries", "logger")

    def __init__(self, *, keep_params=False, slow_ms=100.0, n_plus_one=5, max_queries=10_000,
                 logger=None):
        self.keep_params = keep_params
        self.slow_ms = slow_ms
        self.slow_seconds = slow_ms / 1000.0 if slow_ms else float("inf")
        self.n_plus_one = n_plus_one
        self.max_queries = max_queries
        self.logger = logger or logging.getLogger("tracker_07.sql")


class RequestQueries:
    """The queries of one request: a list kept in order, and running totals."""

    __slots__ = ("options", "queries", "count", "seconds", "started", "method", "path")

    def __init__(self, options, method="", path=""):
        self.options = options
        self.queries = []
        self.count = 0
        self.seconds = 0.0
        self.started = None
        self.method = method
        self.path = path

    @property
    def total_ms(self):
        """SQL time of the request so far, in milliseconds."""
        return self.seconds * 1000.0

    def add(self, statement, seconds, rows, parameters, many):
        """Record one finished query (called by the engine listener)."""
        self.count += 1
        self.seconds += seconds
        options = self.options
        site = find_site()
        if len(self.queries) < options.max_queries:
            self.queries.append(Query(statement, seconds, rows, site, hash_params(parameters),
                                      repr(parameters) if options.keep_params else None, many))
        if seconds >= options.slow_seconds:
            self.log_slow(statement, seconds, site, parameters)

    def log_slow(self, statement, seconds, site, parameters):
        """Warn about a slow query on the app's logger, with its statement and context."""
        where = (f"{display_file(site[0])}:{site[1]} in {site[2]}()"
                 if site is not None else "an unknown line")
        params = f" with parameters {parameters!r}" if self.options.keep_params else ""
        self.options.logger.warning(
            "Slow query: %.1f ms at %s during %s %s: %s%s", seconds * 1000.0, where,
            self.method, self.path, " ".join(statement.split()), params)


def hash_params(parameters):
    """A hash that is equal for equal parameters (values are not kept by it)."""
    try:
        return hash(parameters)
    except TypeError:  # dicts and lists
        return hash(repr(parameters))


def _before_cursor_execute(_conn, _cursor, _statement, _parameters, _context, _many):
    environ = CURRENT.get()
    if environ is None:
        return
    queries = environ[ENVIRON_KEY]
    if queries is None:  # the request's first query
        queries = environ[ENVIRON_KEY] = RequestQueries(
            environ[OPTIONS_KEY], environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
    queries.started = perf_counter()


def _after_cursor_execute(_conn, cursor, statement, parameters, _context, many):
    ended = perf_counter()
    environ = CURRENT.get()
    if environ is None:
        return
    queries = environ[ENVIRON_KEY]
    if queries is None or queries.started is None:
        return
    seconds = ended - queries.started
    queries.started = None
    rows = getattr(cursor, "rowcount", -1)
    queries.add(statement, seconds, rows if isinstance(rows, int) and rows >= 0 else None,
                parameters, many)


def watch(engine):
    """Capture the queries of ``engine`` (a SQLAlchemy ``Engine``) from now on; repeat-safe.

    :return: True if the engine was not watched before.
    """
    with _watch_lock:
        if engine in _watched:
            return False
        event.listen(engine, "before_cursor_execute", _before_cursor_execute)
        event.listen(engine, "after_cursor_execute", _after_cursor_execute)
        _watched.add(engine)
        return True


def unwatch(engine):
    """Stop capturing ``engine``'s queries."""
    with _watch_lock:
        if engine not in _watched:
            return False
        event.remove(engine, "before_cursor_execute", _before_cursor_execute)
        event.remove(engine, "after_cursor_execute", _after_cursor_execute)
        _watched.discard(engine)
        return True


def is_watched(engine):
    """Tell whether ``engine``'s queries are captured."""
    return engine in _watched


class QueryCapture:
    """WSGI wrapper that lets each request's queries be collected into its environ."""

    def __init__(self, wsgi_app, options, before_first=None):
        self.wsgi_app = wsgi_app
        self.options = options
        self._before_first = before_first

    def __call__(self, environ, start_response):
        if self._before_first is not None:
            before_first, self._before_first = self._before_first, None
            before_first()
        environ[ENVIRON_KEY] = None
        environ[OPTIONS_KEY] = self.options
        token = CURRENT.set(environ)
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            CURRENT.reset(token)


def is_captured(environ):
    """Tell whether a request went through :class:`QueryCapture` (so no queries means 0)."""
    return OPTIONS_KEY in environ


def collect(options=None):
    """Collect queries outside a request: ``with collect() as queries: ...`` (scripts, tests)."""
    queries = RequestQueries(options or CaptureOptions())
    return _Collecting({ENVIRON_KEY: queries, OPTIONS_KEY: queries.options}, queries)


def paused():
    """Capture nothing inside ``with paused(): ...`` (set-up work that is not the page's)."""
    return _Collecting(None, None)


class _Collecting:
    """Context manager behind :func:`collect` and :func:`paused`."""

    def __init__(self, environ, queries):
        self.environ = environ
        self.queries = queries
        self._token = None

    def __enter__(self):
        self._token = CURRENT.set(self.environ)
        return self.queries

    def __exit__(self, *exc_info):
        CURRENT.reset(self._token)
