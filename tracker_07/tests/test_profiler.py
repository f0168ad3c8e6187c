"""Profile mode: the report format, one safe file per request, and graceful failures.

Past 350 lines because profile mode is tested through a real app: every case builds one.
"""
import os
import pstats
import re
import threading
import unittest
from unittest import mock

from flask import Flask, Response
from werkzeug.middleware.profiler import ProfilerMiddleware

from tracker_07 import profiler
from tracker_07.profiles import files, index
from tracker_07.tests.base import AppTestCase, LiveServer, ProfiledAppTestCase, fetch

DASHES = "-" * 80
REPORT_BLOCK = re.compile(
    r"-{80}\nPATH: '(?P<path>[^\n]*)'\n(?:PROFILE: (?P<id>[^ \n]+)(?: (?P<url>[^\n]+))?\n)?"
    r"(?:NOTE: [^\n]*\n)?"
    r" +(?P<calls>\d+) function calls(?: \((?P<primitive>\d+) primitive calls\))?"
    r" in \d+\.\d{3} seconds\n\n"
    r"   Ordered by: (?P<order>[^\n]+)\n"
    r"(?:   List reduced from \d+ to \d+ due to restriction <[^\n]+>\n)?\n"
    r"   ncalls  tottime  percall  cumtime  percall filename:lineno\(function\)\n"
    r"(?:[^\n]*\n)*?\n\n-{80}\n\n"
)


#: The one line a request served unprofiled prints, between whole reports.
NOT_PROFILED_LINE = re.compile(r"^NOT PROFILED: [A-Z]+ [^\n]*: [^\n]+\n", re.MULTILINE)


def report_blocks(text):
    """Split console output into report blocks, failing unless it is nothing but whole blocks
    (and the whole lines of requests served unprofiled)."""
    text = NOT_PROFILED_LINE.sub("", text)
    blocks = list(REPORT_BLOCK.finditer(text))
    if "".join(block.group() for block in blocks) != text:
        raise AssertionError("console output is not a sequence of whole reports:\n" + text[:3000])
    return blocks


class WrappingTestCase(AppTestCase):
    """Only the profile configuration (or PROFILER_ENABLED) wraps ``wsgi_app``."""

    def test_profile_wraps_wsgi_app_in_a_profiler_middleware(self):
        app = self.make_app("profile", PROFILER_DIR="", TOOLBAR_ENABLED=False)
        self.assertIsInstance(app.wsgi_app, ProfilerMiddleware)
        self.assertIsInstance(app.wsgi_app, profiler.SafeProfilerMiddleware)
        self.assertIs(app.extensions["tracker_profiler"], app.wsgi_app)

    def test_the_toolbar_wraps_the_profiler(self):
        app = self.make_app("profile", PROFILER_DIR="")
        self.assertIs(app.wsgi_app, app.extensions["tracker_toolbar"])
        self.assertIs(app.wsgi_app.wsgi_app, app.extensions["tracker_profiler"])

    def test_other_configurations_do_not(self):
        for name in ("development", "testing"):
            app = self.make_app(name)
            self.assertNotIsInstance(app.wsgi_app, ProfilerMiddleware)
            self.assertNotIn("tracker_profiler", app.extensions)

    def test_profile_dir_defaults_to_the_instance_folder(self):
        app = Flask(__name__, instance_path=os.path.join(self.tmp, "inst"))
        app.config.from_object("tracker_07.config.ProfileConfig")
        profiler.init_app(app)
        expected = os.path.join(self.tmp, "inst", "profiles")
        self.assertEqual(app.config["PROFILER_DIR"], expected)
        self.assertTrue(os.path.isdir(expected))

    def test_relative_profile_dir_is_made_absolute(self):
        app = self.make_app("profile", PROFILER_DIR="profiles-run-2", PROFILER_ENABLED=False)
        self.assertEqual(app.config["PROFILER_DIR"], os.path.abspath("profiles-run-2"))


class ReportTestCase(ProfiledAppTestCase):
    """The console report is the one the original README shows."""

    def test_report_matches_the_original_format(self):
        self.assertEqual(self.client.get("/index").status_code, 200)
        output = self.report.getvalue()
        (block,) = report_blocks(output)
        self.assertEqual(block["path"], "/index")
        self.assertEqual(block["order"], "internal time, call count")
        self.assertIn("List reduced from", output)
        self.assertIn("due to restriction <30>", output)
        self.assertTrue(output.startswith(DASHES + "\nPATH: '/index'\n"))
        self.assertTrue(output.endswith(DASHES + "\n\n"))

    def test_report_names_the_saved_profile_and_its_page(self):
        self.client.get("/words/slow?x=1")
        (block,) = report_blocks(self.report.getvalue())
        (name,) = self.prof_files()
        self.assertEqual(block["id"], name)
        self.assertEqual(block["url"], f"http://localhost/dashboard/profiles/{name}")
        self.assertEqual(self.client.get(block["url"]).status_code, 200)

    def test_report_names_the_profile_without_a_url_when_the_dashboard_is_off(self):
        app = self.make_app(DASHBOARD_ENABLED=False)
        app.test_client().get("/index", base_url="http://example.test:8080/app")
        (block,) = report_blocks(self.report.getvalue())
        self.assertEqual(block["id"], self.prof_files()[0])
        self.assertIsNone(block["url"])

    def test_the_url_follows_the_host_and_the_prefix(self):
        app = self.make_app(DASHBOARD_PREFIX="/_tracker")
        app.test_client().get("/index", base_url="http://example.test:8080/app/")
        (block,) = report_blocks(self.report.getvalue())
        self.assertEqual(block["url"], "http://example.test:8080/app/_tracker/profiles/"
                         + self.prof_files()[0])

    def test_no_profile_line_for_a_profile_not_saved(self):
        app = self.make_app(PROFILER_MIN_MS=60_000)
        app.test_client().get("/index")
        (block,) = report_blocks(self.report.getvalue())
        self.assertIsNone(block["id"])

    def test_report_counts_match_the_saved_profile(self):
        self.client.get("/index")
        (block,) = report_blocks(self.report.getvalue())
        (name,) = self.prof_files()
        stats = pstats.Stats(os.path.join(self.profile_dir, name))
        self.assertEqual(int(block["calls"]), stats.total_calls)
        self.assertEqual(int(block["primitive"]), stats.prim_calls)

    def test_sort_and_restriction_settings(self):
        app = self.make_app(PROFILER_SORT_BY=["cumulative", "calls"], PROFILER_RESTRICTIONS=[5])
        app.test_client().get("/index")
        output = self.report.getvalue()
        self.assertIn("Ordered by: cumulative time, call count", output)
        self.assertIn("due to restriction <5>", output)
        rows = output.split("filename:lineno(function)\n", 1)[1].split("\n\n", 1)[0]
        self.assertEqual(len(rows.splitlines()), 5)

    def test_the_slow_page_reveals_its_bottleneck(self):
        self.client.get("/words/slow")
        output = self.report.getvalue()
        first_row = output.split("filename:lineno(function)\n", 1)[1].splitlines()[0]
        self.assertIn("{method 'count' of 'list' objects}", first_row)

    def test_print_can_be_turned_off(self):
        app = self.make_app(PROFILER_PRINT=False)
        app.test_client().get("/index")
        self.assertEqual(self.report.getvalue(), "")
        self.assertEqual(len(self.prof_files()), 1)

    def test_static_files_are_not_profiled(self):
        response = self.client.get("/static/demo.js")
        self.assertEqual(response.status_code, 200)
        response.close()
        self.assertEqual(self.report.getvalue(), "")
        self.assertEqual(self.prof_files(), [])
        self.assertEqual(self.counts()["ignored"], 1)


class SavedProfilesTestCase(ProfiledAppTestCase):
    """Every profiled request gets its own readable file and index record."""

    def test_one_request_one_file_and_one_index_record(self):
        self.client.get("/words/fast?x=1")
        (name,) = self.prof_files()
        self.assertRegex(name, r"^GET\.words\.fast\.\d+ms\.\d+\.\d+-\d+\.prof$")
        stats = pstats.Stats(os.path.join(self.profile_dir, name))
        (record,) = index.read_index(self.profile_dir)
        self.assertEqual(record["id"], name)
        self.assertEqual((record["method"], record["path"], record["status"]),
                         ("GET", "/words/fast", 200))
        self.assertEqual(record["calls"], stats.total_calls)
        self.assertEqual(record["primitive_calls"], stats.prim_calls)
        self.assertEqual(record["overlapped"], 0)

    def test_status_and_method_are_recorded(self):
        self.client.post("/index")
        self.client.get("/missing")
        records = index.read_index(self.profile_dir)
        self.assertEqual([(record["method"], record["status"]) for record in records],
                         [("POST", 405), ("GET", 404)])

    def test_300_quick_requests_to_one_path_leave_300_files(self):
        for _ in range(300):
            self.assertEqual(self.client.get("/index").status_code, 200)
        self.assertEqual(len(self.prof_files()), 300)
        records = index.read_index(self.profile_dir)
        self.assertEqual(len({record["id"] for record in records}), 300)
        self.assertEqual(self.counts()["saved"], 300)

    def test_stock_middleware_loses_profiles_where_tracker_does_not(self):
        stock_dir = os.path.join(self.tmp, "stock")
        os.makedirs(stock_dir)
        app = Flask(__name__)
        app.add_url_rule("/", "index", lambda: "hi")
        app.wsgi_app = ProfilerMiddleware(app.wsgi_app, stream=None, profile_dir=stock_dir)
        client = app.test_client()
        with mock.patch("time.time", return_value=1_700_000_000.0):
            for _ in range(20):
                client.get("/")
        self.assertLess(len(os.listdir(stock_dir)), 20)  # the problem Tracker solves
        with mock.patch("time.time", return_value=1_700_000_000.0):
            for _ in range(20):
                self.client.get("/index")
        self.assertEqual(len(self.prof_files()), 20)

    def test_hostile_paths_stay_inside_the_folder_and_never_fail(self):
        paths = ["/" + "a" * 1000, "/%00", "/a%00b", "/../../etc/passwd", "/..%2f..%2fescape",
                 "/%2e%2e/%2e%2e/x", "/ünïcødé/路径", "/a" * 300, "/<script>alert(1)</script>",
                 "/.", "/...", "/CON", "/a\\b\\..\\c", "/ spaces and\ttabs", "/%ff%fe"]
        for path in paths:
            with self.subTest(path=path[:40]):
                response = self.client.get(path)
                self.assertLess(response.status_code, 500)
        self.assertEqual(len(self.prof_files()), len(paths))
        for root, _dirs, names in os.walk(self.tmp):
            for name in names:
                if not name.startswith("tracker.sqlite3"):  # the endpoint tracking store
                    self.assertEqual(root, self.profile_dir, f"{name} written outside")
                self.assertLessEqual(len(name), 255)
        recorded = [record["path"] for record in index.read_index(self.profile_dir)]
        self.assertIn("/<script>alert(1)</script>", recorded)
        self.assertEqual(len(recorded), len(paths))

    def test_min_ms_keeps_only_slow_profiles_but_still_prints(self):
        app = self.make_app(PROFILER_MIN_MS=60_000)
        app.test_client().get("/index")
        self.assertEqual(self.prof_files(), [])
        self.assertEqual(len(report_blocks(self.report.getvalue())), 1)

    def test_empty_profile_dir_saves_nothing(self):
        app = self.make_app(PROFILER_DIR="")
        app.test_client().get("/index")
        self.assertEqual(self.prof_files(), [])
        self.assertEqual(app.config["PROFILER_DIR"], "")
        self.assertEqual(len(report_blocks(self.report.getvalue())), 1)
        self.assertEqual(app.extensions["tracker_profiler"].counts["saved"], 0)

    def test_a_folder_removed_at_run_time_is_created_again(self):
        self.client.get("/index")
        for name in os.listdir(self.profile_dir):
            os.remove(os.path.join(self.profile_dir, name))
        os.rmdir(self.profile_dir)
        self.assertEqual(self.client.get("/index").status_code, 200)
        self.assertEqual(len(self.prof_files()), 1)

    def test_an_unwritable_folder_costs_a_warning_not_the_request(self):
        for error in (PermissionError(13, "Permission denied"), OSError(28, "No space left")):
            with self.subTest(error=error):
                with mock.patch.object(files, "reserve", side_effect=error), \
                        self.assertLogs(self.app.logger, "WARNING") as logs:
                    response = self.client.get("/index")
                self.assertEqual(response.status_code, 200)
                self.assertIn("not saved", logs.output[0])
                self.assertIn(error.strerror, logs.output[0])
        self.assertEqual(self.counts()["save_failed"], 2)
        self.assertEqual(self.counts()["saved"], 0)

    def test_a_busy_profiler_means_served_but_not_profiled(self):
        with mock.patch("werkzeug.middleware.profiler.Profile.enable",
                        side_effect=ValueError("Another profiling tool is already active")):
            response = self.client.get("/index")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.prof_files(), [])
        self.assertEqual(self.counts()["not_profiled"], 1)
        self.assertEqual(self.client.get("/index").status_code, 200)
        self.assertEqual(self.counts()["profiled"], 1)

    def test_an_exception_releases_the_profiler(self):
        def boom():
            """A view that fails."""
            raise RuntimeError("view failed")

        self.app.add_url_rule("/boom", "boom", boom)
        self.app.testing = True
        with self.assertRaisesRegex(RuntimeError, "view failed"):
            self.client.get("/boom")
        self.assertEqual(self.client.get("/index").status_code, 200)
        self.assertEqual(self.counts()["profiled"], 1)

    def test_streamed_bodies_are_collected_and_closed(self):
        closed = []

        class Body(list):
            """A response body that records being closed."""

            def close(self):
                """Record the call."""
                closed.append(True)

        self.app.add_url_rule("/stream", "stream",
                              lambda: Response(Body([b"one ", b"two"]), direct_passthrough=True))
        response = self.client.get("/stream")
        self.assertEqual(response.data, b"one two")
        self.assertEqual(closed, [True])
        self.assertEqual(len(self.prof_files()), 1)


class OverlapTestCase(ProfiledAppTestCase):
    """Two overlapping requests on a real threaded server: both succeed, the overlap is told."""

    def test_overlapping_requests(self):
        entered, release = threading.Event(), threading.Event()

        def blocking():
            entered.set()
            release.wait(30)
            return "released"

        def releasing():
            release.set()
            return "done"

        self.app.add_url_rule("/block", "block", blocking)
        self.app.add_url_rule("/release", "release", releasing)
        results = {}
        with LiveServer(self.app) as server:
            first = threading.Thread(
                target=lambda: results.update(block=fetch(server.url + "/block")))
            first.start()
            self.assertTrue(entered.wait(30))
            results["release"] = fetch(server.url + "/release")
            first.join(30)
        self.assertEqual(results["block"], (200, b"released"))
        self.assertEqual(results["release"], (200, b"done"))
        counts = self.counts()
        self.assertEqual(counts["profiled"] + counts["not_profiled"], 2)
        self.assertEqual(counts["not_profiled"], 1 if profiler.ONE_PROFILER_PER_PROCESS else 0)
        by_path = {record["path"]: record for record in index.read_index(self.profile_dir)}
        self.assertEqual(by_path["/block"]["overlapped"], 1)
        blocks = {block["path"]: block.group() for block in report_blocks(self.report.getvalue())}
        self.assertIn("NOTE: 1 other request(s) ran during this one", blocks["/block"])


if __name__ == "__main__":
    unittest.main()


class ExclusiveProfilingTestCase(unittest.TestCase):
    """The one-profiler-per-process rule of Python 3.12+, enforced on any version."""

    @staticmethod
    def wsgi_app(_environ, start_response):
        """A WSGI app whose body has no close method."""
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def call(self, middleware):
        """Call the middleware once and return its body."""
        return b"".join(middleware({"PATH_INFO": "/x", "REQUEST_METHOD": "GET"},
                                   lambda status, headers, exc_info=None: None))

    def test_a_request_arriving_while_another_is_profiled_is_served_unprofiled(self):
        middleware = profiler.SafeProfilerMiddleware(self.wsgi_app, stream=None, exclusive=True)
        with middleware._profiling:  # pylint: disable=protected-access  # one in flight
            self.assertEqual(self.call(middleware), b"ok")
            self.assertEqual(middleware.counts["not_profiled"], 1)
        self.assertEqual(self.call(middleware), b"ok")
        self.assertEqual(middleware.counts["profiled"], 1)

    def test_without_the_rule_requests_are_profiled_side_by_side(self):
        middleware = profiler.SafeProfilerMiddleware(self.wsgi_app, stream=None, exclusive=False)
        self.assertEqual(self.call(middleware), b"ok")
        self.assertEqual(middleware.counts["profiled"], 1)
