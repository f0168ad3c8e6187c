"""Tracker's own WSGI wrapper frames, left out of every view of a profile of either engine.

The middlewares that sit between the server and the app (the profiler, query
capture, tracking, the toolbar) would otherwise be the top frames of every
icicle, table and export.  They are named by file and function, so no frame of
the app itself (the demo in ``tracker_07/main`` included) is ever taken out.
"""
import functools
import pstats
import weakref

from . import sampled

#: Tracker's files, by path from the package's parent, and their wrapper functions.  None:
#: every function of the file (a middleware module: all of it is Tracker's own work around
#: the request).  Query capture's module also holds the SQLAlchemy hooks that run inside
#: the app's queries, which are kept: they are time the app's queries really took.
WRAPPER_FUNCTIONS = {
    "tracker_07/profiles/middleware.py": None,
    "tracker_07/tracking/middleware.py": None,
    "tracker_07/toolbar/middleware.py": None,
    "tracker_07/sql/capture.py": frozenset({"__call__"}),
}


def is_wrapper(func):
    """Tell whether a pstats function key is one of Tracker's wrapper frames."""
    names = _wrapper_names(func[0])
    return names is None or func[2] in names


@functools.lru_cache(maxsize=4096)
def _wrapper_names(filename):
    """The wrapper functions of a file (None: all of them; empty: it is not Tracker's).  Looked
    up once per file: a 20,000-function profile has a few hundred files."""
    filename = filename.replace("\\", "/")
    for path, names in WRAPPER_FUNCTIONS.items():
        if filename == path or filename.endswith("/" + path):
            return names
    return frozenset()


def without_wrappers(stats):
    """Return ``stats`` without Tracker's wrapper frames (``stats`` itself when it has none).

    A cProfile profile loses those functions and their caller edges, so what
    they called becomes a root and keeps its own totals; a sampled profile
    loses them from every stack, with the server's frames above the outermost
    one (a sampler sees the thread's whole stack).  The result is a new
    ``pstats.Stats``: loaded profiles are cached and shared, so they are never
    changed.  It is kept for as long as ``stats`` lives, so a cached profile's pages
    and its function panel's requests strip it once.
    """
    kept = _stripped.get(stats)
    if kept is None:
        kept = _strip(stats)
        if kept is not stats:  # a value holding its own key would keep it alive for ever
            _stripped[stats] = kept
    return kept


#: Each profile's stripped copy, for as long as the profile itself is kept.
_stripped = weakref.WeakKeyDictionary()


def _strip(stats):
    """Build what :func:`without_wrappers` returns."""
    data = stats.stats
    if not any(map(is_wrapper, data)):
        return stats
    if sampled.is_sampled(stats):
        stacks = ((request_frames(frames), seconds) for frames, seconds in stats.stacks)
        return sampled.stats_from_stacks([stack for stack in stacks if stack[0]],
                                         interval=stats.interval)
    kept = pstats.Stats()
    kept.stats = {
        func: entry[:4] + ({caller: edge for caller, edge in entry[4].items()
                            if not is_wrapper(caller)},)
        for func, entry in data.items() if not is_wrapper(func)
    }
    kept.files = list(stats.files)
    kept.get_top_level_stats()
    return kept


def request_frames(frames):
    """A stack's frames from Tracker's outermost wrapper on, without Tracker's wrappers."""
    outermost = next((index for index, func in enumerate(frames) if is_wrapper(func)), 0)
    return tuple(func for func in frames[outermost:] if not is_wrapper(func))
