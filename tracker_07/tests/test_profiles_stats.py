"""Loading saved profiles: every kind of bad file is one clear error; caching and merging."""
import marshal
import os
import pstats
import unittest

from tracker_07.profiles import sampled
from tracker_07.profiles import stats as saved
from tracker_07.profiles.errors import CorruptProfile, MixedEngines, ProfileNotFound
from tracker_07.tests import profile_fixtures as fx


class LoadStatsTest(fx.TempFolderTestCase):
    """Loading turns every kind of bad file into one clear error."""

    def test_real_profile_loads_like_pstats(self):
        """A real file loads with the same totals pstats computes."""
        path = os.path.join(self.folder, fx.write_profile(self.folder))
        stats = saved.load_stats(path)
        expected = pstats.Stats(path)
        self.assertEqual(stats.stats, expected.stats)
        self.assertEqual(
            (stats.total_calls, stats.prim_calls, stats.total_tt),
            (expected.total_calls, expected.prim_calls, expected.total_tt),
        )

    def test_bad_files_raise_corrupt_profile(self):
        """Truncated, garbage and wrongly shaped data all raise CorruptProfile naming the file."""
        good = marshal.dumps(fx.synthetic_stats())
        func = ("a.py", 1, "f")
        cases = {
            "truncated.prof": good[: len(good) // 2],
            "empty.prof": b"",
            "garbage.prof": b"\xff\x00garbage",
            "list.prof": [1, 2, 3],
            "key.prof": {("a.py", "1", "f"): (1, 1, 0.0, 0.0, {})},
            "entry.prof": {func: (1, 1, 0.0, {})},
            "flag.prof": {func: (True, 1, 0.0, 0.0, {})},
            "callers.prof": {func: (1, 1, 0.0, 0.0, [])},
            "caller.prof": {func: (1, 1, 0.0, 0.0, {func: (1, 1, 0.0)})},
            "caller-key.prof": {func: (1, 1, 0.0, 0.0, {"main": (1, 1, 0.0, 0.0)})},
            "caller-count.prof": {func: (1, 1, 0.0, 0.0, {func: "1"})},
        }
        for name, data in cases.items():
            path = fx.write_raw(self.folder, name, data)
            with self.subTest(name=name), self.assertRaises(CorruptProfile) as caught:
                saved.load_stats(path)
            message = str(caught.exception)
            self.assertIn(name, message)
            self.assertNotIn("\n", message)

    def test_directory_and_missing_file(self):
        """A directory is corrupt; a missing file is not found."""
        with self.assertRaises(CorruptProfile):
            saved.load_stats(self.folder)
        with self.assertRaises(ProfileNotFound):
            saved.load_stats(os.path.join(self.folder, "nope.prof"))

    def test_errors_never_show_the_server_path(self):
        """An OSError's message names the file alone, since the dashboard shows it."""
        with self.assertRaises(CorruptProfile) as caught:
            saved.load_stats(self.folder)
        message = str(caught.exception)
        self.assertIn("IsADirectoryError: Is a directory", message)
        self.assertNotIn(os.path.dirname(self.folder), message)

    def test_profile_module_counts_are_accepted(self):
        """The pure-Python profile module's count-only caller values are valid data."""
        func, caller = ("a.py", 1, "f"), ("a.py", 9, "g")
        data = {func: (2, 2, 0.1, 0.1, {caller: 2}), caller: (1, 1, 0.0, 0.1, {})}
        stats = saved.load_stats(fx.write_raw(self.folder, "old.prof", data))
        self.assertEqual(stats.total_calls, 3)

    def test_cached_stats(self):
        """A profile is read once while unchanged, again once replaced; a missing one fails."""
        path = os.path.join(self.folder, fx.write_profile(self.folder))
        first = saved.cached_stats(path)
        self.assertIs(saved.cached_stats(path), first)
        fx.write_raw(self.folder, os.path.basename(path), fx.synthetic_stats())
        os.utime(path, ns=(1, 1))
        replaced = saved.cached_stats(path)
        self.assertIsNot(replaced, first)
        self.assertEqual(replaced.stats, fx.synthetic_stats())
        with self.assertRaises(ProfileNotFound):
            saved.cached_stats(os.path.join(self.folder, "gone.prof"))

    def test_merge_adds_profiles(self):
        """Merged calls and times are the sums of the parts."""
        paths = [os.path.join(self.folder, fx.write_profile(self.folder)) for _ in range(3)]
        merged = saved.merge(paths)
        parts = [pstats.Stats(path) for path in paths]
        self.assertEqual(merged.total_calls, sum(part.total_calls for part in parts))
        self.assertAlmostEqual(merged.total_tt, sum(part.total_tt for part in parts))
        func = next(f for f in merged.stats if f[2] == "shared")
        self.assertEqual(merged.stats[func][1], 9)

    def test_merge_stats_keeps_every_sampled_stack(self):
        """Sampled profiles alone merge into one sampled profile of all their stacks."""
        view, helper = ("app.py", 1, "view"), ("app.py", 9, "helper")
        first = sampled.stats_from_stacks([((view,), 0.25), ((view, helper), 0.5)], interval=0.001)
        second = sampled.stats_from_stacks([((view, helper), 0.125)], interval=0.001)
        merged = saved.merge_stats([first, second])
        self.assertEqual(sampled.engine_of(merged), "sampling")
        self.assertEqual(merged.stacks, [((view,), 0.25), ((view, helper), 0.625)])
        self.assertEqual(merged.stats[helper][2:4], (0.625, 0.625))
        self.assertEqual(merged.stats[view][3], 0.875)
        self.assertEqual(merged.interval, 0.001)
        other = sampled.stats_from_stacks([((view,), 0.25)], interval=0.01)
        self.assertIsNone(saved.merge_stats([first, other]).interval)  # intervals differ

    def test_merge_stats_refuses_a_mix_of_engines(self):
        """cProfile and sampled times measure different things: a mix is one clear error."""
        part = sampled.stats_from_stacks([((("app.py", 1, "view"),), 0.5)], interval=0.001)
        real = fx.real_stats()
        with self.assertRaisesRegex(MixedEngines, "cannot merge 1 cProfile and 1 sampled"):
            saved.merge_stats([real, part])
        self.assertEqual(len(real.stats), len(fx.real_stats().stats))  # the parts are unchanged

    def test_merge_errors(self):
        """Merging nothing is a ValueError; a corrupt part is a CorruptProfile."""
        with self.assertRaises(ValueError):
            saved.merge([])
        good = os.path.join(self.folder, fx.write_profile(self.folder))
        bad = fx.write_raw(self.folder, "bad.prof", b"nope")
        with self.assertRaises(CorruptProfile):
            saved.merge([good, bad])


if __name__ == "__main__":
    unittest.main()
