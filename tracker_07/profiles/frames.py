"""How a profile page names and colours functions: ms and percent text, short file names,
the kind of code (own, library, standard library, built-in) and the own-code-only tree.

Pure: every path list is given by the caller, so the rules are testable without an app.
"""
import os
import sys
import sysconfig

OWN, LIBRARY, STDLIB, BUILTIN = "own", "library", "stdlib", "builtin"
KINDS = (OWN, LIBRARY, STDLIB, BUILTIN)
#: Folders that hold installed distributions, wherever they sit (also inside a project).
PACKAGE_FOLDERS = ("site-packages", "dist-packages")
TRACKER_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Tracker's demo app: own code when it is the app being profiled, although inside Tracker.
TRACKER_DEMO = os.path.join(TRACKER_PACKAGE, "main")


#: Milliseconds from each bound up get this many decimals (about three significant digits).
MS_DECIMALS = ((100, "{:,.0f}"), (10, "{:.1f}"), (1, "{:.2f}"), (0.1, "{:.3f}"))


def format_ms(seconds):
    """Format seconds as milliseconds with about three significant digits (``<0.01`` when tiny)."""
    if seconds is None:
        return "—"
    ms = seconds * 1000
    if ms == 0:
        return "0"
    if ms < 0.01:
        return "<0.01"
    pattern = next((pattern for bound, pattern in MS_DECIMALS if ms >= bound), "{:.2g}")
    return pattern.format(ms)


def format_percent(fraction):
    """Format a share of the total as a percent: one decimal below 10%, ``<0.1%`` when tiny."""
    percent = fraction * 100
    if percent == 0:
        return "0%"
    if percent < 0.1:
        return "<0.1%"
    return f"{percent:.1f}%" if percent < 10 else f"{percent:.0f}%"


def _folder(path):
    """Normalise a folder so that prefix tests match whole path segments."""
    return os.path.join(os.path.normcase(os.path.abspath(path)), "")


def _under(path, folders):
    """Tell whether a normalised file path lies in one of the normalised folders."""
    return any(path.startswith(folder) for folder in folders)


def stdlib_folders():
    """Return the folders of this interpreter's standard library."""
    paths = sysconfig.get_paths()
    return tuple(dict.fromkeys(paths[key] for key in ("stdlib", "platstdlib") if paths.get(key)))


class Classifier:
    """Name and sort the files of one app's profiles: short names and kinds, cached per file."""

    def __init__(self, own_roots, *, import_roots=None, stdlib=None, not_own=(TRACKER_PACKAGE,),
                 own_inside=(TRACKER_DEMO,)):
        """``own_roots``: the app's folders; ``not_own`` folders inside them are not the app's
        (Tracker itself) unless in ``own_inside`` (its demo); ``import_roots`` are where
        imports start (``sys.path`` by default), which short names are relative to."""
        self.own_roots = tuple(_folder(root) for root in own_roots if root)
        self.not_own = tuple(_folder(root) for root in not_own)
        self.own_inside = tuple(_folder(root) for root in own_inside)
        self.stdlib = tuple(_folder(root) for root in (stdlib_folders() if stdlib is None
                                                       else stdlib))
        roots = sys.path if import_roots is None else import_roots
        roots = [root for root in roots if root] + [os.path.dirname(r.rstrip(os.sep))
                                                   for r in self.own_roots]
        # Longest first, so a site-packages inside a project wins over the project.
        self.import_roots = sorted({_folder(root) for root in roots} | set(self.stdlib),
                                   key=len, reverse=True)
        self._cache = {}

    def describe(self, filename, lineno):
        """Return ``(kind, short location, full location)`` of a function's file and line."""
        key = (filename, lineno)
        if key not in self._cache:
            self._cache[key] = self._describe(filename, lineno)
        return self._cache[key]

    def kind(self, filename, lineno=1):
        """Return the kind of code a file holds: own, library, stdlib or builtin."""
        return self.describe(filename, lineno)[0]

    def _describe(self, filename, lineno):
        if (filename, lineno) == ("~", 0) or filename == "<built-in>":
            return BUILTIN, "", ""
        full = f"{filename}:{lineno}"
        if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>, <template>
            return (STDLIB if filename.startswith("<frozen ") else LIBRARY), full, full
        return self._kind_of_path(filename), f"{self.short_path(filename)}:{lineno}", full

    def _kind_of_path(self, filename):
        path = os.path.normcase(os.path.abspath(filename))
        parts = path.split(os.sep)
        if any(folder in parts for folder in PACKAGE_FOLDERS):
            return LIBRARY
        if _under(path, self.own_roots) and (
                not _under(path, self.not_own) or _under(path, self.own_inside)):
            return OWN
        return STDLIB if _under(path, self.stdlib) else LIBRARY

    def short_path(self, filename):
        """Return a file's path relative to the import root that holds it, with ``/``."""
        path = os.path.normcase(os.path.abspath(filename))
        for root in self.import_roots:
            if path.startswith(root):
                return os.path.abspath(filename)[len(root):].replace(os.sep, "/")
        return filename.replace(os.sep, "/")


def fold_to_own(tree, is_own):
    """Return a copy of a flame tree that keeps only own-code frames (and the root).

    Every other frame is folded into its nearest kept caller: its time not spent
    in own code is added to that caller's ``self_time`` and its own-code callees
    become the caller's children.  Children of one parent that are the same
    function are merged (times added), so a view reached through two library
    paths is one frame.  ``is_own(node)`` decides; widest children first.
    """
    root = dict(tree["root"], children=[])
    stack = [(tree["root"], root)]
    while stack:
        original, kept = stack.pop()
        merged = {}
        for child in _own_descendants(original, kept, is_own):
            twin = merged.get(child["func_id"])
            if twin is None:
                merged[child["func_id"]] = (dict(child, children=[]), [child])
            else:
                twin[0]["time"] += child["time"]
                twin[0]["self_time"] += child["self_time"]
                twin[0]["calls"] += child["calls"]
                twin[1].append(child)
        kept["children"] = sorted((copy for copy, _ in merged.values()),
                                  key=lambda node: -node["time"])
        for copy, sources in merged.values():
            stack.append(({"children": [c for s in sources for c in s["children"]]}, copy))
    return dict(tree, root=root, folded=True)


def _own_descendants(node, kept, is_own):
    """Yield the nearest own-code frames under ``node``; add the rest's own time to ``kept``."""
    stack = list(reversed(node["children"]))  # in tree order: the first twin gives its id
    while stack:
        child = stack.pop()
        if is_own(child):
            yield child
            continue
        drawn = sum(grandchild["time"] for grandchild in child["children"])
        kept["self_time"] += max(0.0, child["time"] - drawn)
        stack.extend(reversed(child["children"]))
