"""Tests for the path views: true call paths of sampled profiles, trees started at the view, SQL."""
import cProfile
import os
import pstats
import unittest

from sqlalchemy import create_engine, text

from tracker_07.dashboard import charts
from tracker_07.profiles import analysis, index, kinds, paths, sampled
from tracker_07.tests import profile_fixtures as fx
from tracker_07.tests.test_dashboard_profiles import DashboardTestCase

ROOT = ("app.py", 1, "view")
A = ("app.py", 10, "a")
B = ("app.py", 20, "b")
C = ("app.py", 30, "c")
SLEEP = ("~", 0, "<built-in method time.sleep>")

#: The app shape of the issue: c takes 4 units via a and 1 unit via b -> a; the view 0.5 itself.
FOUR_TO_ONE = [((ROOT, A, C), 0.004), ((ROOT, B, A, C), 0.001), ((ROOT,), 0.0005)]

SITE = "/venv/lib/python3.11/site-packages/"
DISPATCH = (SITE + "flask/app.py", 879, "dispatch_request")
VIEW = ("/srv/blog/views.py", 12, "posts")
RENDER = (SITE + "flask/templating.py", 139, "render_template")
#: A real SQLAlchemy 2.0 call path, as pyinstrument records a Flask-SQLAlchemy query.
QUERY_PATH = (
    (SITE + "sqlalchemy/orm/session.py", 2291, "execute"),
    (SITE + "sqlalchemy/orm/session.py", 2136, "_execute_internal"),
    (SITE + "sqlalchemy/engine/base.py", 1375, "execute"),
    (SITE + "sqlalchemy/sql/elements.py", 517, "_execute_on_connection"),
    (SITE + "sqlalchemy/engine/base.py", 1591, "_execute_clauseelement"),
    (SITE + "sqlalchemy/engine/base.py", 1791, "_execute_context"),
    (SITE + "sqlalchemy/engine/base.py", 1850, "_exec_single_context"),
)
DO_EXECUTE = (SITE + "sqlalchemy/engine/default.py", 950, "do_execute")
CURSOR_EXECUTE = ("~", 0, "<method 'execute' of 'sqlite3.Cursor' objects>")
RESULT_PROXY = (SITE + "sqlalchemy/engine/default.py", 1845, "_setup_result_proxy")
SQL_STACKS = [
    ((DISPATCH, VIEW) + QUERY_PATH + (DO_EXECUTE, CURSOR_EXECUTE), 0.030),
    ((DISPATCH, VIEW) + QUERY_PATH + (DO_EXECUTE,), 0.001),
    ((DISPATCH, VIEW) + QUERY_PATH + (RESULT_PROXY,), 0.002),
    ((DISPATCH, VIEW, RENDER), 0.010),
]


def nodes_named(tree, name):
    """Return ``(node, path of names)`` for every node of a function name, depth first."""
    return [(node, [n["name"] for n in ancestors[1:]] + [name])
            for node, ancestors in analysis.iter_tree(tree["root"]) if node["name"] == name]


class TruePathsTestCase(unittest.TestCase):
    """A sampled profile's tree and exports follow its stacks, one true path per node."""

    def setUp(self):
        self.stats = sampled.stats_from_stacks(FOUR_TO_ONE, interval=0.001)

    def test_collapsed_export_gives_each_path_its_own_time(self):
        lines = paths.collapsed_stacks(self.stats)
        self.assertEqual(lines, ["app.py:1(view);app.py:10(a);app.py:30(c) 4000",
                                 "app.py:1(view);app.py:20(b);app.py:10(a);app.py:30(c) 1000",
                                 "app.py:1(view) 500"])
        via_a, via_b = (int(line.rsplit(" ", 1)[1]) for line in lines if "(c)" in line)
        self.assertEqual(via_a / via_b, 4.0)

    def test_the_icicle_has_both_c_nodes_with_their_own_times(self):
        tree = paths.flame_tree(self.stats, min_fraction=0.0)
        found = {tuple(path): node["time"] for node, path in nodes_named(tree, "c")}
        self.assertEqual(set(found), {("view", "a", "c"), ("view", "b", "a", "c")})
        self.assertAlmostEqual(found[("view", "a", "c")], 0.004)
        self.assertAlmostEqual(found[("view", "b", "a", "c")], 0.001)
        self.assertFalse(any(node["split_unknown"] for node, _ in analysis.iter_tree(tree["root"])))
        self.assertAlmostEqual(tree["total"], 0.0055)
        self.assertIsNone(tree["start"])
        # The same data read as cProfile totals can't say how a's time divides: it stops at a.
        totals_tree = analysis.flame_tree(self.stats.stats, min_fraction=0.0)
        self.assertEqual([path for _, path in nodes_named(totals_tree, "c")], [])

    def test_own_times_and_the_root(self):
        tree = paths.flame_tree(self.stats, min_fraction=0.0)
        (view,) = tree["root"]["children"]
        self.assertEqual((view["label"], view["calls"], view["callers"]), ("app.py:1(view)", 0, 0))
        self.assertAlmostEqual(view["self_time"], 0.0005)
        self.assertEqual([child["name"] for child in view["children"]], ["a", "b"])
        self.assertEqual(tree["root"]["calls"], 1)
        (a_under_b,) = view["children"][1]["children"]
        self.assertEqual(a_under_b["callers"], 2)  # a has two callers in the profile

    def test_small_frames_and_the_node_limit_are_hidden_and_counted(self):
        tree = paths.flame_tree(self.stats, min_fraction=0.2)
        view = tree["root"]["children"][0]
        self.assertEqual([child["name"] for child in view["children"]], ["a"])
        self.assertEqual((view["hidden_children"], tree["hidden_nodes"]), (1, 1))
        self.assertAlmostEqual(view["hidden_time"], 0.001)
        limited = paths.flame_tree(self.stats, min_fraction=0.0, max_nodes=2)
        self.assertEqual((limited["node_count"], limited["hidden_nodes"]), (2, 2))
        self.assertEqual(limited["root"]["children"][0]["children"], [])
        unlimited = paths.flame_tree(self.stats, min_fraction=0.0, max_nodes=None)
        self.assertEqual(unlimited["node_count"], 7)

    def test_recursion_is_drawn_as_it_ran(self):
        stats = sampled.stats_from_stacks([((ROOT, A, A), 0.002), ((ROOT, A), 0.001)],
                                          interval=0.001)
        outer = paths.flame_tree(stats, min_fraction=0.0)["root"]["children"][0]["children"][0]
        inner = outer["children"][0]
        self.assertEqual((outer["recursive"], inner["recursive"]), (False, True))
        self.assertAlmostEqual(outer["time"], 0.003)
        self.assertAlmostEqual(inner["time"], 0.002)

    def test_both_engines_draw_the_same_node_shape(self):
        sampled_tree = paths.flame_tree(self.stats)
        cprofile_tree = paths.flame_tree(fx.real_stats())
        self.assertEqual(set(sampled_tree), set(cprofile_tree))
        for tree in (sampled_tree, cprofile_tree):
            keys = {frozenset(node) for node, _ in analysis.iter_tree(tree["root"])}
            self.assertEqual(keys, {frozenset(cprofile_tree["root"]["children"][0])})
        rects = charts.flame_rects(charts.flame_layout(sampled_tree, 100))
        self.assertEqual([rect["name"] for rect in rects][:2], ["all", "view"])

    def test_speedscope_export_is_the_stacks(self):
        document = paths.speedscope(self.stats, "GET /x")
        stacks, interval = sampled.from_speedscope(document)
        self.assertEqual(sorted(stacks), sorted(FOUR_TO_ONE))
        self.assertEqual((interval, document["name"]), (0.001, "GET /x"))

    def test_cprofile_profiles_keep_the_honest_views(self):
        stats = fx.real_stats()
        self.assertEqual(paths.collapsed_stacks(stats), analysis.collapsed_stacks(stats))
        self.assertEqual(paths.speedscope(stats, "x")["shared"],
                         analysis.speedscope(stats, "x")["shared"])

    def test_empty_and_zero_stacks_make_no_lines(self):
        stats = sampled.stats_from_stacks([((ROOT,), 0.0), ((), 0.001)], interval=0.001)
        self.assertEqual(paths.collapsed_stacks(stats), [])
        self.assertEqual(paths.flame_tree(stats)["total"], 0.0)


class StartedTreeTestCase(unittest.TestCase):
    """A tree can start at one function: the request's view in a profile of mixed threads."""

    def test_sampled_tree_starts_at_a_function(self):
        stats = sampled.stats_from_stacks(FOUR_TO_ONE + [((ROOT, B, SLEEP), 0.002)],
                                          interval=0.001)
        tree = paths.flame_tree(stats, start=A, min_fraction=0.0)
        (start,) = tree["root"]["children"]
        self.assertEqual((start["name"], [c["name"] for c in start["children"]]), ("a", ["c"]))
        self.assertAlmostEqual(tree["total"], 0.005)
        self.assertEqual(tree["start"], {"func_id": analysis.function_id(A),
                                         "label": "app.py:10(a)"})

    def test_cprofile_tree_expands_its_start_even_with_several_callers(self):
        data = {
            ("v.py", 1, "view1"): (1, 1, 0.0, 0.003, {}),
            ("v.py", 2, "view2"): (1, 1, 0.0, 0.001, {}),
            ("f.py", 1, "f"): (2, 2, 0.001, 0.004, {("v.py", 1, "view1"): fx.edge(1, 0.001, 0.003),
                                                   ("v.py", 2, "view2"): fx.edge(1, 0.0, 0.001)}),
            ("g.py", 1, "g"): (2, 2, 0.003, 0.003, {("f.py", 1, "f"): fx.edge(2, 0.003, 0.003)}),
        }
        whole = analysis.flame_tree(data, min_fraction=0.0)
        self.assertTrue(all(node["split_unknown"] for node, _ in nodes_named(whole, "f")))
        tree = paths.flame_tree(data, start=("f.py", 1, "f"), min_fraction=0.0)
        (start,) = tree["root"]["children"]
        self.assertFalse(start["split_unknown"])
        self.assertEqual([child["name"] for child in start["children"]], ["g"])
        self.assertAlmostEqual(tree["total"], 0.004)
        with self.assertRaisesRegex(analysis.UnknownFunction, "no function x.py:1"):
            paths.flame_tree(data, start=("x.py", 1, "nope"))


class RequestTreeTestCase(unittest.TestCase):
    """An overlapped cProfile profile on 3.12+ starts at its view, and says so or why not."""

    def setUp(self):
        self.stats = fx.real_stats()
        self.view = next(func for func in self.stats.stats if func[2] == "a")
        self.record = {"overlapped": 3, "python": "3.12.1", "view": list(self.view)}

    def test_overlapped_profile_starts_at_its_view(self):
        tree = paths.request_tree(self.stats, self.record)
        self.assertEqual([child["name"] for child in tree["root"]["children"]], ["a"])
        self.assertEqual(tree["start"]["label"], analysis.function_label(self.view))
        self.assertIn("starts at the request's view function a: 3 other request(s) ran",
                      tree["start_note"])

    def test_when_it_does_not_start_at_the_view(self):
        sampled_stats = sampled.stats_from_stacks(FOUR_TO_ONE, interval=0.001)
        for why, stats, record in (
                ("not overlapped", self.stats, dict(self.record, overlapped=0)),
                ("3.11 profiles one thread", self.stats, dict(self.record, python="3.11.7")),
                ("sampled profiles hold one thread", sampled_stats, self.record),
                ("merged routes have no record of it", self.stats, {"merged": 2})):
            with self.subTest(why):
                tree = paths.request_tree(stats, record)
                self.assertIsNone(tree["start"])
                self.assertIsNone(tree["start_note"])

    def test_it_says_why_it_cannot(self):
        missing = paths.request_tree(self.stats, dict(self.record, view=None))
        self.assertIsNone(missing["start"])
        self.assertIn("its view function was not recorded", missing["start_note"])
        absent = paths.request_tree(self.stats, dict(self.record, view=["x.py", 1, "gone"]))
        self.assertIsNone(absent["start"])
        self.assertIn("its view function x.py:1(gone) is not in the profile", absent["start_note"])
        self.assertGreater(len(absent["root"]["children"]), 0)

    def test_an_unreadable_python_version_counts_as_mixed(self):
        tree = paths.request_tree(self.stats, dict(self.record, python="unknown"))
        self.assertEqual(tree["start"]["label"], analysis.function_label(self.view))


V = ("v.py", 1, "view")
W = ("w.py", 1, "other_view")
F = ("f.py", 1, "f")
G = ("g.py", 1, "g")
SHARED = ("s.py", 1, "shared")
ZERO = (0, 0, 0.0, 0.0)  # an edge as 3.12's cProfile records it when threads interleave


class MixedThreadsTestCase(unittest.TestCase):
    """A 3.12+ profile of several threads: callers hold, edge times do not."""

    record = {"overlapped": 3, "python": "3.12.1", "view": list(V)}

    def test_single_callers_get_their_own_totals(self):
        data = {V: (1, 1, 0.001, 0.2, {}), F: (1, 1, 0.01, 0.19, {V: ZERO}),
                G: (2, 2, 0.18, 0.18, {F: ZERO})}
        repaired = paths.single_caller_totals(data)
        self.assertEqual(repaired[G][4], {F: (2, 2, 0.18, 0.18)})
        tree = paths.request_tree(data, self.record, min_fraction=0.0)
        (view,) = tree["root"]["children"]
        self.assertEqual([(n["name"], n["time"]) for n, _ in analysis.iter_tree(view)],
                         [("view", 0.2), ("f", 0.19), ("g", 0.18)])
        self.assertIn("starts at the request's view function view", tree["start_note"])

    def test_one_thread_profiles_keep_their_edges(self):
        data = fx.real_stats().stats
        repaired = paths.single_caller_totals(data)
        changed = {func[2] for func in data if repaired[func][4] != data[func][4]}
        self.assertEqual(changed, {"countdown"})  # recursion: the outer edge gets every level

    def test_a_view_whose_callees_are_shared_says_it_cannot(self):
        data = {V: (1, 1, 0.001, 0.2, {}), W: (1, 1, 0.0, 0.1, {}),
                SHARED: (2, 2, 0.3, 0.3, {V: ZERO, W: ZERO})}
        tree = paths.request_tree(data, self.record)
        self.assertEqual([n["name"] for n in tree["root"]["children"]], ["view"])
        self.assertIn("starts at the request's view function view and cannot be drawn below it",
                      tree["start_note"])
        self.assertIn("PROFILER_ENGINE=sampling", tree["start_note"])


class OverlappedPageTestCase(DashboardTestCase):
    """The dashboard draws an overlapped profile's icicle from its view and the JSON says why."""

    def test_page_and_json(self):
        os.makedirs(self.profile_dir, exist_ok=True)
        name = fx.write_profile(self.profile_dir, indexed=False)
        stats = pstats.Stats(os.path.join(self.profile_dir, name))
        view = next(func for func in stats.stats if func[2] == "a")
        index.append_index(self.profile_dir, fx.index_entry(
            name, overlapped=2, python="3.12.1", view=list(view)))
        page = self.page("/dashboard/profiles/" + name)
        note = page.split('id="flame-start"', 1)[1]
        self.assertIn("2 other request(s) ran during this one", note)
        graph = page.split('id="flame-graph"', 1)[1]
        first_frame = graph.split('<a href="', 1)[1]
        self.assertIn(f'data-label="{analysis.function_label(view)}"', first_frame.split(">")[0])
        self.assertNotIn("(workload)", graph.split("</svg>", 1)[0])
        flame = self.client.get("/dashboard/api/profiles/" + name).get_json()["flame"]
        self.assertEqual(flame["start"]["func_id"], analysis.function_id(view))
        self.assertIn("2 other request(s) ran during this one", flame["start_note"])


class SqlFramesTestCase(unittest.TestCase):
    """The driver's execute, and whatever runs under it, is marked SQL in the icicle."""

    def test_sampled_sqlalchemy_path(self):
        tree = paths.flame_tree(sampled.stats_from_stacks(SQL_STACKS, interval=0.001),
                                min_fraction=0.0)
        marks = {node["name"]: node["sql"] for node, _ in analysis.iter_tree(tree["root"])}
        self.assertEqual({name for name, sql in marks.items() if sql},
                         {"do_execute", CURSOR_EXECUTE[2]})
        self.assertFalse(marks["_exec_single_context"] or marks["_setup_result_proxy"])
        rects = charts.flame_rects(charts.flame_layout(tree, 1200))
        self.assertEqual({rect["name"] for rect in rects if rect["sql"]},
                         {"do_execute", CURSOR_EXECUTE[2]})

    def test_frames_under_the_execute_are_sql_too(self):
        under = (SITE + "sqlite_helpers.py", 5, "adapt")
        stacks = [((VIEW,) + QUERY_PATH + (DO_EXECUTE, under), 0.002)]
        tree = paths.flame_tree(sampled.stats_from_stacks(stacks, interval=0.001))
        (node, _), = nodes_named(tree, "adapt")
        self.assertTrue(node["sql"])

    def test_every_driver_hook_name(self):
        names = {
            SITE + "sqlalchemy/engine/default.py:950(do_execute)": True,
            SITE + "sqlalchemy/engine/default.py:947(do_executemany)": True,
            SITE + "sqlalchemy/engine/default.py:953(do_execute_no_params)": True,
            SITE + "psycopg/cursor.py:97(execute)": True,
            "{method 'executemany' of 'sqlite3.Cursor' objects}": True,
            "Cursor.execute": True,  # a C method as a sampler names it
            SITE + "sqlalchemy/engine/default.py:1845(_setup_result_proxy)": False,
            "/srv/blog/views.py:3(do_execute_plan)": False,
        }
        for label, expected in names.items():
            with self.subTest(label):
                self.assertEqual(kinds.is_sql(label), expected)

    def test_cprofile_tree_reaching_the_execute(self):
        engine = create_engine("sqlite://")

        def query():
            with engine.connect() as connection:
                return connection.execute(text("select 1")).all()

        query()  # warm SQLAlchemy's caches: the profiled call is the plain path
        profiler = cProfile.Profile()
        profiler.runcall(query)
        stats = pstats.Stats(profiler)
        do_execute = next(func for func in stats.stats if func[2] == "do_execute")
        tree = paths.flame_tree(stats, start=do_execute, min_fraction=0.0)
        marked = [(node["label"], node["sql"]) for node, _ in analysis.iter_tree(tree["root"])]
        self.assertEqual(marked[0], ("all", False))
        self.assertTrue(all(sql for _, sql in marked[1:]))
        self.assertIn("{method 'execute' of 'sqlite3.Cursor' objects}",
                      [label for label, _ in marked])


if __name__ == "__main__":
    unittest.main()
