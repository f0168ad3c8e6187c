"""Pure views of pstats data: table, callers/callees, honest flame tree, diff and exports.

Every function takes a ``pstats.Stats`` or its ``.stats`` dict, which maps a
function ``(filename, lineno, name)`` to ``(cc, nc, tt, ct, callers)``:
primitive calls, calls, own time, cumulative time, and for every caller the
edge ``(nc, cc, tt, ct)`` -- the callee's calls, primitive calls, own time and
cumulative time when called from that caller (note the order: calls first).

cProfile keeps only these caller->callee edge totals, never whole call paths.
So the flame tree below expands a function only when it has exactly one
caller; a function with several callers is drawn with its edge time and marked
``split_unknown`` instead of guessing how its callees' time divides between
the paths (tuna does the same; snakeviz guesses).  A sampled profile keeps
whole stacks: :mod:`.paths` draws its tree and exports from them, and is what
pages call for either engine.

One module past 350 lines because every view here reads the same pstats tuples
through the same few key and edge helpers, and none of it touches Flask or files.
"""
import collections
import hashlib
import heapq
import itertools
import pstats

from . import kinds, sampled

EXPORTER = sampled.EXPORTER

#: A change of at most this many seconds, or of at most NOISE_RATIO of the
#: larger side, is reported as "same": timer jitter and cache effects alone
#: move a function's time by a few percent between two runs.
NOISE_SECONDS = 0.0001
NOISE_RATIO = 0.05

DEFAULT_MIN_FRACTION = 0.005
DEFAULT_MAX_NODES = 3000

TABLE_SORT_KEYS = {
    "ncalls": lambda row: row["calls"],
    "calls": lambda row: row["calls"],
    "primitive_calls": lambda row: row["primitive_calls"],
    "tottime": lambda row: row["tottime"],
    "tottime_percall": lambda row: row["tottime_percall"],
    "cumtime": lambda row: row["cumtime"],
    "cumtime_percall": lambda row: row["cumtime_percall"],
    "label": lambda row: row["label"],
    "filename": lambda row: row["filename"],
    "lineno": lambda row: row["lineno"],
    "name": lambda row: row["name"],
}
DIFF_KEYS = ("tottime", "cumtime")
#: A compared function found on one side only is new (after only) or gone (before only).
ONE_SIDE_STATUS = {"after": "new", "before": "gone"}


class UnknownFunction(LookupError):
    """No function of the profile has the given function id."""


def stats_dict(stats):
    """Accept a ``pstats.Stats`` or its raw dict so callers need not care which they hold."""
    return getattr(stats, "stats", stats)


def function_id(func):
    """Give a function a short id that is stable across profiles, safe in URLs."""
    text = repr(tuple(func)).encode("utf-8", "backslashreplace")
    return hashlib.blake2b(text, digest_size=8).hexdigest()


def function_label(func):
    """Format a function exactly as pstats prints it (``file:line(name)``, ``{built-in ...}``)."""
    return pstats.func_std_string(func)


def ncalls_text(calls, primitive_calls):
    """Format a call count as pstats does: ``26/3`` when there were recursive calls."""
    return str(calls) if calls == primitive_calls else f"{calls}/{primitive_calls}"


def header(stats):
    """Return the numbers of pstats' ``N function calls (M primitive calls) in S seconds``."""
    calls = primitive_calls = 0
    total_time = 0.0
    # Added one by one like pstats does (sum() of floats is compensated since 3.12).
    for entry in stats_dict(stats).values():
        primitive_calls += entry[0]
        calls += entry[1]
        total_time += entry[2]
    return {"calls": calls, "primitive_calls": primitive_calls, "total_time": total_time}


def function_row(func, entry):
    """Describe one function with the columns of pstats' table."""
    primitive_calls, calls, tottime, cumtime = entry[:4]
    return {
        "id": function_id(func),
        "label": function_label(func),
        "filename": func[0],
        "lineno": func[1],
        "name": func[2],
        "builtin": tuple(func[:2]) == ("~", 0),
        "ncalls": ncalls_text(calls, primitive_calls),
        "calls": calls,
        "primitive_calls": primitive_calls,
        "tottime": tottime,
        "tottime_percall": tottime / calls if calls else 0.0,
        "cumtime": cumtime,
        "cumtime_percall": cumtime / primitive_calls if primitive_calls else 0.0,
    }


#: How to read each table sort key straight from a ``(func, entry)`` pair, without a row.
ENTRY_SORT_KEYS = {
    "ncalls": lambda func, entry: entry[1],
    "calls": lambda func, entry: entry[1],
    "primitive_calls": lambda func, entry: entry[0],
    "tottime": lambda func, entry: entry[2],
    "tottime_percall": lambda func, entry: entry[2] / entry[1] if entry[1] else 0.0,
    "cumtime": lambda func, entry: entry[3],
    "cumtime_percall": lambda func, entry: entry[3] / entry[0] if entry[0] else 0.0,
    "lineno": lambda func, entry: func[1],
}


def table(stats, *, sort="tottime", descending=True, limit=30, text=None):
    """Return pstats' table as rows, sorted by any column, filtered by label text and limited.

    ``total`` is the number of functions, ``matched`` the number left by
    ``text``; pstats would say "List reduced from total to len(rows)".  Rows
    are built only for the functions shown: with a numeric sort and a limit,
    the shown ones (and their ties) are picked from the raw entries first.
    """
    if sort not in TABLE_SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; allowed: {', '.join(TABLE_SORT_KEYS)}")
    data = stats_dict(stats)
    items = data.items()
    if text:
        needle = text.casefold()
        items = [(func, entry) for func, entry in items
                 if needle in function_label(func).casefold()]
    matched = len(items)
    if limit is not None and sort in ENTRY_SORT_KEYS:
        items = _top_entries(items, ENTRY_SORT_KEYS[sort], descending, max(0, limit))
    rows = [function_row(func, entry) for func, entry in items]
    rows.sort(key=lambda row: row["label"])
    rows.sort(key=TABLE_SORT_KEYS[sort], reverse=descending)
    if limit is not None:
        rows = rows[: max(0, limit)]
    return {
        "rows": rows,
        "total": len(data),
        "matched": matched,
        "sort": sort,
        "descending": descending,
        "header": header(data),
    }


def _top_entries(items, key, descending, limit):
    """Pick the ``limit`` first entries by a numeric key, with every entry tied with the last.

    Ties are kept because their order depends on the label, which is made
    only for the entries picked here.
    """
    if limit == 0:
        return []
    values = [key(func, entry) for func, entry in items]
    if len(values) <= limit:
        return list(items)
    pick = heapq.nlargest if descending else heapq.nsmallest
    bound = pick(limit, values)[-1]
    if descending:
        return [item for item, value in zip(items, values) if value >= bound]
    return [item for item, value in zip(items, values) if value <= bound]


def find_function(stats, func_id):
    """Return the ``(filename, lineno, name)`` key whose id is ``func_id``."""
    for func in stats_dict(stats):
        if function_id(func) == func_id:
            return func
    raise UnknownFunction(f"no function {func_id!r} in this profile")


def edge_numbers(edge):
    """Split a callers value into calls, primitive calls, own and cumulative time.

    cProfile stores ``(nc, cc, tt, ct)``; the pure-Python ``profile`` module
    stores only a call count, so its times are None (unknown).
    """
    if isinstance(edge, tuple):
        calls, primitive_calls, tottime, cumtime = edge
        return calls, primitive_calls, tottime, cumtime
    return edge, edge, None, None


def edge_row(func, edge):
    """Describe one caller->callee edge: the other function and the numbers of this edge."""
    calls, primitive_calls, tottime, cumtime = edge_numbers(edge)
    return {
        "id": function_id(func),
        "label": function_label(func),
        "ncalls": ncalls_text(calls, primitive_calls),
        "calls": calls,
        "primitive_calls": primitive_calls,
        "tottime": tottime,
        "cumtime": cumtime,
    }


def _by_cumtime(rows):
    """Order edge rows by cumulative time, largest first, unknown times last."""
    rows.sort(key=lambda row: row["label"])
    rows.sort(key=lambda row: (row["cumtime"] is not None, row["cumtime"] or 0.0), reverse=True)
    return rows


def callers_callees(stats, func_id):
    """Return a function's row, who called it (per edge) and what it called (per edge)."""
    data = stats_dict(stats)
    func = find_function(data, func_id)
    callers = [edge_row(caller, edge) for caller, edge in data[func][4].items()]
    callees = [
        edge_row(callee, entry[4][func]) for callee, entry in data.items() if func in entry[4]
    ]
    return {
        "function": function_row(func, data[func]),
        "callers": _by_cumtime(callers),
        "callees": _by_cumtime(callees),
    }


def callees_index(data):
    """Invert the callers dicts: for each function, its ``(callee, edge)`` pairs."""
    callees = collections.defaultdict(list)
    for callee, entry in data.items():
        for caller, edge in entry[4].items():
            callees[caller].append((callee, edge))
    return {func: callees.get(func, []) for func in data}


def other_callers(data, func):
    """Return the callers of ``func`` other than itself (direct recursion is not a path)."""
    return [caller for caller in data[func][4] if caller != func]


def root_functions(data):
    """Return the functions nobody called: the starts of every call path in the profile."""
    return [func for func, entry in data.items()
            if not entry[4] or (len(entry[4]) == 1 and func in entry[4])]


def _edge_times(data, func, edge):
    """Return calls, own and cumulative time of ``func`` along one edge.

    For the ``profile`` module's count-only edges the times are known only when
    the function has a single caller (then the edge is the whole function).
    """
    calls, _, tottime, cumtime = edge_numbers(edge)
    if cumtime is None:
        whole = len(other_callers(data, func)) == 1
        tottime, cumtime = (data[func][2], data[func][3]) if whole else (0.0, 0.0)
    return calls, tottime, cumtime


def child_candidates(data, edges):
    """Describe the possible children of a node, widest first, from ``(func, edge)`` pairs.

    An edge of None stands for a root: the function's own totals are used.
    """
    candidates = []
    for func, edge in edges:
        if edge is None:
            calls, tottime, cumtime = data[func][1], data[func][2], data[func][3]
        else:
            calls, tottime, cumtime = _edge_times(data, func, edge)
        candidates.append(
            {"func": func, "label": function_label(func), "calls": calls,
             "tottime": tottime, "cumtime": cumtime}
        )
    candidates.sort(key=lambda candidate: (-candidate["cumtime"], candidate["label"]))
    return candidates


def _tree_node(node_id, data, candidate):
    """Make one flame tree node for a function reached along one edge."""
    func = candidate["func"]
    callers = len(other_callers(data, func))
    return {
        "id": node_id,
        "func_id": function_id(func),
        "label": candidate["label"],
        "name": func[2],
        "filename": func[0],
        "lineno": func[1],
        "calls": candidate["calls"],
        "time": candidate["cumtime"],
        "self_time": candidate["tottime"],
        "callers": callers,
        "split_unknown": callers > 1,
        "recursive": func in data[func][4],
        "virtual": False,
        "children": [],
        "hidden_children": 0,
        "hidden_time": 0.0,
    }


def _virtual_root(root_count, total):
    """Make the ``all`` node that holds the profile's root functions side by side."""
    return {
        "id": "n0",
        "func_id": None,
        "label": "all",
        "name": "all",
        "filename": "",
        "lineno": 0,
        "calls": root_count,
        "time": total,
        "self_time": 0.0,
        "callers": 0,
        "split_unknown": False,
        "recursive": False,
        "virtual": True,
        "sql": False,
        "children": [],
        "hidden_children": 0,
        "hidden_time": 0.0,
    }


def _hide(tree, parent, time):
    """Count a child left out of the tree on its parent and on the tree."""
    parent["hidden_children"] += 1
    parent["hidden_time"] += time
    tree["hidden_nodes"] += 1
    tree["hidden_time"] += time


def _is_full(tree):
    """Tell whether the tree has reached its node limit."""
    return tree["max_nodes"] is not None and tree["node_count"] >= tree["max_nodes"]


def flame_tree(stats, *, min_fraction=DEFAULT_MIN_FRACTION, max_nodes=DEFAULT_MAX_NODES,
               start=None):
    """Build the call tree a flame graph may honestly draw from caller->callee totals.

    The virtual root ``all`` holds every function without callers.  A node is a
    function reached along one edge with that edge's time; its children are
    expanded only if the function has exactly one caller (direct recursion
    aside), since only then do all its callee edges belong to this path.  A
    function with N > 1 callers is a leaf with ``split_unknown`` and
    ``callers: N``.  Direct recursive calls are folded into the outer call
    (``recursive``).  Children under ``min_fraction`` of the total, or beyond
    ``max_nodes`` nodes (None: no limit), are left out and counted in their
    parent's ``hidden_children`` / ``hidden_time`` and the tree's
    ``hidden_nodes`` / ``hidden_time`` (their own subtrees are never visited).
    Node ids are ``n0`` (the root), ``n1``... in breadth-first order.  A node
    is ``sql`` when it or a frame above it is the database driver's execute.
    ``start`` (a function of the profile) makes that function, expanded, the
    only root: the request's own view in a profile that mixes other threads in.
    """
    data = stats_dict(stats)
    if start is not None and start not in data:
        raise UnknownFunction(f"no function {function_label(start)} in this profile")
    callees = callees_index(data)
    roots = root_functions(data) if start is None else [start]
    root = _virtual_root(len(roots), sum(data[func][3] for func in roots))
    tree = {
        "root": root,
        "total": root["time"],
        "node_count": 1,
        "hidden_nodes": 0,
        "hidden_time": 0.0,
        "min_fraction": min_fraction,
        "max_nodes": max_nodes,
    }
    min_time = min_fraction * root["time"]
    queue = collections.deque([(root, [(func, None) for func in roots])])
    while queue:
        parent, edges = queue.popleft()
        for candidate in child_candidates(data, edges):
            if candidate["cumtime"] < min_time or _is_full(tree):
                _hide(tree, parent, candidate["cumtime"])
                continue
            node = _tree_node(f"n{tree['node_count']}", data, candidate)
            node["sql"] = parent["sql"] or kinds.is_sql(node["label"])
            if start is not None and parent is root:
                node["split_unknown"] = False
            tree["node_count"] += 1
            parent["children"].append(node)
            if not node["split_unknown"]:
                queue.append((node, [pair for pair in callees[candidate["func"]]
                                     if pair[0] != candidate["func"]]))
    return tree


def iter_tree(root):
    """Yield ``(node, ancestors)`` depth first, without recursion (call chains can be deep)."""
    stack = [(root, ())]
    while stack:
        node, ancestors = stack.pop()
        yield node, ancestors
        path = ancestors + (node,)
        stack.extend((child, path) for child in reversed(node["children"]))


def own_time(node):
    """Return the time a flame export gives a node's own frame.

    An expanded node gets its time minus its drawn children (own time plus
    anything hidden); an unexpanded ``split_unknown`` node gets its whole time.
    """
    if node["split_unknown"]:
        return node["time"]
    return max(0.0, node["time"] - sum(child["time"] for child in node["children"]))


def diff_status(before, after):
    """Call a change improved, regressed or same, ignoring changes within the noise threshold."""
    delta = after - before
    if abs(delta) <= max(NOISE_SECONDS, NOISE_RATIO * max(abs(before), abs(after))):
        return "same"
    return "regressed" if delta > 0 else "improved"


def _diff_row(func, before_entry, after_entry):
    """Compare one function's calls and times in two profiles (a missing side counts as 0)."""
    empty = (0, 0, 0.0, 0.0, {})
    before_entry = before_entry or empty
    after_entry = after_entry or empty
    return {
        "id": function_id(func),
        "label": function_label(func),
        "before_calls": before_entry[1],
        "after_calls": after_entry[1],
        "before_tottime": before_entry[2],
        "after_tottime": after_entry[2],
        "delta_tottime": after_entry[2] - before_entry[2],
        "before_cumtime": before_entry[3],
        "after_cumtime": after_entry[3],
        "delta_cumtime": after_entry[3] - before_entry[3],
    }


def diff(before, after, *, key="tottime"):
    """Compare two profiles function by function, biggest change of ``key`` first.

    Each row is marked ``improved``/``regressed``/``same`` by ``key`` (see
    NOISE_SECONDS and NOISE_RATIO), or ``new``/``gone`` when the function is in
    the after/before profile only; ``only_in`` names that side (else None).
    """
    if key not in DIFF_KEYS:
        raise ValueError(f"unknown diff key {key!r}; allowed: {', '.join(DIFF_KEYS)}")
    before_data, after_data = stats_dict(before), stats_dict(after)
    rows = []
    for func in dict.fromkeys(itertools.chain(before_data, after_data)):
        row = _diff_row(func, before_data.get(func), after_data.get(func))
        row["only_in"] = (
            None
            if func in before_data and func in after_data
            else ("before" if func in before_data else "after")
        )
        row["status"] = (ONE_SIDE_STATUS[row["only_in"]] if row["only_in"]
                         else diff_status(row[f"before_{key}"], row[f"after_{key}"]))
        rows.append(row)
    rows.sort(key=lambda row: row["label"])
    rows.sort(key=lambda row: abs(row[f"delta_{key}"]), reverse=True)
    before_header, after_header = header(before_data), header(after_data)
    return {
        "key": key,
        "rows": rows,
        "totals": {
            "before": before_header,
            "after": after_header,
            "delta_time": after_header["total_time"] - before_header["total_time"],
            "status": diff_status(before_header["total_time"], after_header["total_time"]),
        },
    }


def frame_name(label):
    """Make a label safe as one frame of a collapsed stack (no ``;``, no line breaks)."""
    return label.replace(";", ",").replace("\r", " ").replace("\n", " ")


def collapsed_stacks(stats):
    """Return ``root;child;leaf <microseconds>`` lines for flamegraph.pl and speedscope.

    Built from the honest flame tree with nothing hidden: each node's line
    carries its ``own_time`` -- for a ``split_unknown`` node, its whole time,
    since how that time divides further is unknown.  Zero lines are left out.
    """
    tree = flame_tree(stats, min_fraction=0.0, max_nodes=None)
    lines = []
    for node, ancestors in iter_tree(tree["root"]):
        if node["virtual"]:
            continue
        microseconds = round(own_time(node) * 1_000_000)
        if microseconds > 0:
            frames = [frame_name(n["label"]) for n in ancestors[1:] + (node,)]
            lines.append(f"{';'.join(frames)} {microseconds}")
    return lines


def speedscope_frame(node):
    """Describe a node's function as a speedscope frame (built-ins have no file)."""
    if node["filename"] == "~" and node["lineno"] == 0:
        return {"name": node["label"]}
    return {"name": node["name"], "file": node["filename"], "line": node["lineno"]}


def speedscope(stats, name):
    """Return the profile in speedscope's file format: one sampled profile of the honest tree."""
    tree = flame_tree(stats, min_fraction=0.0, max_nodes=None)
    frames, frame_index = [], {}
    samples, weights = [], []
    for node, ancestors in iter_tree(tree["root"]):
        if node["virtual"]:
            continue
        if node["func_id"] not in frame_index:
            frame_index[node["func_id"]] = len(frames)
            frames.append(speedscope_frame(node))
        weight = own_time(node)
        if weight > 0:
            samples.append([frame_index[n["func_id"]] for n in ancestors[1:] + (node,)])
            weights.append(weight)
    return sampled.speedscope_file(frames, samples, weights, name=name, exporter=EXPORTER)
