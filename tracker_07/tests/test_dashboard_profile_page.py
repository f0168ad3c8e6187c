"""The profile page read at a glance, for cProfile files and for sampled profiles alike."""
import html
import os
import pstats
import re
import sys

import flask
import jinja2
import markupsafe

from tracker_07.dashboard import profile_views
from tracker_07.main import wordcount
from tracker_07.profiles import analysis, sampled
from tracker_07.tests import profile_fixtures
from tracker_07.tests.test_dashboard_profiles import DashboardTestCase

BOTTLENECK = "{method 'count' of 'list' objects}"
ESCAPED = str(markupsafe.escape(BOTTLENECK))  # as Jinja writes it
#: What calls list.count in the slow page: the dict comprehension, which Python 3.12 inlines
#: into its function (PEP 709), so there it is ``top_words_naive`` itself.
COUNTER = "&lt;dictcomp&gt;" if sys.version_info < (3, 12) else "top_words_naive"
FLASK_APP = os.path.join(os.path.dirname(flask.__file__), "app.py")
WORDCOUNT = wordcount.__file__
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_FILE = os.path.join(os.path.dirname(WORDCOUNT), '"><img src=x onerror=alert(2)>.py')


def section(text, start, end="</section>"):
    """The part of a page from the element with ``start`` to the next ``end``."""
    return text.split(start, 1)[1].split(end, 1)[0]


def frames_of(text):
    """The icicle's frames as (classes, attributes) pairs, in page order."""
    graph = section(text, 'id="flame-graph"', "</svg>")
    return [(match.group(1).split(), match.group(2))
            for match in re.finditer(r'<a href="[^"]*" class="([^"]*)"\s+(data-fn[^>]*)>', graph)]


class CProfilePageTestCase(DashboardTestCase):
    """The demo's slow page profiled by cProfile."""

    #: No tracking writer thread: on Python 3.12+ cProfile would mix its calls into the tree.
    settings = {"PROFILER_PRINT": False, "TRACKER_ENABLED": False}

    def setUp(self):
        super().setUp()
        (record,) = self.save_profiles("/words/slow")
        self.url = "/dashboard/profiles/" + record["id"]
        self.text = self.page(self.url)

    def test_the_bottleneck_heads_where_the_time_goes(self):
        hottest = section(self.text, 'id="hottest"')
        first = hottest.split("<li", 2)[1]
        self.assertIn(ESCAPED, first)
        self.assertRegex(first, r'class="hot-pct">([5-9]\d|100)%<')
        self.assertRegex(first, r'class="hot-ms">\d+ ms<')
        self.assertIn("from your code", first)
        self.assertIn(COUNTER, first)
        self.assertIn("tracker_07/main/wordcount.py:", first)
        self.assertLess(self.text.index('id="hottest"'), self.text.index('id="flame"'))

    def test_table_has_ms_percent_bars_kinds_and_short_names(self):
        table = section(self.text, 'id="stats-table"')
        self.assertNotIn(">0.000<", table)
        self.assertIn('<span class="bar" style="width: ', table)
        row = table.split(f'data-label="{ESCAPED}"', 1)[0].rsplit("<tr", 1)[1]
        self.assertIn('class="kind-builtin"', row)
        self.assertRegex(row, r'<span class="pct">([5-9]\d|100)%</span>')
        own = re.search(r'<tr class="kind-own">.*?</tr>', table, re.S).group(0)
        self.assertRegex(own, r'<span class="loc">tracker_07/main/(wordcount|views)\.py:\d+</span>')
        self.assertIn(f'title="{os.path.dirname(WORDCOUNT)}', own)
        self.assertNotIn("site-packages", re.sub(r'title="[^"]*"|data-label="[^"]*"', "", table))
        self.assertIn('<td class="num">1420</td>', row)  # the call count of list.count

    def test_own_code_toggle_is_a_link_that_keeps_the_query(self):
        toggle = html.unescape(
            re.search(r'<a id="own-toggle"[^>]*href="([^"]*)"', self.text).group(1))
        self.assertIn('aria-checked="false"', self.text)
        folded = self.page(self.url + "?limit=10&own=1")
        self.assertTrue(toggle.endswith("?own=1#flame"), toggle)
        self.assertIn('aria-checked="true"', folded)
        self.assertRegex(folded, r'<a id="own-toggle"[^>]*href="[^"]*limit=10&amp;own=0')
        self.assertIn("folded into their callers", folded)
        self.assertIn('name="own" value="1"', folded)  # the table's form keeps the fold
        self.assertIn("own must be one of", self.page(self.url + "?own=yes", 400))

    def test_function_panel_without_javascript_and_its_json(self):
        stats = profile_views.cached_stats(os.path.join(self.profile_dir,
                                                        self.url.rsplit("/", 1)[1]))
        func = next(f for f in stats.stats if f[2] == "top_words_naive")
        func_id = analysis.function_id(func)
        text = self.page(f"{self.url}?fn={func_id}")
        panel = section(text, 'id="function-panel"', "</aside>")
        self.assertIn('id="selected-function"', panel)
        self.assertIn("_words_page", section(panel, 'id="callers"', "</table>"))
        self.assertIn("ms with callees", panel)
        data = self.client.get(f"/dashboard/api/profiles/{self.url.rsplit('/', 1)[1]}"
                               f"/functions/{func_id}").get_json()
        self.assertEqual(data["function"]["kind"], "own")
        self.assertEqual(data["function"]["short"], "tracker_07/main/wordcount.py:21")
        self.assertTrue(all({"name", "short", "kind", "cum_ms", "cum_pct"} <= set(row)
                            for row in data["callers"] + data["callees"]))

    def test_merged_route_page_has_no_function_api(self):
        self.save_profiles("/words/slow")
        text = self.page("/dashboard/profiles/route?method=GET&path=/words/slow")
        self.assertNotIn("data-api=", text)
        self.assertIn("opens as a page", text)


class RenderedPageTestCase(DashboardTestCase):
    """Render the profile page of given stats, as the dashboard does for a saved file."""

    def render_stats(self, stats, query=""):
        """The page of ``stats`` for the query string ``query``."""
        record = {"id": "GET.words.slow.json", "method": "GET", "path": "/words/slow",
                  "status": 200, "elapsed_ms": 300.0, "time": 0, "merged": 0}
        with self.app.test_request_context("/dashboard/profiles/GET.words.slow.json" + query):
            return profile_views.render_profile(stats, record, record["id"])


class CProfileIcicleTestCase(RenderedPageTestCase):
    """The icicle of a real cProfile run through a library (Jinja) into the demo's counting.

    Profiled here, not through the middleware: on Python 3.12+ cProfile also records any
    other thread of the test process, which now and then cuts the request's tree short.
    """

    def setUp(self):
        super().setUp()
        template = jinja2.Environment().from_string("{{ count() }}")
        words = wordcount.corpus()[:3000]
        self.stats = pstats.Stats(profile_fixtures.profile_stats(
            template.render, {"count": lambda: wordcount.top_words_naive(words)}))

    def test_frames_are_coloured_by_kind_and_labelled_with_time(self):
        text = self.render_stats(self.stats)
        frames = frames_of(text)
        kinds = {next(c for c in classes if c.startswith("kind-")) for classes, _ in frames}
        self.assertLessEqual({"kind-own", "kind-library", "kind-builtin"}, kinds)
        graph = section(text, 'id="flame-graph"', "</svg>")
        self.assertRegex(graph, r"<text[^>]*>top_words_naive \d\S* ms ([5-9]\d|100)%</text>")
        self.assertIn('data-file="jinja2/environment.py:', graph)
        hot = [attributes for classes, attributes in frames if "hot" in classes]
        self.assertTrue(any(ESCAPED in attributes for attributes in hot))
        self.assertIn('class="swatch kind-own"', text)  # the legend
        self.assertIn('src="/dashboard/static/profile.js"', text)
        self.assertIn('<td class="num">', section(text, 'id="stats-table"'))

    def test_own_code_only_folds_library_frames_into_their_callers(self):
        frames = frames_of(self.render_stats(self.stats, "?own=1"))
        self.assertTrue(all("kind-own" in classes for classes, _ in frames))
        names = [re.search(r'data-name="([^"]*)"', attributes).group(1)
                 for _, attributes in frames]
        self.assertEqual(names[0], "top_words_naive")  # Jinja's and this test's frames fold
        self.assertIn('data-parent="n0"', frames[0][1])  # into the root
        self.assertNotIn(ESCAPED, " ".join(attributes for _, attributes in frames))


class SampledPageTestCase(RenderedPageTestCase):
    """A sampled profile (whole stacks, no call counts) on the same page."""

    def render(self, stacks, query=""):
        """Render the profile page of ``stacks`` as the dashboard would."""
        return self.render_stats(sampled.stats_from_stacks(stacks, interval=0.001), query)

    def stacks(self, view_name="words_slow"):
        """The slow page's paths: Flask, the view, the counting and the built-in count."""
        app = (FLASK_APP, 879, "dispatch_request")
        view = (WORDCOUNT, 21, view_name)
        return [((app, view, (WORDCOUNT, 24, "<dictcomp>"),
                  ("~", 0, "<method 'count' of 'list' objects>")), 0.27),
                ((app, view), 0.02), ((app,), 0.01)]

    def test_engine_interval_and_no_call_counts(self):
        text = self.render(self.stacks())
        header = section(text, 'id="header-line"', "</p>")
        self.assertIn("300 ms sampled every 1 ms", header)
        self.assertIn(">sampling</span>", header)
        self.assertNotIn("function calls", text)
        table = section(text, 'id="stats-table"')
        self.assertEqual(set(re.findall(r'<tr class="kind-\w+"><td class="num">([^<]*)<', table)),
                         {"—"})
        first = section(text, 'id="hottest"').split("<li", 2)[1]
        self.assertIn(ESCAPED, first)
        self.assertIn('class="hot-pct">90%<', first)
        self.assertIn('class="hot-ms">270 ms<', first)
        graph = section(text, 'id="flame-graph"', "</svg>")
        self.assertRegex(graph, r"<text[^>]*>dispatch_request 300 ms 100%</text>")
        self.assertIn('data-file="flask/app.py:879"', graph)
        self.assertIn('data-sampled="true"', text)

    def test_own_code_only(self):
        frames = frames_of(self.render(self.stacks(), "?own=1"))
        self.assertEqual([re.search(r'data-name="([^"]*)"', attributes).group(1)
                          for _, attributes in frames], ["words_slow", "&lt;dictcomp&gt;"])

    def test_hostile_names_are_escaped(self):
        stacks = [(((HOSTILE_FILE, 1, HOSTILE_NAME),), 0.5)]
        text = self.render(stacks)
        self.assertNotIn(HOSTILE_NAME, text)
        self.assertNotIn("<img", text)
        self.assertIn(str(markupsafe.escape(HOSTILE_NAME)), text)
        text = self.render(stacks, "?own=1&fn=" + analysis.function_id(stacks[0][0][0]))
        self.assertNotIn(HOSTILE_NAME, text)
        self.assertNotIn("<img", text)
