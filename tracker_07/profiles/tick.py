"""The sampling engine's tick: a recorder called in its own thread once per interval.

Both hooks call a recorder ``recorder(frame, event, arg)`` with a profile hook's event
names (``start``), and the cheaper one available is used (:func:`current`):

* :class:`MonitoringTick`, Python 3.12+ with the compiled ``_tick`` module (built by
  ``pip install``, see ``pyproject.toml``): ``sys.monitoring`` events handled in C under
  tool id :data:`TOOL_ID`, on while a thread is sampled.  It also records in C what
  :func:`~.sampling.recorder` records (``record``).  On 3.12+ ``PyEval_SetProfile`` is
  carried over ``sys.monitoring`` by a compatibility layer that makes a frame object for
  every call: the engine over it cost 3.4 times the instructions per request of the
  demo's slow page (see the README).
* :class:`StatProfileTick`, otherwise: pyinstrument's ``setstatprofile``, a per-thread
  ``PyEval_SetProfile`` hook in C.
"""
import sys
import threading

from pyinstrument.low_level.stat_profile import setstatprofile

try:
    from . import _tick
except ImportError:  # not compiled (no C compiler at install): pyinstrument's hook
    _tick = None

#: The ``sys.monitoring`` tool id; 0, 1, 2 and 5 are named for debuggers, coverage,
#: profilers (cProfile takes it) and optimizers.
TOOL_ID = 4
TOOL_NAME = "tracker_07 sampling"


class StatProfileTick:
    """pyinstrument's per-thread profile hook: one profile function per thread."""

    name = "setstatprofile"

    @staticmethod
    def start(recorder, interval):
        """Call ``recorder`` in this thread once per ``interval`` seconds of its events."""
        if sys.getprofile() is not None:
            raise RuntimeError("another profiler is running in this thread")
        setstatprofile(recorder, interval, timer_type="walltime")

    @staticmethod
    def stop():
        """Stop calling this thread's recorder."""
        setstatprofile(None)


class MonitoringTick:
    """``sys.monitoring`` events handled in C (``_tick.c``), on while a thread is sampled;
    the samples are recorded in C too (:meth:`record`)."""

    name = "sys.monitoring"

    def __init__(self, monitoring, module):
        self._monitoring = monitoring
        self._module = module
        self._lock = threading.Lock()
        self._sampled_threads = 0
        events = monitoring.events
        self._callbacks = {
            events.PY_START: module.on_start, events.PY_RESUME: module.on_start,
            events.PY_RETURN: module.on_return, events.PY_YIELD: module.on_return,
            events.PY_UNWIND: module.on_return, events.CALL: module.on_call,
            events.C_RETURN: module.on_c_return, events.C_RAISE: module.on_c_raise,
        }
        self._events = 0
        for event in self._callbacks:
            self._events |= event

    def claim(self):
        """Take the tool id and register the callbacks; False when another tool holds it."""
        with self._lock:
            holder = self._monitoring.get_tool(TOOL_ID)
            if holder is None:
                self._monitoring.use_tool_id(TOOL_ID, TOOL_NAME)
            elif holder != TOOL_NAME:
                return False
            for event, callback in self._callbacks.items():
                self._monitoring.register_callback(TOOL_ID, event, callback)
            return True

    def start(self, recorder, interval):
        """Call ``recorder`` in this thread once per ``interval`` seconds of its events."""
        self._begin(self._module.start, recorder, interval)

    def record(self, samples, root, interval):
        """Do in C what :func:`~.sampling.recorder` does: append ``(leaf, codes, seconds)``
        to ``samples`` once per ``interval`` seconds, with the C function as the leaf."""
        self._begin(self._module.record, samples, root, interval)

    def _begin(self, begin, *args):
        """Start this thread's sampling; the events go on with the first thread."""
        with self._lock:
            begin(*args)
            if not self._sampled_threads:
                self._monitoring.set_events(TOOL_ID, self._events)
            self._sampled_threads += 1

    def stop(self):
        """Stop calling this thread's recorder; the events go off with the last thread.

        Counted even when the thread's sampling ended early (a recorder that raised)."""
        with self._lock:
            self._module.stop()
            self._sampled_threads = max(0, self._sampled_threads - 1)
            if not self._sampled_threads:
                self._monitoring.set_events(TOOL_ID, 0)


_chosen = []
_choosing = threading.Lock()


def current():
    """The tick this process samples with, chosen at its first use (see the module)."""
    if not _chosen:
        with _choosing:
            if not _chosen:
                _chosen.append(choose(getattr(sys, "monitoring", None), _tick))
    return _chosen[0]


def choose(monitoring, module):
    """:class:`MonitoringTick` when ``sys.monitoring``, the compiled module and the tool id
    are there, else :class:`StatProfileTick`."""
    if monitoring is not None and module is not None:
        tick = MonitoringTick(monitoring, module)
        if tick.claim():
            return tick
    return StatProfileTick()
