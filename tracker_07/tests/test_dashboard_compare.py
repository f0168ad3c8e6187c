"""Compare in the browser and as JSON: both sides filled by default, new and gone functions."""
import re
import urllib.parse
from unittest import mock

from tracker_07.dashboard import compare_views
from tracker_07.profiles import sampled
from tracker_07.tests.test_dashboard_profiles import DashboardTestCase

VIEW = ("app.py", 1, "view")


def sampled_stats(*extra):
    """A sampled profile: 30 ms in ``view``, 10 ms in ``helper`` below it, then ``extra`` frames."""
    helper = ("app.py", 9, "helper")
    stacks = [((VIEW,), 0.03), ((VIEW, helper), 0.01)]
    stacks += [((VIEW, func), 0.005) for func in extra]
    return sampled.stats_from_stacks(stacks, interval=0.001)


class CompareDefaultsTestCase(DashboardTestCase):
    """One profile given: the other side is its route's previous profile, else the next."""

    def setUp(self):
        super().setUp()
        self.first, self.other, self.second, self.third = (
            record["id"] for record in self.save_profiles(
                "/words/fast", "/index", "/words/fast", "/words/fast"))

    def redirected(self, query, endpoint="/dashboard/profiles/compare"):
        """Return the query of the redirect that a one-sided compare answers."""
        response = self.client.get(f"{endpoint}?{query}")
        self.assertEqual(response.status_code, 302, response.get_data(as_text=True)[:300])
        location = urllib.parse.urlsplit(response.headers["Location"])
        self.assertEqual(location.path, endpoint)
        return urllib.parse.parse_qs(location.query)

    def test_previous_profile_of_the_route_before_this_one(self):
        self.assertEqual(self.redirected(f"a={self.third}&key=cumtime"),
                         {"a": [self.second], "b": [self.third], "key": ["cumtime"]})
        self.assertEqual(self.redirected(f"b={self.second}"),
                         {"a": [self.first], "b": [self.second]})

    def test_oldest_profile_is_compared_with_the_next(self):
        self.assertEqual(self.redirected(f"a={self.first}"),
                         {"a": [self.first], "b": [self.second]})

    def test_the_filled_page_shows_both_sides(self):
        response = self.client.get(f"/dashboard/profiles/compare?a={self.third}",
                                   follow_redirects=True)
        text = response.get_data(as_text=True)
        self.assertIn('id="diff-table"', text)
        self.assertEqual(len(re.findall(r'value="[^"]+\.prof" selected', text)), 2)
        self.assertIn(f'value="{self.second}" selected', text)
        self.assertIn(f'value="{self.third}" selected', text)

    def test_no_partner_leaves_one_side_to_choose(self):
        text = self.page(f"/dashboard/profiles/compare?a={self.other}")
        self.assertNotIn('id="diff-table"', text)
        self.assertIn(f'value="{self.other}" selected', text)
        merged = self.page("/dashboard/profiles/compare?a=route:GET:/words/fast")
        self.assertNotIn('id="diff-table"', merged)
        self.page("/dashboard/profiles/compare?a=GET.nothing.1ms.1.1-1.prof", 404)

    def test_json_fills_both_sides_too(self):
        self.assertEqual(self.redirected(f"a={self.third}", "/dashboard/api/profiles/compare"),
                         {"a": [self.second], "b": [self.third]})


class CompareNewGoneTestCase(DashboardTestCase):
    """Functions on one side only are new or gone, on the page and in the JSON."""

    def test_page_and_json(self):
        slow, fast = (record["id"] for record in self.save_profiles("/words/slow", "/words/fast"))
        data = self.client.get(
            f"/dashboard/api/profiles/compare?a={fast}&b={slow}&limit=5000").get_json()
        rows = {row["label"]: row for row in data["rows"]}
        counting = rows["{method 'count' of 'list' objects}"]  # the slow page's alone
        self.assertEqual((counting["status"], counting["only_in"]), ("new", "after"))
        statuses = {row["status"] for row in data["rows"]}
        self.assertLessEqual({"new", "gone"}, statuses)
        for row in data["rows"]:
            self.assertEqual(row["status"] in ("new", "gone"), row["only_in"] is not None)
        self.assertEqual((data["before"]["id"], data["after"]["id"]), (fast, slow))
        self.assertEqual((data["before"]["engine"], data["after"]["engine"]),
                         ("cprofile", "cprofile"))
        self.assertEqual(data["totals"]["status"], "regressed")
        text = self.page(f"/dashboard/profiles/compare?a={fast}&b={slow}")
        first_row = text.split('id="diff-table"', 1)[1].split("<tbody>", 1)[1].split("</tr>")[0]
        self.assertIn('<tr class="new">', first_row)
        self.assertIn('<span class="badge new" title="Only in the after profile">new</span>',
                      first_row)
        self.assertNotIn("slower", first_row)

    def test_json_needs_two_sides(self):
        response = self.client.get("/dashboard/api/profiles/compare")
        self.assertEqual(response.status_code, 400)
        self.assertIn("Give two profiles", response.get_json()["message"])


class CompareSampledTestCase(DashboardTestCase):
    """A sampled profile (call counts 0) compares with a sampled or a cProfile one."""

    def load(self, reference):
        """Stand in for the engine branch's loader: ``s1``/``s2`` are sampled profiles."""
        if reference == "s1":
            return sampled_stats(), {"id": "s1", "method": "GET", "path": "/x",
                                     "elapsed_ms": 40.0, "merged": 0}
        if reference == "s2":
            return sampled_stats(("app.py", 20, "added")), {
                "id": "s2", "method": "GET", "path": "/x", "elapsed_ms": 45.0, "merged": 0}
        return self.real_load(reference)

    def setUp(self):
        super().setUp()
        self.real_load = compare_views.load_profile
        patcher = mock.patch.object(compare_views, "load_profile", side_effect=self.load)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_sampled_with_sampled(self):
        data = self.client.get("/dashboard/api/profiles/compare?a=s1&b=s2").get_json()
        rows = {row["label"].rsplit("(", 1)[-1]: row for row in data["rows"]}
        self.assertEqual((rows["added)"]["status"], rows["added)"]["after_tottime"]),
                         ("new", 0.005))
        self.assertEqual(rows["view)"]["status"], "same")
        self.assertEqual(data["after"]["engine"], "sampling")
        text = self.page("/dashboard/profiles/compare?a=s1&b=s2")
        self.assertIn("call counts are not known for sampled profiles", text)
        self.assertRegex(text, r'<td class="num">-</td><td class="num">-</td>')

    def test_sampled_with_cprofile(self):
        fast = self.save_profiles("/words/fast")[0]["id"]
        text = self.page(f"/dashboard/profiles/compare?a={fast}&b=s1")
        self.assertIn('<span class="badge gone"', text)  # Flask's frames are not in s1
        self.assertIn('<span class="badge new"', text)  # app.py's are only in s1
        self.assertRegex(text, r'<td class="num">\d+</td><td class="num">-</td>')
