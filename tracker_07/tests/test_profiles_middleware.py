"""``SafeProfilerMiddleware`` as a drop-in for Werkzeug's: its arguments, file names and hooks."""
import cProfile
import inspect
import io
import os
import pstats
import re
import shutil
import tempfile
import time
import unittest
from unittest import mock

from werkzeug.middleware.profiler import Profile, ProfilerMiddleware
from werkzeug.test import Client, create_environ

from tracker_07.profiles import files, index
from tracker_07.profiles.middleware import OUTCOME_KEY, SafeProfilerMiddleware
from tracker_07.tests.test_profiler import report_blocks


def hello_app(_environ, start_response):
    """A WSGI app that answers every request with a short body."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


class MiddlewareTestCase(unittest.TestCase):
    """A temporary folder holding the profile folder, and ways to look into it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-middleware-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.folder = os.path.join(self.tmp, "profiles")

    def middleware(self, filename_format=None, **options):
        """Wrap ``hello_app``, saving into the test's folder and printing nothing."""
        return SafeProfilerMiddleware(hello_app, None, profile_dir=self.folder,
                                      filename_format=filename_format, **options)

    def saved(self):
        """Return the names of the saved profiles, in name order."""
        if not os.path.isdir(self.folder):
            return []
        return sorted(name for name in os.listdir(self.folder) if name != index.INDEX_NAME)

    def load(self, name):
        """Load a saved profile with pstats, as snakeviz and gprof2dot do."""
        return pstats.Stats(os.path.join(self.folder, name))

    def index_records(self):
        """Return every index record, whatever its file name."""
        with open(os.path.join(self.folder, index.INDEX_NAME), encoding="ascii") as lines:
            return index.parse_index_lines(lines.readlines())


class OutcomeTestCase(MiddlewareTestCase):
    """Each request's outcome in the environ, there before its response starts."""

    def call(self, middleware, path="/x"):
        """Serve one request; return its environ and what start_response saw of the outcome."""
        environ = create_environ(path)
        seen = []

        def start_response(status, _headers, _exc_info=None):
            outcome = environ.get(OUTCOME_KEY)
            seen.append((status, outcome.state if outcome else None,
                         outcome.profile_id if outcome else None))

        body = b"".join(middleware(environ, start_response))
        self.assertEqual(body, b"hello")
        return environ[OUTCOME_KEY], seen

    def test_the_response_starts_once_the_profile_is_saved(self):
        outcome, seen = self.call(self.middleware())
        self.assertEqual(seen, [("200 OK", "saved", outcome.profile_id)])
        self.assertEqual(self.saved(), [outcome.profile_id])
        self.assertGreater(outcome.elapsed_ms, 0)
        self.assertGreaterEqual(outcome.profiler_ms, 0)
        self.assertIsInstance(outcome.stats, pstats.Stats)

    def test_why_a_profile_was_not_saved(self):
        cases = {
            "PROFILER_MIN_MS": self.middleware(min_ms=60_000),
            "printed, not saved": SafeProfilerMiddleware(hello_app, None, profile_dir=None),
        }
        for words, middleware in cases.items():
            with self.subTest(words):
                outcome, _seen = self.call(middleware)
                self.assertEqual(outcome.state, "not_saved")
                self.assertIsNone(outcome.profile_id)
                self.assertIn(words, outcome.reason)
        with mock.patch.object(files, "reserve", side_effect=OSError("disk full")), \
                self.assertLogs("tracker_07.profiles.middleware", "WARNING"):
            outcome, _seen = self.call(self.middleware())
        self.assertEqual((outcome.state, outcome.reason),
                         ("not_saved", "saving failed (see the log)"))

    def test_ignored_and_busy_requests(self):
        outcome, _seen = self.call(self.middleware(ignore=re.compile("^/static/")), "/static/a")
        self.assertEqual((outcome.state, outcome.stats), ("ignored", None))
        middleware = self.middleware()
        with mock.patch.object(middleware, "_start_profile", return_value=None):
            outcome, _seen = self.call(middleware)
        self.assertEqual((outcome.state, outcome.elapsed_ms), ("busy", None))

    def test_an_app_that_never_starts_its_response(self):
        def silent(_environ, _start_response):
            return [b"no headers"]

        calls = []
        middleware = SafeProfilerMiddleware(silent, None, profile_dir=self.folder)
        body = middleware(create_environ("/"), lambda *args: calls.append(args))
        self.assertEqual(body, [b"no headers"])
        self.assertEqual(calls, [])


class WerkzeugArgumentsTestCase(MiddlewareTestCase):
    """Werkzeug 3.1's arguments, in Werkzeug's order; Tracker's own only by keyword."""

    def test_werkzeugs_arguments_come_first_in_werkzeugs_order(self):
        werkzeugs = list(inspect.signature(ProfilerMiddleware).parameters)
        ours = inspect.signature(SafeProfilerMiddleware).parameters
        self.assertEqual(werkzeugs, ["app", "stream", "sort_by", "restrictions", "profile_dir",
                                     "filename_format"])
        self.assertEqual(list(ours)[:len(werkzeugs)], werkzeugs)
        extra = list(ours)[len(werkzeugs):]
        self.assertEqual(extra, ["ignore", "min_ms", "exclusive", "engine", "interval"])
        for name in extra:
            self.assertIs(ours[name].kind, inspect.Parameter.KEYWORD_ONLY)

    def test_positional_construction_like_werkzeugs(self):
        stream = io.StringIO()
        middleware = SafeProfilerMiddleware(hello_app, stream, ("cumulative", "calls"), (1,),
                                            self.folder, "{method}.{path}.prof")
        response = Client(middleware).post("/a/b")
        self.assertEqual(response.get_data(), b"hello")
        (block,) = report_blocks(stream.getvalue())
        self.assertEqual((block["path"], block["order"]), ("/a/b", "cumulative time, call count"))
        self.assertIn("due to restriction <1>", block.group())
        self.assertEqual(self.saved(), ["POST.a.b.prof"])
        self.assertEqual(self.load("POST.a.b.prof").total_calls, int(block["calls"]))

    def test_trackers_options_cannot_be_given_by_position(self):
        with self.assertRaises(TypeError):  # the error pylint sees is the point of the test
            SafeProfilerMiddleware(hello_app, None, (), (), None, None, None)  # pylint: disable=too-many-function-args


class FilenameFormatTestCase(MiddlewareTestCase):
    """A ``filename_format`` is honoured as Werkzeug does it, but never overwrites a file."""

    def test_a_format_string_gets_werkzeugs_fields(self):
        middleware = self.middleware("{method}-{path}-{elapsed:.0f}ms-{time:.0f}.prof")
        before = time.time()
        Client(middleware).get("/")
        Client(middleware).delete("/x/y/")
        after = time.time()
        names = self.saved()
        self.assertEqual(len(names), 2)
        for name, (method, path) in zip(names, [("DELETE", "x.y"), ("GET", "root")]):
            match = re.fullmatch(r"(\w+)-([\w.]+)-(\d+)ms-(\d+)\.prof", name)
            self.assertIsNotNone(match, name)
            self.assertEqual(match.group(1, 2), (method, path))
            self.assertLessEqual(round(before), int(match[4]))
            self.assertLessEqual(int(match[4]), round(after))
            self.assertGreater(self.load(name).total_calls, 0)

    def test_a_callable_gets_the_environ_with_elapsed_and_time(self):
        seen = []

        def name_for(environ):
            seen.append((environ["PATH_INFO"], dict(environ["werkzeug.profiler"])))
            return "custom.prof"

        before = time.time()
        response = Client(self.middleware(name_for)).get("/p")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(len(seen), 1)
        path, info = seen[0]
        self.assertEqual(path, "/p")
        self.assertEqual(sorted(info), ["elapsed", "time"])
        self.assertTrue(before <= info["time"] <= time.time())
        self.assertEqual(self.saved(), ["custom.prof"])
        (record,) = self.index_records()
        self.assertEqual((record["id"], record["path"], record["status"]),
                         ("custom.prof", "/p", 200))
        self.assertAlmostEqual(record["elapsed_ms"], info["elapsed"], places=2)
        self.assertEqual(record["calls"], self.load("custom.prof").total_calls)

    def test_two_requests_with_one_formatted_name_leave_two_files(self):
        middleware = self.middleware("same.prof")
        client = Client(middleware)
        client.get("/first")
        client.get("/second/one")
        self.assertEqual(self.saved(), ["same-2.prof", "same.prof"])
        paths = {record["id"]: record["path"] for record in self.index_records()}
        self.assertEqual(paths, {"same.prof": "/first", "same-2.prof": "/second/one"})
        for name in paths:
            self.assertGreater(self.load(name).total_calls, 0)
        self.assertEqual(middleware.counts["saved"], 2)

    def test_werkzeugs_own_format_no_longer_loses_profiles(self):
        client = Client(self.middleware("{method}.{path}.{elapsed:.0f}ms.{time:.0f}.prof"))
        with mock.patch("time.time", return_value=1_700_000_000.0), \
                mock.patch("time.perf_counter", return_value=5.0):
            for _ in range(5):
                client.get("/")
        self.assertEqual(self.saved(), ["GET.root.0ms.1700000000-2.prof",
                                        "GET.root.0ms.1700000000-3.prof",
                                        "GET.root.0ms.1700000000-4.prof",
                                        "GET.root.0ms.1700000000-5.prof",
                                        "GET.root.0ms.1700000000.prof"])

    def test_someone_elses_file_is_never_overwritten(self):
        os.makedirs(self.folder)
        with open(os.path.join(self.folder, "mine.prof"), "wb") as file:
            file.write(b"not a profile of Tracker's")
        Client(self.middleware(lambda environ: "mine.prof")).get("/")
        self.assertEqual(self.saved(), ["mine-2.prof", "mine.prof"])
        with open(os.path.join(self.folder, "mine.prof"), "rb") as file:
            self.assertEqual(file.read(), b"not a profile of Tracker's")
        self.assertGreater(self.load("mine-2.prof").total_calls, 0)

    def test_hostile_formatted_names_stay_inside_the_folder(self):
        names = ["../escape.prof", os.path.join(self.tmp, "absolute.prof"), "sub/dir/x.prof",
                 "..", ".", "", "a\\..\\b.prof", "x\x00y.prof", "é" * 300 + ".prof",
                 "../" * 50 + "deep.prof", ".hidden.prof"]
        for name in names:
            with self.subTest(name=name[:20]):
                response = Client(self.middleware(lambda environ, name=name: name)).get("/")
                self.assertEqual(response.status_code, 200)
        paths = ["/..", "/../../x", "/..%2f..%2fy", "/" + "a" * 1000]
        for filename_format in ("../{path}.prof", "{path}"):
            for path in paths:
                with self.subTest(filename_format=filename_format, path=path[:20]):
                    self.assertEqual(Client(self.middleware(filename_format)).get(path).status_code,
                                     200)
        for root, _dirs, found in os.walk(self.tmp):
            for name in found:
                self.assertEqual(root, self.folder, f"{name} written outside")
        saved = self.saved()
        self.assertEqual(len(saved), len(names) + 2 * len(paths))
        for name in saved:
            self.assertFalse(name.startswith("."), name)
            self.assertGreater(self.load(name).total_calls, 0)

    def test_a_failing_filename_format_costs_a_warning_not_the_request(self):
        def broken(_environ):
            raise RuntimeError("broken format")

        for filename_format in (broken, "{missing}.prof", lambda environ: None):
            with self.subTest(filename_format=filename_format), \
                    self.assertLogs("tracker_07", "WARNING") as logs:
                middleware = self.middleware(filename_format)
                response = Client(middleware).get("/")
                self.assertEqual(response.get_data(), b"hello")
                self.assertIn("not saved", logs.output[0])
                self.assertEqual(middleware.counts["save_failed"], 1)
        self.assertEqual(self.saved(), [])

    def test_a_failed_dump_leaves_no_file_behind(self):
        class FullDisk(Profile):
            """A profiler whose file cannot be written."""

            def dump_stats(self, file):
                """Fail as a full disk does, after the file was opened."""
                raise OSError(28, "No space left on device")

        middleware = self.middleware("full.prof")
        with mock.patch("werkzeug.middleware.profiler.Profile", FullDisk), \
                self.assertLogs("tracker_07", "WARNING") as logs:
            response = Client(middleware).get("/")
        self.assertEqual(response.status_code, 200)
        self.assertIn("No space left on device", logs.output[0])
        self.assertEqual(self.saved(), [])
        self.assertFalse(os.path.exists(os.path.join(self.folder, index.INDEX_NAME)))
        self.assertEqual(middleware.counts, {"profiled": 1, "not_profiled": 0, "ignored": 0,
                                             "saved": 0, "save_failed": 1})


class WerkzeugHooksTestCase(MiddlewareTestCase):
    """Werkzeug's ``Profile`` is looked up per request and its ``dump_stats`` saves the file."""

    def test_the_patched_profile_and_its_dump_stats_are_used(self):
        for filename_format in (None, "{method}.{path}.prof"):
            with self.subTest(filename_format=filename_format):
                shutil.rmtree(self.folder, ignore_errors=True)
                middleware = self.middleware(filename_format)
                profile = mock.MagicMock(wraps=Profile())  # dump_stats calls the real one
                with mock.patch("werkzeug.middleware.profiler.Profile", lambda p=profile: p):
                    body = middleware(create_environ("/a"), lambda *args: None)
                    profile.enable.assert_called_once_with()
                    profile.dump_stats.assert_called_once()  # before the response is returned
                self.assertEqual(b"".join(body), b"hello")
                (name,) = self.saved()
                profile.dump_stats.assert_called_once_with(os.path.join(self.folder, name))
                self.assertGreater(self.load(name).total_calls, 0)
                (record,) = self.index_records()
                self.assertEqual(record["id"], name)
                if filename_format is None:
                    self.assertRegex(name, files.FILENAME_RE)
                else:
                    self.assertEqual(name, "GET.a.prof")



class CollectOnceTestCase(MiddlewareTestCase):
    """The profiler's data is collected once per request, saved or not, report or not."""

    def test_saving_and_reporting_collect_the_data_once(self):
        for options in ({}, {"min_ms": 10_000}):  # saved, then too fast to save
            with self.subTest(options=options):
                report = io.StringIO()
                wrapper = SafeProfilerMiddleware(hello_app, report, profile_dir=self.folder,
                                                 **options)
                with mock.patch.object(cProfile.Profile, "snapshot_stats", autospec=True,
                                       side_effect=cProfile.Profile.snapshot_stats) as collect:
                    Client(wrapper).get("/once").close()
                self.assertEqual(collect.call_count, 1)
                self.assertIn("PATH: '/once'", report.getvalue())
        (name,) = self.saved()
        record = self.index_records()[0]
        self.assertEqual(record["calls"], self.load(name).total_calls)

if __name__ == "__main__":
    unittest.main()
