"""Tests for sampled profiles: stacks to pstats data, and the speedscope file both ways."""
import json
import os
import tempfile
import unittest

from tracker_07.profiles import analysis, sampled
from tracker_07.profiles.errors import CorruptProfile

ROOT = ("app.py", 1, "view")
A = ("app.py", 10, "a")
B = ("app.py", 20, "b")
C = ("app.py", 30, "c")
SLEEP = ("~", 0, "<built-in method time.sleep>")

#: c takes 4 units via a and 1 unit via b -> a; the view itself 0.5.
STACKS = [((ROOT, A, C), 0.004), ((ROOT, B, A, C), 0.001), ((ROOT,), 0.0005),
          ((ROOT, A, C), 0.0), ((ROOT, B, SLEEP), 0.002)]


class StatsFromStacksTestCase(unittest.TestCase):
    """The pstats view of stacks keeps every time the stacks hold."""

    def setUp(self):
        self.stats = sampled.stats_from_stacks(STACKS, interval=0.001)

    def test_own_and_cumulative_times(self):
        data = self.stats.stats
        self.assertAlmostEqual(data[C][2], 0.005)
        self.assertAlmostEqual(data[C][3], 0.005)
        self.assertAlmostEqual(data[A][2], 0.0)
        self.assertAlmostEqual(data[A][3], 0.005)
        self.assertAlmostEqual(data[B][3], 0.003)
        self.assertAlmostEqual(data[ROOT][3], 0.0075)
        self.assertAlmostEqual(data[ROOT][2], 0.0005)
        self.assertAlmostEqual(self.stats.total_tt, 0.0075)

    def test_caller_edges_carry_each_path_time(self):
        callers_of_a = self.stats.stats[A][4]
        self.assertAlmostEqual(callers_of_a[ROOT][3], 0.004)
        self.assertAlmostEqual(callers_of_a[B][3], 0.001)
        self.assertAlmostEqual(self.stats.stats[C][4][A][2], 0.005)
        self.assertEqual(self.stats.stats[ROOT][4], {})

    def test_recursion_is_counted_once_per_stack(self):
        stats = sampled.stats_from_stacks([((ROOT, A, A, A), 0.003)], interval=0.001)
        self.assertAlmostEqual(stats.stats[A][3], 0.003)
        self.assertAlmostEqual(stats.stats[A][2], 0.003)
        self.assertAlmostEqual(stats.stats[A][4][A][3], 0.003)

    def test_equal_stacks_are_merged_and_the_engine_is_named(self):
        self.assertEqual(len(self.stats.stacks), 4)
        self.assertEqual(sampled.engine_of(self.stats), "sampling")
        self.assertEqual(sampled.engine_of(analysis.stats_dict(self.stats)), "cprofile")

    def test_the_table_views_read_it(self):
        rows = analysis.table(self.stats, sort="tottime")["rows"]
        self.assertEqual(rows[0]["name"], "c")
        self.assertEqual(rows[0]["calls"], 0)


class SpeedscopeFileTestCase(unittest.TestCase):
    """A sampled profile survives the trip through its file."""

    def test_round_trip(self):
        data = sampled.to_speedscope(STACKS, name="GET /x", interval=0.001)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "x.json")
            with open(path, "w", encoding="utf-8") as file:
                json.dump(data, file)
            stats = sampled.load(path, "x")
        self.assertEqual(stats.interval, 0.001)
        self.assertEqual(sorted(stats.stacks), sorted(sampled.merge_stacks(STACKS)))
        self.assertEqual(data["shared"]["frames"][-1], {"name": SLEEP[2]})

    def test_bad_files_are_one_clear_error(self):
        good = sampled.to_speedscope(STACKS, name="x", interval=0.001)
        bad_shapes = {
            "no profiles": dict(good, profiles=[]),
            "evented": dict(good, profiles=[dict(good["profiles"][0], type="evented")]),
            "index out of range": dict(good, profiles=[dict(good["profiles"][0],
                                                            samples=[[99]], weights=[1])]),
            "negative weight": dict(good, profiles=[dict(good["profiles"][0],
                                                         samples=[[0]], weights=[-1])]),
            "lengths differ": dict(good, profiles=[dict(good["profiles"][0], weights=[])]),
            "frame name": dict(good, shared={"frames": [{"name": 3}]}),
            "frame line": dict(good, shared={"frames": [{"name": "f", "file": "x", "line": True}]}),
            "not a dict": [],
        }
        for what, data in bad_shapes.items():
            with self.subTest(what), self.assertRaisesRegex(CorruptProfile, "^x: not a sampled"):
                sampled.from_speedscope(data, "x")

    def test_a_file_that_is_not_json(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "x.json")
            with open(path, "wb") as file:
                file.write(b"\xff\x00 not json")
            with self.assertRaisesRegex(CorruptProfile, r"x: not a sampled profile \(not JSON\)"):
                sampled.load(path, "x")

    def test_a_foreign_file_without_interval(self):
        data = sampled.to_speedscope(STACKS, name="x", interval=0.001)
        data["exporter"] = "speedscope@1.25.0"
        self.assertIsNone(sampled.from_speedscope(data)[1])


if __name__ == "__main__":
    unittest.main()
