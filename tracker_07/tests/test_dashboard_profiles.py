"""The profile pages of the dashboard: list, one profile, compare, downloads and their JSON."""
import html
import json
import os
import pstats
import re
import sys

from tracker_07.dashboard import blueprint
from tracker_07.profiles import analysis, frames, index, listing
from tracker_07.profiles.wrappers import without_wrappers
from tracker_07.tests.base import AppTestCase, ProfiledAppTestCase


class DashboardTestCase(ProfiledAppTestCase):
    """An app in profile mode with a few saved profiles."""

    settings = {"PROFILER_PRINT": False}

    def make_app(self, config_name="profile", **settings):
        settings = {**self.settings, **settings}
        return super().make_app(config_name, **settings)

    def save_profiles(self, *paths):
        """Request ``paths`` through the profiler and return their index records in order."""
        before = len(index.read_index(self.profile_dir))
        for path in paths:
            self.client.get(path)
        return index.read_index(self.profile_dir)[before:]

    def csrf_token(self):
        """Open the list page and return the CSRF token of its prune form."""
        text = self.page("/dashboard/profiles/")
        return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)

    def page(self, url, status=200):
        """GET a dashboard page, check its status and return its text."""
        response = self.client.get(url)
        self.assertEqual(response.status_code, status, response.get_data(as_text=True)[:500])
        return response.get_data(as_text=True)


class ProfileListTestCase(DashboardTestCase):
    """The list shows every saved profile, sorted and filtered as asked."""

    def setUp(self):
        super().setUp()
        self.records = self.save_profiles("/index", "/words/slow", "/words/fast", "/missing",
                                          "/words/fast")

    def listed_ids(self, query=""):
        """Return the profile ids in list order for a query string."""
        text = self.page("/dashboard/profiles/" + query)
        return re.findall(r'href="/dashboard/profiles/([^"/?]+\.prof)"', text)

    def test_every_profile_is_listed_newest_first(self):
        expected = [record["id"] for record in sorted(self.records, key=lambda r: -r["time"])]
        self.assertEqual(self.listed_ids(), expected)

    def test_sortable_by_every_column(self):
        for key in ("method", "path", "status", "elapsed_ms", "time", "calls", "overlapped"):
            for order in ("asc", "desc"):
                with self.subTest(key=key, order=order):
                    ids = self.listed_ids(f"?sort={key}&order={order}")
                    values = [next(r[key] for r in self.records if r["id"] == i) for i in ids]
                    self.assertEqual(values, sorted(values, reverse=order == "desc"))

    def test_filters(self):
        by_path = {record["path"]: record for record in self.records}
        self.assertEqual(self.listed_ids("?path=slow"), [by_path["/words/slow"]["id"]])
        self.assertEqual(self.listed_ids("?status=404"), [by_path["/missing"]["id"]])
        self.assertEqual(self.listed_ids("?method=POST"), [])
        slow_ms = by_path["/words/slow"]["elapsed_ms"]
        self.assertIn(by_path["/words/slow"]["id"], self.listed_ids(f"?min_ms={slow_ms}"))
        self.assertNotIn(by_path["/missing"]["id"], self.listed_ids(f"?min_ms={slow_ms}"))

    def test_pages(self):
        first = self.listed_ids("?per_page=2")
        second = self.listed_ids("?per_page=2&page=2")
        self.assertEqual(len(first), 2)
        self.assertEqual(len(second), 2)
        self.assertFalse(set(first) & set(second))
        self.assertIn("page 1 of 3", self.page("/dashboard/profiles/?per_page=2"))

    def test_cell_formats(self):
        self.assertEqual(blueprint.format_ms(None), "-")
        self.assertEqual(blueprint.format_ms(12.34), "12.3")
        self.assertEqual(blueprint.format_ms(1234.5), "1,234")
        self.assertEqual(blueprint.format_seconds(None), "-")
        self.assertEqual(blueprint.format_datetime(None), "-")

    def test_bad_arguments_are_a_clear_400(self):
        self.assertIn("sort must be one of", self.page("/dashboard/profiles/?sort=evil", 400))
        self.assertIn("status must be between", self.page("/dashboard/profiles/?status=9", 400))
        self.assertIn("min_ms must be a number", self.page("/dashboard/profiles/?min_ms=x", 400))
        self.assertIn("method must be one of", self.page("/dashboard/profiles/?method=BREW", 400))
        self.assertIn("per_page must be between 1 and 500",
                      self.page("/dashboard/profiles/?per_page=501", 400))
        self.assertIn("page must be 1 or more", self.page("/dashboard/profiles/?page=0", 400))

    def test_json_has_what_the_list_shows(self):
        data = self.client.get("/dashboard/api/profiles?sort=elapsed_ms").get_json()
        self.assertEqual(data["total"], 5)
        self.assertEqual([item["id"] for item in data["items"]],
                         self.listed_ids("?sort=elapsed_ms"))

    def test_list_survives_a_restart(self):
        restarted = self.make_app()
        text = restarted.test_client().get("/dashboard/profiles/").get_data(as_text=True)
        for record in self.records:
            self.assertIn(record["id"], text)

    def test_user_data_is_escaped(self):
        self.client.get("/<script>alert(1)</script>")
        text = self.page("/dashboard/profiles/")
        self.assertNotIn("<script>alert(1)</script>", text)
        self.assertIn(html.escape("/<script>alert(1)</script>"), text)

    def test_dashboard_requests_are_never_profiled(self):
        count = len(index.read_index(self.profile_dir))
        self.page("/dashboard/profiles/")
        self.assertEqual(len(index.read_index(self.profile_dir)), count)


class ProfilePageTestCase(DashboardTestCase):
    """One profile: the header, the pstats table, the flame graph and a function's edges."""

    def setUp(self):
        super().setUp()
        (self.record,) = self.save_profiles("/words/slow")
        self.url = "/dashboard/profiles/" + self.record["id"]
        # What the views show: the profile without Tracker's own wrapper frames.
        self.stats = without_wrappers(
            pstats.Stats(os.path.join(self.profile_dir, self.record["id"])))

    def table_labels(self, query=""):
        """Return the function labels of the pstats table in page order."""
        text = self.page(self.url + query)
        table = text.split('id="stats-table"', 1)[1]
        return [html.unescape(label) for label in
                re.findall(r'<td class="label" data-label="([^"]*)">', table)]

    def test_header_line_is_the_pstats_one(self):
        text = self.page(self.url)
        expected = (f"{self.stats.total_calls} function calls ({self.stats.prim_calls} "
                    f"primitive calls) in {frames.format_ms(self.stats.total_tt)} ms")
        self.assertIn(expected, text)

    def test_bottleneck_heads_the_table_and_appears_in_the_graph(self):
        self.assertEqual(self.table_labels()[0], "{method 'count' of 'list' objects}")
        graph = self.page(self.url).split('id="flame-graph"', 1)[1].split("</svg>", 1)[0]
        self.assertIn("data-label=\"{method &#39;count&#39; of &#39;list&#39; objects}\"", graph)

    def test_table_sorts_by_every_column_and_restricts(self):
        rows = {analysis.function_label(func): entry for func, entry in self.stats.stats.items()}
        columns = {"ncalls": lambda e: e[1], "tottime": lambda e: e[2], "cumtime": lambda e: e[3]}
        for key, value in columns.items():
            labels = self.table_labels(f"?sort={key}&limit=all")
            self.assertEqual(len(labels), len(rows))
            values = [value(rows[label]) for label in labels]
            self.assertEqual(values, sorted(values, reverse=True), key)
        self.assertEqual(self.table_labels("?sort=label&order=asc&limit=10"), sorted(rows)[:10])
        self.assertEqual(len(self.table_labels("?limit=10")), 10)
        self.assertIn("List reduced from", self.page(self.url + "?limit=10"))

    def test_text_filter(self):
        labels = self.table_labels("?filter=wordcount&limit=all")
        self.assertTrue(labels)
        self.assertTrue(all("wordcount" in label for label in labels))

    def test_clicking_a_function_shows_callers_and_callees(self):
        func = next(f for f in self.stats.stats if f[2] == "top_words_naive")
        text = self.page(self.url + "?fn=" + analysis.function_id(func))
        self.assertIn('id="selected-function"', text)
        callers = text.split('id="callers"', 1)[1].split("</table>", 1)[0]
        callees = text.split('id="callees"', 1)[1].split("</table>", 1)[0]
        self.assertIn("_words_page", callers)
        # Python 3.12 inlines the dict comprehension (PEP 709): list.count is called directly.
        self.assertIn("dictcomp" if sys.version_info < (3, 12) else "count&#39; of", callees)

    def test_unknown_function_and_bad_arguments(self):
        self.assertIn("no function", self.page(self.url + "?fn=0000", 404))
        self.assertIn("limit must be one of", self.page(self.url + "?limit=7", 400))

    def test_download_sends_the_file(self):
        with self.client.get(self.url + "/download") as response, \
                open(os.path.join(self.profile_dir, self.record["id"]), "rb") as file:
            self.assertEqual(response.status_code, 200)
            self.assertEqual(response.data, file.read())
            self.assertIn("attachment", response.headers["Content-Disposition"])

    def test_exports(self):
        collapsed = self.client.get(self.url + "/export/collapsed")
        self.assertEqual(collapsed.status_code, 200)
        self.assertIn("attachment", collapsed.headers["Content-Disposition"])
        lines = collapsed.get_data(as_text=True).splitlines()
        self.assertTrue(any("{method 'count' of 'list' objects}" in line for line in lines))
        self.assertTrue(all(re.fullmatch(r".+ \d+", line) for line in lines))
        speedscope = json.loads(self.client.get(self.url + "/export/speedscope").data)
        self.assertEqual(speedscope["profiles"][0]["type"], "sampled")
        self.assertEqual(self.client.get(self.url + "/export/svg").status_code, 404)

    def test_json(self):
        data = self.client.get("/dashboard/api/profiles/" + self.record["id"]).get_json()
        self.assertEqual(data["table"]["header"]["calls"], self.stats.total_calls)
        self.assertEqual(data["record"]["path"], "/words/slow")
        func = next(f for f in self.stats.stats if f[2] == "top_words_naive")
        edges = self.client.get(f"/dashboard/api/profiles/{self.record['id']}/functions/"
                                f"{analysis.function_id(func)}").get_json()
        self.assertEqual(edges["function"]["name"], "top_words_naive")
        self.assertEqual(self.client.get(f"/dashboard/api/profiles/{self.record['id']}"
                                         "/functions/nope").status_code, 404)


class CompareTestCase(DashboardTestCase):
    """Before and after, per function, for profiles and for merged routes."""

    def test_slow_against_fast_marks_the_fix(self):
        slow, fast = self.save_profiles("/words/slow", "/words/fast")
        text = self.page(f"/dashboard/profiles/compare?a={slow['id']}&b={fast['id']}")
        first_row = text.split('id="diff-table"', 1)[1].split("<tbody>", 1)[1].split("</tr>")[0]
        self.assertIn("{method &#39;count&#39; of &#39;list&#39; objects}", first_row)
        self.assertIn('<span class="badge gone"', first_row)  # only in the slow (before) one
        self.assertIn('<tr class="gone">', first_row)
        self.assertIn('<tr class="improved">', text)  # functions on both sides still compare
        self.assertIn('class="summary improved"', text)
        # Short locations, the full path on hover, as on the profile page.
        self.assertRegex(text, r'title="[^"]+/tracker_07/main/wordcount\.py[^"]*">top_words_\w+'
                               r'</span> <span class="loc">tracker_07/main/wordcount\.py:\d+<')

    def test_merged_routes(self):
        self.save_profiles("/words/fast", "/words/fast", "/index")
        stats = [without_wrappers(pstats.Stats(os.path.join(self.profile_dir, r["id"])))
                 for r in index.read_index(self.profile_dir) if r["path"] == "/words/fast"]
        text = self.page("/dashboard/profiles/route?method=GET&path=/words/fast")
        self.assertIn("2 profiles added together", text)
        self.assertIn(f"{sum(s.total_calls for s in stats)} function calls", text)
        compared = self.page(
            "/dashboard/profiles/compare?a=route:GET:/words/fast&b=route:GET:/index")
        self.assertIn('id="diff-table"', compared)

    def test_form_without_choices_and_missing_routes(self):
        self.save_profiles("/index")
        self.assertIn('name="a"', self.page("/dashboard/profiles/compare"))
        self.page("/dashboard/profiles/compare?a=route:GET:/nothing&b=route:GET:/index", 404)
        self.page("/dashboard/profiles/route?method=GET&path=nope", 400)


class PruneFormTestCase(DashboardTestCase):
    """The prune form refuses odd numbers with a 400 that says why, and deletes nothing."""

    def test_odd_numbers_are_a_clear_400(self):
        self.save_profiles("/index", "/words/fast")
        token = self.csrf_token()
        for field in ("keep", "older_than_days"):
            for value in ("²", "9" * 400, "1.5", "-1", "٣"):
                with self.subTest(field=field, value=value):
                    response = self.client.post("/dashboard/profiles/prune",
                                                data={field: value, "csrf_token": token})
                    self.assertEqual(response.status_code, 400)
                    self.assertIn(f"{field} must be a whole number from 0 to",
                                  response.get_data(as_text=True))
        self.assertEqual(len(self.prof_files()), 2)

    def test_largest_numbers_are_accepted(self):
        self.save_profiles("/index")
        response = self.client.post("/dashboard/profiles/prune", follow_redirects=True, data={
            "keep": str(listing.MAX_KEEP), "older_than_days": str(listing.MAX_AGE_DAYS),
            "csrf_token": self.csrf_token()})
        self.assertIn(b"Removed 0 profile(s).", response.data)


class NotFoundTestCase(DashboardTestCase):
    """An unknown profile id is named on the page and in the JSON; server paths never are."""

    def test_page_and_json_name_the_id_not_the_folder(self):
        self.save_profiles("/index")
        missing = "GET.gone.1ms.1700000000000.1-1.prof"
        text = self.page(f"/dashboard/profiles/{missing}", 404)
        self.assertIn(missing, text)
        response = self.client.get(f"/dashboard/api/profiles/{missing}")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.get_json()["status"], 404)
        self.assertIn(missing, response.get_json()["message"])
        for body in (text, response.get_data(as_text=True)):
            self.assertNotIn(self.tmp, body)
            self.assertNotIn(os.path.realpath(self.tmp), body)


class FolderIsAFileTestCase(AppTestCase):
    """A file where the profile folder should be is a clear 503 page, not a 500."""

    def test_pages_and_json_say_so(self):
        folder = os.path.join(self.tmp, "profiles")
        with open(folder, "w", encoding="ascii") as file:
            file.write("not a folder")
        app = self.make_app("testing", PROFILER_DIR=folder, DASHBOARD_ENABLED=True,
                            TRACKER_ENABLED=True)
        client = app.test_client()
        for url in ("/dashboard/", "/dashboard/profiles/", "/dashboard/api/profiles"):
            with self.subTest(url=url):
                response = client.get(url)
                self.assertEqual(response.status_code, 503)
                self.assertIn("PROFILER_DIR is not a folder", response.get_data(as_text=True))
                self.assertNotIn(self.tmp, response.get_data(as_text=True))


class DatabasePanelTestCase(DashboardTestCase):
    """The Database panel of a profile, its JSON, and the list's query columns."""

    def test_slow_posts_profile_shows_the_panel_with_findings_on_top(self):
        (record,) = self.save_profiles("/posts/slow")
        text = self.page(f"/dashboard/profiles/{record['id']}")
        panel = text.split('<section id="database">', 1)[1].split("</section>", 1)[0]
        self.assertIn(f"{record['queries']} queries in", panel)
        self.assertRegex(panel, r'<span id="sql-share">\d+%</span> of the request')
        self.assertLess(panel.index('class="finding n_plus_one"'),
                        panel.index('id="queries-table"'))
        self.assertEqual(panel.count('class="finding n_plus_one"'), 3)
        self.assertIn("tracker_07/main/templates/main/posts.html:", panel)
        self.assertIn("selectinload", panel)
        self.assertLess(text.index('id="database"'), text.index('id="flame"'))

    def test_profile_json_carries_queries_and_findings(self):
        slow, fast, plain = self.save_profiles("/posts/slow", "/posts/fast", "/words/fast")
        data = self.client.get("/dashboard/api/profiles/" + slow["id"]).get_json()
        self.assertEqual(set(data["queries"]), {"count", "total_ms", "statements"})
        self.assertEqual(data["queries"]["count"], slow["queries"])
        self.assertEqual(sum(item["count"] for item in data["queries"]["statements"]),
                         slow["queries"])
        for item in data["queries"]["statements"]:
            self.assertLessEqual({"statement", "count", "total_ms", "max_ms", "site"}, set(item))
            self.assertEqual(set(item["site"]), {"file", "line", "function"})
        self.assertEqual({finding["kind"] for finding in data["findings"]}, {"n_plus_one"})
        for finding in data["findings"]:
            self.assertEqual(set(finding),
                             {"kind", "statement", "count", "total_ms", "site", "advice"})
        self.assertNotIn("sql", data["record"])
        fast_data = self.client.get("/dashboard/api/profiles/" + fast["id"]).get_json()
        self.assertEqual((fast_data["queries"]["count"], fast_data["findings"]), (4, []))
        plain_data = self.client.get("/dashboard/api/profiles/" + plain["id"]).get_json()
        self.assertEqual((plain_data["queries"], plain_data["findings"]), (None, []))
        self.assertNotIn('id="database"', self.page(f"/dashboard/profiles/{plain['id']}"))

    def test_list_json_and_page_give_queries_and_sql_ms(self):
        slow, plain = self.save_profiles("/posts/slow", "/words/fast")
        items = {item["id"]: item for item in
                 self.client.get("/dashboard/api/profiles").get_json()["items"]}
        self.assertEqual(items[slow["id"]]["queries"], slow["queries"])
        self.assertAlmostEqual(items[slow["id"]]["sql_ms"], slow["sql_ms"])
        self.assertNotIn("sql", items[slow["id"]])
        self.assertEqual((items[plain["id"]]["queries"], items[plain["id"]]["sql_ms"]), (0, 0))
        ordered = self.client.get("/dashboard/api/profiles?sort=queries").get_json()["items"]
        self.assertEqual(ordered[0]["id"], slow["id"])
        self.assertRegex(self.page("/dashboard/profiles/"),
                         rf'<td class="num queries">{slow["queries"]}</td>')
