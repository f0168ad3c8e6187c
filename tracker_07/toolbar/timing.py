"""The ``Server-Timing`` header (W3C Server Timing): ``name;dur=12.34;desc="..."``, comma-separated.

Browsers show it in the developer tools' Network panel beside the request.  Every metric
name is a token and every description a quoted string, so any parser of the standard
reads it; descriptions keep to printable ASCII.
"""
import re

from ..profiles.middleware import OUTCOME_KEY
from ..sql.capture import ENVIRON_KEY as SQL_KEY
from ..sql.capture import OPTIONS_KEY as SQL_OPTIONS_KEY

HEADER = "Server-Timing"
#: The header that names the request's saved profile (local clients or credentials only).
PROFILE_HEADER = "X-Tracker-Profile-Id"
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")

#: Why a request was not profiled, for the metric's description.
NOT_PROFILED = {
    "busy": "Not profiled: the profiler was busy with another request",
    "ignored": "Not profiled: the path matches PROFILER_IGNORE",
}


def quoted(text):
    """A quoted-string of RFC 9110: backslash before ``"`` and ``\\``, printable ASCII only."""
    text = _NOT_PRINTABLE.sub("?", text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def metric(name, dur=None, desc=None):
    """One metric: ``name``, then ``;dur=`` in milliseconds and ``;desc=`` when given."""
    text = name
    if dur is not None:
        text += f";dur={dur:.2f}"
    if desc is not None:
        text += ";desc=" + quoted(desc)
    return text


#: The constant parts, quoted once: the header is built on every response.
_TOTAL = ';desc=' + quoted("Request, as Tracker saw it")
_PROFILE = ';desc=' + quoted("Under the profiler")
_PROFILER = ';desc=' + quoted("Profiler report and .prof file")
_TOOLBAR = ';desc=' + quoted("Tracker toolbar")
_NO_SQL = "sql;dur=0.00;desc=" + quoted("0 queries")
_NOT_PROFILED_METRICS = {
    state: metric("profile", desc=text) for state, text in NOT_PROFILED.items()
}


def server_timing(environ, total_ms, toolbar_ms=None):
    """The header's value for one request: its total time, the profiler's share when it was
    profiled (or why not), its SQL time and query count when its queries were captured, and
    the time taken to build the toolbar when one was added."""
    value = f"total;dur={total_ms:.2f}{_TOTAL}"
    outcome = environ.get(OUTCOME_KEY)
    if outcome is not None:
        if outcome.elapsed_ms is not None:
            value += (f", profile;dur={outcome.elapsed_ms:.2f}{_PROFILE}"
                      f", profiler;dur={outcome.profiler_ms:.2f}{_PROFILER}")
        else:
            value += ", " + _NOT_PROFILED_METRICS[outcome.state]
    if SQL_OPTIONS_KEY in environ:
        queries = environ[SQL_KEY]
        if queries is None:
            value += ", " + _NO_SQL
        else:
            count = queries.count
            value += (f', sql;dur={queries.total_ms:.2f};desc="{count} '
                      f'{"query" if count == 1 else "queries"}"')
    if toolbar_ms is not None:
        value += f", toolbar;dur={toolbar_ms:.2f}{_TOOLBAR}"
    return value
