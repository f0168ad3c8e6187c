"""``SafeProfilerMiddleware``: Werkzeug's ``ProfilerMiddleware``, made safe for threads and files.

It is a drop-in: it takes Werkzeug 3.1's arguments in Werkzeug's order, profiles
with ``werkzeug.middleware.profiler.Profile`` and saves with the profile's
``dump_stats``, so code and tests written for the stock middleware work.  It
fixes three problems of the stock middleware:

* On Python 3.12+ cProfile is built on ``sys.monitoring``, which allows one
  profiler per process.  A second request that starts while one is profiled
  gets ``ValueError: Another profiling tool is already active`` and an HTTP 500
  (Werkzeug issue 2909).  Here a request that cannot be profiled at that
  moment is served normally and counted as not profiled.
* That one profiler records the calls of *every* thread, so a report taken
  while other requests ran mixes their calls in.  Each report and index record
  says how many other requests overlapped it.  Run the server with
  ``--without-threads`` for clean numbers.
* The default file name loses profiles (same path, second and milliseconds)
  and breaks on hostile paths.  :mod:`tracker_07.profiles.files` names files
  uniquely and safely, and indexes them; a ``filename_format`` of one's own
  is honoured, made safe and numbered instead of overwriting.

With ``engine="sampling"`` each request is profiled by its own sampler
(:mod:`tracker_07.profiles.sampling`), with no lock: overlapping requests are all
profiled, each holding only its own thread, and saved as ``.speedscope.json``.
Requests served unprofiled are counted in the folder
(:mod:`tracker_07.profiles.unprofiled`) and named on the console.

One module past 350 lines because it is one request's path through profile mode: start,
run, save, print and count, for both engines; the engine and the report formats live in
their own modules.

Reports are written whole under a lock, so two requests' reports never
interleave on the console.  Each request's :class:`ProfileOutcome` is left in its
environ under :data:`OUTCOME_KEY` for the wrappers around this one (the toolbar and
Server-Timing), and a profiled response's ``start_response`` is called once its profile
is saved, so those wrappers see the outcome when the headers pass them.
"""
import contextlib
import io
import logging
import os
import platform
import sys
import threading
import time
from pstats import Stats

from werkzeug.middleware import profiler as werkzeug_profiler

from ..sql import analysis as sql_analysis
from ..sql.capture import ENVIRON_KEY as SQL_KEY
from ..sql.capture import is_captured
from . import call_tree, files, index, sampled, unprofiled, wrappers
from .sampling import SampledProfile

logger = logging.getLogger(__name__)  # a child of app.logger ("tracker_07")

#: Python 3.12+ can run only one cProfile profiler per process at a time.
ONE_PROFILER_PER_PROCESS = sys.version_info >= (3, 12)
#: The environ key of each request's :class:`ProfileOutcome`.
OUTCOME_KEY = "tracker.profile"
#: The environ key where the profiler's ``init_app`` puts the request's view function,
#: as ``[file, line, name]``.
VIEW_KEY = "tracker.view"
#: Why a request was served unprofiled while another one held cProfile.
BUSY_REASON = ("another request held the profiler (one cProfile per process on Python "
               "3.12+); PROFILER_ENGINE=sampling profiles every request")


class ProfileOutcome:  # pylint: disable=too-few-public-methods  # a record, read by the toolbar
    """What profile mode did with one request.

    ``state`` is ``"saved"`` (``profile_id`` names the file), ``"not_saved"`` (``reason``
    says why), ``"busy"`` (another request held the profiler) or ``"ignored"``
    (``PROFILER_IGNORE``).  ``elapsed_ms`` is the time under the profiler, ``profiler_ms``
    the time spent afterwards on the report and the file; ``stats`` the ``pstats.Stats``.
    """

    __slots__ = ("state", "profile_id", "reason", "elapsed_ms", "profiler_ms", "stats")

    def __init__(self, state, *, elapsed_ms=None, stats=None):
        self.state = state
        self.profile_id = None
        self.reason = None
        self.elapsed_ms = elapsed_ms
        self.profiler_ms = None
        self.stats = stats


#: Shared outcomes of the requests that are not profiled (they carry no data of their own).
IGNORED = ProfileOutcome("ignored")
BUSY = ProfileOutcome("busy")


class _Collected:
    """What ``pstats.Stats`` reads from a profiler, once ``dump_stats`` has collected it."""

    def __init__(self, stats):
        self.stats = stats

    def create_stats(self):
        """Already collected: nothing to do."""


def stats_of(profile):
    """The ``Stats`` of a stopped profiler of either engine."""
    if isinstance(profile, SampledProfile):
        stats = profile.stats()
        stats.stream = io.StringIO()
        return stats
    return Stats(profile, stream=io.StringIO())


def saved_stats(profile):
    """The ``Stats`` of a profile that ``dump_stats`` just wrote, without collecting it again
    (a patched profiler whose ``dump_stats`` collected nothing is asked as usual)."""
    if isinstance(profile, SampledProfile):
        return stats_of(profile)
    collected = getattr(profile, "stats", None)
    source = _Collected(collected) if isinstance(collected, dict) and collected else profile
    return Stats(source, stream=io.StringIO())


class SafeProfilerMiddleware(werkzeug_profiler.ProfilerMiddleware):  # pylint: disable=too-many-instance-attributes  # Werkzeug's and Tracker's
    """``ProfilerMiddleware`` that never fails a request and never loses a profile.

    :param app: the WSGI application to wrap.
    :param stream: where reports are printed; ``None`` prints nothing.
    :param sort_by: pstats sort keys for the report.
    :param restrictions: pstats restrictions for the report, e.g. ``(30,)``.
    :param profile_dir: folder for ``.prof`` files and their index; ``None`` saves nothing.
    :param filename_format: Werkzeug's format string or callable for file names;
        ``None`` keeps Tracker's unique names.
    :param ignore: compiled regular expression of paths to serve unprofiled, or ``None``.
    :param min_ms: save a ``.prof`` file only for requests at least this slow.
    :param exclusive: profile one request at a time (default: cProfile on Python 3.12+).
    :param engine: ``"cprofile"`` or ``"sampling"``.
    :param interval: the sampling engine's interval in seconds.
    """

    def __init__(  # pylint: disable=too-many-arguments  # Werkzeug's six, then Tracker's own
            self, app, stream=sys.stdout, sort_by=("tottime", "calls"), restrictions=(),
            profile_dir=None, filename_format=None, *,
            ignore=None, min_ms=0, exclusive=None, engine=sampled.CPROFILE, interval=0.001):
        super().__init__(app, stream, sort_by, restrictions, profile_dir, filename_format)
        if exclusive is None:
            exclusive = ONE_PROFILER_PER_PROCESS and engine == sampled.CPROFILE
        #: Seconds between samples with the sampling engine; None with cProfile.
        self.interval = interval if engine == sampled.ENGINE else None
        self._ignore = ignore
        self._min_ms = min_ms
        #: A :class:`~tracker_07.profiles.retention.FolderRetention`, or None to keep everything.
        self.retention = None
        #: ``page_url(environ, profile_id)``: the URL the report prints for a saved profile.
        self.page_url = None
        self._profiling = threading.Lock() if exclusive else None
        self._report_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._in_flight = 0
        self._started = 0
        self.counts = {"profiled": 0, "not_profiled": 0, "ignored": 0,
                       "saved": 0, "save_failed": 0}

    @property
    def engine(self):
        """The engine that profiles each request: ``sampling`` or ``cprofile``."""
        return sampled.CPROFILE if self.interval is None else sampled.ENGINE

    def __call__(self, environ, start_response):
        with self._counts_lock:
            self._in_flight += 1
            self._started += 1
            overlap_start = (self._in_flight - 1, self._started)
        try:
            if self._ignore is not None and self._ignore.search(environ.get("PATH_INFO", "")):
                self._count("ignored")
                environ[OUTCOME_KEY] = IGNORED
                return self._app(environ, start_response)
            refusal = []
            profile = self._start_profile(refusal)
            if profile is None:
                self._not_profiled(environ, refusal[0] if refusal else BUSY_REASON)
                environ[OUTCOME_KEY] = BUSY
                return self._app(environ, start_response)
            return self._profiled_call(profile, environ, start_response, overlap_start)
        finally:
            with self._counts_lock:
                self._in_flight -= 1

    def _start_profile(self, refusal):
        """Return an enabled profiler, or None (with the reason put in ``refusal`` when it is
        not that another request holds the profiler)."""
        # Released in _release(), after the profiled request or a failed enable().
        if self._profiling is not None and not self._profiling.acquire(  # pylint: disable=consider-using-with
                blocking=False):
            return None
        if self.engine == sampled.ENGINE:
            profile = SampledProfile(self.interval, _RUN_APP)
        else:  # looked up now: patching it works as in Werkzeug
            profile = werkzeug_profiler.Profile()
        try:
            profile.enable()
        except (ValueError, RuntimeError) as error:  # another tool holds the hook
            self._release()
            refusal.append(f"the profiler could not start ({error})")
            return None
        return profile

    def _not_profiled(self, environ, reason):
        """Count a request served unprofiled, in the folder and on the console."""
        self._count("not_profiled")
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        if self._profile_dir is not None:
            try:
                unprofiled.note_unprofiled(self._profile_dir, method, path, reason, time.time())
            except OSError as error:
                logger.warning("Could not count an unprofiled request in %s: %s",
                               self._profile_dir, error)
        if self._stream is not None:
            with self._report_lock:
                self._stream.write(f"NOT PROFILED: {method} {path}: {reason}\n")
                self._stream.flush()

    def _release(self):
        """Let the next request be profiled."""
        if self._profiling is not None:
            self._profiling.release()

    def _profiled_call(self, profile, environ, start_response, overlap_start):
        """Run the app under ``profile``, save and print what it recorded, then respond."""
        started_at = time.time()
        started = time.perf_counter()
        try:
            response, body = self._run_app(environ)
        finally:
            profile.disable()
            self._release()
        ended = time.perf_counter()
        elapsed_ms = (ended - started) * 1000.0
        self._count("profiled")
        request = {
            "method": environ.get("REQUEST_METHOD", "GET"),
            "path": environ.get("PATH_INFO", ""),
            "status": int(response[0].split(None, 1)[0]) if response else None,
            "elapsed_ms": round(elapsed_ms, 3),
            "time": round(started_at, 3),
            "overlapped": self._overlapped(overlap_start),
        }
        if isinstance(profile, SampledProfile):
            request.update(interval_ms=self.interval * 1000, samples=profile.samples)
        if isinstance(environ.get(VIEW_KEY), list):
            request["view"] = environ[VIEW_KEY]
        if is_captured(environ):
            add_queries(request, environ[SQL_KEY])
        outcome = environ[OUTCOME_KEY] = self._keep(profile, request, environ, elapsed_ms)
        if self._stream is not None:
            self._print(outcome.stats, request, environ, outcome.profile_id)
        outcome.profiler_ms = (time.perf_counter() - ended) * 1000.0
        if response:  # deferred until now so that wrappers around this one see the outcome
            start_response(*response)
        return [body]

    def _overlapped(self, overlap_start):
        """How many other requests ran while this one was profiled."""
        with self._counts_lock:
            running_at_start, started_count = overlap_start
            return running_at_start + self._started - started_count

    def _keep(self, profile, request, environ, elapsed_ms):
        """Save the profile when the settings ask for it; return the request's outcome."""
        outcome = ProfileOutcome("not_saved", elapsed_ms=elapsed_ms)
        if self._profile_dir is None:
            outcome.reason = "PROFILER_DIR is empty: profiles are printed, not saved"
        elif elapsed_ms < self._min_ms:
            outcome.reason = f"faster than PROFILER_MIN_MS ({self._min_ms:g} ms)"
        else:
            outcome.profile_id, outcome.stats = self._save(profile, request, environ, elapsed_ms)
            outcome.state = "saved" if outcome.profile_id else "not_saved"
            outcome.reason = None if outcome.profile_id else "saving failed (see the log)"
        if outcome.stats is None:  # not saved: the report still needs them
            outcome.stats = stats_of(profile)
        return outcome

    def _run_app(self, environ):
        """Call the app and read its whole body, as the stock middleware does.

        :return: the arguments of the app's last ``start_response`` call (or None) and
            the body; the caller passes them on when the profile is done.
        """
        body = []
        response = []

        def catching_start_response(status_line, headers, exc_info=None):
            response.append((status_line, headers, exc_info))
            return body.append

        app_iter = self._app(environ, catching_start_response)
        try:
            body.extend(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        return (response[-1] if response else None), b"".join(body)

    def _names(self, environ, request, elapsed_ms):
        """Return the names to try: Tracker's own, or the user's format made safe and numbered."""
        if self._filename_format is None:
            suffix = files.SAMPLED_SUFFIX if self.engine == sampled.ENGINE else files.PROFILE_SUFFIX
            return iter(lambda: files.profile_filename(
                request["method"], request["path"], request["elapsed_ms"], request["time"],
                suffix), None)
        if callable(self._filename_format):
            environ["werkzeug.profiler"] = {"elapsed": elapsed_ms, "time": time.time()}
            name = self._filename_format(environ)
        else:
            name = self._filename_format.format(
                method=environ.get("REQUEST_METHOD", "GET"),
                path=environ.get("PATH_INFO", "").strip("/").replace("/", ".") or "root",
                elapsed=elapsed_ms,
                time=time.time(),
            )
        return files.numbered(files.safe_name(os.fspath(name)))

    def _save(self, profile, request, environ, elapsed_ms):
        """Save the profile in a new file and index it; failing costs a warning, not the request.

        :return: the new profile's id and the report's ``Stats``, built from the data just
            saved (collecting them from the profiler is the costly part, so it is done once);
            ``(None, None)`` when it could not be saved.
        """
        # A user's filename_format may raise anything; that must not fail the request.
        try:
            names = self._names(environ, request, elapsed_ms)
        except Exception as error:  # pylint: disable=broad-exception-caught
            self._save_failed(request, error)
            return None, None
        try:
            profile_id = files.reserve(self._profile_dir, names)
            self._dump(profile, profile_id)
            stats = saved_stats(profile)
            record = dict(request, id=profile_id, engine=self.engine,
                          total_time=round(stats.total_tt, 6), python=platform.python_version())
            if self.engine != sampled.ENGINE:
                record.update(calls=stats.total_calls, primitive_calls=stats.prim_calls)
            index.append_index(self._profile_dir, record)
        except OSError as error:
            self._save_failed(request, error)
            return None, None
        self._count("saved")
        if self.retention is not None:
            self.retention.note_saved(profile_id, request["time"])
        return profile_id, stats

    def _dump(self, profile, name):
        """Write the profile into its reserved file with Werkzeug's hook, ``dump_stats``."""
        path = os.path.join(self._profile_dir, name)
        try:
            profile.dump_stats(path)
        except OSError:
            with contextlib.suppress(OSError):  # leave no empty file behind
                os.remove(path)
            raise

    def _save_failed(self, request, error):
        """Count and log a profile that could not be saved."""
        self._count("save_failed")
        logger.warning("Profile of %s %r not saved in %s: %s", request["method"],
                       request["path"], self._profile_dir, error)

    def _print(self, stats, request, environ, profile_id):
        """Print one report, whole, in the format of Werkzeug's middleware, with a
        ``PROFILE:`` line naming the saved profile and its page under the ``PATH:`` line."""
        report = stats.stream
        print("-" * 80, file=report)
        print(f"PATH: {request['path']!r}", file=report)
        if profile_id is not None:
            url = self.page_url(environ, profile_id) if self.page_url is not None else None
            print(f"PROFILE: {profile_id}" + (f" {url}" if url else ""), file=report)
        is_sampled = sampled.is_sampled(stats)
        if request["overlapped"]:
            mixed = ONE_PROFILER_PER_PROCESS and not is_sampled
            print(f"NOTE: {request['overlapped']} other request(s) ran during this one"
                  + ("; their calls are included below." if mixed else "."), file=report)
        if is_sampled:
            stacks = [(wrappers.request_frames(frames), seconds)
                      for frames, seconds in stats.stacks]
            print(call_tree.report([stack for stack in stacks if stack[0]], request["elapsed_ms"],
                                   stats.interval, request["samples"]), file=report)
        else:
            stats.sort_stats(*self._sort_by)
            stats.print_stats(*self._restrictions)
        print(f"{'-' * 80}\n", file=report)
        if request.get("sql"):  # the database block, only when queries ran
            print(sql_analysis.console_block(request["sql"], request["elapsed_ms"]), file=report)
        with self._report_lock:
            self._stream.write(report.getvalue())
            self._stream.flush()

    def _count(self, name):
        """Add one to a counter shown by the CLI and the dashboard."""
        with self._counts_lock:
            self.counts[name] += 1


_RUN_APP = SafeProfilerMiddleware._run_app.__code__  # pylint: disable=protected-access  # its own method
#: The pstats key of the middleware's call of the app: sampled stacks start below it.
RUN_APP_KEY = (_RUN_APP.co_filename, _RUN_APP.co_firstlineno, _RUN_APP.co_name)


def add_queries(request, queries):
    """Add a captured request's database queries to its record: ``queries`` and ``sql_ms``
    for the list, and ``sql`` (statements and findings) when any ran (``queries`` None)."""
    if queries is None:
        request.update(queries=0, sql_ms=0.0)
        return
    request.update(queries=queries.count, sql_ms=round(queries.total_ms, 3))
    request["sql"] = sql_analysis.summarise(queries)
