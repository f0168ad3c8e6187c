"""The sampling engine: one request's own thread sampled every interval, whole stacks kept.

A per-thread hook in C calls back once per interval (:mod:`tracker_07.profiles.tick`:
``sys.monitoring`` on 3.12+, pyinstrument's ``setstatprofile`` otherwise; chosen by
measurement, see ``benchmarks/bench_sampling_engine.py`` and the README), so overlapping
requests on a threaded server are each profiled and each profile holds only its own
thread.  :class:`SampledProfile` sets it around one request; its recorder keeps the code
objects of the stack below the middleware (a few list appends, no strings: :func:`recorder`
over pyinstrument's hook, the same in C with ``sys.monitoring``), and
:meth:`SampledProfile.disable` turns the distinct stacks into the ``(frames, seconds)``
stacks of :mod:`tracker_07.profiles.sampled`.
"""
import json
import os
import time

from . import tick
from .sampled import stats_from_stacks, to_speedscope

#: Events at which a C function has just run: the sample's time is that function's.
C_FUNCTION_ENDED = frozenset(("c_return", "c_exception"))


def builtin_key(function):
    """The pstats key of a built-in function, named as pyinstrument names it (``list.count``)."""
    return ("~", 0, getattr(function, "__qualname__", None) or function.__name__)


def code_key(code):
    """The pstats key ``(file, first line, name)`` of a code object."""
    return (code.co_filename, code.co_firstlineno, code.co_name)


def stacks_from_samples(samples):
    """Turn recorded samples into stacks of pstats keys, root first, one per distinct stack.

    Each sample is ``(leaf, codes, seconds)``: ``codes`` the code objects of the stack,
    leaf first, and ``leaf`` a built-in called from there (its key, or the function as
    the C recorder keeps it), or None.  Samples that share their objects are added up
    first (the recorders reuse both), then equal stacks held in different objects.
    """
    seconds_of, objects_of = {}, {}
    for leaf, codes, seconds in samples:
        identity = (id(leaf), id(codes))  # the samples hold both alive: ids are not reused
        if identity in seconds_of:
            seconds_of[identity] += seconds
        else:
            seconds_of[identity], objects_of[identity] = seconds, (leaf, codes)
    keys, totals = {}, {}  # keys by id: hashing a code object hashes its bytecode
    for identity, seconds in seconds_of.items():
        leaf, codes = objects_of[identity]
        frames = []
        for code in reversed(codes):
            key = keys.get(id(code))
            if key is None:
                key = keys[id(code)] = code_key(code)
            frames.append(key)
        if leaf is not None:
            frames.append(leaf if isinstance(leaf, tuple) else builtin_key(leaf))
        frames = tuple(frames)
        totals[frames] = totals.get(frames, 0.0) + seconds
    return list(totals.items())


def recorder(samples, root, started):
    """The hook's callback: append ``(leaf, codes, seconds)`` for each sample taken below
    ``root`` (see :func:`stacks_from_samples`).

    ``codes`` is the stack below the innermost call of ``root`` (a code object), leaf
    first; the seconds since the previous sample go to it.  Samples outside ``root``
    (while the profiler starts or stops) and of ``root``'s own time are dropped.  A
    sample in the same frame as the one before (a hot loop) reuses its walk: a frame
    that is still referenced keeps its callers.  The callback holds that one frame until
    the next sample, or until the hook lets the callback go.
    """
    append, clock = samples.append, time.perf_counter
    last = started
    builtins = {}  # name -> key: equal stacks hold the same objects
    walked = [None, ()]  # the last frame walked, and its code objects up to the root

    def sample(frame, event, arg):
        nonlocal last
        now = clock()
        if event == "call":  # the function has not started: the time is its caller's
            frame = frame.f_back
        if frame is walked[0]:
            codes = walked[1]
        else:
            codes = []
            walked[0], walked[1] = frame, codes
            while frame is not None:
                code = frame.f_code
                if code is root:
                    break
                codes.append(code)
                frame = frame.f_back
            else:  # outside the root: nothing to keep
                walked[1] = codes = ()
        if event in C_FUNCTION_ENDED and codes != ():
            name = getattr(arg, "__qualname__", None) or arg.__name__  # builtin_key, inlined
            leaf = builtins.get(name)
            if leaf is None:
                leaf = builtins[name] = builtin_key(arg)
            append((leaf, codes, now - last))
        elif codes:
            append((None, codes, now - last))
        last = now

    return sample


class SampledProfile:
    """One request's sampling profiler, started and stopped in the request's own thread.

    :param interval: seconds between samples.
    :param root: the code object of the function that calls the app; it and every
        frame above it are cut from the stacks.
    """

    def __init__(self, interval, root):
        self.interval = interval
        self.root = root
        self._samples = []
        self._tick = None
        self.stacks = None
        self.samples = 0

    def enable(self):
        """Start sampling this thread; raise RuntimeError when another profiler holds it."""
        self._tick = tick.current()
        if isinstance(self._tick, tick.MonitoringTick):  # its recorder is in C
            self._tick.record(self._samples, self.root, self.interval)
        else:
            self._tick.start(recorder(self._samples, self.root, time.perf_counter()),
                             self.interval)

    def disable(self):
        """Stop sampling and keep the request's stacks."""
        self._tick.stop()  # the hook lets its recorder go, and the frame it held
        self.samples = len(self._samples)
        self.stacks = stacks_from_samples(self._samples)
        self._samples = []

    def stats(self):
        """The recorded stacks as ``pstats.Stats`` (see :func:`~.sampled.stats_from_stacks`)."""
        return stats_from_stacks(self.stacks, interval=self.interval)

    def dump_stats(self, path):
        """Save the stacks as a speedscope file (the middleware's hook, as cProfile's)."""
        data = to_speedscope(self.stacks, name=os.path.basename(path), interval=self.interval)
        text = json.dumps(data, separators=(",", ":"))  # one write: json.dump writes per item
        with open(path, "wb") as file:
            file.write(text.encode("utf-8"))
