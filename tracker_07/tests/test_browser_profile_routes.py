"""The profiles list by route in real headless Chromium against a live server on 127.0.0.1."""
import unittest

from selenium.webdriver.common.by import By

from tracker_07.tests.base import ProfiledAppTestCase
from tracker_07.tests.browser import BrowserTestCase, screenshot


class RouteSummaryInChromiumTestCase(BrowserTestCase, ProfiledAppTestCase):
    """Open the list, read the route summary, compare a route's slowest with its fastest."""

    settings = {"PROFILER_PRINT": False, "TRACKER_ENABLED": False}

    def before_serving(self):
        """Profile the pages before the server thread runs (see BrowserTestCase)."""
        for path in ("/index", "/words/slow", "/words/fast", "/words/fast", "/words/fast",
                     "/index"):
            self.assertEqual(self.client.get(path).status_code, 200)

    def route_row(self, path):
        """Return the summary row of one GET route."""
        return self.driver.find_element(
            By.CSS_SELECTOR, f'#route-summary tr[data-method="GET"][data-route="{path}"]')

    def test_summary_then_compare_slowest_with_fastest(self):
        self.driver.get(self.server.url + "/dashboard/profiles/")
        heading = self.driver.find_element(By.CSS_SELECTOR, "#routes h2")
        self.assertIn("3 routes", heading.text)
        row = self.route_row("/words/fast")
        self.assertEqual(row.find_element(By.CSS_SELECTOR, "td.count").text, "3")
        self.assertEqual(row.find_element(By.CSS_SELECTOR, "td.unprofiled").text, "0")
        cells = [cell.text for cell in self.driver.find_elements(
            By.CSS_SELECTOR, "#profiles tbody tr td:nth-child(4)")
            if cell.find_element(By.XPATH, "..").text.split()[1] == "/words/fast"]
        listed = sorted(cells, key=lambda text: float(text.replace(",", "")))
        self.assertEqual(len(listed), 3)
        self.assertEqual(row.find_element(By.CSS_SELECTOR, "td.median").text, listed[1])
        self.assertEqual(row.find_element(By.CSS_SELECTOR, "td.p95").text, listed[2])
        self.assertEqual(row.find_element(By.CSS_SELECTOR, "td.max").text, listed[2])
        self.assertEqual(len(self.route_row("/words/slow").find_elements(
            By.CSS_SELECTOR, "a.extremes")), 0)  # one profile: nothing to compare with
        screenshot(self.driver, "profiles-list-routes")

        self.follow(row.find_element(By.LINK_TEXT, "compare slowest with fastest"))
        self.assertIn("/dashboard/profiles/compare?", self.driver.current_url)
        summary = self.driver.find_element(By.ID, "compare-summary").text
        self.assertEqual(summary.count("GET /words/fast"), 2)  # both sides shown
        before = self.driver.find_element(By.CSS_SELECTOR, "#before option:checked")
        after = self.driver.find_element(By.CSS_SELECTOR, "#after option:checked")
        times = [option.text.split(" · ")[1].split()[0] for option in (before, after)]
        self.assertEqual(times, [listed[0], listed[2]])  # fastest before, slowest after
        self.assertTrue(self.driver.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr"))
        screenshot(self.driver, "compare-slowest-fastest")

    def test_merge_all_shows_sums_and_means(self):
        self.driver.get(self.server.url + "/dashboard/profiles/")
        self.follow(self.route_row("/words/fast").find_element(By.LINK_TEXT, "merge all"))
        self.assertEqual(self.driver.find_element(By.ID, "merged-requests").text, "3 requests")
        first = self.driver.find_elements(By.CSS_SELECTOR, "#means-table tbody tr")[0]
        calls, mean = (float(cell.text) for cell in
                       first.find_elements(By.CSS_SELECTOR, "td.num")[:2])
        self.assertAlmostEqual(mean, round(calls / 3, 1))
        screenshot(self.driver, "merged-route")


if __name__ == "__main__":
    unittest.main()
