"""The profiles list by route (page and JSON) and the merged route with per-request means."""
import html
import os
import re
import statistics
import urllib.parse
from unittest import mock

from tracker_07.profiles import index, routes
from tracker_07.tests import profile_fixtures as fx
from tracker_07.tests.test_dashboard_profiles import DashboardTestCase
from tracker_07.tests.test_profiles_routes import nearest_rank_p95


def summary_rows(text):
    """Return the route summary's rows as {(method, route): {cell class: text}} and links."""
    table = text.split('id="route-summary"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for method, route, body in re.findall(
            r'<tr data-method="([^"]*)" data-route="([^"]*)">(.*?)</tr>', table, re.S):
        cells = dict(re.findall(r'<td class="num ([a-z0-9]+)">(?:<span[^>]*>)?([^<]*)', body))
        links = {name: html.unescape(href) for name, href in
                 re.findall(r'<a class="([a-z-]+)" href="([^"]+)"', body)}
        rows[(method, html.unescape(route))] = (cells, links)
    return rows


class RouteSummaryPageTestCase(DashboardTestCase):
    """The summary above the request list, its links, its JSON and its filters."""

    def setUp(self):
        super().setUp()
        routes.forget()
        self.addCleanup(routes.forget)
        self.records = self.save_profiles("/words/fast", "/index", "/words/fast", "/words/slow",
                                          "/words/fast", "/index", "/words/fast")

    def route_records(self, path):
        """The index records of one GET path, oldest first."""
        return sorted((r for r in self.records if r["path"] == path), key=lambda r: r["time"])

    def test_numbers_and_links_of_each_route(self):
        rows = summary_rows(self.page("/dashboard/profiles/"))
        self.assertEqual(set(rows), {("GET", "/words/fast"), ("GET", "/index"),
                                     ("GET", "/words/slow")})
        fast = self.route_records("/words/fast")
        times = [record["elapsed_ms"] for record in fast]
        cells, links = rows[("GET", "/words/fast")]
        ms = self.app.jinja_env.filters["ms"]
        self.assertEqual(cells, {"count": "4", "median": ms(statistics.median(times)),
                                 "p95": ms(nearest_rank_p95(times)), "max": ms(max(times)),
                                 "unprofiled": "0"})
        by_time = sorted(fast, key=lambda record: record["elapsed_ms"])
        self.assertEqual(links, {
            "merge": "/dashboard/profiles/route?method=GET&path=%2Fwords%2Ffast",
            "last-two": f"/dashboard/profiles/compare?a={fast[-2]['id']}&b={fast[-1]['id']}",
            "extremes": f"/dashboard/profiles/compare?a={by_time[0]['id']}"
                        f"&b={by_time[-1]['id']}",
        })
        self.assertEqual(set(rows[("GET", "/words/slow")][1]), {"merge"})  # one profile
        for url in links.values():
            text = self.page(url)
            self.assertTrue('id="diff-table"' in text or "4 requests" in text, url)

    def test_json_routes(self):
        data = self.client.get("/dashboard/api/profiles").get_json()
        by_route = {(item["method"], item["path"]): item for item in data["routes"]}
        index_page = by_route[("GET", "/index")]
        times = [record["elapsed_ms"] for record in self.route_records("/index")]
        self.assertEqual(
            {key: index_page[key] for key in ("count", "median_ms", "p95_ms", "max_ms",
                                              "unprofiled")},
            {"count": 2, "median_ms": statistics.median(times),
             "p95_ms": nearest_rank_p95(times), "max_ms": max(times), "unprofiled": 0})
        self.assertTrue(index_page["compare_extremes_url"].startswith(
            "/dashboard/profiles/compare?a="))
        self.assertIsNone(by_route[("GET", "/words/slow")]["compare_last_two_url"])
        filtered = self.client.get("/dashboard/api/profiles?path=words&method=get").get_json()
        self.assertEqual({item["path"] for item in filtered["routes"]},
                         {"/words/fast", "/words/slow"})

    def test_unprofiled_column(self):
        counts = {("GET", "/words/slow"): 7, ("DELETE", "/never/profiled"): 2}
        with mock.patch.object(index, "unprofiled_counts", return_value=counts):
            rows = summary_rows(self.page("/dashboard/profiles/"))
            data = self.client.get("/dashboard/api/profiles").get_json()
        self.assertEqual(rows[("GET", "/words/slow")][0]["unprofiled"], "7")
        cells, links = rows[("DELETE", "/never/profiled")]
        self.assertEqual((cells["count"], cells["median"], cells["unprofiled"], links),
                         ("0", "-", "2", {}))
        never = next(item for item in data["routes"] if item["method"] == "DELETE")
        self.assertEqual((never["unprofiled"], never["merge_url"]), (2, None))

    def test_top_routes_then_all(self):
        self.save_profiles(*(f"/missing/{number}" for number in range(10)))
        text = self.page("/dashboard/profiles/")
        self.assertEqual(len(summary_rows(text)), 10)
        self.assertIn("10 of 13: those with the most time", text)
        link = html.unescape(re.search(r'href="([^"]+)" id="all-routes"', text).group(1))
        self.assertEqual(urllib.parse.parse_qs(urllib.parse.urlsplit(link).query),
                         {"routes": ["all"]})
        self.assertEqual(len(summary_rows(self.page(link))), 13)
        self.assertIn("routes must be one of", self.page("/dashboard/profiles/?routes=x", 400))
        with mock.patch.object(index, "unprofiled_counts",
                               return_value={("GET", "/never/profiled"): 1}):
            text = self.page("/dashboard/profiles/")
        rows = summary_rows(text)
        self.assertEqual(len(rows), 11)  # the top ten, and the route never profiled
        self.assertEqual(rows[("GET", "/never/profiled")][0]["unprofiled"], "1")
        self.assertIn("11 of 14: those with the most time and any not profiled", text)

    def test_filters_and_escaping(self):
        self.client.get("/<b>x</b>")
        text = self.page("/dashboard/profiles/?path=%3Cb")
        self.assertEqual(set(summary_rows(text)), {("GET", "/<b>x</b>")})
        self.assertNotIn("<b>x</b>", text)
        empty = self.page("/dashboard/profiles/?path=nothing-like-this&status=500")
        self.assertIn("No routes match these filters", empty)
        self.assertIn("status and time filters apply to the requests below only", empty)


class MergedMeansTestCase(DashboardTestCase):
    """A merged route shows each sum beside its mean per request, both exact."""

    #: Own and cumulative seconds of two functions in four profiles (exact binary fractions).
    TIMES = ((0.25, 0.5, 0.125), (0.5, 0.75, 0.0625), (0.125, 0.25, 0.25), (0.375, 0.5, 0.5))

    def setUp(self):
        super().setUp()
        os.makedirs(self.profile_dir, exist_ok=True)
        view, helper = ("app.py", 1, "view"), ("app.py", 9, "helper")
        for number, (own, cumulative, helper_own) in enumerate(self.TIMES):
            name = fx.fake_name(slug="m", seq=number, start_ms=1_700_000_000_000 + number)
            fx.write_raw(self.profile_dir, name, {
                view: (1, 1, own, cumulative, {}),
                helper: (number + 1, number + 1, helper_own, helper_own,
                         {view: fx.edge(number + 1, helper_own, helper_own)}),
            })
            index.append_index(self.profile_dir, fx.index_entry(name, path="/m"))

    def test_json_sums_and_means(self):
        data = self.client.get("/dashboard/api/profiles/route?method=GET&path=/m").get_json()
        rows = {row["name"]: row for row in data["table"]["rows"]}
        view_own = sum(own for own, _cumulative, _helper in self.TIMES)
        view_cumulative = sum(cumulative for _own, cumulative, _helper in self.TIMES)
        helper_own = sum(helper for _own, _cumulative, helper in self.TIMES)
        self.assertEqual((rows["view"]["tottime"], rows["view"]["tottime_mean"]),
                         (view_own, view_own / 4))
        self.assertEqual((rows["view"]["cumtime"], rows["view"]["cumtime_mean"]),
                         (view_cumulative, view_cumulative / 4))
        self.assertEqual((rows["helper"]["calls"], rows["helper"]["calls_mean"]), (10, 2.5))
        self.assertEqual(rows["helper"]["tottime_mean"], helper_own / 4)
        header = data["table"]["header"]
        self.assertEqual((header["requests"], header["total_time"], header["total_time_mean"]),
                         (4, view_own + helper_own, (view_own + helper_own) / 4))
        self.assertEqual(data["record"]["merged"], 4)
        single = self.client.get("/dashboard/api/profiles/" + index.read_index(
            self.profile_dir)[0]["id"]).get_json()
        self.assertNotIn("requests", single["table"]["header"])
        self.assertNotIn("tottime_mean", single["table"]["rows"][0])

    def test_page_says_requests_and_shows_means(self):
        text = self.page("/dashboard/profiles/route?method=GET&path=/m")
        self.assertIn('<strong id="merged-requests">4 requests</strong>', text)
        self.assertIn("2,188 ms in all, <strong>547 ms per request</strong>", text)
        table = text.split('id="means-table"', 1)[1].split("</table>", 1)[0]
        view_row = next(row for row in table.split("<tr>") if "(view)" in row)
        self.assertEqual(re.findall(r'<td class="num[^"]*">([^<]*)</td>', view_row),
                         ["4", "1.0", "1250.00", "312.50", "2000.00", "500.00"])
        self.assertIn("4 profiles added together", text)  # the profile page follows
        self.assertIn('id="stats-table"', text)
        self.page("/dashboard/api/profiles/route?method=BREW&path=/m", 400)
