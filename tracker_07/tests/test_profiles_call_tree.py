"""Tests for the sampled profile's console call tree: top-down, ms and percent, cut below 1%."""
import unittest

from tracker_07.profiles import call_tree

VIEW = ("/app/views.py", 10, "view")
SLOW = ("/app/work.py", 20, "slow")
FAST = ("/app/work.py", 30, "fast")
TINY = ("/app/work.py", 40, "tiny")
COUNT = ("~", 0, "list.count")
STACKS = [((VIEW, SLOW, COUNT), 0.060), ((VIEW, FAST), 0.030), ((VIEW, SLOW), 0.005),
          ((VIEW, TINY), 0.0009), ((VIEW,), 0.0041)]


class CallTreeTestCase(unittest.TestCase):
    """The tree a sampled profile prints on the console."""

    def test_top_down_heaviest_first_with_ms_and_percent(self):
        lines = call_tree.tree_lines(STACKS, 0.1)
        self.assertEqual(lines[1:], [
            "    100.0 100.0%  view  (app/views.py:10)",
            "     65.0  65.0%    slow  (app/work.py:20)",
            "     60.0  60.0%      list.count  (built-in)",
            "     30.0  30.0%    fast  (app/work.py:30)",
        ])

    def test_what_is_under_one_percent_is_left_out(self):
        lines = call_tree.tree_lines(STACKS, 0.1)
        self.assertFalse([line for line in lines if "tiny" in line])
        self.assertTrue([line for line in call_tree.tree_lines(STACKS, 0.1, min_percent=0.5)
                         if "tiny" in line])

    def test_report_header_and_an_empty_request(self):
        text = call_tree.report(STACKS, 100.0, 0.001, 100)
        self.assertTrue(text.startswith("Sampled call tree: 100 samples every 1 ms; 100.0 ms"))
        self.assertEqual(call_tree.tree_lines(STACKS, 0), [])

    def test_short_places(self):
        self.assertEqual(call_tree.short_place(("app.py", 3, "f")), "app.py:3")
        self.assertEqual(call_tree.short_place(("C:\\x\\flask\\app.py", 3, "f")), "flask/app.py:3")


if __name__ == "__main__":
    unittest.main()
