"""The profile pages in real headless Chromium against a live server on 127.0.0.1."""
import sys
import unittest

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tracker_07.profiles.index import read_index
from tracker_07.tests import profile_fixtures

from tracker_07.tests.base import ProfiledAppTestCase
from tracker_07.tests.browser import BrowserTestCase, screenshot
from tracker_07.tests.test_browser_toolbar import CSP_LISTENER

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
        frame.find_element(By.TAG_NAME, "rect").click()  # the script shows it in place
        WebDriverWait(self.driver, 10).until(lambda driver: driver.find_element(
            By.ID, "selected-function").text == BOTTLENECK)
        callers = self.driver.find_elements(By.CSS_SELECTOR, "#callers td.label a")
        self.assertTrue(any(COUNTING_FRAME.strip("()") in caller.text for caller in callers))
        screenshot(self.driver, "profile-function")

        caller = next(caller for caller in callers if COUNTING_FRAME.strip("()") in caller.text)
        caller_name = caller.text
        self.follow(caller)  # a link to the function's page, which works without the script
        self.assertIn("fn=", self.driver.current_url)
        self.assertEqual(self.driver.find_element(By.ID, "selected-name").text.split()[0],
                         caller_name)
        callees = [link.text for link in
                   self.driver.find_elements(By.CSS_SELECTOR, "#callees td.label a")]
        self.assertIn(BOTTLENECK, callees)

    def test_table_sort_in_the_page(self):
        self.open("/dashboard/profiles/")
        self.follow(self.driver.find_element(By.LINK_TEXT, "/words/slow"))
        self.follow(self.driver.find_element(By.CSS_SELECTOR,
                                             '#stats-table th a[data-sort="cumtime"]'))
        cells = self.driver.find_elements(By.CSS_SELECTOR, "#stats-table tbody td:nth-child(5)")
        cumtimes = [float(cell.get_attribute("data-seconds")) for cell in cells]
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


class ProfileScriptInChromiumTestCase(BrowserTestCase, ProfiledAppTestCase):
    """The profile page's script: zoom in place with callers and callees, search, own code."""

    settings = {"PROFILER_PRINT": False, "TRACKER_ENABLED": False}

    @classmethod
    def setUpClass(cls):
        """Record every CSP violation of every page from its first byte."""
        super().setUpClass()
        cls.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                   {"source": CSP_LISTENER})

    def before_serving(self):
        """The demo's slow page, and a fixture profile whose tree has siblings: workload ->
        a -> b and c -> d."""
        self.assertEqual(self.client.get("/words/slow").status_code, 200)
        (self.slow,) = [record["id"] for record in read_index(self.profile_dir)]
        self.fixture = profile_fixtures.write_profile(self.profile_dir, work=100_000)

    def open(self, profile_id, query=""):
        """Load a profile page and mark its window, to tell a later page load apart."""
        self.driver.get(f"{self.server.url}/dashboard/profiles/{profile_id}{query}")
        self.driver.execute_script("window.trackerSamePage = true;")

    def frame(self, name):
        """The icicle frame of a function by name."""
        return self.driver.find_element(By.CSS_SELECTOR,
                                        f'#flame-graph .frame[data-name="{name}"]')

    def geometry(self):
        """Every frame's node, parent, x, width and whether it is shown."""
        return self.driver.execute_script("""
            return Array.from(document.querySelectorAll('#flame-graph .frame')).map(f => ({
              node: f.dataset.node, parent: f.dataset.parent, name: f.dataset.name,
              x: parseFloat(f.querySelector('rect').getAttribute('x')),
              width: parseFloat(f.querySelector('rect').getAttribute('width')),
              shown: getComputedStyle(f).display !== 'none'}));""")

    def assert_clean_console(self):
        """No script error, no CSP violation, and no page load since ``open``."""
        errors = [entry["message"] for entry in self.driver.get_log("browser")
                  if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]
        self.assertEqual(errors, [])
        self.assertEqual(self.driver.execute_script("return window.__cspViolations"), [])

    def test_click_zooms_in_place_and_lists_callers_and_callees(self):
        self.open(self.fixture)
        before = {frame["node"]: frame for frame in self.geometry()}
        url = self.driver.current_url
        self.frame("c").find_element(By.TAG_NAME, "rect").click()
        WebDriverWait(self.driver, 10).until(lambda driver: "c" in driver.find_element(
            By.ID, "selected-name").text)
        self.assertTrue(self.driver.execute_script("return window.trackerSamePage === true"))
        self.assertEqual(self.driver.current_url, url)
        after = {frame["node"]: frame for frame in self.geometry()}
        target = next(node for node, frame in after.items() if frame["name"] == "c")

        def chain(node):
            while node:
                yield node
                node = after[node]["parent"]

        scale = 1000 / before[target]["width"]
        hidden = 0
        for node, frame in after.items():
            below, above = target in chain(node), node in chain(target)
            self.assertEqual(frame["shown"], below or above, frame["name"])
            hidden += not frame["shown"]
            if above:
                self.assertEqual((frame["x"], frame["width"]), (0, 1000), frame["name"])
            elif below:
                self.assertAlmostEqual(frame["width"], before[node]["width"] * scale, delta=0.02)
                self.assertAlmostEqual(
                    frame["x"], (before[node]["x"] - before[target]["x"]) * scale, delta=0.02)
        self.assertGreater(hidden, 0)  # b, beside c, is out of view
        self.assertRegex(self.frame("c").text, r"^c \S+ ms \S+%$")
        callers = self.driver.find_elements(By.CSS_SELECTOR, "#callers td.label a")
        callees = self.driver.find_elements(By.CSS_SELECTOR, "#callees td.label a")
        self.assertEqual([link.text for link in callers], ["a"])
        self.assertEqual([link.text for link in callees], ["d"])
        self.assertIn("fn=", callees[0].get_attribute("href"))
        screenshot(self.driver, "profile-zoomed")

        self.driver.find_element(By.ID, "zoom-reset").click()
        self.assertEqual({node: (f["x"], f["width"], f["shown"]) for node, f in
                          {frame["node"]: frame for frame in self.geometry()}.items()},
                         {node: (f["x"], f["width"], f["shown"]) for node, f in before.items()})
        self.assertFalse(self.driver.find_element(By.ID, "zoom-reset").is_displayed())
        self.assert_clean_console()

    def test_the_bottleneck_and_its_callers_on_the_demo_page(self):
        self.open(self.slow)
        first = self.driver.find_element(By.CSS_SELECTOR, "#hottest li")
        self.assertIn(BOTTLENECK, first.text)
        self.assertIn("from your code", first.text)
        self.frame(BOTTLENECK).find_element(By.TAG_NAME, "rect").click()
        WebDriverWait(self.driver, 10).until(lambda driver: driver.find_element(
            By.ID, "selected-function").text == BOTTLENECK)
        callers = [link.text for link in
                   self.driver.find_elements(By.CSS_SELECTOR, "#callers td.label a")]
        self.assertTrue(any(COUNTING_FRAME.strip("()") in caller for caller in callers), callers)
        self.assertTrue(self.driver.execute_script("return window.trackerSamePage === true"))
        screenshot(self.driver, "profile-demo-selected")
        self.assert_clean_console()

    def test_search_highlights_matching_frames(self):
        self.open(self.slow)
        box = self.driver.find_element(By.ID, "flame-search")
        self.assertTrue(box.is_displayed())
        box.send_keys("top_words")
        result = self.driver.find_element(By.ID, "search-result")
        self.assertRegex(result.text, r"^1 frame\(s\) match, \d+(\.\d)?% of the time$")
        matched = self.driver.find_elements(By.CSS_SELECTOR, "#flame-graph .frame.match")
        self.assertEqual([frame.get_attribute("data-name") for frame in matched],
                         ["top_words_naive"])
        self.assertIn("dim", self.frame("words_slow").get_attribute("class"))
        screenshot(self.driver, "profile-search")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "#flame-graph .dim"), [])
        self.assertFalse(result.is_displayed())
        self.assert_clean_console()

    def test_own_code_toggle(self):
        self.open(self.slow)
        toggle = self.driver.find_element(By.ID, "own-toggle")
        self.assertEqual(toggle.get_attribute("aria-checked"), "false")
        self.follow(toggle)
        self.assertIn("own=1", self.driver.current_url)
        frames = self.driver.find_elements(By.CSS_SELECTOR, "#flame-graph a.frame")
        self.assertTrue(frames)
        self.assertEqual({frame.get_attribute("class").split()[1] for frame in frames},
                         {"kind-own"})
        self.assertEqual(self.frame("words_slow").get_attribute("data-parent"), "n0")
        screenshot(self.driver, "profile-own-code")
        self.driver.execute_script("window.trackerSamePage = true;")
        self.frame("top_words_naive").find_element(By.TAG_NAME, "rect").click()
        WebDriverWait(self.driver, 10).until(
            lambda driver: "top_words_naive" in driver.find_element(By.ID, "selected-name").text)
        self.assertEqual(self.frame("top_words_naive").find_element(
            By.TAG_NAME, "rect").get_attribute("width"), "1000.00")
        self.assertTrue(self.driver.execute_script("return window.trackerSamePage === true"))
        self.follow(self.driver.find_element(By.ID, "own-toggle"))
        self.assertIn("own=0", self.driver.current_url)
        kinds = {frame.get_attribute("class").split()[1] for frame in
                 self.driver.find_elements(By.CSS_SELECTOR, "#flame-graph a.frame")}
        self.assertIn("kind-library", kinds)
        self.assert_clean_console()


if __name__ == "__main__":
    unittest.main()
