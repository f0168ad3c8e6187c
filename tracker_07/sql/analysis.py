"""What a request's queries mean: normalised statements, groups, findings, and the text
blocks that show them.

* **N+1**: one normalised statement run at least ``n_plus_one`` times (5) from one call
  site in one request (an ``executemany`` is one query of many rows, never an N+1: the
  ORM sends a flush's inserts that way, in batches).  A loop nested in a loop gives one
  finding per level, as each level is its own statement at its own line.
* **duplicate**: one statement run more than once with the same parameters (not
  counting ``executemany`` batches).
* **slow**: a query that took at least ``slow_ms`` (``TRACKER_SLOW_QUERY_MS``, 100 ms),
  grouped by statement and call site.

Each finding says what to do.
"""
import functools
import re

from .callsite import display_file

N_PLUS_ONE_MIN = 5
#: How much of a statement the profile keeps (whole statements stay in the app's log); the
#: profile's line in the folder's index holds them, and the list reads every line.
STATEMENT_LENGTH = 1000
#: How many statement groups a profile keeps (the busiest by time; the totals stay exact).
MAX_STATEMENTS = 25

_PLACEHOLDER = r"(?:\?|%s|%\(\w+\)s|:\w+|\$\d+)"
_LIST_OF_PLACEHOLDERS = re.compile(
    rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER})+\s*\)")
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.$])-?\d+(?:\.\d+)?(?![\w.])")
_SPACE = re.compile(r"\s+")

ADVICE = {
    "n_plus_one": (
        "The same query ran {count} times from one line, once per item: load them together. "
        "For a relationship, eager-load it in the query that fetches the items "
        "(.options(selectinload(Parent.children)) or joinedload, or a join); for a query "
        "per item, one query with IN (...) for all of them."),
    "duplicate": (
        "The same query with the same parameters ran {count} times: run it once and reuse "
        "the result (keep it in a variable, or cache it with Flask-Caching)."),
    "slow": (
        "This query took {max_ms:.0f} ms (at least {slow_ms:g} ms): look at its plan (EXPLAIN), "
        "add an index on the columns it filters, joins or sorts on, fetch only the rows and "
        "columns the page shows, or cache the result (Flask-Caching) if it rarely changes."),
}
KIND_ORDER = {"n_plus_one": 0, "slow": 1, "duplicate": 2}
KIND_LABELS = {"n_plus_one": "N+1", "slow": "Slow", "duplicate": "Duplicate"}


@functools.lru_cache(maxsize=2048)
def normalise(statement):
    """One line per statement, literals and lists of placeholders folded:
    ``SELECT * FROM t WHERE id IN (?, ?, ?) AND x = 'a'`` becomes
    ``SELECT * FROM t WHERE id IN (...) AND x = ?``."""
    text = _STRING.sub("?", statement)
    text = _NUMBER.sub("?", text)
    text = _LIST_OF_PLACEHOLDERS.sub("(...)", text)
    return _SPACE.sub(" ", text).strip()


def site_dict(site, base=None):
    """``{"file", "line", "function"}`` of a call site (None stays None)."""
    if site is None:
        return None
    return {"file": display_file(site[0], base), "line": site[1], "function": site[2]}


class _Group:
    """Running totals of queries that share a key."""

    __slots__ = ("statement", "site", "count", "seconds", "max_seconds", "rows", "params")

    def __init__(self, statement, site, params):
        self.statement = statement
        self.site = site
        self.count = 0
        self.seconds = 0.0
        self.max_seconds = 0.0
        self.rows = None
        self.params = params

    def add(self, query):
        """Fold one query in."""
        self.count += 1
        self.seconds += query.seconds
        self.max_seconds = max(self.max_seconds, query.seconds)
        if query.rows is not None:
            self.rows = (self.rows or 0) + query.rows


def _grouped(queries, key):
    """Group ``queries`` by ``key(query, statement)``, keeping first-seen order."""
    groups = {}
    for query in queries:
        statement = normalise(query.statement)
        group_key = key(query, statement)
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = _Group(statement, query.site, query.params)
        group.add(query)
    return groups


def findings(queries, slow_ms=100.0, n_plus_one=N_PLUS_ONE_MIN, base=None):
    """The findings of one request's queries (:class:`~.capture.Query` objects), worst first.

    Each is a dict with ``kind``, ``statement``, ``count``, ``total_ms``, ``site`` and
    ``advice``.
    """
    result = []
    single = [query for query in queries if not query.many]
    for group in _grouped(single, lambda query, statement: (statement, query.site)).values():
        if group.count >= n_plus_one:
            result.append(_finding("n_plus_one", group, base, slow_ms))
    for group in _grouped(single, lambda query, statement: (statement,
                                                           query.params_key)).values():
        if group.count > 1:
            result.append(_finding("duplicate", group, base, slow_ms))
    if slow_ms:
        slow = [query for query in queries if query.seconds * 1000.0 >= slow_ms]
        for group in _grouped(slow, lambda query, statement: (statement, query.site)).values():
            result.append(_finding("slow", group, base, slow_ms))
    result.sort(key=lambda item: (KIND_ORDER[item["kind"]], -item["total_ms"]))
    return result


def _finding(kind, group, base, slow_ms):
    """A finding's dict from the group it was found in."""
    max_ms = group.max_seconds * 1000.0
    return {
        "kind": kind,
        "statement": group.statement[:STATEMENT_LENGTH],
        "count": group.count,
        "total_ms": round(group.seconds * 1000.0, 3),
        "site": site_dict(group.site, base),
        "advice": ADVICE[kind].format(count=group.count, max_ms=max_ms, slow_ms=slow_ms),
    }


def statements(queries, base=None, limit=MAX_STATEMENTS):
    """Queries grouped by statement and call site, most time first."""
    groups = sorted(_grouped(queries, lambda query, statement: (statement, query.site)).values(),
                    key=lambda group: -group.seconds)
    result = []
    for group in groups[:limit]:
        item = {
            "statement": group.statement[:STATEMENT_LENGTH],
            "count": group.count,
            "total_ms": round(group.seconds * 1000.0, 3),
            "max_ms": round(group.max_seconds * 1000.0, 3),
            "rows": group.rows,
            "site": site_dict(group.site, base),
        }
        if group.params is not None:
            item["params"] = group.params[:STATEMENT_LENGTH]
        result.append(item)
    return result


def summarise(request_queries, base=None):
    """A request's ``queries`` (count, total_ms, statements) and ``findings``, as JSON data,
    with the thresholds of its :class:`~.capture.CaptureOptions`."""
    queries = request_queries.queries
    options = request_queries.options
    return {
        "queries": {
            "count": request_queries.count,
            "total_ms": round(request_queries.total_ms, 3),
            "statements": statements(queries, base),
        },
        "findings": findings(queries, options.slow_ms, options.n_plus_one, base),
    }


def request_findings(request_queries):
    """The findings of a request's queries with the thresholds of its capture options."""
    options = request_queries.options
    return findings(request_queries.queries, options.slow_ms, options.n_plus_one)


def findings_count(request_queries):
    """How many findings a request's queries give (what tracking stores per request)."""
    return len(request_findings(request_queries))


def where(site):
    """``file:line (function)`` of a site dict, for text."""
    if not site:
        return "an unknown line"
    return f"{site['file']}:{site['line']} ({site['function']})"


def console_block(summary, elapsed_ms):
    """The console report's database block: query count, SQL time, findings."""
    queries = summary["queries"]
    share = queries["total_ms"] / elapsed_ms * 100.0 if elapsed_ms else 0.0
    lines = [f"SQL: {queries['count']} queries in {queries['total_ms']:.1f} ms "
             f"({share:.0f}% of the request)"]
    for finding in summary["findings"]:
        lines.append(f"  {KIND_LABELS[finding['kind']]}: {finding['count']} x "
                     f"{finding['total_ms']:.1f} ms at {where(finding['site'])}: "
                     f"{_short(finding['statement'])}")
        lines.append(f"    {finding['advice']}")
    if not summary["findings"]:
        lines.append("  No N+1, duplicate or slow queries.")
    return "\n".join(lines) + "\n"


def _short(statement, width=100):
    """A statement cut to ``width`` characters for one console line."""
    return statement if len(statement) <= width else statement[: width - 1] + "…"
