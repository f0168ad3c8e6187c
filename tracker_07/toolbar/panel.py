"""The toolbar's markup: one small tab with the request's time that opens on a panel with the
top functions of the request's profile and links to the dashboard.

It is rendered by its own Jinja environment (the toolbar is added outside Flask's request
context, around the profiler) into a declarative shadow root: the page's styles do not
reach it and its stylesheet does not reach the page.  The markup carries no inline script
or style; the stylesheet and the script are the dashboard's static files.
"""
import heapq
import os

import jinja2
from werkzeug.exceptions import HTTPException

from ..dashboard.blueprint import format_ms as dashboard_ms
from ..profiles import listing
from ..profiles.analysis import function_label
from ..profiles.errors import ProfileNotFound
from ..profiles.middleware import OUTCOME_KEY
from ..sql.analysis import request_findings
from ..sql.capture import ENVIRON_KEY as SQL_KEY
from ..sql.capture import OPTIONS_KEY as SQL_OPTIONS_KEY

#: The session cookie the toolbar's script sets to hide the toolbar; its value is ``hidden``.
HIDE_COOKIE = "tracker_toolbar"
#: How many routes' latest profile ids are remembered for the "compare" link.
MAX_ROUTES = 10_000

_REASONS = {
    "busy": "The profiler was busy with another request (Python 3.12+ profiles one request "
            "at a time; a debugger or a coverage tool can also hold it), so this request "
            "was served unprofiled.",
    "ignored": "This path matches PROFILER_IGNORE, so it is never profiled.",
}
_PROFILER_OFF = ("Profile mode is off: run the profile configuration or set PROFILER_ENABLED "
                 "to see this request's functions here.")


def format_ms(value):
    """Milliseconds for a person: two decimals under 1 ms, then as the dashboard shows them."""
    return f"{value:.2f}" if value < 1 else dashboard_ms(value)


def top_functions(stats, count, own_root):
    """The ``count`` functions with the most time of their own, as rows for the panel.

    :param own_root: the app's folder; functions defined under it are marked as own code.
    """
    data = stats.stats
    total = stats.total_tt or 0.0
    rows = []
    for func, entry in heapq.nlargest(count, data.items(), key=lambda item: item[1][2]):
        filename, lineno, name = func
        builtin = (filename, lineno) == ("~", 0)
        rows.append({
            "name": function_label(func) if builtin else name,
            "where": "" if builtin else f"{os.path.basename(filename)}:{lineno}",
            "file": "" if builtin else filename,
            "own": not builtin and filename.startswith(own_root),
            "calls": entry[1],
            "tottime_ms": entry[2] * 1000.0,
            "cumtime_ms": entry[3] * 1000.0,
            "percent": entry[2] / total * 100.0 if total else 0.0,
        })
    return rows


def database(environ):
    """The request's queries for the toolbar (count, SQL ms, finding kinds), or None when its
    queries were not captured."""
    if SQL_OPTIONS_KEY not in environ:
        return None
    queries = environ[SQL_KEY]
    if queries is None:
        return {"count": 0, "ms": 0.0, "findings": []}
    kinds = {finding["kind"].replace("_", " ") for finding in request_findings(queries)}
    return {"count": queries.count, "ms": queries.total_ms, "findings": sorted(kinds)}


class Panel:
    """Renders the toolbar of one response; one per app."""

    def __init__(self, app, config):
        self.url_map = app.url_map
        self.own_root = os.path.join(app.root_path, "")
        self.top = config["TOOLBAR_TOP_FUNCTIONS"]
        self.folder = config["PROFILER_DIR"] or None
        self.profiler_on = config["PROFILER_ENABLED"]
        self.tracking_on = config["TRACKER_ENABLED"]
        #: ``(method, path)`` -> the id of the route's latest saved profile.
        self.latest = {}
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader(__package__, "templates"), autoescape=True,
            trim_blocks=True, lstrip_blocks=True)
        environment.filters["ms"] = format_ms
        self.template = environment.get_template("toolbar.html")

    def note(self, environ):
        """Remember the request's saved profile as its route's latest; return the one before.

        Called for every profiled response, HTML or not, so the "compare" link of the next
        page of the route finds this one without reading the profile folder.
        """
        outcome = environ.get(OUTCOME_KEY)
        if outcome is None or outcome.profile_id is None:
            return None
        key = (environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""))
        previous = self.latest.get(key)
        if previous is None and self.folder is not None:
            previous = self._previous_in_folder(key, outcome.profile_id)
        if len(self.latest) >= MAX_ROUTES:
            self.latest.clear()
        self.latest[key] = outcome.profile_id
        return previous

    def _previous_in_folder(self, key, profile_id):
        """The route's profile saved before ``profile_id`` (first page of a route since start)."""
        try:
            ids = listing.route_profiles(self.folder, *key)
        except (OSError, ProfileNotFound):
            return None
        earlier = [each for each in ids if each != profile_id]
        return earlier[-1] if earlier else None

    def render(self, environ, status, total_ms, previous=None):
        """Return the toolbar's HTML for one response."""
        adapter = self.url_map.bind_to_environ(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        outcome = environ.get(OUTCOME_KEY)
        try:  # the request's context is gone by now: match its URL rule again
            rule, _arguments = adapter.match(method=method, return_rule=True)
        except HTTPException:  # no rule: a 404, a 405 or a redirect
            rule = None
        links = []
        functions = header = None
        if outcome is None:
            reason = _PROFILER_OFF if not self.profiler_on else "This request was not profiled."
        elif outcome.stats is None:
            reason = _REASONS[outcome.state]
        else:
            reason = None if outcome.profile_id else f"Profiled, not saved: {outcome.reason}."
            functions = top_functions(outcome.stats, self.top, self.own_root)
            header = {"calls": outcome.stats.total_calls,
                      "seconds": outcome.stats.total_tt, "elapsed_ms": outcome.elapsed_ms}
        if outcome is not None and outcome.profile_id:
            links.append(("profile", "Full profile",
                          adapter.build("dashboard.profile", {"profile_id": outcome.profile_id})))
            links.append(("route", "Route, all profiles merged",
                          adapter.build("dashboard.route_profile",
                                        {"method": method, "path": path})))
            if previous is not None:
                links.append(("compare", "Compare with the previous request",
                              adapter.build("dashboard.compare",
                                            {"a": previous, "b": outcome.profile_id})))
        if self.tracking_on and rule is not None:
            links.append(("endpoint", "Endpoint on the dashboard",
                          adapter.build("dashboard.index",
                                        {"endpoint": rule.rule, "method": method})))
        return self.template.render(
            method=method, path=path, status=status, total_ms=total_ms, outcome=outcome,
            reason=reason, functions=functions, header=header, links=links,
            has_previous=previous is not None, database=database(environ),
            css_url=adapter.build("dashboard.static", {"filename": "toolbar.css"}),
            js_url=adapter.build("dashboard.static", {"filename": "toolbar.js"}))
