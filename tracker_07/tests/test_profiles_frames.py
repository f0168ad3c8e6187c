"""Times and percents as people read them, short file names, kinds of code, own-code folding."""
import json
import os
import sysconfig
import unittest

from tracker_07.profiles import frames
from tracker_07.profiles.frames import BUILTIN, LIBRARY, OWN, STDLIB, Classifier

VENV = os.path.join(os.sep, "home", "me", "shop", ".venv", "lib", "python3.11", "site-packages")
STDLIB_DIR = os.path.join(os.sep, "usr", "lib", "python3.11")
APP = os.path.join(os.sep, "home", "me", "shop")


def path(*parts):
    """An absolute path made of ``parts`` under the filesystem root."""
    return os.path.join(os.sep, *parts)


class FormatTestCase(unittest.TestCase):
    """Milliseconds with about three significant digits; percents without false precision."""

    def test_milliseconds(self):
        cases = {0: "0", 0.000_004: "<0.01", 0.000_01: "0.01", 0.000_0123: "0.012",
                 0.000_123_4: "0.123", 0.000_5: "0.500", 0.001_234_5: "1.23", 0.012_345: "12.3",
                 0.222_4: "222", 12.345_6: "12,346", None: "—"}
        for seconds, text in cases.items():
            self.assertEqual(frames.format_ms(seconds), text, seconds)

    def test_percent(self):
        cases = {0: "0%", 0.000_4: "<0.1%", 0.001: "0.1%", 0.0567: "5.7%", 0.0999: "10.0%",
                 0.1: "10%", 0.987: "99%", 1.0: "100%"}
        for fraction, text in cases.items():
            self.assertEqual(frames.format_percent(fraction), text, fraction)


class ClassifierTestCase(unittest.TestCase):
    """Short names relative to where imports start; own code is the app's, not Tracker's."""

    def setUp(self):
        self.files = Classifier([APP], import_roots=[APP, VENV, ""], stdlib=[STDLIB_DIR],
                                not_own=[path("home", "me", "shop", "tracker_07")],
                                own_inside=[path("home", "me", "shop", "tracker_07", "main")])

    def test_kinds_and_short_names(self):
        cases = [
            ((os.path.join(VENV, "flask", "app.py"), 1003), (LIBRARY, "flask/app.py:1003")),
            ((os.path.join(STDLIB_DIR, "json", "decoder.py"), 337),
             (STDLIB, "json/decoder.py:337")),
            ((path("home", "me", "shop", "shop", "views.py"), 12), (OWN, "shop/views.py:12")),
            ((path("home", "me", "shop", "tracker_07", "main", "wordcount.py"), 24),
             (OWN, "tracker_07/main/wordcount.py:24")),
            ((path("home", "me", "shop", "tracker_07", "profiler.py"), 80),
             (LIBRARY, "tracker_07/profiler.py:80")),
            ((path("opt", "elsewhere", "lib.py"), 5), (LIBRARY, "/opt/elsewhere/lib.py:5")),
            (("<frozen importlib._bootstrap>", 241),
             (STDLIB, "<frozen importlib._bootstrap>:241")),
            (("<template>", 3), (LIBRARY, "<template>:3")),
            (("~", 0), (BUILTIN, "")),
            (("<built-in>", 0), (BUILTIN, "")),
        ]
        for (filename, lineno), (kind, short) in cases:
            described = self.files.describe(filename, lineno)
            self.assertEqual(described[:2], (kind, short), filename)
            self.assertEqual(self.files.kind(filename, lineno), kind)
            if kind != BUILTIN:
                self.assertEqual(described[2], f"{filename}:{lineno}")

    def test_site_packages_inside_the_app_folder_is_a_library(self):
        self.assertEqual(self.files.kind(path("home", "me", "shop", "vendor", "dist-packages",
                                              "x.py")), LIBRARY)

    def test_a_folder_named_like_the_app_is_not_the_app(self):
        self.assertEqual(self.files.kind(path("home", "me", "shopping", "x.py")), LIBRARY)

    def test_defaults_are_this_interpreter(self):
        files = Classifier([os.path.dirname(os.path.abspath(__file__))])
        self.assertEqual(files.describe(json.__file__, 1)[:2], (STDLIB, "json/__init__.py:1"))
        self.assertEqual(files.kind(__file__), LIBRARY)  # Tracker's tests are not the demo
        self.assertEqual(files.kind(frames.TRACKER_DEMO + "/wordcount.py"), LIBRARY)
        demo = Classifier([frames.TRACKER_PACKAGE])
        self.assertEqual(demo.describe(os.path.join(frames.TRACKER_DEMO, "wordcount.py"), 24)[:2],
                         (OWN, "tracker_07/main/wordcount.py:24"))
        self.assertEqual(demo.kind(frames.__file__), LIBRARY)
        self.assertIn(sysconfig.get_paths()["stdlib"], frames.stdlib_folders())


def node(node_id, name, time, self_time=0.0, children=(), calls=1):
    """A flame tree node with what the fold reads."""
    return {"id": node_id, "func_id": name, "name": name, "label": name, "time": time,
            "self_time": self_time, "calls": calls, "virtual": node_id == "n0",
            "children": list(children)}


def own_names(tree):
    """The folded tree as nested (name, time, self_time) tuples."""
    def shape(item):
        return (item["name"], round(item["time"], 6), round(item["self_time"], 6),
                [shape(child) for child in item["children"]])
    return shape(tree["root"])


class FoldTestCase(unittest.TestCase):
    """Own code only: library frames fold into their nearest own caller, twins merge."""

    def is_own(self, item):
        """The test functions' own code is named ``app.*``."""
        return item["virtual"] or item["name"].startswith("app.")

    def test_library_time_goes_to_the_nearest_own_caller(self):
        # all -> lib.wsgi(10) -> app.view(9) -> lib.render(5: own 1) -> app.helper(4: own 4)
        #                                    -> builtin.count(3)
        tree = {"root": node("n0", "all", 10, children=[
            node("n1", "lib.wsgi", 10, 1, [
                node("n2", "app.view", 9, 1, [
                    node("n3", "lib.render", 5, 1, [node("n5", "app.helper", 4, 4)]),
                    node("n4", "builtin.count", 3, 3)])])]), "hidden_nodes": 0}
        folded = frames.fold_to_own(tree, self.is_own)
        self.assertEqual(own_names(folded), (
            "all", 10, 1, [("app.view", 9, 5, [("app.helper", 4, 4, [])])]))
        self.assertTrue(folded["folded"])
        self.assertEqual(folded["hidden_nodes"], 0)
        self.assertEqual(tree["root"]["children"][0]["name"], "lib.wsgi")  # a copy was folded

    def test_one_function_reached_through_two_library_paths_is_one_frame(self):
        tree = {"root": node("n0", "all", 10, children=[
            node("n1", "lib.a", 6, 1, [node("n3", "app.view", 5, 2, [
                node("n5", "app.x", 3, 3)])]),
            node("n2", "lib.b", 4, 0, [node("n4", "app.view", 4, 1, [
                node("n6", "app.y", 3, 3)])])])}
        folded = frames.fold_to_own(tree, self.is_own)
        self.assertEqual(len(folded["root"]["children"]), 1)
        view = folded["root"]["children"][0]
        self.assertEqual((view["id"], view["time"], view["self_time"], view["calls"]),
                         ("n3", 9, 3, 2))
        self.assertEqual([(child["name"], child["time"]) for child in view["children"]],
                         [("app.x", 3), ("app.y", 3)])
        self.assertEqual(folded["root"]["self_time"], 1)

    def test_no_own_code_leaves_the_root_with_all_the_time(self):
        tree = {"root": node("n0", "all", 4, children=[node("n1", "lib.a", 4, 1, [
            node("n2", "lib.b", 3, 3)])])}
        folded = frames.fold_to_own(tree, self.is_own)
        self.assertEqual(own_names(folded), ("all", 4, 4, []))


if __name__ == "__main__":
    unittest.main()
