"""Big profiles and big folders: the shortcuts that keep pages fast give the same answers."""
import marshal
import os
import unittest
from unittest import mock

from tracker_07.profiles import analysis
from tracker_07.profiles import stats as saved
from tracker_07.tests import profile_fixtures as fx


def tied_profile(count=300):
    """Make a profile whose columns repeat a few values, so that many rows tie."""
    data = {}
    for number in range(count):
        func = (f"/m{number % 7}.py", number % 11, f"f{number}")
        calls = number % 5
        data[func] = (calls, calls + number % 2, (number % 4) / 1000, (number % 6) / 1000, {})
    return data


class TableShortcutTest(unittest.TestCase):
    """A limited table picks its rows from raw entries, with the same rows as a full sort."""

    def test_limited_table_equals_the_head_of_the_full_table(self):
        """Every numeric key, both ways, several limits: the same rows in the same order."""
        data = tied_profile()
        for sort in analysis.ENTRY_SORT_KEYS:
            for descending in (True, False):
                full = analysis.table(data, sort=sort, descending=descending, limit=None)
                for limit in (0, 1, 5, 30, 299, 300, 400):
                    with self.subTest(sort=sort, descending=descending, limit=limit):
                        table = analysis.table(data, sort=sort, descending=descending,
                                               limit=limit, text=None)
                        self.assertEqual(table["rows"], full["rows"][:limit])
                        self.assertEqual((table["total"], table["matched"]), (300, 300))

    def test_rows_are_built_only_for_the_shown_functions(self):
        """The top 10 of 300 functions by own time builds rows for 10 (and their ties), not 300."""
        data = {(f"/m{n}.py", n, f"f{n}"): (1, 1, n / 1000, n / 1000, {}) for n in range(300)}
        with mock.patch.object(analysis, "function_row", wraps=analysis.function_row) as row:
            rows = analysis.table(data, limit=10)["rows"]
        self.assertEqual(row.call_count, 10)
        self.assertEqual([r["name"] for r in rows], [f"f{n}" for n in range(299, 289, -1)])


class QuickValidationTest(fx.TempFolderTestCase):
    """A well-formed profile is accepted by set operations, without a walk entry by entry."""

    def test_real_profile_is_accepted_without_the_walk(self):
        """Loading a real profile never calls the entry-by-entry check."""
        path = os.path.join(self.folder, fx.write_profile(self.folder))
        with mock.patch.object(saved, "_first_problem", side_effect=AssertionError):
            self.assertTrue(saved.load_stats(path).stats)

    def test_every_problem_still_found(self):
        """Data the quick check refuses gets the walk's exact message; count-only edges pass."""
        func = ("a.py", 1, "f")
        self.assertIsNone(saved.stats_problem({func: (1, 1, 0.0, 0.0, {func: 3})}))
        self.assertIsNone(saved.stats_problem({}))
        self.assertEqual(saved.stats_problem({func: (1, 1, 0.0, 0.0, {func: (1, 1, 0.0)})}),
                         f"bad caller entry of {func!r:.60}")
        self.assertEqual(saved.stats_problem({func: (1, True, 0.0, 0.0, {})}),
                         f"bad entry for {func!r:.60}")
        self.assertTrue(saved.stats_problem(marshal.loads(marshal.dumps([1]))))


if __name__ == "__main__":
    unittest.main()
