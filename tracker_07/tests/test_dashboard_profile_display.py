"""What the profile page shows of a function: labels read back, own-code callers, fitting text."""
import os
import unittest

from tracker_07.dashboard import profile_display as display
from tracker_07.profiles import analysis, frames, sampled

APP = os.path.join(os.sep, "srv", "shop")
LIB = os.path.join(os.sep, "srv", "venv", "site-packages")
VIEW = (os.path.join(APP, "views.py"), 3, "view")
HELPER = (os.path.join(LIB, "lib", "helper.py"), 9, "helper")
LOOP = (os.path.join(LIB, "lib", "loop.py"), 1, "loop")
COUNT = ("~", 0, "<method 'count' of 'list' objects>")


def classifier():
    """Files under APP are the app's; the rest is a library."""
    return frames.Classifier([APP], import_roots=[APP, LIB], stdlib=[])


class LabelTestCase(unittest.TestCase):
    """Edge rows carry only pstats labels: they are split back into file, line and name."""

    def test_split_label(self):
        cases = {
            "/a/b.py:12(name)": ("/a/b.py", 12, "name"),
            "C:\\a\\b.py:3(<lambda>)": ("C:\\a\\b.py", 3, "<lambda>"),
            "{method 'count' of 'list' objects}": ("~", 0, "{method 'count' of 'list' objects}"),
            "odd": ("~", 0, "odd"),
            "b.py:x(name)": ("~", 0, "b.py:x(name)"),
            ":5(name)": ("~", 0, ":5(name)"),
            "b.py:5(name": ("b.py", 5, "name"),
        }
        for label, parts in cases.items():
            self.assertEqual(display.split_label(label), parts, label)
            if parts[0] != "~" and label.endswith(")"):
                self.assertEqual(analysis.function_label(parts), label)

    def test_builtins_read_as_pstats_prints_them(self):
        self.assertEqual(display.describe(classifier(), *COUNT),
                         {"kind": "builtin", "short": "", "full": "",
                          "name": "{method 'count' of 'list' objects}"})
        self.assertEqual(display.describe(classifier(), "<built-in>", 0, "list.count")["name"],
                         "list.count")

    def test_frame_text_fits_the_width(self):
        self.assertEqual(display.frame_text("view", "12.3", "45%", 200), "view 12.3 ms 45%")
        self.assertEqual(display.frame_text("view", "12.3", "45%", 60), "view")
        self.assertEqual(display.frame_text("long_name", "12.3", "45%", 50), "long_…")
        self.assertEqual(display.frame_text("view", "12.3", "45%", 20), "")


class OwnCallerTestCase(unittest.TestCase):
    """The hottest functions name the app's code that led to them."""

    def test_heaviest_path_up_to_own_code(self):
        stats = sampled.stats_from_stacks(
            [((VIEW, HELPER, COUNT), 0.8), ((LOOP, COUNT), 0.1), ((VIEW,), 0.1)], interval=0.001)
        files = classifier()
        self.assertEqual(display.own_caller(stats.stats, COUNT, files), VIEW)
        hot = display.hottest(stats, files, 1.0)
        self.assertEqual([row["name"] for row in hot],
                         ["{method 'count' of 'list' objects}", "view"])
        self.assertEqual(hot[0]["own_caller"]["short"], "views.py:3")
        self.assertEqual(hot[0]["own_caller"]["id"], analysis.function_id(VIEW))
        self.assertIsNone(hot[1]["own_caller"])  # own code needs no pointer
        self.assertEqual((hot[0]["own_pct"], hot[0]["cum_ms"]), ("90%", "900"))

    def test_no_own_code_above(self):
        stats = sampled.stats_from_stacks([((LOOP, HELPER), 0.5)], interval=0.001)
        files = classifier()
        self.assertIsNone(display.own_caller(stats.stats, HELPER, files))
        self.assertIsNone(display.hottest(stats, files, 0.5)[0]["own_caller"])

    def test_recursion_and_long_chains_end(self):
        data = {LOOP: (1, 1, 0.0, 1.0, {HELPER: (1, 1, 0.0, 1.0)}),
                HELPER: (1, 1, 1.0, 1.0, {LOOP: (1, 1, 0.0, 1.0)})}
        self.assertIsNone(display.own_caller(data, HELPER, classifier()))
        chain = [(os.path.join(LIB, f"f{number}.py"), 1, "f") for number in range(70)]
        data = {func: (1, 1, 0.0, 1.0, {chain[i + 1]: (1, 1, 0.0, 1.0)} if i + 1 < 70 else {})
                for i, func in enumerate(chain)}
        self.assertIsNone(display.own_caller(data, chain[0], classifier()))

    def test_functions_without_own_time_are_not_hot(self):
        data = {VIEW: (1, 1, 0.0, 0.0, {})}
        self.assertEqual(display.hottest(data, classifier(), 0.0), [])


if __name__ == "__main__":
    unittest.main()
