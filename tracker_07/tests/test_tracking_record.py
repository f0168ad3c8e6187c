"""The request path's record of one request, in C and in Python: the same behaviour."""
import sys
import threading
import unittest
from collections import deque
from unittest import mock

from werkzeug.routing import Rule
from werkzeug.wrappers import Request

from tracker_07.sql.capture import ENVIRON_KEY as SQL_KEY
from tracker_07.tracking import middleware
from tracker_07.tracking.middleware import CostMeter, RequestRecord

try:
    from tracker_07.tracking._record import Record as CRecord
except ImportError:  # reported by test_the_compiled_record_is_the_one_used
    CRecord = None


class FakePath:  # pylint: disable=too-few-public-methods  # what a record reads of the middleware
    """The middleware's attributes a record uses, and a count of the drops it reports."""

    def __init__(self, capacity=10, wake_at=3):
        self.queue = deque()
        self.capacity = capacity
        self.wake_at = wake_at
        self.wake = threading.Event()
        self.cost = CostMeter()
        self.dropped = 0

    def count_dropped(self):
        """Count one record the full queue could not take."""
        self.dropped += 1


class Clock:  # pylint: disable=too-few-public-methods  # a callable
    """Each read is one second after the last."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def routed_environ(rule="/user/<int:user_id>", method="GET", **extra):
    """An environ as Flask leaves it: its request object carries the matched rule."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/user/1", **extra}
    request = Request(environ)
    request.url_rule = Rule(rule) if rule else None
    environ["werkzeug.request"] = request
    return environ


class DictLike(dict):
    """An environ that is a dict subclass: read through its get(), as Python would."""


class RecordMixin:
    """The cases, run on each implementation (``record_class``)."""

    record_class = RequestRecord  # each test case names its own

    def make(self, environ=None, path=None, started=0.5, start_response=None):
        """A record of one request, and the fake middleware it queues to."""
        path = path or FakePath()
        calls = []

        def server_start_response(status, headers, exc_info=None):
            calls.append((status, headers, exc_info))
            return "write"

        record = self.record_class(path, routed_environ() if environ is None else environ,
                                   start_response or server_start_response, started, Clock())
        return record, path, calls

    def test_queues_the_rule_method_status_and_both_times(self):
        sql = object()
        record, path, calls = self.make(routed_environ(method="POST", **{SQL_KEY: sql}))
        headers = [("Content-Type", "text/plain")]
        self.assertEqual(record.start_response("201 CREATED", headers), "write")
        self.assertEqual(calls, [("201 CREATED", headers, None)])
        self.assertEqual((record.endpoint, record.status), ("/user/<int:user_id>", "201 CREATED"))
        record.finish()
        self.assertEqual(list(path.queue),
                         [(0.5, 2.0, "/user/<int:user_id>", "POST", "201 CREATED", sql)])

    def test_exc_info_is_passed_on(self):
        record, _path, calls = self.make()
        error = (ValueError, ValueError("x"), None)
        record.start_response("500 INTERNAL SERVER ERROR", [], error)
        self.assertIs(calls[0][2], error)

    def test_no_rule_no_request_and_no_response(self):
        for environ in (routed_environ(rule=None), {"REQUEST_METHOD": "GET"},
                        {"werkzeug.request": Request({})}, {}):
            with self.subTest(environ=sorted(environ)):
                record, path, _calls = self.make(environ)
                if environ:
                    record.start_response("404 NOT FOUND", [])
                record.finish()
                method = environ.get("REQUEST_METHOD", "")
                status = "404 NOT FOUND" if environ else "500"
                self.assertEqual(path.queue[0][2:], (None, method, status, None))

    def test_an_environ_that_is_not_a_plain_dict_is_read_through_get(self):
        record, path, _calls = self.make(DictLike(routed_environ(method="PUT")))
        record.start_response("200 OK", [])
        record.finish()
        self.assertEqual(path.queue[0][2:4], ("/user/<int:user_id>", "PUT"))

    def test_finishing_twice_queues_once_and_an_end_time_can_be_given(self):
        record, path, _calls = self.make()
        record.finish(7.25)
        record.finish()
        self.assertEqual([row[:2] for row in path.queue], [(0.5, 7.25)])

    def test_let_go_unfinished_it_ends_when_its_response_started(self):
        record, path, _calls = self.make()
        record.start_response("200 OK", [])  # the clock's first read: 1.0
        del record
        self.assertEqual([row[:2] for row in path.queue], [(0.5, 1.0)])
        record, path, _calls = self.make()  # never responded: ended when let go
        del record
        self.assertEqual([row[:2] for row in path.queue], [(0.5, 1.0)])

    def test_a_full_queue_counts_a_drop(self):
        path = FakePath(capacity=1)
        for _ in range(3):
            record, _path, _calls = self.make(path=path)
            record.finish()
        self.assertEqual((len(path.queue), path.dropped), (1, 2))

    def test_the_writer_is_woken_when_a_batch_waits(self):
        path = FakePath(wake_at=3)
        for expected in (False, False, True, True):
            record, _path, _calls = self.make(path=path)
            record.finish()
            self.assertEqual(path.wake.is_set(), expected)

    def test_a_measured_request_adds_its_own_time(self):
        record, path, _calls = self.make()
        record.measured = 0.25
        record.start_response("200 OK", [])  # reads 1.0 and 2.0: +1.0
        record.finish()  # reads 3.0 and 4.0: +1.0
        self.assertEqual(record.measured, 1.25)
        self.assertEqual(path.cost.seconds, 2.25)

    def test_a_failing_start_response_or_clock_is_raised(self):
        def refuse(_status, _headers, _exc_info=None):
            raise OSError("client gone")

        record, _path, _calls = self.make(start_response=refuse)
        with self.assertRaisesRegex(OSError, "client gone"):
            record.start_response("200 OK", [])
        path = FakePath()
        record = self.record_class(path, {}, refuse, 0.5, lambda: 1 / 0)
        with self.assertRaises(ZeroDivisionError):
            record.finish()
        with self.assertRaises(ZeroDivisionError):
            record.start_response("200 OK", [])
        seen = []
        with mock.patch.object(sys, "unraisablehook", seen.append):
            record = None  # the finaliser's failure is reported, not raised
        self.assertEqual([type(report.exc_value) for report in seen], [ZeroDivisionError])
        self.assertFalse(path.queue)

    def test_a_failure_when_let_go_is_reported_as_unraisable(self):
        path = FakePath()
        path.queue = None  # len() fails
        seen = []
        with mock.patch.object(sys, "unraisablehook", seen.append):
            record, _path, _calls = self.make(path=path)
            del record
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0].exc_value, TypeError)


class PythonRecordTest(RecordMixin, unittest.TestCase):
    """The Python record, used where the C one is not compiled."""

    record_class = RequestRecord


@unittest.skipIf(CRecord is None, "tracker_07/tracking/_record.c is not compiled")
class CRecordTest(RecordMixin, unittest.TestCase):
    """The C record."""

    record_class = CRecord

    def test_bad_arguments_are_refused_with_a_reason(self):
        with self.assertRaisesRegex(TypeError, "must be real number"):
            CRecord(FakePath(), {}, None, "soon", Clock())
        with self.assertRaisesRegex(TypeError, "no keyword arguments"):
            CRecord(FakePath(), {}, None, 0.5, Clock(), extra=1)
        record, _path, _calls = self.make()
        # pylint: disable=no-value-for-parameter,too-many-function-args  # wrong on purpose
        with self.assertRaisesRegex(TypeError, "2 or 3 arguments"):
            record.start_response("200 OK")
        with self.assertRaisesRegex(TypeError, "at most 1 argument"):
            record.finish(1.0, 2.0)
        # pylint: enable=no-value-for-parameter,too-many-function-args
        with self.assertRaisesRegex(TypeError, "must be real number"):
            record.finish("later")
        with self.assertRaises(AttributeError):
            record.endpoint = "/forged"


class ChoiceTest(unittest.TestCase):
    """The request path uses the C record where it was compiled, as pip builds it."""

    def test_the_compiled_record_is_the_one_used(self):
        self.assertIsNotNone(CRecord, "tracker_07/tracking/_record.c is not compiled: "
                                      "pip install -e .")
        self.assertIs(middleware.Record, CRecord)
        self.assertEqual(sys.modules[CRecord.__module__].SQL_KEY, SQL_KEY)


if __name__ == "__main__":
    unittest.main()
