"""The sampling engine: pyinstrument samples one request's own thread, every interval.

pyinstrument (chosen by measurement, see ``benchmarks/bench_sampling_engine.py`` and
the README) keeps a per-thread ``setstatprofile`` hook in C that records the whole
stack once per interval, so overlapping requests on a threaded server are each
profiled and each profile holds only its own thread.  :class:`SampledProfile`
starts and stops it around one request and turns pyinstrument's frame records into
the ``(frames, seconds)`` stacks of :mod:`tracker_07.profiles.sampled`.
"""
import json
import os
import sys

from pyinstrument import Profiler

from .sampled import stats_from_stacks, to_speedscope

#: pyinstrument's separators inside a frame identifier: ``name\x00file\x00line`` then
#: ``\x01``-prefixed attributes.
_FIELD, _ATTRIBUTE = "\x00", "\x01"
BUILTIN_FILE = "<built-in>"


def frame_key(identifier, cache):
    """Turn a pyinstrument frame identifier into a pstats key ``(file, line, name)``."""
    key = cache.get(identifier)
    if key is None:
        name, filename, line = identifier.split(_ATTRIBUTE, 1)[0].split(_FIELD)[:3]
        key = ("~", 0, name) if filename == BUILTIN_FILE else (filename, int(line), name)
        cache[identifier] = key
    return key


def stacks_from_records(frame_records, root):
    """Turn pyinstrument's ``frame_records`` into stacks that start below ``root``.

    Each record is ``(identifiers, seconds)``, outermost first, the first being
    pyinstrument's thread pseudo-frame.  Every frame up to and including the last
    ``root`` (the middleware's call of the app) is cut, so a stack starts at the app
    the middleware wraps; samples taken outside ``root`` (while the profiler starts
    or stops) and samples of ``root``'s own time have no frame left and are dropped.
    """
    cache = {}
    stacks = []
    # Most samples repeat a stack seen before: each distinct stack is converted once.
    distinct = {}
    for identifiers, seconds in frame_records:
        key = tuple(identifiers)
        distinct[key] = distinct.get(key, 0.0) + seconds
    for identifiers, seconds in distinct.items():
        frames = [frame_key(identifier, cache) for identifier in identifiers[1:]]
        try:
            cut = len(frames) - frames[::-1].index(root)
        except ValueError:
            continue
        if cut < len(frames):
            stacks.append((tuple(frames[cut:]), seconds))
    return stacks


class SampledProfile:
    """One request's sampling profiler, started and stopped in the request's own thread.

    :param interval: seconds between samples.
    :param root: the pstats key of the function that calls the app; it and every
        frame above it are cut from the stacks.
    """

    def __init__(self, interval, root):
        self.interval = interval
        self.root = root
        self._profiler = Profiler(interval=interval, async_mode="disabled")
        self.stacks = None
        self.samples = 0

    def enable(self):
        """Start sampling this thread; raise RuntimeError or ValueError when it cannot."""
        caller = sys._getframe(1)  # pylint: disable=protected-access  # as inspect does it
        self._profiler.start(caller_frame=caller, target_description="request")

    def disable(self):
        """Stop sampling and keep the request's stacks."""
        session = self._profiler.stop()
        self.samples = session.sample_count
        self.stacks = stacks_from_records(session.frame_records, self.root)

    def stats(self):
        """The recorded stacks as ``pstats.Stats`` (see :func:`~.sampled.stats_from_stacks`)."""
        return stats_from_stacks(self.stacks, interval=self.interval)

    def dump_stats(self, path):
        """Save the stacks as a speedscope file (the middleware's hook, as cProfile's)."""
        data = to_speedscope(self.stacks, name=os.path.basename(path), interval=self.interval)
        with open(path, "w", encoding="utf-8") as file:
            json.dump(data, file, separators=(",", ":"))
