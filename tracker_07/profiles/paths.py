"""Views that follow call paths, for either engine: the flame tree, collapsed stacks, speedscope.

A sampled profile keeps whole stacks (:mod:`.sampled`), so its views are built
from them: every tree node is one true call path, and a function reached
through two paths shows each path's own time.  A cProfile profile keeps only
caller->callee totals, so its views are :mod:`.analysis`'s honest ones.  Both
trees have the same node shape, so the dashboard draws either.
"""
import collections

from . import analysis, kinds, sampled


def flame_tree(stats, *, min_fraction=analysis.DEFAULT_MIN_FRACTION,
               max_nodes=analysis.DEFAULT_MAX_NODES, start=None):
    """Build the flame tree of a profile of either engine (see :func:`stack_tree`).

    ``start`` starts the tree at that function (its key); the tree then names it
    in ``start``.
    """
    if sampled.is_sampled(stats):
        tree = stack_tree(stats, min_fraction=min_fraction, max_nodes=max_nodes, start=start)
    else:
        tree = analysis.flame_tree(stats, min_fraction=min_fraction, max_nodes=max_nodes,
                                   start=start)
    tree["start"] = None if start is None else {
        "func_id": analysis.function_id(start), "label": analysis.function_label(start)}
    return tree


def collapsed_stacks(stats):
    """Return ``root;child;leaf <microseconds>`` lines: for a sampled profile one per stack."""
    if not sampled.is_sampled(stats):
        return analysis.collapsed_stacks(stats)
    lines = []
    for frames, seconds in stats.stacks:
        microseconds = round(seconds * 1_000_000)
        if frames and microseconds > 0:
            labels = (analysis.frame_name(analysis.function_label(func)) for func in frames)
            lines.append(f"{';'.join(labels)} {microseconds}")
    return lines


def speedscope(stats, name):
    """Return the profile in speedscope's file format (a sampled one: its own stacks)."""
    if not sampled.is_sampled(stats):
        return analysis.speedscope(stats, name)
    return sampled.to_speedscope(stats.stacks, name=name, interval=stats.interval)


def _branches(stacks, start):
    """Fold stacks into a tree of ``{"time", "self", "children": {func: branch}}``.

    With ``start``, only stacks through it count, from its first frame on.
    """
    top = {"time": 0.0, "self": 0.0, "children": {}}
    for frames, seconds in stacks:
        if start is not None:
            if start not in frames:
                continue
            frames = frames[frames.index(start):]
        if not frames:
            continue
        top["time"] += seconds
        branch = top
        for func in frames:
            branch = branch["children"].setdefault(
                func, {"time": 0.0, "self": 0.0, "children": {}})
            branch["time"] += seconds
        branch["self"] += seconds
    return top


def _node(node_id, func, branch, parent, data):
    """Make one flame tree node: ``func`` on one call path, with that path's times."""
    label = analysis.function_label(func)
    return {
        "id": node_id,
        "func_id": analysis.function_id(func),
        "label": label,
        "name": func[2],
        "filename": func[0],
        "lineno": func[1],
        "calls": 0,
        "time": branch["time"],
        "self_time": branch["self"],
        "callers": len(analysis.other_callers(data, func)),
        "split_unknown": False,
        "recursive": func == parent.get("func"),
        "virtual": False,
        "sql": parent["sql"] or kinds.is_sql(label),
        "children": [],
        "hidden_children": 0,
        "hidden_time": 0.0,
    }


def _widest_first(branch):
    """A branch's children as ``(func, branch)``, most time first, then by label."""
    return sorted(branch["children"].items(),
                  key=lambda item: (-item[1]["time"], analysis.function_label(item[0])))


def _hide(tree, parent, time):
    """Count a child left out of the tree on its parent and on the tree."""
    parent["hidden_children"] += 1
    parent["hidden_time"] += time
    tree["hidden_nodes"] += 1
    tree["hidden_time"] += time


def stack_tree(stats, *, min_fraction=analysis.DEFAULT_MIN_FRACTION,
               max_nodes=analysis.DEFAULT_MAX_NODES, start=None):
    """Build a sampled profile's flame tree from its stacks: every node a true call path.

    Same shape and hiding as :func:`analysis.flame_tree` (``min_fraction``,
    ``max_nodes``, breadth-first ids ``n0``...), but no node is ever
    ``split_unknown``; ``calls`` is 0 (a sampler does not count calls) and
    ``recursive`` marks a function called by itself.
    """
    top = _branches(stats.stacks, start)
    root = {"id": "n0", "func_id": None, "label": "all", "name": "all", "filename": "",
            "lineno": 0, "calls": len(top["children"]), "time": top["time"],
            "self_time": 0.0, "callers": 0, "split_unknown": False, "recursive": False,
            "virtual": True, "sql": False, "children": [], "hidden_children": 0,
            "hidden_time": 0.0}
    tree = {"root": root, "total": root["time"], "node_count": 1, "hidden_nodes": 0,
            "hidden_time": 0.0, "min_fraction": min_fraction, "max_nodes": max_nodes}
    min_time = min_fraction * root["time"]
    queue = collections.deque([(root, None, top)])
    while queue:
        parent, parent_func, branch = queue.popleft()
        for func, child in _widest_first(branch):
            if child["time"] < min_time or (
                    max_nodes is not None and tree["node_count"] >= max_nodes):
                _hide(tree, parent, child["time"])
                continue
            node = _node(f"n{tree['node_count']}", func, child,
                         {"sql": parent["sql"], "func": parent_func}, stats.stats)
            tree["node_count"] += 1
            parent["children"].append(node)
            queue.append((node, func, child))
    return tree


def request_tree(stats, record, **options):
    """Build a saved request's flame tree, started at its view when other threads mixed in.

    On Python 3.12+ one cProfile records every thread, so a profile taken while
    other requests ran holds their calls too; its tree starts at the request's
    view function (``record["view"]``, ``[file, line, name]``) when the profile
    has it.  ``start_note`` says why the tree starts there, or why it could not.
    """
    start, note = _overlap_start(stats, record)
    if start is not None:
        stats = single_caller_totals(analysis.stats_dict(stats))
    tree = flame_tree(stats, start=start, **options)
    if start is not None and not _explained(tree["root"]["children"][0]):
        note = (f"The call tree starts at the request's view function {start[2]} and cannot be "
                f"drawn below it: {_mixed(record)}, and its callees' times are mixed with theirs. "
                "Profile with PROFILER_ENGINE=sampling, or serve with --without-threads, for "
                "its call tree.")
    tree["start_note"] = note
    return tree


def _explained(node):
    """Tell whether a node's drawn children, hidden ones and own time make up half its time."""
    covered = node["self_time"] + node["hidden_time"] + sum(
        child["time"] for child in node["children"])
    return covered >= 0.5 * node["time"]


def _overlap_start(stats, record):
    """Return ``(view function or None, note or None)`` for :func:`request_tree`."""
    overlapped = record.get("overlapped")
    if sampled.is_sampled(stats) or not overlapped or not _mixes_threads(record.get("python")):
        return None, None
    mixed = _mixed(record)
    view = record.get("view")
    if not (isinstance(view, list) and len(view) == 3):
        return None, f"{mixed}; its view function was not recorded, so the tree shows them all."
    func = tuple(view)
    if func not in analysis.stats_dict(stats):
        return None, (f"{mixed}; its view function {analysis.function_label(func)} is not in "
                      "the profile, so the tree shows them all.")
    return func, (f"The call tree starts at the request's view function {func[2]}: {mixed}. "
                  "Functions that those requests called too still add up their calls in it.")


def _mixed(record):
    """Say why an overlapped profile holds other requests' calls."""
    return (f"{record['overlapped']} other request(s) ran during this one, and on Python 3.12+ "
            "one profiler records every thread, so their calls are mixed into this profile")


def _mixes_threads(python):
    """Tell whether a profile taken on this Python version records every thread (3.12+).

    A record without a readable version is taken to, which only starts its tree at its view.
    """
    try:
        return tuple(int(part) for part in str(python).split(".")[:2]) >= (3, 12)
    except ValueError:
        return True


def single_caller_totals(data):
    """Give each function with one caller (recursion aside) its own totals on that edge.

    With every thread in one cProfile (3.12+), calls of several threads
    interleave on its one call stack, and the edge times it records come out
    wrong (often 0 calls, 0 s) while the callers themselves mostly hold.  A
    function with a single caller spent all its time there, so its own totals
    are that edge's; in a one-thread profile they are the same, recursion aside
    (then the outer edge gets every level's calls and own time).
    """
    repaired = {}
    for func, entry in data.items():
        callers = analysis.other_callers(data, func)
        if len(callers) == 1 and isinstance(entry[4][callers[0]], tuple):
            own_edge = (entry[1], entry[0], entry[2], entry[3])  # an edge's order: calls first
            entry = entry[:4] + ({**entry[4], callers[0]: own_edge},)
        repaired[func] = entry
    return repaired
