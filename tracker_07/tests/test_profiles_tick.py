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
        recorder = Recorder()
        tick.StatProfileTick.start(recorder, 0.001)
        try:
            busy()
        finally:
            tick.StatProfileTick.stop()
        self.assertGreater(len(recorder.events), 5)
        self.assertLess(len(recorder.events), 40)
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
        recorder = Recorder()
        self.tick.start(recorder, 0.001)
        try:
            busy()
        finally:
            self.tick.stop()
        self.assertGreater(len(recorder.events), 5)
        self.assertLess(len(recorder.events), 40)
        names = {event for event, _name, _arg in recorder.events}
        self.assertLessEqual(names, {"call", "return", "c_call", "c_return", "c_exception"})
        counts = [arg for event, _name, arg in recorder.events if event == "c_return"]
        self.assertTrue(counts, recorder.events)
        self.assertTrue(all(getattr(arg, "__qualname__", "") in ("list.count", "reduce", "max")
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
        self.assertFalse(module.is_sampled())
        self.assertFalse(module.stop())


if __name__ == "__main__":
    unittest.main()
