"""The toolbar's panel: the top functions, the reason when there are none, and the links."""
import cProfile
import os
import pstats
import re
import shutil
import tempfile
import unittest
from unittest import mock

from flask import Flask
from werkzeug.test import EnvironBuilder

from tracker_07 import Tracker, create_app
from tracker_07.profiles import files
from tracker_07.profiles.middleware import BUSY, IGNORED, OUTCOME_KEY, ProfileOutcome
from tracker_07.toolbar import panel as toolbar_panel
from tracker_07.toolbar.panel import Panel, format_ms, top_functions


def busy_work():
    """Something for a profile to find."""
    return sorted(str(number) for number in range(3000))


def profiled_stats():
    """A real profile of ``busy_work``."""
    profile = cProfile.Profile()
    profile.runcall(busy_work)
    return pstats.Stats(profile)


def saved_outcome(profile_id, stats=None):
    """What profile mode leaves in the environ for a saved profile."""
    outcome = ProfileOutcome("saved", elapsed_ms=12.0, stats=stats or profiled_stats())
    outcome.profile_id = profile_id
    outcome.profiler_ms = 1.0
    return outcome


class PanelCase(unittest.TestCase):
    """A plain app in profile mode and its toolbar's panel."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-panel-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.folder = os.path.join(self.tmp, "profiles")
        self.app = self.make(PROFILER_ENABLED=True, PROFILER_DIR=self.folder,
                             PROFILER_PRINT=False)
        self.panel = Panel(self.app, self.app.config)

    def make(self, **settings):
        """A plain app with a route and Tracker with the toolbar."""
        app = Flask(__name__, instance_path=os.path.join(self.tmp, "instance"),
                    root_path=os.path.dirname(__file__))

        @app.route("/items/<int:number>")
        def item(number):
            return f"<body>{number}</body>"

        settings.setdefault("TRACKER_ENABLED", False)
        Tracker(app, TOOLBAR_ENABLED=True, **settings)
        return app

    def environ(self, outcome=None, path="/items/3"):
        """The environ of a request as the toolbar sees it after the app."""
        environ = EnvironBuilder(path=path).get_environ()
        if outcome is not None:
            environ[OUTCOME_KEY] = outcome
        return environ

    def render(self, environ, previous=None, panel=None):
        """Render and return the HTML."""
        return (panel or self.panel).render(environ, "200 OK", 15.0, previous)



class PanelTestCase(PanelCase):
    """Render the panel in each state a request can be in."""

    def test_a_share_under_one_percent_reads_less_than_one_not_zero(self):
        html = self.render(self.environ(saved_outcome("GET.items.3.1ms.1.1-1.prof")))
        shares = re.findall(r"<td>(&lt;1|\d+)</td><td>", html)
        self.assertIn("&lt;1", shares)
        self.assertNotIn("0", shares)

    def test_a_saved_profile_shows_its_top_functions_and_links(self):
        html = self.render(self.environ(saved_outcome("GET.items.3.12ms.1.1-1.prof")))
        rows = re.findall(r'<tr(?: class="own")?><td class="fn"', html)
        self.assertEqual(len(rows), min(5, len(profiled_stats().stats)))
        self.assertGreaterEqual(len(rows), 3)
        self.assertIn("busy_work", html)
        self.assertIn('class="own"', html)
        self.assertIn('href="/dashboard/profiles/GET.items.3.12ms.1.1-1.prof"', html)
        self.assertIn('href="/dashboard/profiles/route?method=GET&amp;path=/items/3"', html)
        self.assertIn("No earlier profile of this route", html)
        self.assertNotIn("link-endpoint", html)  # tracking is off in this app
        self.assertIn(">profiled<", html)

    def test_the_compare_link_names_the_previous_profile(self):
        html = self.render(self.environ(saved_outcome("b.prof")), previous="a.prof")
        self.assertIn('href="/dashboard/profiles/compare?a=a.prof&amp;b=b.prof"', html)
        self.assertNotIn("No earlier profile", html)

    def test_the_endpoint_link_when_tracking_is_on(self):
        app = self.make(PROFILER_ENABLED=False)
        tracking = Panel(app, dict(app.config, TRACKER_ENABLED=True))
        html = self.render(self.environ(), panel=tracking)
        self.assertIn('href="/dashboard/?endpoint=/items/%3Cint:number%3E&amp;method=GET"', html)
        self.assertNotIn("link-endpoint", self.render(self.environ(path="/nothing"),
                                                      panel=tracking))

    def test_why_a_request_was_not_profiled(self):
        cases = {
            "profile mode is off": (None, dict(self.app.config, PROFILER_ENABLED=False)),
            "PROFILER_IGNORE": (IGNORED, self.app.config),
            "busy with another request": (BUSY, self.app.config),
            "This request was not profiled.": (None, self.app.config),
        }
        for words, (outcome, config) in cases.items():
            with self.subTest(words):
                html = self.render(self.environ(outcome), panel=Panel(self.app, config))
                self.assertIn(words, html.replace("Profile mode", "profile mode"))
                self.assertNotIn('id="functions"', html)
                self.assertIn(">not profiled<", html)

    def test_profiled_but_not_saved_shows_functions_and_the_reason(self):
        outcome = ProfileOutcome("not_saved", elapsed_ms=3.0, stats=profiled_stats())
        outcome.reason = "faster than PROFILER_MIN_MS (50 ms)"
        html = self.render(self.environ(outcome))
        self.assertIn("Profiled, not saved: faster than PROFILER_MIN_MS (50 ms).", html)
        self.assertIn('id="functions"', html)
        self.assertNotIn("link-profile", html)
        self.assertIn(">not saved<", html)

    def test_what_users_sent_is_escaped(self):
        html = self.render(self.environ(path="/<script>alert(1)</script>"))
        self.assertNotIn("<script>alert", html)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", html)


class LatestProfileTestCase(PanelCase):
    """The "compare" link's previous profile: remembered per route, else read from the folder."""

    def test_each_route_remembers_its_latest_profile(self):
        self.assertIsNone(self.panel.note(self.environ()))
        self.assertIsNone(self.panel.note(self.environ(saved_outcome("one.prof"))))
        self.assertEqual(self.panel.note(self.environ(saved_outcome("two.prof"))), "one.prof")
        self.assertIsNone(self.panel.note(self.environ(saved_outcome("x.prof", ), "/items/4")))

    def test_after_a_restart_the_folder_tells(self):
        os.makedirs(self.folder, exist_ok=True)
        names = []
        for started in (1000.0, 2000.0):
            names.append(files.profile_filename("GET", "/items/3", 5, started))
            profiled_stats().dump_stats(os.path.join(self.folder, names[-1]))
        self.assertEqual(self.panel.note(self.environ(saved_outcome(names[1]))), names[0])

    def test_an_unreadable_folder_means_no_previous(self):
        with mock.patch.object(toolbar_panel.listing, "route_profiles", side_effect=OSError):
            self.assertIsNone(self.panel.note(self.environ(saved_outcome("a.prof"))))

    def test_the_memory_is_bounded(self):
        with mock.patch.object(toolbar_panel, "MAX_ROUTES", 3):
            for number in range(5):
                self.panel.note(self.environ(saved_outcome(f"{number}.prof"), f"/items/{number}"))
        self.assertLessEqual(len(self.panel.latest), 3)


class HelpersTestCase(unittest.TestCase):
    """Formatting and the choice of functions."""

    def test_format_ms(self):
        self.assertEqual(format_ms(0.0349), "0.03")
        self.assertEqual(format_ms(3.14159), "3.1")
        self.assertEqual(format_ms(1234.5), "1,234")

    def test_top_functions_by_own_time_with_builtins_named_as_pstats_does(self):
        stats = profiled_stats()
        rows = top_functions(stats, 3, os.path.join(os.path.dirname(__file__), ""))
        self.assertEqual(len(rows), 3)
        own = [row["tottime_ms"] for row in rows]
        self.assertEqual(own, sorted(own, reverse=True))
        builtin = [row for row in rows if not row["where"]]
        self.assertTrue(all(row["name"].startswith("{") for row in builtin))
        self.assertAlmostEqual(sum(row["percent"] for row in top_functions(
            stats, 1000, "/nowhere/")), 100.0, places=3)

    def test_an_empty_profile(self):
        stats = mock.Mock(stats={}, total_tt=0.0)
        self.assertEqual(top_functions(stats, 5, "/"), [])
        stats.stats = {("~", 0, "<built-in method x>"): (1, 1, 0.0, 0.0, {})}
        self.assertEqual(top_functions(stats, 5, "/")[0]["percent"], 0.0)


class DemoLinksTestCase(unittest.TestCase):
    """On the demo app in profile mode, every link of the toolbar answers."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-panel-demo-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.app = create_app("profile", PROFILER_DIR=os.path.join(self.tmp, "p"),
                              PROFILER_PRINT=False,
                              TRACKER_DATABASE_URL="sqlite:///" + os.path.join(self.tmp, "t.db"))
        self.addCleanup(self.app.extensions["tracker_tracking"].shutdown)

    def test_every_link_answers(self):
        client = self.app.test_client()
        client.get("/words/fast")
        html = client.get("/words/fast").data.decode()
        links = re.findall(r'<a class="link-\w+" id="link-(\w+)" href="([^"]+)"', html)
        self.assertEqual([name for name, _ in links], ["profile", "route", "compare", "endpoint"])
        for name, url in links:
            with self.subTest(name):
                response = client.get(url.replace("&amp;", "&"))
                self.assertEqual(response.status_code, 200, url)
                self.assertNotIn(b"<tracker-toolbar", response.data)


if __name__ == "__main__":
    unittest.main()
