"""What the profile page shows of each function: ms, percent, short name, kind and labels.

Pure functions over the rows of ``analysis.table``, the nodes of ``analysis.flame_tree`` and
the rectangles of ``charts.flame_rects``, so both engines (cProfile and sampling) look alike.
"""
from ..profiles import analysis, frames
from . import charts

HOTTEST = 5
#: How far up the heaviest callers the page looks for the app's own code.
MAX_CALLER_STEPS = 60


def describe(classifier, filename, lineno, name):
    """Return a function's display fields: kind, short location and the full one."""
    kind, short, full = classifier.describe(filename, lineno)
    if (filename, lineno) == ("~", 0):  # as pstats prints it: {method 'count' of 'list' objects}
        name = analysis.function_label((filename, lineno, name))
    return {"kind": kind, "short": short, "full": full, "name": name}


def share(seconds, total):
    """Return a time's fraction of the total (0 when the total is 0)."""
    return seconds / total if total and seconds else 0.0


def decorate_row(row, classifier, total):
    """Add to a table (or edge) row what the page shows: kind, names, ms and percents."""
    shown = dict(row, **describe(classifier, *analysis_key(row)))
    shown["own_fraction"] = share(row.get("tottime"), total)
    shown["cum_fraction"] = share(row.get("cumtime"), total)
    shown.update(own_ms=frames.format_ms(row.get("tottime")),
                 own_pct=frames.format_percent(shown["own_fraction"]),
                 cum_ms=frames.format_ms(row.get("cumtime")),
                 cum_pct=frames.format_percent(shown["cum_fraction"]))
    return shown


def analysis_key(row):
    """Return ``(filename, lineno, name)`` of a table row or of an edge row (from its label)."""
    if "filename" in row:
        return row["filename"], row["lineno"], row["name"]
    return split_label(row["label"])


def split_label(label):
    """Split a pstats label ``file:line(name)`` back into its parts (built-ins: ``~``, 0)."""
    if label.startswith("{") or label.endswith("}") or "(" not in label:
        return "~", 0, label
    location, _, name = label.partition("(")
    filename, _, lineno = location.rpartition(":")
    if not filename or not lineno.isdigit():
        return "~", 0, label
    return filename, int(lineno), name[:-1] if name.endswith(")") else name


def own_caller(data, func, classifier):
    """Follow the heaviest caller of ``func`` up to the first function of the app's own code."""
    seen = {func}
    for _ in range(MAX_CALLER_STEPS):
        callers = [(caller, analysis.edge_numbers(edge)[3] or 0.0)
                   for caller, edge in data[func][4].items() if caller not in seen]
        if not callers:
            return None
        func = max(callers, key=lambda pair: pair[1])[0]
        if classifier.kind(func[0], func[1]) == frames.OWN:
            return func
        seen.add(func)
    return None


def hottest(stats, classifier, total, count=HOTTEST):
    """Return the functions with the most own time, each with its nearest own-code caller."""
    data = analysis.stats_dict(stats)
    rows = analysis.table(stats, sort="tottime", limit=count)["rows"]
    found = []
    for row in rows[:count]:
        if row["tottime"] <= 0:
            break
        shown = decorate_row(row, classifier, total)
        func = (row["filename"], row["lineno"], row["name"])
        caller = None if shown["kind"] == frames.OWN else own_caller(data, func, classifier)
        shown["own_caller"] = None if caller is None else dict(
            describe(classifier, *caller), id=analysis.function_id(caller))
        found.append(shown)
    return found


def is_own_node(classifier):
    """Return the test ``frames.fold_to_own`` needs: the root and own-code frames stay."""
    def test(node):
        return node["virtual"] or classifier.kind(node["filename"], node["lineno"]) == frames.OWN
    return test


def frame_text(name, ms_text, percent_text, width):
    """Fit a frame's label to its width: name, ms and percent, else the name cut with ``…``."""
    chars = int((width - 6) // charts.CHAR_WIDTH)
    full = f"{name} {ms_text} ms {percent_text}"
    if len(full) <= chars:
        return full
    if chars < 3:
        return ""
    return name if len(name) <= chars else name[: chars - 1] + "…"


def decorate_rects(rects, nodes, classifier, total):
    """Add kind, names, ms, percent and a fitting label to each icicle rectangle."""
    shown = []
    for rect in rects:
        node = nodes[rect["node_id"]]
        fields = describe(classifier, node["filename"], node["lineno"], node["name"])
        if rect["virtual"]:
            fields["kind"] = "root"
        ms_text = frames.format_ms(rect["time"])
        percent_text = frames.format_percent(share(rect["time"], total))
        name = "all" if rect["virtual"] else fields["name"]
        shown.append(dict(rect, **dict(fields, name=name), ms=ms_text, percent=percent_text,
                          text=frame_text(name, ms_text, percent_text, rect["width"])))
    return shown


def parents(tree):
    """Map every node id of a flame tree to its node and its parent's id."""
    nodes, parent_of = {}, {}
    for node, ancestors in analysis.iter_tree(tree["root"]):
        nodes[node["id"]] = node
        parent_of[node["id"]] = ancestors[-1]["id"] if ancestors else ""
    return nodes, parent_of
