"""Pure views of pstats data, checked against pstats itself and against exact synthetic data.

As long as the module it tests (one test class per view of ``profiles/analysis.py``).
"""
import io
import json
import math
import pstats
import re
import unittest

from tracker_07.profiles import analysis, sampled
from tracker_07.tests import profile_fixtures as fx


def func_named(data, name):
    """Return the pstats key of the only function called ``name``."""
    (func,) = [func for func in analysis.stats_dict(data) if func[2] == name]
    return func


def nodes_named(tree, name):
    """Return every flame tree node of the function called ``name``."""
    return [node for node, _ in analysis.iter_tree(tree["root"]) if node["name"] == name]


class HeaderAndTableTest(unittest.TestCase):
    """The table shows what pstats prints, sortable and filterable."""

    def setUp(self):
        """Profile the workload once."""
        self.profiler = fx.profile_stats(fx.workload)
        self.stats = pstats.Stats(self.profiler)

    def test_header_matches_pstats(self):
        """Calls, primitive calls and seconds are pstats' own totals."""
        self.assertEqual(
            analysis.header(self.stats),
            {
                "calls": self.stats.total_calls,
                "primitive_calls": self.stats.prim_calls,
                "total_time": self.stats.total_tt,
            },
        )
        self.assertEqual(analysis.header(self.stats.stats), analysis.header(self.stats))

    def test_rows_match_pstats_printout(self):
        """Every row's ncalls and label appear together on a line pstats prints."""
        stream = io.StringIO()
        printed = pstats.Stats(self.profiler, stream=stream)
        printed.print_stats()
        lines = stream.getvalue().splitlines()
        result = analysis.table(self.stats, limit=None)
        self.assertEqual(len(result["rows"]), len(self.stats.stats))
        for row in result["rows"]:
            pattern = re.compile(rf"^\s*{re.escape(row['ncalls'])}\s.*\s{re.escape(row['label'])}$")
            self.assertTrue(any(pattern.match(line) for line in lines), row["label"])

    def test_recursive_ncalls_and_percall(self):
        """A recursive function shows ``calls/primitive``; percall divides like pstats."""
        func = func_named(self.stats, "countdown")
        cc, nc, tt, ct, _ = self.stats.stats[func]
        (row,) = analysis.table(self.stats, text="countdown")["rows"]
        self.assertEqual(row["ncalls"], f"{nc}/{cc}")
        self.assertEqual(row["ncalls"], "6/1")
        self.assertEqual(row["tottime_percall"], tt / nc)
        self.assertEqual(row["cumtime_percall"], ct / cc)
        self.assertEqual(row["id"], analysis.function_id(func))

    def test_zero_calls_percall_is_zero(self):
        """A function with no calls has zero per-call times instead of a division error."""
        row = analysis.function_row(("a.py", 1, "f"), (0, 0, 0.0, 0.0, {}))
        self.assertEqual((row["tottime_percall"], row["cumtime_percall"]), (0.0, 0.0))

    def test_builtin_labels(self):
        """Built-ins are labelled as pstats labels them and flagged."""
        rows = analysis.table(self.stats, limit=None)["rows"]
        builtins = [row for row in rows if row["builtin"]]
        self.assertTrue(builtins)
        for row in builtins:
            self.assertEqual(row["label"], pstats.func_std_string(("~", 0, row["name"])))

    def test_every_column_sorts_both_ways(self):
        """Each sort key orders the rows by its column in both directions."""
        for key, value in analysis.TABLE_SORT_KEYS.items():
            for descending in (False, True):
                rows = analysis.table(self.stats, sort=key, descending=descending, limit=None)
                values = [value(row) for row in rows["rows"]]
                self.assertEqual(values, sorted(values, reverse=descending), key)

    def test_text_filter_and_limit(self):
        """Text filters labels in any case; limit cuts; the counts before both are kept."""
        result = analysis.table(self.stats, text="SHARED", limit=5)
        self.assertEqual([row["name"] for row in result["rows"]], ["shared"])
        self.assertEqual(result["total"], len(self.stats.stats))
        self.assertEqual(result["matched"], 1)
        limited = analysis.table(self.stats, limit=3)
        self.assertEqual((len(limited["rows"]), limited["matched"]), (3, len(self.stats.stats)))
        self.assertEqual(analysis.table(self.stats, limit=-1)["rows"], [])

    def test_bad_sort_key(self):
        """An unknown column is refused with the allowed ones."""
        with self.assertRaisesRegex(ValueError, "cumtime"):
            analysis.table(self.stats, sort="nope")

    def test_function_id_is_stable_and_url_safe(self):
        """The same function gets the same id in another profile; ids are hex."""
        other = fx.real_stats(10)
        func = func_named(self.stats, "shared")
        other_func = func_named(other, "shared")
        self.assertEqual(analysis.function_id(func), analysis.function_id(other_func))
        self.assertRegex(analysis.function_id(func), r"^[0-9a-f]{16}$")


class CallersCalleesTest(unittest.TestCase):
    """Per-edge numbers are pstats' caller data."""

    def setUp(self):
        """Profile the workload once."""
        self.stats = fx.real_stats()
        self.data = self.stats.stats

    def test_shared_has_two_callers_with_their_edges(self):
        """``shared`` lists ``b`` and ``d`` with exactly pstats' edge numbers."""
        shared = func_named(self.data, "shared")
        result = analysis.callers_callees(self.stats, analysis.function_id(shared))
        self.assertEqual(result["function"]["name"], "shared")
        by_label = {row["label"]: row for row in result["callers"]}
        for caller_name in ("b", "d"):
            caller = func_named(self.data, caller_name)
            calls, primitive, tottime, cumtime = self.data[shared][4][caller]
            row = by_label[pstats.func_std_string(caller)]
            self.assertEqual(
                (row["calls"], row["primitive_calls"], row["tottime"], row["cumtime"]),
                (calls, primitive, tottime, cumtime),
            )
        self.assertEqual(by_label[pstats.func_std_string(func_named(self.data, "b"))]["calls"], 2)

    def test_callees_of_a(self):
        """``a`` calls ``b`` (twice) and ``c``, with the edges stored on the callees."""
        a_func = func_named(self.data, "a")
        result = analysis.callers_callees(self.data, analysis.function_id(a_func))
        names = sorted(row["label"] for row in result["callees"])
        expected = sorted(pstats.func_std_string(func_named(self.data, n)) for n in ("b", "c"))
        self.assertEqual(names, expected)
        cumtimes = [row["cumtime"] for row in result["callees"]]
        self.assertEqual(cumtimes, sorted(cumtimes, reverse=True))

    def test_unknown_function(self):
        """An id not in the profile raises UnknownFunction."""
        with self.assertRaises(analysis.UnknownFunction):
            analysis.callers_callees(self.stats, "0" * 16)

    def test_count_only_edges(self):
        """The profile module's count-only edges have unknown (None) times, sorted last."""
        func, first, second = ("a.py", 1, "f"), ("a.py", 5, "g"), ("a.py", 9, "h")
        data = {
            func: (3, 3, 0.3, 0.3, {first: 2, second: (1, 1, 0.1, 0.1)}),
            first: (1, 1, 0.0, 0.2, {}),
            second: (1, 1, 0.0, 0.1, {}),
        }
        result = analysis.callers_callees(data, analysis.function_id(func))
        self.assertEqual([row["cumtime"] for row in result["callers"]], [0.1, None])
        self.assertEqual(result["callers"][1]["ncalls"], "2")


class FlameTreeTest(unittest.TestCase):
    """The flame tree never invents per-path times."""

    def setUp(self):
        """Profile the workload; build its complete tree."""
        self.stats = fx.real_stats()
        self.data = self.stats.stats
        self.tree = analysis.flame_tree(self.stats, min_fraction=0.0, max_nodes=None)

    def test_shared_is_not_expanded(self):
        """``shared`` (two callers) appears under each caller with that edge's time, unexpanded."""
        shared = func_named(self.data, "shared")
        nodes = nodes_named(self.tree, "shared")
        self.assertEqual(len(nodes), 2)
        edge_times = sorted(edge[3] for edge in self.data[shared][4].values())
        self.assertEqual(sorted(node["time"] for node in nodes), edge_times)
        for node in nodes:
            self.assertTrue(node["split_unknown"])
            self.assertEqual(node["callers"], 2)
            self.assertEqual(node["children"], [])

    def test_single_caller_chain_is_expanded(self):
        """``a`` -> ``c`` -> ``d`` -> ``shared`` are nested; ``b`` is expanded with ``shared``."""
        (a_node,) = nodes_named(self.tree, "a")
        self.assertEqual(sorted(child["name"] for child in a_node["children"]), ["b", "c"])
        (c_node,) = nodes_named(self.tree, "c")
        self.assertEqual([child["name"] for child in c_node["children"]], ["d"])
        (d_node,) = nodes_named(self.tree, "d")
        self.assertEqual([child["name"] for child in d_node["children"]], ["shared"])
        (b_node,) = nodes_named(self.tree, "b")
        self.assertEqual(b_node["calls"], 2)
        self.assertFalse(b_node["split_unknown"])

    def test_roots_and_total(self):
        """Roots are the functions without callers; the total is their cumulative time."""
        root_names = {child["name"] for child in self.tree["root"]["children"]}
        self.assertIn("workload", root_names)
        expected_roots = [func for func, entry in self.data.items() if not entry[4]]
        self.assertEqual(len(root_names), len(expected_roots))
        self.assertAlmostEqual(self.tree["total"], sum(self.data[f][3] for f in expected_roots))
        self.assertTrue(self.tree["root"]["virtual"])

    def test_recursion_is_folded(self):
        """``countdown`` calls itself but is drawn once, flagged recursive, with no self child."""
        (node,) = nodes_named(self.tree, "countdown")
        self.assertTrue(node["recursive"])
        self.assertFalse(node["split_unknown"])
        self.assertEqual(node["children"], [])

    def test_synthetic_times_are_edge_times(self):
        """On exact data every node's time is its edge's cumulative time."""
        tree = analysis.flame_tree(fx.synthetic_stats(), min_fraction=0.0)
        self.assertEqual(tree["total"], 1.25)
        self.assertEqual([c["name"] for c in tree["root"]["children"]], ["main", "other"])
        self.assertEqual(sorted(n["time"] for n in nodes_named(tree, "shared")), [0.1, 0.4])
        (deeper,) = nodes_named(tree, "deeper")
        self.assertEqual((deeper["time"], deeper["self_time"]), (0.05, 0.05))

    def test_small_children_are_hidden_and_counted(self):
        """Children under the minimum fraction are left out and their time recorded."""
        tree = analysis.flame_tree(fx.synthetic_stats(), min_fraction=0.01)
        self.assertEqual(nodes_named(tree, "tiny"), [])
        (main,) = nodes_named(tree, "main")
        self.assertEqual((main["hidden_children"], main["hidden_time"]), (1, 0.001))
        self.assertEqual((tree["hidden_nodes"], tree["hidden_time"]), (1, 0.001))

    def test_node_limit(self):
        """No more than ``max_nodes`` nodes are built; the rest are counted as hidden."""
        tree = analysis.flame_tree(fx.synthetic_stats(), min_fraction=0.0, max_nodes=4)
        built = list(analysis.iter_tree(tree["root"]))
        self.assertEqual(len(built), 4)
        self.assertEqual(tree["node_count"], 4)
        # main's right and tiny, left's shared and deep (deeper, under deep, is never reached).
        self.assertEqual(tree["hidden_nodes"], 4)

    def test_count_only_edges(self):
        """Count-only edges get the whole function's time only when it has one caller."""
        root, single, multi = ("a.py", 1, "root"), ("a.py", 2, "single"), ("a.py", 3, "multi")
        data = {
            root: (1, 1, 0.1, 1.0, {}),
            single: (1, 1, 0.2, 0.5, {root: 1}),
            multi: (2, 2, 0.3, 0.3, {root: 1, single: 1}),
        }
        tree = analysis.flame_tree(data, min_fraction=0.0)
        (single_node,) = nodes_named(tree, "single")
        self.assertEqual(single_node["time"], 0.5)
        self.assertEqual({node["time"] for node in nodes_named(tree, "multi")}, {0.0})

    def test_function_whose_caller_is_missing_is_not_drawn(self):
        """A function called only by a function absent from the data belongs to no root."""
        root, orphan = ("a.py", 1, "root"), ("a.py", 2, "orphan")
        data = {
            root: (1, 1, 1.0, 1.0, {}),
            orphan: (1, 1, 0.5, 0.5, {("gone.py", 1, "gone"): fx.edge(1, 0.5, 0.5)}),
        }
        tree = analysis.flame_tree(data, min_fraction=0.0)
        self.assertEqual([child["name"] for child in tree["root"]["children"]], ["root"])
        self.assertEqual(nodes_named(tree, "orphan"), [])

    def test_empty_profile(self):
        """An empty profile is a lone, empty root."""
        tree = analysis.flame_tree({})
        self.assertEqual((tree["total"], tree["root"]["children"]), (0, []))


class DiffTest(unittest.TestCase):
    """Diffs mark real changes and ignore noise."""

    def setUp(self):
        """Make an 'after' where shared slowed down, right sped up and tiny moved by noise."""
        self.before = fx.synthetic_stats()
        self.after = dict(self.before)
        shared = func_named(self.before, "shared")
        right = func_named(self.before, "right")
        tiny = func_named(self.before, "tiny")
        self.after[shared] = (3, 3, 0.9, 0.9, self.before[shared][4])
        self.after[right] = (1, 1, 0.1, 0.2, self.before[right][4])
        self.after[tiny] = (1, 1, 0.00102, 0.00102, self.before[tiny][4])
        del self.after[func_named(self.before, "other")]
        self.after[("new.py", 1, "added")] = (1, 1, 0.05, 0.05, {})

    def test_statuses(self):
        """Slowed is regressed, faster is improved, tiny changes are the same, one side new/gone."""
        result = analysis.diff(self.before, self.after)
        rows = {row["label"].rsplit("(", 1)[-1]: row for row in result["rows"]}
        self.assertEqual(rows["shared)"]["status"], "regressed")
        self.assertAlmostEqual(rows["shared)"]["delta_tottime"], 0.4)
        self.assertEqual(rows["right)"]["status"], "improved")
        self.assertEqual(rows["tiny)"]["status"], "same")
        self.assertEqual(rows["main)"]["status"], "same")
        other = rows["other)"]
        self.assertEqual((other["only_in"], other["status"]), ("before", "gone"))
        added = rows["added)"]
        self.assertEqual((added["only_in"], added["after_calls"], added["status"]),
                         ("after", 1, "new"))
        self.assertEqual(result["totals"]["status"],
                         analysis.diff_status(result["totals"]["before"]["total_time"],
                                              result["totals"]["after"]["total_time"]))
        self.assertIsNone(rows["main)"]["only_in"])

    def test_sorted_by_absolute_delta(self):
        """The biggest change, either way, comes first."""
        rows = analysis.diff(self.before, self.after)["rows"]
        deltas = [abs(row["delta_tottime"]) for row in rows]
        self.assertEqual(deltas, sorted(deltas, reverse=True))
        self.assertEqual(rows[0]["label"], "lib.py:5(shared)")

    def test_cumtime_key_and_totals(self):
        """The cumulative key marks by cumulative time; totals compare own-time sums."""
        result = analysis.diff(self.before, self.after, key="cumtime")
        right = next(row for row in result["rows"] if row["label"].endswith("(right)"))
        self.assertAlmostEqual(right["delta_cumtime"], -0.1)
        totals = result["totals"]
        own_times = sum(entry[2] for entry in self.before.values())
        self.assertAlmostEqual(totals["before"]["total_time"], own_times)
        self.assertAlmostEqual(totals["delta_time"], 0.4 - 0.1 + 0.00002 - 0.25 + 0.05)
        self.assertEqual(totals["status"], "regressed")

    def test_bad_key(self):
        """Only tottime and cumtime can be compared."""
        with self.assertRaises(ValueError):
            analysis.diff(self.before, self.after, key="calls")

    def test_real_slowdown_is_regressed(self):
        """A real profile where ``shared`` does 100 times more work shows it regressed."""
        result = analysis.diff(fx.real_stats(2000), fx.real_stats(200_000))
        shared = next(row for row in result["rows"] if row["label"].endswith("(shared)"))
        self.assertEqual(shared["status"], "regressed")
        self.assertEqual(result["rows"][0]["label"], shared["label"])

    def test_noise_threshold(self):
        """Changes within NOISE_SECONDS or NOISE_RATIO are the same."""
        self.assertEqual(analysis.diff_status(1.0, 1.0 + analysis.NOISE_RATIO / 2), "same")
        self.assertEqual(analysis.diff_status(0.0, analysis.NOISE_SECONDS), "same")
        self.assertEqual(analysis.diff_status(0.0, 2 * analysis.NOISE_SECONDS), "regressed")


class ExportTest(unittest.TestCase):
    """Collapsed stacks and speedscope files come from the same honest tree."""

    def test_collapsed_lines_add_up_to_the_total(self):
        """Every line is ``frames <integer>``; the values sum to the roots' time."""
        stats = fx.real_stats()
        lines = analysis.collapsed_stacks(stats)
        self.assertTrue(lines)
        values = []
        for line in lines:
            frames, value = line.rsplit(" ", 1)
            self.assertRegex(value, r"^\d+$")
            self.assertTrue(frames)
            values.append(int(value))
        tree = analysis.flame_tree(stats, min_fraction=0.0, max_nodes=None)
        total_us = tree["total"] * 1_000_000
        self.assertLessEqual(abs(sum(values) - total_us), tree["node_count"])

    def test_collapsed_exact(self):
        """On exact data an unexpanded node carries its whole edge time as its own frame."""
        lines = analysis.collapsed_stacks(fx.synthetic_stats())
        self.assertIn("app.py:1(main);app.py:10(left);lib.py:5(shared) 400000", lines)
        self.assertIn("app.py:1(main);app.py:20(right);lib.py:5(shared) 100000", lines)
        self.assertIn("app.py:1(main) 99000", lines)
        self.assertIn("other.py:1(other) 250000", lines)
        self.assertEqual(sum(int(line.rsplit(" ", 1)[1]) for line in lines), 1_250_000)

    def test_frame_names_cannot_break_lines(self):
        """Separators and line breaks in labels are replaced."""
        self.assertEqual(analysis.frame_name("a;b\nc\rd"), "a,b c d")
        data = {("dir;x/a.py", 1, "f"): (1, 1, 0.5, 0.5, {})}
        self.assertEqual(analysis.collapsed_stacks(data), ["dir,x/a.py:1(f) 500000"])

    def test_speedscope_file(self):
        """The speedscope file has the schema's keys, frame indices in range, matching weights."""
        document = json.loads(json.dumps(analysis.speedscope(fx.real_stats(), "GET /work")))
        self.assertEqual(document["$schema"], sampled.SPEEDSCOPE_SCHEMA)
        self.assertEqual(document["exporter"], "tracker_07")
        (profile,) = document["profiles"]
        self.assertEqual(
            (profile["type"], profile["unit"], profile["name"]), ("sampled", "seconds", "GET /work")
        )
        frames = document["shared"]["frames"]
        self.assertEqual(len(profile["samples"]), len(profile["weights"]))
        for sample in profile["samples"]:
            self.assertTrue(sample)
            self.assertTrue(all(0 <= index < len(frames) for index in sample))
        span = profile["endValue"] - profile["startValue"]
        self.assertTrue(math.isclose(span, sum(profile["weights"])))
        for frame in frames:
            self.assertIsInstance(frame["name"], str)
            if "file" in frame:
                self.assertIsInstance(frame["line"], int)
        self.assertTrue(any("file" not in frame for frame in frames))

    def test_speedscope_skips_empty_frames(self):
        """A node with no own time is a frame but not a sample of its own."""
        root, child = ("a.py", 1, "root"), ("a.py", 2, "child")
        data = {
            root: (1, 1, 0.0, 1.0, {}),
            child: (1, 1, 1.0, 1.0, {root: fx.edge(1, 1.0, 1.0)}),
        }
        document = analysis.speedscope(data, "x")
        self.assertEqual(len(document["shared"]["frames"]), 2)
        self.assertEqual(document["profiles"][0]["samples"], [[0, 1]])
        self.assertEqual(document["profiles"][0]["weights"], [1.0])

    def test_speedscope_exact(self):
        """Exact data gives one sample per non-empty node and one frame per function."""
        document = analysis.speedscope(fx.synthetic_stats(), "x")
        names = [frame["name"] for frame in document["shared"]["frames"]]
        self.assertEqual(len(names), len(set(names)))
        self.assertAlmostEqual(document["profiles"][0]["endValue"], 1.25)
        shared_index = names.index("shared")
        (profile,) = document["profiles"]
        shared_weights = sorted(
            weight
            for sample, weight in zip(profile["samples"], profile["weights"])
            if sample[-1] == shared_index
        )
        self.assertEqual(shared_weights, [0.1, 0.4])


if __name__ == "__main__":
    unittest.main()
