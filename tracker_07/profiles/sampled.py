"""Sampled profiles: whole call stacks with the time seen in each, kept as speedscope JSON.

A sampled profile is a list of ``(frames, seconds)`` stacks: ``frames`` is a
tuple of pstats function keys ``(filename, lineno, name)``, the request's root
first; built-in functions are ``("~", 0, name)`` as in pstats.  Unlike
cProfile's caller->callee totals, each stack is one true call path.

:func:`stats_from_stacks` derives from the stacks the ``pstats.Stats`` that every
table, callers/callees and compare view reads (own time, cumulative time and
caller edges; call counts are unknown to a sampler and are 0), and keeps the
stacks on it (``stats.stacks``) for the views that draw paths.  The file format
is speedscope's (https://www.speedscope.app/file-format-schema.json), which
speedscope and other tools open.
"""
import collections
import json
import math
import pstats

from .errors import CorruptProfile

ENGINE = "sampling"
CPROFILE = "cprofile"
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
EXPORTER = "tracker_07"
#: Where a sampled profile keeps its sampling interval in the speedscope file's
#: ``exporter`` field: ``tracker_07 sampling interval=0.001``.
INTERVAL_TAG = " interval="


def is_sampled(stats):
    """Tell whether ``stats`` holds whole stacks (a sampled profile)."""
    return getattr(stats, "stacks", None) is not None


def engine_of(stats):
    """Name the engine that recorded ``stats``: ``sampling`` or ``cprofile``."""
    return ENGINE if is_sampled(stats) else CPROFILE


def merge_stacks(stacks):
    """Add up the time of equal stacks, keeping the order in which each was first seen."""
    totals = collections.defaultdict(float)
    for frames, seconds in stacks:
        totals[tuple(frames)] += seconds
    return list(totals.items())


def stats_dict_from_stacks(stacks):
    """Derive pstats' ``{func: (cc, nc, tt, ct, callers)}`` from whole stacks.

    Own time goes to each stack's last frame, cumulative time to every function
    on the stack once (recursion counted once), and each caller edge gets the
    time of the stacks that pass through it.
    """
    own = collections.defaultdict(float)
    cumulative = collections.defaultdict(float)
    edges = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0.0]))
    for frames, seconds in stacks:
        if not frames:
            continue
        own[frames[-1]] += seconds
        for func in set(frames):
            cumulative[func] += seconds
        seen_edges = set()
        for caller, callee in zip(frames, frames[1:]):
            if (caller, callee) in seen_edges:
                continue
            seen_edges.add((caller, callee))
            edges[callee][caller][1] += seconds
        if len(frames) > 1:
            edges[frames[-1]][frames[-2]][0] += seconds
    return {
        func: (0, 0, own[func], cumulative[func],
               {caller: (0, 0, times[0], times[1]) for caller, times in edges[func].items()})
        for func in cumulative
    }


def stats_from_stacks(stacks, *, interval):
    """Build the ``pstats.Stats`` of a sampled profile, with its stacks and interval on it."""
    stacks = merge_stacks(stacks)
    stats = pstats.Stats()
    stats.stats = stats_dict_from_stacks(stacks)
    stats.get_top_level_stats()
    stats.stacks = stacks
    stats.interval = interval
    return stats


def to_speedscope(stacks, *, name, interval):
    """Write stacks in speedscope's file format: one sampled profile, weights in seconds."""
    frames, frame_index = [], {}
    samples, weights = [], []
    for stack, seconds in merge_stacks(stacks):
        for func in stack:
            if func not in frame_index:
                frame_index[func] = len(frames)
                frames.append(_speedscope_frame(func))
        samples.append([frame_index[func] for func in stack])
        weights.append(seconds)
    return speedscope_file(frames, samples, weights, name=name,
                           exporter=f"{EXPORTER} {ENGINE}{INTERVAL_TAG}{interval!r}")


def speedscope_file(frames, samples, weights, *, name, exporter):
    """Wrap frames and weighted samples (seconds) in speedscope's file format, one profile."""
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": [{
            "type": "sampled",
            "name": name,
            "unit": "seconds",
            "startValue": 0,
            "endValue": sum(weights),
            "samples": samples,
            "weights": weights,
        }],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": exporter,
    }


def _speedscope_frame(func):
    """Describe a function as a speedscope frame (built-ins have no file or line)."""
    filename, lineno, name = func
    if (filename, lineno) == ("~", 0):
        return {"name": name}
    return {"name": name, "file": filename, "line": lineno}


def from_speedscope(data, label="profile"):
    """Read back what :func:`to_speedscope` wrote: ``(stacks, interval)``.

    Any other shape raises CorruptProfile naming ``label``, never a traceback.
    """
    try:
        frames = [_func_of(frame) for frame in data["shared"]["frames"]]
        profile = data["profiles"][0]
        if profile["type"] != "sampled" or profile["unit"] != "seconds":
            raise ValueError("not a sampled profile in seconds")
        samples, weights = profile["samples"], profile["weights"]
        if len(samples) != len(weights):
            raise ValueError("samples and weights differ in length")
        stacks = [(tuple(frames[index] for index in _indexes(sample, len(frames))),
                   _seconds(weight)) for sample, weight in zip(samples, weights)]
        interval = _interval(data.get("exporter"))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise CorruptProfile(f"{label}: not a sampled profile ({_reason(error)})") from error
    return stacks, interval


def load(path, label):
    """Load a sampled profile file as ``pstats.Stats`` with its stacks (see the module)."""
    try:
        with open(path, "rb") as file:
            data = json.loads(file.read())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CorruptProfile(f"{label}: not a sampled profile (not JSON)") from error
    stacks, interval = from_speedscope(data, label)
    return stats_from_stacks(stacks, interval=interval)


def _func_of(frame):
    """Turn a speedscope frame back into a pstats function key."""
    name = frame["name"]
    if not isinstance(name, str):
        raise TypeError("a frame's name is not text")
    if "file" not in frame:
        return ("~", 0, name)
    filename, line = frame["file"], frame.get("line", 0)
    if not isinstance(filename, str) or type(line) is not int:  # pylint: disable=unidiomatic-typecheck  # bool is not a line
        raise TypeError("a frame's file or line has the wrong type")
    return (filename, line, name)


def _indexes(sample, count):
    """Check one sample's frame indexes."""
    if not isinstance(sample, list) or not all(
            type(index) is int and 0 <= index < count for index in sample):  # pylint: disable=unidiomatic-typecheck
        raise ValueError("a sample names a frame that does not exist")
    return sample


def _seconds(weight):
    """Check one sample's weight: a finite number of seconds, not negative."""
    if type(weight) not in (int, float) or not math.isfinite(weight) or weight < 0:
        raise ValueError("a weight is not a time")
    return float(weight)


def _interval(exporter):
    """Read the sampling interval that :func:`to_speedscope` put in ``exporter`` (else None)."""
    if not isinstance(exporter, str) or INTERVAL_TAG not in exporter:
        return None
    return float(exporter.rsplit(INTERVAL_TAG, 1)[1])


def _reason(error):
    """One short line for a reading error."""
    if isinstance(error, KeyError):
        return f"missing {error.args[0]!r}"
    return str(error) or type(error).__name__
