"""The outermost WSGI wrapper: Server-Timing and the profile id on every response, and the
toolbar added before ``</body>`` of whole HTML pages.

It wraps profile mode's middleware, which leaves each request's outcome in the environ and
starts the response once the profile is saved, so the headers can name the profile.  Only
the clients the dashboard answers (loopback, or the configured credentials) get the toolbar
and the profile id; remote clients get Server-Timing only with ``TRACKER_SERVER_TIMING =
"all"``.  A response is changed only when it is whole HTML: ``text/html`` with a
``Content-Length`` (so never streamed), not a file (``Accept-Ranges``, ``Content-Range``,
``Content-Disposition``), not encoded, not a redirect or an empty status, not a ``HEAD``
and not a dashboard page; a body without ``</body>`` is left alone.
"""
import functools
import logging
import re
import time

from werkzeug.datastructures import Authorization

from ..dashboard import security
from ..profiles.middleware import OUTCOME_KEY
from .panel import HIDE_COOKIE
from .timing import HEADER, PROFILE_HEADER, server_timing

perf_counter = time.perf_counter
logger = logging.getLogger(__name__)

_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)
_NOT_A_PAGE = frozenset(("content-encoding", "content-range", "accept-ranges",
                         "content-disposition"))
_HIDDEN = f"{HIDE_COOKIE}=hidden"
_LOOPBACK = frozenset(("127.0.0.1", "::1"))
#: Parsing an address costs microseconds; a server sees few distinct clients.
_is_loopback = functools.lru_cache(maxsize=4096)(security.is_loopback)


def whole_html(status, headers):
    """Tell whether a response may carry the toolbar: a whole, plain HTML page."""
    code = status[:3]
    if code[:1] in ("1", "3") or code in ("204", "205", "206"):
        return False
    is_html = has_length = False
    for name, value in headers:
        name = name.lower()
        if name == "content-type":
            is_html = value.split(";", 1)[0].strip().lower() == "text/html"
        elif name == "content-length":
            has_length = True
        elif name in _NOT_A_PAGE:
            return False
    return is_html and has_length


def charset_of(headers):
    """The charset the page declares in its Content-Type (UTF-8 when it declares none)."""
    for name, value in headers:
        if name.lower() == "content-type":
            match = re.search(r"charset=\"?([\w.:-]+)", value, re.IGNORECASE)
            if match:
                return match.group(1)
    return "utf-8"


def insert_before_body_end(body, fragment):
    """Put ``fragment`` before the last ``</body>``; None when the body has no ``</body>``."""
    at = body.rfind(b"</body>")
    if at < 0:
        matches = list(_BODY_END.finditer(body))
        if not matches:
            return None
        at = matches[-1].start()
    return body[:at] + fragment + body[at:]


class ToolbarMiddleware:
    """WSGI wrapper that adds Server-Timing, the profile id header and the toolbar."""

    def __init__(self, wsgi_app, panel, config):
        self.wsgi_app = wsgi_app
        #: The :class:`~tracker_07.toolbar.panel.Panel`, or None when the toolbar is off.
        self.panel = panel
        self.credentials = security.credentials(config)
        timing = config["TRACKER_SERVER_TIMING"]
        if timing is None:
            timing = config["TOOLBAR_ENABLED"]
        self.timing = bool(timing)
        self.timing_for_all = timing == "all"
        self.skip_prefix = (config["DASHBOARD_PREFIX"] + "/") if config[
            "DASHBOARD_ENABLED"] else None
        #: How many responses got the toolbar (for tests and the benchmark).
        self.injected = 0

    def __call__(self, environ, start_response):
        exchange = Exchange(self, environ, start_response)
        body = self.wsgi_app(environ, exchange.start_response)
        if exchange.held is None:
            exchange.returned = True
            return body
        return exchange.finish(body)

    def allowed(self, environ):
        """The dashboard's rule, read from the environ (no request context out here)."""
        expected = self.credentials
        if expected is None:
            remote = environ.get("REMOTE_ADDR")
            return remote in _LOOPBACK or _is_loopback(remote)  # the common case first
        authorization = Authorization.from_header(environ.get("HTTP_AUTHORIZATION"))
        return security.client_allowed(expected, environ.get("REMOTE_ADDR"), authorization)

    def wants_toolbar(self, environ, status, headers):
        """Tell whether this response gets the toolbar (the cheap tests first)."""
        return (self.panel is not None
                and environ.get("REQUEST_METHOD") != "HEAD"
                and not (self.skip_prefix is not None
                         and environ.get("PATH_INFO", "").startswith(self.skip_prefix))
                and whole_html(status, headers)
                and _HIDDEN not in environ.get("HTTP_COOKIE", "")
                and self.allowed(environ))


class Exchange:
    """One request passing through: holds a whole HTML response until its toolbar is in."""

    __slots__ = ("middleware", "environ", "server_start_response", "started", "held",
                 "written", "returned", "is_allowed")

    def __init__(self, middleware, environ, start_response):
        self.middleware = middleware
        self.environ = environ
        self.server_start_response = start_response
        self.started = perf_counter()
        self.held = None
        self.written = []
        self.returned = False
        self.is_allowed = None

    def allowed(self):
        """The access rule's answer for this request, worked out once."""
        if self.is_allowed is None:
            self.is_allowed = self.middleware.allowed(self.environ)
        return self.is_allowed

    def start_response(self, status, headers, exc_info=None):
        """Hold a page that gets the toolbar; add the headers to anything else and pass it on.

        A response started only once the body is iterated (a generator app) is passed on:
        it is streamed, so it is never changed.
        """
        middleware = self.middleware
        if middleware.panel is not None:
            previous = middleware.panel.note(self.environ)
            if not self.returned and middleware.wants_toolbar(self.environ, status, headers):
                self.is_allowed = True
                self.held = (status, headers, exc_info, previous)
                return self.written.append
        self.held = None
        return self.server_start_response(status, self.headers(headers), exc_info)

    def headers(self, headers, toolbar_ms=None):
        """``headers`` with Server-Timing and the profile id added where this client may see
        them."""
        middleware = self.middleware
        if not middleware.timing or not (middleware.timing_for_all or self.allowed()):
            return headers
        total_ms = (perf_counter() - self.started) * 1000.0
        headers = list(headers)
        headers.append((HEADER, server_timing(self.environ, total_ms, toolbar_ms)))
        outcome = self.environ.get(OUTCOME_KEY)
        if outcome is not None and outcome.profile_id is not None and self.allowed():
            headers.append((PROFILE_HEADER, outcome.profile_id))
        return headers

    def finish(self, body):
        """Read the held page whole, add the toolbar before ``</body>``, then start it."""
        self.returned = True
        status, headers, exc_info, previous = self.held
        try:
            chunks = self.written + list(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        page = b"".join(chunks)
        building = perf_counter()
        total_ms = (building - self.started) * 1000.0
        try:
            html = self.middleware.panel.render(self.environ, status, total_ms, previous)
        except Exception:  # pylint: disable=broad-exception-caught  # the page must still go out
            logger.exception("The Tracker toolbar could not be built; the page goes without it")
            html = None
        changed = None if html is None else insert_before_body_end(
            page, html.strip().encode(charset_of(headers), "xmlcharrefreplace"))
        toolbar_ms = None
        if changed is not None:
            page = changed
            self.middleware.injected += 1
            toolbar_ms = (perf_counter() - building) * 1000.0
            headers = [(name, value) for name, value in headers
                       if name.lower() not in ("content-length", "etag")]
            headers.append(("Content-Length", str(len(page))))
        self.server_start_response(status, self.headers(headers, toolbar_ms), exc_info)
        return [page]
