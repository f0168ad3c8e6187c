"""The endpoints dashboard in real headless Chromium against a live server on 127.0.0.1."""
import time
import unittest

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tracker_07.tests.base import AppTestCase, fetch
from tracker_07.tests.browser import BrowserTestCase, screenshot


class EndpointsInChromiumTestCase(BrowserTestCase, AppTestCase):
    """Open the dashboard, read its charts, filter it and sort it."""

    config_name = "development"

    def setUp(self):
        super().setUp()
        paths = ["/index"] * 4 + ["/words/fast"] * 3 + ["/words/slow", "/nope", "/nope"]
        for path in paths:
            fetch(self.server.url + path)
        # The server closes a response (and so records it) just after the client has read it.
        tracking = self.app.extensions["tracker_tracking"]
        deadline = time.monotonic() + 10
        while tracking.stats()["written"] < len(paths) and time.monotonic() < deadline:
            tracking.flush(1)
            time.sleep(0.01)
        self.assertEqual(tracking.stats()["written"], len(paths))

    def endpoints(self):
        """Return the endpoint column of the table."""
        cells = self.driver.find_elements(By.CSS_SELECTOR, "#endpoints tbody td.path")
        return [cell.text for cell in cells]

    def test_dashboard_charts_filters_and_sorting(self):
        self.driver.get(self.server.url + "/dashboard/")
        self.assertEqual(self.driver.find_element(By.ID, "total-requests").text, "10")
        self.assertEqual(set(self.endpoints()), {"/index", "/words/fast", "/words/slow", "<404>"})
        self.assertTrue(self.driver.find_elements(By.CSS_SELECTOR, "#time-chart rect.bar"))
        path = self.driver.find_element(By.CSS_SELECTOR, "#time-chart path.series.p95")
        self.assertTrue(path.get_attribute("d").startswith("M"))
        bars = self.driver.find_elements(By.CSS_SELECTOR, "#histogram rect.bar")
        self.assertGreaterEqual(len(bars), 2)
        width = self.driver.execute_script(
            "return document.getElementById('histogram').getBoundingClientRect().width")
        self.assertGreater(width, 600)
        screenshot(self.driver, "endpoints")

        self.follow(self.driver.find_element(By.CSS_SELECTOR, 'th a[data-sort="p95"]'))
        self.assertEqual(self.endpoints()[0], "/words/slow")
        self.follow(self.driver.find_element(By.CSS_SELECTOR, 'th a[data-sort="count"]'))
        self.assertEqual(self.endpoints()[0], "/index")

        Select(self.driver.find_element(By.ID, "endpoint-filter")).select_by_visible_text(
            "/words/fast")
        self.follow(self.driver.find_element(By.CSS_SELECTOR, "#endpoint-filters button"))
        self.assertEqual(self.endpoints(), ["/words/fast"])
        self.assertEqual(self.driver.find_element(By.ID, "total-requests").text, "3")
        screenshot(self.driver, "endpoints-filtered")

        self.driver.get(self.server.url + "/dashboard/")
        status = self.driver.find_element(By.ID, "status-filter")
        status.send_keys("4xx")
        self.follow(self.driver.find_element(By.CSS_SELECTOR, "#endpoint-filters button"))
        self.assertEqual(self.endpoints(), ["<404>"])

        self.follow(self.driver.find_element(By.LINK_TEXT, "<404>"))
        self.assertIn("endpoint=%3C404%3E", self.driver.current_url)
        self.assertEqual(self.endpoints(), ["<404>"])


if __name__ == "__main__":
    unittest.main()
