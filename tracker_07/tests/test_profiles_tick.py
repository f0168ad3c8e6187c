"""Tests for the sampling engine's tick: which hook is used, and how each one behaves.

``.ci/run`` runs the suite under Python 3.11, 3.12 and 3.13; the ``sys.monitoring`` tick
exists from 3.12 on, so its own tests run there.
"""
import functools
import sys
import threading
import time
import unittest

from tracker_07.profiles import tick

MONITORING = getattr(sys, "monitoring", None)
HAS_MONITORING = MONITORING is not None
#: The C functions that busy() calls.
BUSY_C_FUNCTIONS = ("list.count", "reduce", "max", "perf_counter")
NEEDS_MONITORING = unittest.skipUnless(
    HAS_MONITORING, "sys.monitoring is new in Python 3.12 (.ci/run runs this under 3.12, 3.13)")


def busy(seconds=0.02):
    """Run Python and C calls in this thread for about ``seconds`` of wall time."""
    ended = time.perf_counter() + seconds
    values = list(range(2_000))
    while time.perf_counter() < ended:
        values.count(7)
        functools.reduce(max, values[:50])


class Recorder:  # pylint: disable=too-few-public-methods
    """A hook's callback that keeps each event's name, frame name and argument."""

    def __init__(self):
        self.events = []

    def __call__(self, frame, event, arg):
        self.events.append((event, frame.f_code.co_name, arg))


def events_while_busy(test, hook):
    """Record what ``hook`` calls back during 20 ms of busy(); check it was once per interval
    (1 ms) of it, give or take a machine that is busy too."""
    recorder = Recorder()
    hook.start(recorder, 0.001)
    try:
        busy()
    finally:
        hook.stop()
    test.assertGreater(len(recorder.events), 5)
    test.assertLess(len(recorder.events), 40)
    return recorder


class ChoiceTestCase(unittest.TestCase):
    """The cheaper hook is used where it exists."""

    def test_sys_monitoring_on_3_12_and_later_pyinstruments_hook_before(self):
        self.assertIsNotNone(tick._tick,  # pylint: disable=protected-access  # built by pip install
                             "tracker_07/profiles/_tick.c is not compiled: pip install -e .")
        expected = "sys.monitoring" if HAS_MONITORING else "setstatprofile"
        self.assertEqual(tick.current().name, expected)
        self.assertIs(tick.current(), tick.current())

    def test_without_the_compiled_module_pyinstruments_hook(self):
        chosen = tick.choose(MONITORING, None)
        self.assertIsInstance(chosen, tick.StatProfileTick)

    @NEEDS_MONITORING
    def test_a_tool_id_held_by_another_tool_leaves_pyinstruments_hook(self):
        tick.current()  # ours registered first, as in a running app: give the id away
        MONITORING.free_tool_id(tick.TOOL_ID)
        MONITORING.use_tool_id(tick.TOOL_ID, "someone else")
        try:
            chosen = tick.choose(MONITORING, tick._tick)  # pylint: disable=protected-access
            self.assertIsInstance(chosen, tick.StatProfileTick)
        finally:
            MONITORING.free_tool_id(tick.TOOL_ID)
            self.assertIsInstance(tick.choose(MONITORING, tick._tick),  # pylint: disable=protected-access
                                  tick.MonitoringTick)


class StatProfileTickTestCase(unittest.TestCase):
    """pyinstrument's hook: one profile function per thread."""

    def test_it_calls_the_recorder_once_per_interval_and_stops(self):
        recorder = events_while_busy(self, tick.StatProfileTick)
        self.assertTrue(recorder.events)
        self.assertIsNone(sys.getprofile())

    def test_another_profile_hook_in_the_thread_is_refused(self):
        sys.setprofile(lambda *_args: None)
        try:
            with self.assertRaisesRegex(RuntimeError, "another profiler is running"):
                tick.StatProfileTick.start(Recorder(), 0.001)
        finally:
            sys.setprofile(None)


@NEEDS_MONITORING
class MonitoringTickTestCase(unittest.TestCase):
    """``sys.monitoring`` events in C: per thread, beside other profilers, off when idle."""

    def setUp(self):
        self.tick = tick.current()

    def events_on(self):
        """The events set for Tracker's tool id."""
        return MONITORING.get_events(tick.TOOL_ID)

    def test_it_calls_the_recorder_once_per_interval_with_a_hooks_events(self):
        recorder = events_while_busy(self, self.tick)
        names = {event for event, _name, _arg in recorder.events}
        self.assertLessEqual(names, {"call", "return", "c_call", "c_return", "c_exception"})
        counts = [arg for event, _name, arg in recorder.events if event == "c_return"]
        self.assertTrue(counts, recorder.events)
        self.assertTrue(all(getattr(arg, "__qualname__", "") in BUSY_C_FUNCTIONS
                            for arg in counts), counts)

    def test_only_the_threads_that_started_are_sampled(self):
        recorders = {"sampled": Recorder(), "other": Recorder()}
        done = threading.Event()

        def other():
            while not done.is_set():
                busy(0.005)

        thread = threading.Thread(target=other)
        thread.start()
        self.tick.start(recorders["sampled"], 0.001)
        try:
            busy(0.03)
        finally:
            self.tick.stop()
            done.set()
            thread.join()
        self.assertTrue(recorders["sampled"].events)
        frames = {name for _event, name, _arg in recorders["sampled"].events}
        self.assertNotIn("other", frames)

    def test_the_events_are_on_while_any_thread_is_sampled(self):
        self.assertEqual(self.events_on(), 0)
        started, release = threading.Event(), threading.Event()

        def second():
            self.tick.start(Recorder(), 0.001)
            started.set()
            release.wait()
            self.tick.stop()

        self.tick.start(Recorder(), 0.001)
        thread = threading.Thread(target=second)
        thread.start()
        started.wait()
        self.tick.stop()
        self.assertNotEqual(self.events_on(), 0)  # the second thread still samples
        release.set()
        thread.join()
        self.assertEqual(self.events_on(), 0)

    def test_another_profile_hook_in_the_thread_keeps_working(self):
        seen = []
        sys.setprofile(lambda _frame, event, _arg: seen.append(event))
        recorder = Recorder()
        try:
            self.tick.start(recorder, 0.001)
            busy()
            self.tick.stop()
        finally:
            sys.setprofile(None)
        self.assertTrue(recorder.events)
        self.assertIn("c_return", seen)

    def test_a_second_start_in_a_thread_is_refused(self):
        self.tick.start(Recorder(), 0.001)
        try:
            with self.assertRaisesRegex(RuntimeError, "sampled already"):
                self.tick.start(Recorder(), 0.001)
        finally:
            self.tick.stop()
        self.assertEqual(self.events_on(), 0)

    def test_a_failing_recorder_is_reported_and_the_program_goes_on(self):
        unraisable = []
        calls = []

        def failing(*_args):
            calls.append(1)
            raise ValueError("recorder broke")

        previous, sys.unraisablehook = sys.unraisablehook, unraisable.append
        try:
            self.tick.start(failing, 0.001)
            busy()  # runs to its end
            self.tick.stop()
        finally:
            sys.unraisablehook = previous
        self.assertEqual(len(calls), 1)  # the thread's sampling ended at the failure
        self.assertEqual(str(unraisable[0].exc_value), "recorder broke")
        self.assertEqual(self.events_on(), 0)

    def test_bad_arguments_are_refused_with_a_reason(self):
        module = tick._tick  # pylint: disable=protected-access
        with self.assertRaisesRegex(TypeError, "callable"):
            module.start(None, 0.001)
        with self.assertRaisesRegex(ValueError, "positive"):
            module.start(Recorder(), 0.0)
        with self.assertRaisesRegex(TypeError, "must be list"):
            module.record((), busy.__code__, 0.001)
        with self.assertRaisesRegex(TypeError, "must be code"):
            module.record([], None, 0.001)
        self.assertFalse(module.is_sampled())
        self.assertFalse(module.stop())

    def record(self, function):
        """Record in C while ``_below_root`` runs ``function``; return the samples."""
        samples = []
        self.tick.record(samples, _below_root.__code__, 0.001)
        try:
            _below_root(function)
        finally:
            self.tick.stop()
        return samples

    def test_recording_in_c_keeps_the_code_objects_below_the_root_leaf_first(self):
        samples = self.record(busy)
        self.assertGreater(len(samples), 5)
        for leaf, codes, seconds in samples:
            self.assertIs(codes[-1], busy.__code__)  # the root's callee; the root cut
            self.assertNotIn(_below_root.__code__, codes)
            self.assertGreater(seconds, 0.0)
            if leaf is not None:  # a C function that just returned, as the hook gave it
                self.assertIn(getattr(leaf, "__qualname__", ""), BUSY_C_FUNCTIONS)
        leaves = [leaf for leaf, _codes, _seconds in samples if leaf is not None]
        self.assertTrue(leaves)
        self.assertAlmostEqual(sum(seconds for _leaf, _codes, seconds in samples), 0.02,
                               delta=0.015)

    def test_a_hot_loop_reuses_its_walk(self):
        values = list(range(20_000))

        def loop():
            for _ in range(400):
                values.count(-1)

        samples = self.record(loop)
        self.assertGreater(len(samples), 3)
        self.assertEqual(len({id(codes) for _leaf, codes, _seconds in samples}), 1)

    def test_in_the_roots_own_frame_only_c_functions_are_kept(self):
        samples = []
        self.tick.record(samples, _root_that_works.__code__, 0.001)
        try:
            _root_that_works()
        finally:
            self.tick.stop()
        self.assertTrue(samples)
        self.assertLessEqual({(leaf.__qualname__, codes) for leaf, codes, _seconds in samples},
                             {("list.count", ()), ("len", ())})

    def test_samples_outside_the_root_are_dropped(self):
        samples = []
        self.tick.record(samples, _below_root.__code__, 0.001)
        try:
            busy()  # the root is not on the stack
        finally:
            self.tick.stop()
        self.assertEqual(samples, [])


def _root_that_works():
    """A root that runs Python and C calls in its own frame."""
    values = list(range(20_000))
    for _ in range(400):
        values.count(-1)
        len(values)


def _below_root(function):
    """Stand for the middleware's call of the app: the stacks are cut here."""
    return function()


if __name__ == "__main__":
    unittest.main()
