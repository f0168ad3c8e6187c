"""Server-Timing: every value Tracker sends parses as the W3C grammar describes."""
import unittest

from tracker_07.profiles.middleware import BUSY, IGNORED, OUTCOME_KEY, ProfileOutcome
from tracker_07.tests.server_timing import parse
from tracker_07.toolbar import timing


class ParserTestCase(unittest.TestCase):
    """The test's parser itself accepts the standard's examples and refuses broken headers."""

    def test_examples_of_the_standard(self):
        self.assertEqual(parse('miss, db;dur=53, app;dur=47.2'),
                         [("miss", {}), ("db", {"dur": 53.0}), ("app", {"dur": 47.2})])
        self.assertEqual(parse('cache;desc="Cache Read";dur=23.2'),
                         [("cache", {"desc": "Cache Read", "dur": 23.2})])
        self.assertEqual(parse('customView, dc;desc=atl'),
                         [("customView", {}), ("dc", {"desc": "atl"})])

    def test_broken_headers_are_refused(self):
        for header in ('total;dur=1,', 'to tal;dur=1', 'a;desc="open', 'a;desc=x y', '', 'a;;'):
            with self.subTest(header=header), self.assertRaises(ValueError):
                parse(header)


class MetricTestCase(unittest.TestCase):
    """One metric, and the header of a request in each state."""

    def test_a_metric_with_duration_and_description(self):
        self.assertEqual(timing.metric("total", 12.345, "Request"),
                         'total;dur=12.35;desc="Request"')
        self.assertEqual(timing.metric("profile"), "profile")

    def test_descriptions_are_escaped_and_ascii(self):
        header = timing.metric("x", 1, 'say "hi" \\ café\r\n')
        self.assertEqual(parse(header), [("x", {"dur": 1.0, "desc": 'say "hi" \\ caf???'})])
        self.assertEqual(header.encode("latin-1").decode("ascii"), header)

    def test_a_request_not_seen_by_the_profiler(self):
        self.assertEqual(parse(timing.server_timing({}, 3.5)),
                         [("total", {"dur": 3.5, "desc": "Request, as Tracker saw it"})])

    def test_a_profiled_request(self):
        outcome = ProfileOutcome("saved", elapsed_ms=40.0)
        outcome.profiler_ms = 5.25
        metrics = dict(parse(timing.server_timing({OUTCOME_KEY: outcome}, 50.0, 0.5)))
        self.assertEqual(metrics["total"]["dur"], 50.0)
        self.assertEqual(metrics["profile"]["dur"], 40.0)
        self.assertEqual(metrics["profiler"]["dur"], 5.25)
        self.assertEqual(metrics["toolbar"]["dur"], 0.5)

    def test_requests_not_profiled_say_why(self):
        for outcome, words in ((BUSY, "busy"), (IGNORED, "PROFILER_IGNORE")):
            with self.subTest(outcome.state):
                metrics = dict(parse(timing.server_timing({OUTCOME_KEY: outcome}, 1.0)))
                self.assertNotIn("dur", metrics["profile"])
                self.assertIn(words, metrics["profile"]["desc"])


if __name__ == "__main__":
    unittest.main()
