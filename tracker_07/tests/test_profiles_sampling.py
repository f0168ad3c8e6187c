"""Tests for the sampling engine: frame records to stacks, one thread per profile, true paths.

``.ci/run`` runs the suite under Python 3.11, 3.12 and 3.13; the real ``flask run`` test
is the one that shows overlapping requests are each profiled on all three.
"""
import concurrent.futures
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from tracker_07.profiles import index, stats as profile_stats
from tracker_07.profiles.middleware import RUN_APP_KEY
from tracker_07.profiles.sampling import (
    SampledProfile, builtin_key, code_key, recorder, stacks_from_samples)
from tracker_07.tests import sampling_app
from tracker_07.tests.base import ProfiledAppTestCase, fetch, free_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
def _code(name, filename, line):
    """A real code object named ``name`` in ``filename`` at ``line``, as a sample holds it."""
    return compile("\n" * (line - 1) + f"def {name}(): pass", filename, "exec").co_consts[0]


class ConversionTestCase(unittest.TestCase):
    """Recorded samples (code objects, leaf first) become pstats-keyed stacks, root first."""

    def test_code_objects_and_builtins_become_pstats_keys(self):
        code = _code("view", "/app/views.py", 12)
        self.assertEqual(code_key(code), ("/app/views.py", 12, "view"))
        self.assertEqual(builtin_key(len), ("~", 0, "len"))
        self.assertEqual(builtin_key([].count), ("~", 0, "list.count"))

    def test_equal_stacks_are_added_up_root_first(self):
        app, view = _code("wsgi_app", "/f/app.py", 5), _code("view", "/app/views.py", 12)
        sleep, codes = builtin_key(time.sleep), [view, app]
        samples = [(None, codes, 0.25), (sleep, [app], 0.125), (None, codes, 0.5),
                   (None, [view, app], 1.0)]  # the same stack, held in another list
        self.assertEqual(stacks_from_samples(samples), [
            ((("/f/app.py", 5, "wsgi_app"), ("/app/views.py", 12, "view")), 1.75),
            ((("/f/app.py", 5, "wsgi_app"), ("~", 0, "sleep")), 0.125),
        ])


class RecorderTestCase(unittest.TestCase):
    """The hook's callback keeps what runs below the innermost root, leaf first."""

    def record(self, event, arg=None):
        """Take one sample from inside ``_root`` -> ``_inside`` at ``event``."""
        samples = []
        sample = recorder(samples, _root.__code__, time.perf_counter())
        _root(lambda: _inside(lambda frame: sample(frame, event, arg)))
        return [([leaf] if leaf else []) + [code_key(code) for code in codes]
                for leaf, codes, _seconds in samples]

    def test_a_sample_is_cut_at_the_root(self):
        names = [[key[2] for key in items] for items in self.record("return")]
        self.assertEqual(names, [["_inside", "<lambda>"]])

    def test_a_call_is_its_callers_time_and_a_c_return_the_built_ins(self):
        self.assertEqual([[key[2] for key in items] for items in self.record("call")],
                         [["<lambda>"]])
        self.assertEqual([[key[2] for key in items] for items in self.record("c_return", len)],
                         [["len", "_inside", "<lambda>"]])

    def test_samples_outside_the_root_and_of_the_root_itself_are_dropped(self):
        samples = []
        sample = recorder(samples, _root.__code__, time.perf_counter())
        sample(sys._getframe(), "return", None)  # pylint: disable=protected-access  # outside
        _root(lambda: sample(sys._getframe(1), "return", None))  # pylint: disable=protected-access  # the root's own frame
        self.assertEqual(samples, [])

    def test_a_thread_sampled_already_is_refused_until_its_profile_ends(self):
        first = SampledProfile(0.001, _root.__code__)
        first.enable()
        try:
            with self.assertRaisesRegex(RuntimeError, "another profiler|sampled already"):
                SampledProfile(0.001, _root.__code__).enable()
        finally:
            first.disable()
        second = SampledProfile(0.001, _root.__code__)
        second.enable()
        _root(lambda: sum(range(200_000)))
        second.disable()
        self.assertGreater(second.samples, 0)


def _root(function):
    """Stand for the middleware's call of the app."""
    return function()


def _inside(take_sample):
    """A frame below the root, where the sample is taken."""
    return take_sample(sys._getframe())  # pylint: disable=protected-access  # as a hook sees it


class SampledProfileTestCase(unittest.TestCase):
    """The engine samples only the thread that started it."""

    def test_each_profile_holds_only_its_own_thread(self):
        root = _run.__code__
        profiles = {}

        def worker(name):
            profile = SampledProfile(0.001, root)
            profile.enable()
            _run(getattr(sampling_app, name))
            profile.disable()
            profiles[name] = profile

        threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        names = {name: {frame[2] for stack, _ in profile.stacks for frame in stack}
                 for name, profile in profiles.items()}
        self.assertIn("c", names["a"])
        self.assertNotIn("b", names["a"])
        self.assertIn("b", names["b"])
        self.assertGreater(profiles["a"].samples, 10)
        self.assertEqual(profiles["b"].stats().interval, 0.001)


def _run(function):
    """Call ``function`` (the root that the profiles cut at); ``a`` gets 2 units."""
    if function is sampling_app.a:
        function(2)
    else:
        function()


def collapsed(text):
    """Read collapsed-stack lines (``label;label microseconds``) by function name."""
    stacks = {}
    for line in text.splitlines():
        frames, microseconds = line.rsplit(" ", 1)
        names = ";".join(re.sub(r"^.*:\d+\((.*)\)$", r"\1", label) for label in frames.split(";"))
        stacks[names] = stacks.get(names, 0) + int(microseconds)
    return stacks


class PathsTestCase(ProfiledAppTestCase):
    """A function reached through two paths keeps each path's own time (summed over a few
    requests, so that one sample stretched by a busy machine cannot tip the ratio)."""

    REQUESTS = 3

    def make_app(self, config_name="profile", **settings):
        self.profile_dir = os.path.join(self.tmp, "profiles")
        os.environ["FLASK_PROFILER_DIR"] = self.profile_dir
        os.environ["FLASK_DASHBOARD_ENABLED"] = "true"  # for its export URL
        self.addCleanup(os.environ.pop, "FLASK_PROFILER_DIR", None)
        self.addCleanup(os.environ.pop, "FLASK_DASHBOARD_ENABLED", None)
        app = sampling_app.create_app()
        app.extensions["tracker_profiler"]._stream = None  # pylint: disable=protected-access
        self.apps.append(app)
        return app

    def test_c_is_split_four_to_one_between_its_paths(self):
        for _ in range(self.REQUESTS):
            self.assertEqual(self.client.get("/paths").status_code, 200)
        records = index.read_index(self.profile_dir)
        self.assertEqual(len(records), self.REQUESTS)
        lines = {}  # the dashboard's collapsed export of each profile, added up
        for record in records:
            export = self.client.get(f"/dashboard/profiles/{record['id']}/export/collapsed")
            self.assertEqual(export.status_code, 200)
            for stack, microseconds in collapsed(export.get_data(as_text=True)).items():
                lines[stack] = lines.get(stack, 0) + microseconds
        via_a = sum(weight for line, weight in lines.items() if ";paths;a;c;" in line + ";")
        via_b = sum(weight for line, weight in lines.items() if ";paths;b;a;c;" in line + ";")
        self.assertFalse([line for line in lines if RUN_APP_KEY[2] in line])  # cut above the app
        self.assertAlmostEqual(via_a / via_b, 4.0, delta=0.4, msg=lines)
        self.assertEqual({record["view"][2] for record in records}, {"paths"})
        self.assertEqual({record["engine"] for record in records}, {"sampling"})


class SharesTestCase(ProfiledAppTestCase):
    """Each big function's share of the demo's slow page agrees between the two engines."""

    REQUESTS = 20
    #: No tracking writer thread: on Python 3.12+ cProfile would record its calls too.
    settings = {"TRACKER_ENABLED": False}

    def shares(self, engine):
        """Median share of the request of each function, over REQUESTS profiles."""
        app = self.make_app(PROFILER_ENGINE=engine, PROFILER_PRINT=False, TRACKER_ENABLED=False,
                            PROFILER_DIR=os.path.join(self.tmp, engine))
        client = app.test_client()
        for _ in range(self.REQUESTS):
            self.assertEqual(client.get("/words/slow").status_code, 200)
        per_function = {}
        records = index.read_index(os.path.join(self.tmp, engine))
        self.assertEqual(len(records), self.REQUESTS)
        for record in records:
            stats = profile_stats.load_stats(os.path.join(self.tmp, engine, record["id"]))
            total = stats.total_tt  # the request's time, as each engine saw it
            for func, entry in stats.stats.items():
                per_function.setdefault(same_name(func), []).append(entry[3] / total)
        return {func: statistics.median(values + [0.0] * (self.REQUESTS - len(values)))
                for func, values in per_function.items()}

    def test_shares_agree_within_ten_points(self):
        sampling = self.shares("sampling")
        cprofile = self.shares("cprofile")
        big = {func: share for func, share in sampling.items() if share > 0.10}
        big.update({func: cprofile.get(func, 0.0) for func, share in cprofile.items()
                    if share > 0.10 and _in_view(func)})
        names = {func[2] for func in big}
        self.assertIn("top_words_naive", names)
        for func in big:
            with self.subTest(function=func[2]):
                self.assertAlmostEqual(sampling.get(func, 0.0), cprofile.get(func, 0.0),
                                       delta=0.10)


def same_name(func):
    """Name a built-in as both engines can: pyinstrument's ``list.count`` is cProfile's
    ``<method 'count' of 'list' objects>``, its ``sleep`` cProfile's
    ``<built-in method time.sleep>``."""
    filename, line, name = func
    if filename != "~":
        return func
    method = re.fullmatch(r"<method '(\w+)' of '(\w+)' objects>", name)
    if method:
        return ("~", 0, f"{method[2]}.{method[1]}")
    builtin = re.fullmatch(r"<built-in method (?:[\w.]+\.)?(\w+)>", name)
    return ("~", line, builtin[1] if builtin else name)


def _in_view(func):
    """Tell whether a function runs inside the view (cProfile also sees the wrappers above)."""
    return "tracker_07/main/" in func[0] or func[0] == "~"


def fetch_all(urls):
    """Fetch every URL at once, one client thread each; return ``[(status, body)]``."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(fetch, urls))


class FlaskRunTestCase(unittest.TestCase):
    """A real threaded ``flask run``: twenty overlapping requests, twenty clean profiles."""

    def test_overlapping_requests_are_each_profiled_alone(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "profiles")
            url, log = self.run_server(tmp, folder)
            paths = [f"/work/{number:02d}" for number in range(sampling_app.ROUTES)]
            results = fetch_all([url + path for path in paths])
            records = index.read_index(folder)
            loaded = {record["path"]: profile_stats.load_stats(os.path.join(folder, record["id"]))
                      for record in records}
            with open(log.name, encoding="utf-8") as output:
                text = output.read()
        self.assertEqual([status for status, _ in results], [200] * len(paths))
        self.assertEqual(sorted(loaded), paths, text)
        self.assertGreater(max(record["overlapped"] for record in records), 0)
        self.assertNotIn("NOT PROFILED", text)
        for path, stats in loaded.items():
            names = {func[2] for func in stats.stats if func[2].startswith("work_")}
            with self.subTest(path=path):
                self.assertEqual(names, {"work_" + path[-2:]})

    def run_server(self, tmp, folder):
        """Start the test app's threaded ``flask run`` on a free port; wait until it listens."""
        port = free_port()
        env = dict(os.environ, FLASK_PROFILER_DIR=folder, PYTHONUNBUFFERED="1")
        env.pop("FLASK_DEBUG", None)
        log = open(os.path.join(tmp, "server.log"), "w+", encoding="utf-8")  # pylint: disable=consider-using-with
        self.addCleanup(log.close)
        server = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped at cleanup
            [sys.executable, "-B", "-m", "flask", "--app",
             "tracker_07.tests.sampling_app:create_app()", "run", "--with-threads",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(server.wait, 10)
        self.addCleanup(server.terminate)
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return f"http://127.0.0.1:{port}", log
            time.sleep(0.1)
        log.seek(0)
        raise AssertionError("flask run did not start:\n" + log.read())


if __name__ == "__main__":
    unittest.main()
