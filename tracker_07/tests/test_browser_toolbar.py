"""The toolbar in real headless Chromium: on the demo's pages, its links, a page that looks the
same with it hidden, and a host page with a strict Content-Security-Policy."""
import io
import os
import re
import shutil
import tempfile
import unittest

from flask import Flask
from PIL import Image, ImageChops
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tracker_07 import Tracker
from tracker_07.tests.base import ProfiledAppTestCase, stop_tracking
from tracker_07.tests.browser import BrowserTestCase, screenshot

BOTTLENECK = "{method 'count' of 'list' objects}"
STRICT_CSP = "default-src 'self'"
#: Records every CSP violation of a page from its first byte (a DevTools script runs before
#: the page's own and is not subject to its CSP).
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (event) {
  window.__cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""


class ToolbarCase(BrowserTestCase):
    """Helpers to reach into the toolbar's shadow root."""

    def setUp(self):
        """Forget the cookie of a toolbar hidden by an earlier test (same host, any port)."""
        super().setUp()
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})

    def open(self, path):
        """Load a page of the live server and wait until it and its toolbar are ready."""
        self.driver.get(self.server.url + path)
        WebDriverWait(self.driver, 10).until(lambda driver: driver.execute_script(
            "return document.readyState === 'complete'"
            " && Array.from(document.images).every(function (i) { return i.complete; })"))

    def root(self):
        """The toolbar's shadow root."""
        return self.driver.find_element(By.ID, "tracker-toolbar").shadow_root

    def part(self, selector):
        """One element inside the toolbar."""
        return self.root().find_element(By.CSS_SELECTOR, selector)

    def wait_styled(self):
        """Wait until the toolbar's stylesheet applies (the tab is on its dark background)."""
        WebDriverWait(self.driver, 10).until(
            lambda driver: self.part("#tab").value_of_css_property("background-color")
            == "rgba(29, 35, 48, 1)")

    def open_panel(self):
        """Open the toolbar unless it is open (a page restored by Back keeps its state)."""
        if not self.part("#panel").is_displayed():
            self.part("#tab").click()

    def png(self):
        """The viewport as an RGB image."""
        return Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")


class DemoToolbarTestCase(ToolbarCase, ProfiledAppTestCase):
    """The demo in profile mode, as a developer sees it."""

    settings = {"PROFILER_PRINT": False}

    def saved(self, path_slug):
        """The ids of the saved profiles of one demo path, oldest first."""
        return [name for name in sorted(self.prof_files(), key=lambda n: n.split(".")[-3])
                if name.startswith(f"GET.{path_slug}.")]

    def test_on_the_index_and_the_slow_page_it_opens_and_closes(self):
        for path in ("/", "/words/slow"):
            with self.subTest(path=path):
                self.open(path)
                self.wait_styled()
                tab = self.part("#tab")
                self.assertRegex(tab.text, r"^Tracker\s+[\d.,]+ ms\s+profiled$")
                panel = self.part("#panel")
                self.assertFalse(panel.is_displayed())
                tab.click()
                self.assertTrue(panel.is_displayed())
                rows = self.root().find_elements(By.CSS_SELECTOR, "#functions tbody tr")
                self.assertEqual(len(rows), 5)
                tab.click()
                self.assertFalse(panel.is_displayed())
        self.open("/")
        self.assertIn("The demo script ran", self.driver.find_element(By.ID, "script-status").text)

    def test_on_the_slow_page_it_names_the_bottleneck_and_links_to_its_profile(self):
        self.open("/words/slow")
        self.wait_styled()
        self.part("#tab").click()
        first = self.part("#functions tbody tr td.fn .name")
        self.assertEqual(first.text, BOTTLENECK)
        screenshot(self.driver, "toolbar-open-slow")
        (slow,) = self.saved("words.slow")
        link = self.part("#link-profile")
        self.assertTrue(link.get_attribute("href").endswith(f"/dashboard/profiles/{slow}"))
        self.follow(link)
        self.assertIn("function calls", self.driver.find_element(By.ID, "header-line").text)
        first_label = self.driver.find_element(By.CSS_SELECTOR, "#stats-table tbody td.label")
        self.assertEqual(first_label.text, BOTTLENECK)
        self.assertIn(slow, self.driver.page_source)
        self.assertEqual(self.driver.find_elements(By.ID, "tracker-toolbar"), [])

    def test_the_n_plus_one_page_is_marked_and_its_twin_is_not(self):
        self.open("/posts/slow")
        self.assertRegex(self.part("#queries").text, r"^\d+ q$")
        self.assertIn("n plus one", self.part("#finding").get_attribute("title"))
        self.open_panel()
        self.assertIn("n plus one", self.part("#database").text)
        screenshot(self.driver, "toolbar-open-posts-slow")
        self.open("/posts/fast")
        self.assertRegex(self.part("#queries").text, r"^\d+ q$")
        self.assertEqual(self.root().find_elements(By.CSS_SELECTOR, "#finding"), [])

    def test_the_route_compare_and_endpoint_links(self):
        self.open("/words/slow")
        self.open("/words/slow")
        first, second = self.saved("words.slow")
        self.part("#tab").click()
        self.follow(self.part("#link-compare"))
        self.assertIn(f"a={first}", self.driver.current_url)
        self.assertIn(f"b={second}", self.driver.current_url)
        self.assertTrue(self.driver.find_element(By.ID, "compare-summary").is_displayed())

        self.driver.back()
        self.open_panel()
        self.follow(self.part("#link-route"))
        self.assertIn("path=/words/slow", self.driver.current_url)
        self.assertIn("2", self.driver.find_element(By.ID, "header-line").text)

        self.driver.back()
        self.open_panel()
        self.app.extensions["tracker_tracking"].flush()  # the endpoint list comes from the store
        self.follow(self.part("#link-endpoint"))
        self.assertIn("endpoint=/words/slow", self.driver.current_url)
        self.assertEqual(self.driver.find_element(By.ID, "endpoint-filter")
                         .get_attribute("value"), "/words/slow")

    def test_the_page_looks_the_same_with_the_toolbar_hidden(self):
        self.open("/index")
        self.wait_styled()
        with_tab = self.png()
        box = self.driver.execute_script(
            "var r = document.getElementById('tracker-toolbar').getBoundingClientRect();"
            "return [r.left, r.top, r.right, r.bottom, window.devicePixelRatio];")
        self.open_panel()
        self.part("#hide").click()
        self.assertEqual(self.driver.find_elements(By.ID, "tracker-toolbar"), [])
        hidden = self.png()
        self.open("/index")  # the session cookie: the server adds no toolbar any more
        self.assertEqual(self.driver.find_elements(By.ID, "tracker-toolbar"), [])
        never = self.png()
        self.assertIsNone(ImageChops.difference(hidden, never).getbbox())
        # Outside the tab's own box, the page with the toolbar is the page without it.
        left, top, right, bottom = (round(value * box[4]) for value in box[:4])
        self.assertGreater(right - left, 20)
        changed = ImageChops.difference(with_tab, never).getbbox()
        self.assertIsNotNone(changed)  # the tab itself shows
        shadow = 12  # the tab's box-shadow is drawn just outside its box
        self.assertGreaterEqual(changed[0], left - shadow)
        self.assertGreaterEqual(changed[1], top - shadow)
        self.assertLessEqual(changed[2], right + shadow)
        self.assertLessEqual(changed[3], bottom + shadow)
        outside = with_tab.copy()
        outside.paste(never.crop((left - shadow, top - shadow, right + shadow, bottom + shadow)),
                      (left - shadow, top - shadow))
        self.assertIsNone(ImageChops.difference(outside, never).getbbox())


def strict_host_app(folder):
    """A plain app whose every response forbids anything but its own files."""
    app = Flask(__name__, instance_path=os.path.join(folder, "instance"),
                static_folder=folder, static_url_path="/assets")
    with open(os.path.join(folder, "host.css"), "w", encoding="utf-8") as stylesheet:
        # A page's careless rules: none of them may reach the toolbar.
        stylesheet.write("* { color: rgb(255, 0, 0) !important; font-size: 30px; }\n"
                         "summary, table, div { border: 5px solid lime; display: block; }\n"
                         "tracker-toolbar { display: none; position: static; }\n")

    @app.route("/")
    def page():
        return ("<!doctype html><html><head><title>Strict</title>"
                '<link rel="stylesheet" href="/assets/host.css"></head>'
                "<body><h1>A strict page</h1></body></html>")

    @app.route("/inline")
    def inline():
        return "<!doctype html><html><body><p style='color: blue'>inline</p></body></html>"

    @app.after_request
    def strict(response):
        response.headers["Content-Security-Policy"] = STRICT_CSP
        return response

    Tracker(app, TOOLBAR_ENABLED=True, TRACKER_ENABLED=False, PROFILER_ENABLED=True,
            PROFILER_DIR=os.path.join(folder, "profiles"), PROFILER_PRINT=False)
    return app


class StrictPageTestCase(ToolbarCase):
    """A host page with ``Content-Security-Policy: default-src 'self'``."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-csp-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.app = strict_host_app(self.tmp)
        self.addCleanup(stop_tracking, self.app)
        super().setUp()
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": CSP_LISTENER})

    def violations(self):
        """The CSP violations the page reported, to its listener and on the console."""
        console = [entry["message"] for entry in self.driver.get_log("browser")
                   if "Content Security Policy" in entry["message"]]
        return self.driver.execute_script("return window.__cspViolations") + console

    def test_the_listener_and_the_console_see_a_violation(self):
        self.open("/inline")
        violations = self.violations()
        self.assertTrue(any(violation.startswith("style-src") for violation in violations))
        self.assertTrue(any("Content Security Policy" in violation for violation in violations))

    def test_the_toolbar_works_with_no_csp_error_and_the_page_styles_stay_out(self):
        self.open("/")
        self.wait_styled()
        self.assertEqual(self.violations(), [])
        tab = self.part("#tab")
        self.assertTrue(tab.is_displayed())
        self.assertEqual(tab.value_of_css_property("color"), "rgba(247, 248, 250, 1)")
        self.assertEqual(tab.value_of_css_property("font-size"), "13px")
        host = self.driver.find_element(By.ID, "tracker-toolbar")
        self.assertEqual(host.value_of_css_property("position"), "fixed")
        self.assertTrue(self.part("#hide").get_attribute("hidden") is None)  # the script ran
        tab.click()
        self.assertTrue(self.part("#panel").is_displayed())
        self.assertEqual(self.part("#functions").value_of_css_property("border-top-width"), "0px")
        heading = self.driver.find_element(By.TAG_NAME, "h1")
        self.assertEqual(heading.value_of_css_property("color"), "rgba(255, 0, 0, 1)")
        self.assertEqual(self.violations(), [])
        self.assertTrue(re.search(r"Tracker\s+[\d.,]+ ms", tab.text))


if __name__ == "__main__":
    unittest.main()
