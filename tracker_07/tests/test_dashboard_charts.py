"""Chart geometry without a browser: flame rectangles, ticks, time and histogram charts."""
import time
import unittest

from tracker_07.dashboard import charts
from tracker_07.profiles import analysis
from tracker_07.tests import profile_fixtures as fx


class FlameLayoutTest(unittest.TestCase):
    """Rectangles are plain geometry that adds up."""

    def test_widths_follow_times_and_fit_parents(self):
        """Root spans the width; children are proportional, side by side, inside the parent."""
        tree = analysis.flame_tree(fx.real_stats(), min_fraction=0.0)
        rects = charts.flame_layout(tree, 1000)
        by_id = {rect["node_id"]: rect for rect in rects}
        self.assertEqual((rects[0]["x"], rects[0]["width"], rects[0]["depth"]), (0.0, 1000.0, 0))
        for node, ancestors in analysis.iter_tree(tree["root"]):
            if not node["children"] or node["id"] not in by_id:
                continue
            parent = by_id[node["id"]]
            children = [by_id[child["id"]] for child in node["children"] if child["id"] in by_id]
            self.assertLessEqual(sum(c["width"] for c in children), parent["width"] + 1e-9)
            for child in children:
                self.assertEqual(child["depth"], len(ancestors) + 1)
                self.assertGreaterEqual(child["x"], parent["x"] - 1e-9)
                right_edge = parent["x"] + parent["width"]
                self.assertLessEqual(child["x"] + child["width"], right_edge + 1e-9)
                share = child["time"] / node["time"]
                self.assertAlmostEqual(child["width"] / parent["width"], share)

    def test_exact_layout(self):
        """On exact data the widths are the times scaled to the width."""
        tree = analysis.flame_tree(fx.synthetic_stats(), min_fraction=0)
        rects = charts.flame_layout(tree, 125)
        by_label = {(rect["depth"], rect["name"]): rect for rect in rects}
        self.assertAlmostEqual(by_label[(1, "main")]["width"], 100)
        self.assertAlmostEqual(by_label[(1, "other")]["x"], 100)
        self.assertAlmostEqual(by_label[(2, "left")]["width"], 60)
        self.assertAlmostEqual(by_label[(2, "right")]["x"], 60)
        self.assertAlmostEqual(by_label[(3, "deep")]["fraction"], 0.1 / 1.25)
        self.assertEqual([r["depth"] for r in rects], sorted(r["depth"] for r in rects))

    def test_min_width_drops_narrow_rectangles(self):
        """Rectangles narrower than ``min_width`` are left out with their subtrees."""
        tree = analysis.flame_tree(fx.synthetic_stats(), min_fraction=0)
        names = {rect["name"] for rect in charts.flame_layout(tree, 125, min_width=7)}
        self.assertNotIn("tiny", names)
        self.assertNotIn("deeper", names)
        self.assertIn("deep", names)

    def test_children_longer_than_parent_are_squeezed(self):
        """Clock noise making children outlast their parent cannot overflow the parent."""
        parent, child = ("a.py", 1, "parent"), ("a.py", 2, "child")
        data = {
            parent: (1, 1, 0.0, 1.0, {}),
            child: (1, 1, 1.2, 1.2, {parent: fx.edge(1, 1.2, 1.2)}),
        }
        rects = charts.flame_layout(analysis.flame_tree(data), 100)
        self.assertAlmostEqual(rects[-1]["width"], 100)

    def test_zero_time_profile(self):
        """A profile with no measured time is a root rectangle only."""
        data = {("a.py", 1, "f"): (1, 1, 0.0, 0.0, {})}
        rects = charts.flame_layout(analysis.flame_tree(data), 100)
        self.assertEqual([(r["width"], r["fraction"]) for r in rects], [(100.0, 0.0)])


class FlameRectsTest(unittest.TestCase):
    """Placed rectangles carry a label that fits and a colour that stays."""

    def test_labels_fit_and_colours_are_stable(self):
        """Wide rectangles show a name, cut with an ellipsis if long; narrow ones show none."""
        tree = analysis.flame_tree(fx.synthetic_stats(), min_fraction=0)
        rects = charts.flame_rects(charts.flame_layout(tree, 125))
        for rect in rects:
            self.assertLessEqual(len(rect["text"]) * charts.CHAR_WIDTH, max(rect["width"], 0) + 6)
            self.assertEqual(rect["y"], rect["depth"] * charts.FLAME_ROW)
        by_name = {rect["name"]: rect for rect in rects}
        self.assertEqual(by_name["main"]["text"], "main")
        self.assertEqual(by_name["tiny"]["text"], "")
        again = charts.flame_rects(charts.flame_layout(tree, 125))
        self.assertEqual([r["hue"] for r in again], [r["hue"] for r in rects])
        self.assertEqual(charts.flame_height(rects), (max(r["depth"] for r in rects) + 1) * 20)


class ChartGeometryTestCase(unittest.TestCase):
    """The chart maths, without a browser."""

    def test_nice_ticks(self):
        self.assertEqual(charts.nice_ticks(0, 10, 5), [0, 2, 4, 6, 8, 10])
        self.assertEqual(charts.nice_ticks(0, 0.7, 4), [0, 0.2, 0.4, 0.6, 0.8][:4])
        self.assertEqual(charts.nice_ticks(5, 5), [5, 5.2, 5.4, 5.6, 5.8, 6])

    def test_time_ticks_are_round(self):
        start = 1_700_000_123.0
        ticks = charts.time_ticks(start, start + 3600)
        self.assertTrue(all(tick % 600 == 0 for tick in ticks))
        self.assertTrue(all(start <= tick <= start + 3600 for tick in ticks))

    def test_time_chart_scales_to_the_plot(self):
        now = time.time()
        series = [{"start": now + i * 60, "end": now + (i + 1) * 60, "count": i % 3,
                   "mean": float(i) if i % 3 else None, "p95": 2.0 * i if i % 3 else None}
                  for i in range(10)]
        chart = charts.time_chart(series, charts.Frame(600, 200))
        self.assertEqual(len(chart["bars"]), sum(1 for point in series if point["count"]))
        tallest = max(chart["bars"], key=lambda bar: bar["count"])
        self.assertAlmostEqual(tallest["y"] + tallest["height"], chart["bottom"])
        xs = [float(part.split(",")[0][1:]) for part in chart["lines"]["p95"].split()]
        self.assertEqual(xs, sorted(xs))
        self.assertTrue(all(chart["left"] <= x <= chart["right"] for x in xs))
        self.assertTrue(charts.time_chart([])["empty"])

    def test_histogram_bars(self):
        buckets = [{"low_ms": 1.0, "high_ms": 2.0, "count": 4},
                   {"low_ms": 2.0, "high_ms": 4.0, "count": 0},
                   {"low_ms": 4.0, "high_ms": 8.0, "count": 2}]
        chart = charts.histogram_chart(buckets, charts.Frame(400, 200))
        heights = [shape["height"] for shape in chart["bars"]]
        self.assertEqual(heights[1], 0)
        self.assertAlmostEqual(heights[0], 2 * heights[2])
        self.assertTrue(charts.histogram_chart([])["empty"])

    def test_histogram_labels_stay_inside_the_chart(self):
        buckets = [{"low_ms": 10.0 ** (index - 2), "high_ms": 10.0 ** (index - 1), "count": 1}
                   for index in range(13)]
        frame = charts.Frame(400, 200)
        labels = charts.histogram_chart(buckets, frame)["labels"]
        self.assertEqual(labels[0]["anchor"], "start")
        self.assertEqual((labels[-1]["anchor"], labels[-1]["x"]), ("end", frame.width - 1))
        for label in labels:
            if label["anchor"] == "start":
                width = len(label["text"]) * charts.CHAR_WIDTH
                self.assertLessEqual(label["x"] + width, frame.width, label)


if __name__ == "__main__":
    unittest.main()


class SqlFramesTest(unittest.TestCase):
    """Frames of the database driver's execute are marked as SQL in the icicle graph."""

    def test_driver_execute_frames_are_sql(self):
        sql = ("/venv/site-packages/sqlalchemy/engine/default.py:942(do_execute)",
               "/venv/site-packages/sqlalchemy/engine/default.py:938(do_executemany)",
               "/venv/site-packages/psycopg/cursor.py:97(execute)",
               "{method 'execute' of 'sqlite3.Cursor' objects}")
        other = ("app/views.py:10(execute)", "{method 'count' of 'list' objects}",
                 "/venv/site-packages/sqlalchemy/engine/base.py:1400(execute)")
        self.assertEqual([charts.is_sql(label) for label in sql + other],
                         [True] * len(sql) + [False] * len(other))
        rects = charts.flame_rects([{"label": sql[0], "name": "do_execute", "virtual": False,
                                     "width": 300, "depth": 1}])
        self.assertTrue(rects[0]["sql"])
