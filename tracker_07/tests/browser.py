"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven through Selenium."""
import os
import shutil
import tempfile
import unittest

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from tracker_07.tests.base import LiveServer, needs

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Flags for a closed network: no background connections, no updates, no sync.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1000")


def chromium_problem():
    """Say why the browser tests can't drive Chromium here, or None when they can."""
    missing = [name for path, name in ((CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver"))
               if not os.path.exists(path)]
    return f"{' and '.join(missing)} not found" if missing else None


def start_chromium():
    """Start headless Chromium with a fresh profile; say how to install it when missing."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.path.exists(path):
            raise RuntimeError(f"{path} is missing: apt-get install {package} (see .ci/run)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # driver.get_log("browser")
    profile = tempfile.mkdtemp(prefix="tracker-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    driver.tracker_profile_dir = profile
    return driver


def stop_chromium(driver):
    """Quit Chromium and remove its profile folder."""
    driver.quit()
    shutil.rmtree(driver.tracker_profile_dir, ignore_errors=True)


@needs("browser tests", chromium_problem(), "TRACKER_REQUIRE_BROWSER",
       "apt-get install chromium chromium-driver")
class BrowserTestCase(unittest.TestCase):
    """One Chromium per test class, and the test's app served live on 127.0.0.1.

    Combine it with an app test case: ``class T(BrowserTestCase, AppTestCase)``.
    """

    driver = None
    server = None

    @classmethod
    def setUpClass(cls):
        """Start Chromium once for the class."""
        super().setUpClass()
        cls.driver = start_chromium()

    @classmethod
    def tearDownClass(cls):
        """Quit Chromium."""
        stop_chromium(cls.driver)
        super().tearDownClass()

    def setUp(self):
        """Serve the test's app."""
        super().setUp()
        self.before_serving()
        self.server = self.enterContext(LiveServer(self.app))  # pylint: disable=no-member

    def before_serving(self):
        """Prepare the app before its server thread starts (nothing by default).

        On Python 3.12+ cProfile records every thread, so requests profiled while the server
        polls would have its calls mixed into their call trees.
        """

    def follow(self, element):
        """Click a link or button that loads a new page, and wait until it has replaced
        the old one (reading right after the click could still see the old page).

        A mark on the old page's window tells the pages apart; errors while Chromium swaps
        them (a stale element, a destroyed script context) are retried, not failures.
        """
        self.driver.execute_script("window.trackerOldPage = true;")
        element.click()
        WebDriverWait(self.driver, 10, ignored_exceptions=(WebDriverException,)).until(
            lambda driver: driver.execute_script(
                "return !window.trackerOldPage && document.readyState === 'complete';"))


def screenshot(driver, name):
    """Save a full-page screenshot when TRACKER_SCREENSHOTS names a folder, for people to see."""
    folder = os.environ.get("TRACKER_SCREENSHOTS")
    if not folder:
        return None
    os.makedirs(folder, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height, 600), 5000))
    path = os.path.join(folder, f"{name}.png")
    driver.save_screenshot(path)
    driver.set_window_size(1400, 1000)
    return path
