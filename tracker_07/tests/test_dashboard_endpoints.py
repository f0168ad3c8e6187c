"""The endpoints page of the dashboard: per-endpoint numbers, filters, charts and JSON."""
import datetime
import html
import re
from unittest import mock

from sqlalchemy.exc import OperationalError

from tracker_07.dashboard import endpoint_views
from tracker_07.tests.base import AppTestCase
from tracker_07.tracking import reads, writer


class EndpointsPageTestCase(AppTestCase):
    """A development app with tracking on and some traffic recorded."""

    config_name = "development"

    def setUp(self):
        super().setUp()
        self.app.add_url_rule("/fail", "fail", self.fail_view)
        self.app.add_url_rule("/user/<int:user_id>", "user", lambda user_id: f"user {user_id}")
        self.traffic = ["/index"] * 3 + ["/words/fast"] * 2 + ["/user/1", "/user/2", "/missing"]
        for path in self.traffic + ["/fail"]:
            self.client.get(path).close()  # a server closes every response; tracking counts then
        self.tracking = self.app.extensions["tracker_tracking"]
        self.assertTrue(self.tracking.flush(10))

    @staticmethod
    def fail_view():
        """A view that answers 500."""
        return "broken", 500

    def rows(self, query=""):
        """Return the endpoint table's rows as lists of cell texts."""
        response = self.client.get("/dashboard/" + query)
        self.assertEqual(response.status_code, 200, response.data[:300])
        table = response.get_data(as_text=True).split('id="endpoints"', 1)[1].split("</table>")[0]
        return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
                for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)]

    def test_a_request_just_made_is_on_the_page_without_a_flush(self):
        """Few rows wait in the writer's queue at low rates; the page asks for them."""
        self.client.get("/user/3").close()
        self.assertEqual(len(self.tracking.middleware.queue), 1)  # the writer let it wait
        data = self.client.get("/dashboard/api/endpoints").get_json()
        counts = {(row["endpoint"], row["method"]): row["count"] for row in data["summary"]}
        self.assertEqual(counts[("/user/<int:user_id>", "GET")], 3)

    def test_counts_per_endpoint_rule(self):
        counts = {(row[0], row[1]): int(row[2]) for row in self.rows()}
        self.assertEqual(counts[("/index", "GET")], 3)
        self.assertEqual(counts[("/words/fast", "GET")], 2)
        self.assertEqual(counts[("/user/<int:user_id>", "GET")], 2)
        self.assertEqual(counts[("<404>", "GET")], 1)
        self.assertNotIn(("/dashboard/", "GET"), counts)

    def test_errors_are_counted_separately(self):
        by_endpoint = {row[0]: row for row in self.rows()}
        self.assertTrue(by_endpoint["<404>"][8].startswith("1"))
        self.assertEqual(by_endpoint["<404>"][9], "0")
        self.assertTrue(by_endpoint["/fail"][9].startswith("1"))

    def test_sorted_by_count_and_by_name(self):
        counts = [int(row[2]) for row in self.rows("?sort=count&order=desc")]
        self.assertEqual(counts, sorted(counts, reverse=True))
        names = [row[0] for row in self.rows("?sort=endpoint&order=asc")]
        self.assertEqual(names, sorted(names))

    def test_filters(self):
        self.assertEqual([row[0] for row in self.rows("?endpoint=/index")], ["/index"])
        self.assertEqual({row[0] for row in self.rows("?status=4xx")}, {"<404>"})
        self.assertEqual({row[0] for row in self.rows("?status=500")}, {"/fail"})
        self.assertEqual(self.rows("?method=POST")[0][0], "No requests recorded in this range "
                                                          "with these filters.")

    def test_time_ranges(self):
        for window in ("1h", "24h", "7d"):
            self.assertEqual(len(self.rows(f"?range={window}")), 5)
        past = datetime.datetime.now() - datetime.timedelta(days=3)
        query = (f"?range=custom&since={past:%Y-%m-%dT%H:%M}"
                 f"&until={past + datetime.timedelta(hours=1):%Y-%m-%dT%H:%M}")
        self.assertEqual(len(self.rows(query)), 1)  # the "no requests" row
        self.assertEqual(self.client.get("/dashboard/?range=custom&since=x").status_code, 400)
        later, earlier = "2026-01-02T00:00", "2026-01-01T00:00"
        response = self.client.get(f"/dashboard/?range=custom&since={later}&until={earlier}")
        self.assertEqual(response.status_code, 400)
        self.assertEqual(self.client.get("/dashboard/?range=1y").status_code, 400)
        self.assertEqual(self.client.get("/dashboard/?status=teapot").status_code, 400)

    def test_json_matches_the_requests_made(self):
        data = self.client.get("/dashboard/api/endpoints?range=24h").get_json()
        by_endpoint = {row["endpoint"]: row for row in data["summary"]}
        self.assertEqual(sum(row["count"] for row in data["summary"]), len(self.traffic) + 1)
        self.assertEqual(by_endpoint["/index"]["count"], 3)
        self.assertEqual(len(data["series"]), 60)
        self.assertEqual(sum(point["count"] for point in data["series"]), len(self.traffic) + 1)
        self.assertEqual(sum(bucket["count"] for bucket in data["histogram"]),
                         len(self.traffic) + 1)
        self.assertGreaterEqual(data["tracker"]["written"], len(self.traffic) + 1)
        self.assertEqual(data["tracker"]["dropped"], 0)
        self.assertEqual((by_endpoint["/index"]["queries"], by_endpoint["/index"]["queries_max"],
                          by_endpoint["/index"]["sql_ms"]), (0, 0, 0))

    def test_many_rows_not_rolled_up_are_rolled_up_before_the_page_reads(self):
        stored = len(self.traffic) + 1
        self.assertEqual(self.rows_behind(), stored)
        pages = []
        for threshold, behind_after in ((stored + 1, stored), (stored, 0)):
            with mock.patch.object(endpoint_views, "ROLL_UP_BEFORE_READING", threshold):
                pages.append(self.client.get("/dashboard/api/endpoints?range=24h").get_json())
            self.assertEqual(self.rows_behind(), behind_after)
        read_raw, rolled_up = pages[0], pages[1]
        self.assertEqual(rolled_up["summary"], read_raw["summary"])
        self.assertEqual(rolled_up["histogram"], read_raw["histogram"])
        self.assertEqual(sum(point["count"] for point in rolled_up["series"]), stored)

    def rows_behind(self):
        """Stored rows past the roll-up mark."""
        with self.tracking.engine.connect() as conn:
            return reads.rows_behind(conn)

    def test_queries_per_endpoint_in_the_json_and_the_table(self):
        for path in ("/posts/fast", "/posts/fast", "/posts/slow"):
            self.client.get(path).close()
        self.assertTrue(self.tracking.flush(10))
        data = self.client.get("/dashboard/api/endpoints?range=24h").get_json()
        by_endpoint = {row["endpoint"]: row for row in data["summary"]}
        fast, slow = by_endpoint["/posts/fast"], by_endpoint["/posts/slow"]
        self.assertEqual((fast["queries"], fast["queries_max"], fast["findings"]), (4, 4, 0))
        self.assertGreater(slow["queries"], 100)
        self.assertEqual(slow["findings"], 3)
        self.assertGreater(slow["sql_ms"], 0)
        self.assertTrue(0 < slow["sql_share"] < 1)
        rows = {row[0]: row for row in self.rows("?range=24h")}
        self.assertEqual(rows["/posts/fast"][10:13], ["4.0 (4)", rows["/posts/fast"][11], "0"])
        self.assertEqual(rows["/posts/slow"][12], "3")

    def test_page_shows_charts_cost_and_drops(self):
        text = self.client.get("/dashboard/").get_data(as_text=True)
        self.assertIn('id="time-chart"', text)
        self.assertIn('class="series mean" d="M', text)
        self.assertRegex(text, r'(?s)id="histogram"[^>]*>.*?<rect class="bar"')
        stats = self.tracking.stats()
        self.assertEqual(stats["request_path_us"], 0.0)  # fewer than 64 requests so far
        self.assertIn('id="request-path-cost">–<', text)
        self.assertIn('id="request-path-timed">–<', text)
        self.assertIn(f'id="writer-cost">{stats["writer_us_per_row"]:.1f} µs<', text)
        self.assertGreater(stats["writer_us_per_row"], 0)
        # All in: so far the writer's share alone.
        self.assertIn(f'id="tracker-cost">{stats["writer_us_per_row"]:.1f} µs<', text)
        self.assertIn('id="dropped">0<', text)

    def test_request_path_cost_appears_once_sampled(self):
        for _ in range(64):
            self.client.get("/user/3").close()
        self.tracking.flush(10)
        text = self.client.get("/dashboard/").get_data(as_text=True)
        stats = self.tracking.stats()
        cost = stats["request_path_us"]
        self.assertGreater(cost, 0)
        self.assertIn(f'id="request-path-cost">{cost:.1f} µs<', text)
        self.assertIn(f'id="request-path-timed">{stats["request_path_timed_us"]:.1f} µs<', text)
        self.assertIn(f'id="tracker-cost">{cost + stats["writer_us_per_row"]:.1f} µs<', text)

    def test_user_data_is_escaped(self):
        self.client.get("/<script>alert(1)</script>").close()
        self.tracking.flush(10)
        text = self.client.get("/dashboard/").get_data(as_text=True)
        self.assertIn("&lt;404&gt;", text)
        self.assertNotIn("<script>alert", text)

    def test_store_down_is_a_503_not_a_500(self):
        error = OperationalError("SELECT", {}, Exception("database is locked"))
        with mock.patch("tracker_07.tracking.reads.summary_and_histogram", side_effect=error):
            page = self.client.get("/dashboard/")
            api = self.client.get("/dashboard/api/endpoints")
        self.assertEqual(page.status_code, 503)
        self.assertIn(b"cannot be read right now", page.data)
        self.assertEqual(api.status_code, 503)
        self.assertEqual(api.get_json()["reason"], "OperationalError: database is locked")
        self.assertIn("database is locked", page.get_data(as_text=True))
        self.assertEqual(self.client.get("/index").status_code, 200)


class EndpointProfilesLinkTestCase(AppTestCase):
    """An endpoint with saved profiles links to them."""

    config_name = "profile"

    def test_link_to_saved_profiles(self):
        app = self.make_app("profile", PROFILER_DIR=self.tmp + "/profiles", PROFILER_PRINT=False)
        client = app.test_client()
        for path in ("/words/fast", "/words/fast", "/missing"):
            client.get(path).close()
        app.extensions["tracker_tracking"].flush(10)
        text = client.get("/dashboard/").get_data(as_text=True)
        self.assertIn('href="/dashboard/profiles/?path=/words/fast&amp;method=GET">2 saved', text)


class TrackingOffTestCase(AppTestCase):
    """Without tracking the page says how to turn it on."""

    def test_off(self):
        app = self.make_app("development", TRACKER_ENABLED=False)
        response = app.test_client().get("/dashboard/")
        self.assertIn(b'id="tracking-off"', response.data)
        self.assertEqual(app.test_client().get("/dashboard/api/endpoints").status_code, 404)


class StoreUnreachableTestCase(AppTestCase):
    """A store that cannot be opened: the app serves, the dashboard says why and what was lost."""

    def test_dashboard_shows_the_reason_and_the_drops(self):
        blocker = f"{self.tmp}/not-a-folder"
        with open(blocker, "w", encoding="utf-8"):
            pass
        with self.assertLogs("tracker_07", "WARNING"), \
                mock.patch.object(writer, "RETRY_BACKOFF_SECONDS", 0):
            app = self.make_app("development",
                                TRACKER_DATABASE_URL=f"sqlite:///{blocker}/tracker.sqlite3")
            client = app.test_client()
            for _ in range(3):
                self.assertEqual(client.get("/index").status_code, 200)
            app.extensions["tracker_tracking"].flush(10)
            page = client.get("/dashboard/")
            api = client.get("/dashboard/api/endpoints")
        self.assertEqual((page.status_code, api.status_code), (503, 503))
        body = api.get_json()
        self.assertEqual((body["status"], body["dropped"], body["queued"]), (503, 3, 0))
        self.assertIn("unable to open database file", body["reason"])
        text = page.get_data(as_text=True)
        self.assertRegex(text, r'id="error-dropped">3<')
        self.assertIn("unable to open database file", text)
        self.assertNotIn(self.tmp, text)
