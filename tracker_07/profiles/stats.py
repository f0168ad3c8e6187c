"""Load saved profiles as ``pstats.Stats``: validated, cached and merged.

``.prof`` files are cProfile's pstats data; ``.speedscope.json`` files are sampled
profiles (:mod:`tracker_07.profiles.sampled`), whose Stats also carry their stacks.
A profile folder may hold truncated, foreign or hand-made files; every kind
of bad data becomes one CorruptProfile that names the file, never a traceback.
"""
import functools
import itertools
import marshal
import operator
import os
import pstats

from . import sampled
from .errors import CorruptProfile, MixedEngines, ProfileNotFound
from .files import is_sampled

STATS_CACHE_SIZE = 8


def load_stats(path, stream=None):
    """Load a profile file as ``pstats.Stats``; any kind of bad data raises CorruptProfile.

    ``stream`` is where the Stats object prints its reports (default stdout).
    """
    name = os.path.basename(path)
    if is_sampled(name):
        try:
            stats = sampled.load(path, name)
        except FileNotFoundError as error:
            raise ProfileNotFound(f"{name}: no such file") from error
        except OSError as error:
            raise CorruptProfile(f"{name}: not a sampled profile ({_reason(error)})") from error
        stats.stream = stream
        stats.files = [path]
        return stats
    try:
        with open(path, "rb") as file:
            # One read, then loads: marshal.load on a file reads it in many small pieces.
            data = marshal.loads(file.read())
    except FileNotFoundError as error:
        raise ProfileNotFound(f"{name}: no such file") from error
    except (EOFError, ValueError, TypeError, OSError) as error:
        raise CorruptProfile(f"{name}: not pstats data ({_reason(error)})") from error
    problem = stats_problem(data)
    if problem:
        raise CorruptProfile(f"{name}: not pstats data ({problem})")
    stats = pstats.Stats(stream=stream)
    stats.stats = data
    stats.files = [path]
    stats.get_top_level_stats()
    return stats


def cached_stats(path):
    """Load a profile once for the several pages that show it (treat the result as read-only).

    Saved profiles never change, but the key includes the file's size and
    modification time so a replaced file is read again.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError as error:
        raise ProfileNotFound(f"{os.path.basename(path)}: no such file") from error
    return _cached_stats(path, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=STATS_CACHE_SIZE)
def _cached_stats(path, size, mtime_ns):
    """Load ``path``; size and mtime only make the cache key."""
    del size, mtime_ns
    return load_stats(path)


def clear_cache():
    """Forget every cached profile (for benchmarks that time a first load)."""
    _cached_stats.cache_clear()


def _reason(error):
    """Describe an exception in one short line without the file's path (pages show it)."""
    text = error.strerror if isinstance(error, OSError) else str(error)
    text = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


#: The exact types marshal gives pstats numbers (bools are not numbers here).
NUMBER_TYPES = frozenset((int, float))


def stats_problem(data):
    """Describe why ``data`` is not a pstats dict, or return None if its shape is right.

    A whole-profile check made of set operations answers first; only data it
    does not accept is walked entry by entry to name the problem.
    """
    if _surely_valid(data):
        return None
    return _first_problem(data)


def _types(values):
    """Return the set of the exact types of ``values`` (iterated at C speed)."""
    return set(map(type, values))


def _surely_valid(data):
    """Tell, with set operations instead of a Python loop per edge, whether data is cProfile's."""
    if not isinstance(data, dict):
        return False
    entries = list(data.values())
    if not _types(entries) <= {tuple} or not set(map(len, entries)) <= {5}:
        return False
    # itemgetter columns, not zip(*...): zip would allocate an iterator per entry.
    numbers = itertools.chain.from_iterable(map(operator.itemgetter(0, 1, 2, 3), entries))
    callers = list(map(operator.itemgetter(4), entries))
    if not _types(numbers) <= NUMBER_TYPES or not _types(callers) <= {dict}:
        return False
    funcs = set(data).union(*callers)
    if not _types(funcs) <= {tuple} or not set(map(len, funcs)) <= {3}:
        return False
    if not (_types(map(operator.itemgetter(0), funcs)) <= {str}
            and _types(map(operator.itemgetter(1), funcs)) <= {int}
            and _types(map(operator.itemgetter(2), funcs)) <= {str}):
        return False
    edges = list(itertools.chain.from_iterable(caller.values() for caller in callers))
    return (_types(edges) <= {tuple} and set(map(len, edges)) <= {4}
            and _types(itertools.chain.from_iterable(edges)) <= NUMBER_TYPES)


def _first_problem(data):
    """Walk the data entry by entry and describe its first problem (or None)."""
    if not isinstance(data, dict):
        return f"expected a dict, found {type(data).__name__}"
    for func, value in data.items():
        if not _is_func(func):
            return f"bad function key {func!r:.60}"
        if not (isinstance(value, tuple) and len(value) == 5 and _are_numbers(value[:4])):
            return f"bad entry for {func!r:.60}"
        if not isinstance(value[4], dict):
            return f"bad callers of {func!r:.60}"
        for caller, edge in value[4].items():
            if not _is_func(caller) or not _is_edge(edge):
                return f"bad caller entry of {func!r:.60}"
    return None


def _is_func(func):
    """Tell whether ``func`` is a pstats ``(filename, lineno, funcname)`` key."""
    return (
        isinstance(func, tuple)
        and len(func) == 3
        and isinstance(func[0], str)
        and isinstance(func[1], int)
        and isinstance(func[2], str)
    )


def _is_edge(edge):
    """Tell whether a callers value is cProfile's 4-tuple or the profile module's count."""
    if isinstance(edge, tuple):
        return len(edge) == 4 and _are_numbers(edge)
    return _are_numbers((edge,))


def _are_numbers(values):
    """Tell whether all values are ints or floats (bools excluded), as marshal gives them."""
    return all(type(value) in (int, float) for value in values)


def merge(paths):
    """Load several saved profiles of one engine and add them into one ``pstats.Stats``."""
    return merge_stats(load_stats(path) for path in paths)


def merge_stats(loaded):
    """Add profiles of one engine into one new ``pstats.Stats``.

    Sampled profiles are added by their stacks (see :mod:`tracker_07.profiles.sampled`),
    so the merged views still draw true paths; profiles of both engines raise
    MixedEngines, since their times measure different things.
    """
    loaded = list(loaded)
    if not loaded:
        raise ValueError("merge needs at least one profile")
    stacks = [getattr(stats, "stacks", None) for stats in loaded]
    sampled_count = sum(stack is not None for stack in stacks)
    if not sampled_count:
        merged = pstats.Stats()
        merged.add(*loaded)
        return merged
    if sampled_count < len(loaded):
        raise MixedEngines(
            f"cannot merge {len(loaded) - sampled_count} cProfile and {sampled_count} "
            "sampled profile(s): their times measure different things; merge the profiles "
            "of one engine (prune or move the others).")
    intervals = {stats.interval for stats in loaded}
    return sampled.stats_from_stacks(
        itertools.chain.from_iterable(stacks),
        interval=intervals.pop() if len(intervals) == 1 else None)
