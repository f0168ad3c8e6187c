"""The Database panel of a profile and the endpoints' query columns in real headless
Chromium against a live server on 127.0.0.1 (the demo's N+1 page and its fast twin)."""
import time
import unittest

from selenium.webdriver.common.by import By

from tracker_07.tests.base import ProfiledAppTestCase, fetch
from tracker_07.tests.browser import BrowserTestCase, screenshot


class DatabaseInChromiumTestCase(BrowserTestCase, ProfiledAppTestCase):
    """Find the N+1 of /posts/slow from the list, then see it gone on /posts/fast."""

    settings = {"PROFILER_PRINT": False, "TRACKER_ENABLED": True}

    def setUp(self):
        super().setUp()
        for path in ("/posts/fast", "/posts/slow", "/posts/fast"):  # data made by the first
            self.assertEqual(fetch(self.server.url + path)[0], 200)

    def test_the_database_panel_of_the_slow_page(self):
        self.driver.get(self.server.url + "/dashboard/profiles/?sort=queries")
        queries = [cell.text for cell in
                   self.driver.find_elements(By.CSS_SELECTOR, "#profiles td.queries")]
        self.assertEqual(queries[1:], ["4", "4"])
        self.assertGreater(int(queries[0]), 100)
        self.follow(self.driver.find_element(By.LINK_TEXT, "/posts/slow"))
        panel = self.driver.find_element(By.ID, "database")
        self.assertIn(f"{queries[0]} queries in", panel.find_element(By.TAG_NAME, "h2").text)
        findings = panel.find_elements(By.CSS_SELECTOR, ".finding.n_plus_one")
        self.assertEqual(len(findings), 3)
        self.assertIn("N+1", findings[0].text)
        self.assertIn("tracker_07/main/templates/main/posts.html:", findings[0].text)
        self.assertIn("selectinload", findings[0].text)
        rows = panel.find_elements(By.CSS_SELECTOR, "#queries-table tbody tr")
        self.assertEqual(sum(int(row.find_element(By.CSS_SELECTOR, "td").text) for row in rows),
                         int(queries[0]))
        self.assertTrue(panel.is_displayed())
        screenshot(self.driver, "profile-posts-slow")

        self.driver.get(self.server.url + "/dashboard/profiles/?sort=queries&order=asc")
        self.follow(self.driver.find_element(By.LINK_TEXT, "/posts/fast"))
        panel = self.driver.find_element(By.ID, "database")
        self.assertIn("4 queries in", panel.text)
        self.assertFalse(panel.find_elements(By.CSS_SELECTOR, ".finding"))
        screenshot(self.driver, "profile-posts-fast")

    def test_the_endpoints_columns(self):
        tracking = self.app.extensions["tracker_tracking"]
        deadline = time.monotonic() + 10
        while tracking.stats()["written"] < 3 and time.monotonic() < deadline:
            tracking.flush(1)
            time.sleep(0.01)
        self.driver.get(self.server.url + "/dashboard/?sort=queries")
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr")
        cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        self.assertEqual([row[0] for row in cells], ["/posts/slow", "/posts/fast"])
        self.assertEqual(cells[1][10:13:2], ["4.0 (4)", "0"])
        self.assertEqual(cells[0][12], "3")
        screenshot(self.driver, "endpoints-queries")


if __name__ == "__main__":
    unittest.main()
