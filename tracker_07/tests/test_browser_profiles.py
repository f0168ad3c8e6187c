"""The profile pages in real headless Chromium against a live server on 127.0.0.1."""
import sys
import unittest

from selenium.webdriver.common.by import By

from tracker_07.tests.base import ProfiledAppTestCase
from tracker_07.tests.browser import BrowserTestCase, screenshot

BOTTLENECK = "{method 'count' of 'list' objects}"
#: What calls list.count in the slow page: the dict comprehension, which Python 3.12 inlines
#: into its function (PEP 709), so there it is ``top_words_naive`` itself.
COUNTING_FRAME = "<dictcomp>" if sys.version_info < (3, 12) else "(top_words_naive)"


class ProfilesInChromiumTestCase(BrowserTestCase, ProfiledAppTestCase):
    """Open the list, sort it, open a profile, click a frame, follow a caller."""

    settings = {"PROFILER_PRINT": False, "TRACKER_ENABLED": False}

    def before_serving(self):
        """Profile the pages with no other thread running (no server, no tracking writer):
        on Python 3.12+ their calls would land in these call trees now and then."""
        for path in ("/index", "/words/slow", "/words/fast", "/index"):
            self.assertEqual(self.client.get(path).status_code, 200)

    def open(self, path):
        """Load a page of the live server."""
        self.driver.get(self.server.url + path)

    def column(self, index):
        """Return the texts of one column of the profiles table."""
        selector = f"#profiles tbody td:nth-child({index})"
        cells = self.driver.find_elements(By.CSS_SELECTOR, selector)
        return [cell.text for cell in cells]

    def test_index_page_loads_its_image_and_script(self):
        self.open("/")
        status = self.driver.find_element(By.ID, "script-status").text
        self.assertIn("The demo script ran", status)
        width = self.driver.execute_script(
            "return document.getElementById('large-image').naturalWidth")
        self.assertEqual(width, 1920)
        screenshot(self.driver, "index")

    def test_find_the_bottleneck_from_the_list(self):
        self.open("/dashboard/profiles/")
        self.assertEqual(len(self.column(2)), 4)
        screenshot(self.driver, "profiles-list")
        self.follow(self.driver.find_element(By.CSS_SELECTOR, 'th a[data-sort="elapsed_ms"]'))
        self.assertIn("sort=elapsed_ms", self.driver.current_url)
        elapsed = [float(text.replace(",", "")) for text in self.column(4)]
        self.assertEqual(elapsed, sorted(elapsed, reverse=True))
        self.assertEqual(self.column(2)[0], "/words/slow")

        self.follow(self.driver.find_element(By.LINK_TEXT, "/words/slow"))
        self.assertIn("function calls", self.driver.find_element(By.ID, "header-line").text)
        first_label = self.driver.find_element(By.CSS_SELECTOR, "#stats-table tbody td.label")
        self.assertEqual(first_label.text, BOTTLENECK)
        screenshot(self.driver, "profile")

        frame = self.driver.find_element(By.CSS_SELECTOR, f'a.frame[data-label="{BOTTLENECK}"]')
        self.follow(frame)
        self.assertEqual(self.driver.find_element(By.ID, "selected-function").text, BOTTLENECK)
        callers = self.driver.find_elements(By.CSS_SELECTOR, "#callers td.label a")
        self.assertTrue(any(COUNTING_FRAME in caller.text for caller in callers))
        screenshot(self.driver, "profile-function")

        caller = next(caller for caller in callers if COUNTING_FRAME in caller.text)
        caller_label = caller.text
        self.follow(caller)
        self.assertEqual(self.driver.find_element(By.ID, "selected-function").text, caller_label)
        callees = [link.text for link in
                   self.driver.find_elements(By.CSS_SELECTOR, "#callees td.label a")]
        self.assertIn(BOTTLENECK, callees)

    def test_table_sort_in_the_page(self):
        self.open("/dashboard/profiles/")
        self.follow(self.driver.find_element(By.LINK_TEXT, "/words/slow"))
        self.follow(self.driver.find_element(By.CSS_SELECTOR,
                                             '#stats-table th a[data-sort="cumtime"]'))
        cumtimes = [float(cell.text) for cell in self.driver.find_elements(
            By.CSS_SELECTOR, "#stats-table tbody td:nth-child(4)")]
        self.assertEqual(cumtimes, sorted(cumtimes, reverse=True))
        self.assertIn("sort=cumtime", self.driver.current_url)

    def test_compare_slow_with_fast(self):
        self.open("/dashboard/profiles/compare")
        before = self.driver.find_element(By.ID, "before")
        after = self.driver.find_element(By.ID, "after")
        before.find_element(By.CSS_SELECTOR, 'option[value="route:GET:/words/slow"]').click()
        after.find_element(By.CSS_SELECTOR, 'option[value="route:GET:/words/fast"]').click()
        self.follow(self.driver.find_element(By.CSS_SELECTOR, "form.filters button"))
        summary = self.driver.find_element(By.ID, "compare-summary")
        self.assertIn("improved", summary.get_attribute("class"))
        first = self.driver.find_element(By.CSS_SELECTOR, "#diff-table tbody tr")
        self.assertIn(BOTTLENECK, first.text)
        self.assertIn("gone", first.text)  # the fast page never calls it
        screenshot(self.driver, "compare")


if __name__ == "__main__":
    unittest.main()
