"""The console report of a sampled profile: a top-down call tree in ms and percent.

A pstats table of a sampled profile would show no call counts and hide the paths
the sampler recorded; this tree shows each path, heaviest first, with its time
and its share of the request, and leaves out what took less than ``MIN_PERCENT``.
"""

MIN_PERCENT = 1.0
INDENT = "  "


def build_tree(stacks):
    """Add up stacks into nested ``{func: [seconds, children]}`` dicts, outermost first."""
    root = {}
    for frames, seconds in stacks:
        level = root
        for func in frames:
            node = level.setdefault(func, [0.0, {}])
            node[0] += seconds
            level = node[1]
    return root


def short_place(func):
    """``package/module.py:12`` for a function key (built-ins have no place)."""
    filename, line, _name = func
    if (filename, line) == ("~", 0):
        return "built-in"
    parts = filename.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{line}" if len(parts) > 1 else f"{filename}:{line}"


def tree_lines(stacks, total_seconds, min_percent=MIN_PERCENT):
    """Render the tree: one line per call path above ``min_percent`` of ``total_seconds``.

    ``total_seconds`` is the request's time (100%); a branch below the cut is left out
    with everything under it.
    """
    if total_seconds <= 0:
        return []
    lines = [f"{'ms':>9} {'%':>6}  function (file:line), callees indented"]
    pending = [(0, func, node) for func, node in _heaviest(build_tree(stacks))]
    pending.reverse()
    while pending:
        depth, func, (seconds, children) = pending.pop()
        percent = 100.0 * seconds / total_seconds
        if percent < min_percent:
            continue
        lines.append(f"{seconds * 1000:9.1f} {percent:5.1f}%  {INDENT * depth}{func[2]}"
                     f"  ({short_place(func)})")
        pending.extend((depth + 1, child, node) for child, node in reversed(_heaviest(children)))
    return lines


def _heaviest(level):
    """A level's functions, heaviest first."""
    return sorted(level.items(), key=lambda item: -item[1][0])


def report(stacks, elapsed_ms, interval, samples):
    """The whole tree section of a sampled profile's console report, as one string."""
    header = (f"Sampled call tree: {samples} samples every {interval * 1000:g} ms; "
              f"{elapsed_ms:.1f} ms = 100%; paths under {MIN_PERCENT:g}% left out.")
    return "\n".join([header, *tree_lines(stacks, elapsed_ms / 1000.0)]) + "\n"
