"""What each profile-mode engine adds per request: bare Flask, cProfile, pyinstrument, a
sampler thread.

    python benchmarks/bench_sampling_engine.py [--rounds 5] [--seconds 2] [--interval-ms 1]
        [--routes /words/slow /index]

One process holds four apps of the demo (``create_app("testing")``, tracking and the
dashboard off), called through ``app.wsgi_app(environ, start_response)``:

* ``bare``: no profiler;
* ``cprofile``: profile mode as it runs (``SafeProfilerMiddleware``, engine ``cprofile``:
  the ``.prof`` file saved and indexed, the report printed to ``/dev/null``);
* ``pyinstrument``: the same with ``PROFILER_ENGINE=sampling`` (pyinstrument in the
  request's thread, speedscope file, call-tree report);
* ``sampler-thread``: the same middleware, but its profile is the prototype below: one
  daemon thread that reads ``sys._current_frames()`` every interval for the registered
  request threads.

Round by round, variants interleaved (rotated), each route is requested for ``--seconds``
per variant; the process CPU time of all threads (``time.process_time``) per request is
read.  Printed per route: median CPU µs per request, the added µs against ``bare`` of the
same round, and the per-round ratio of each sampler's added time to cProfile's (median and
range; the issue's target is at most 0.5).  For the two samplers it also prints how many
samples a request got per interval of its wall time (1.00: one sample every interval; a
sampler thread waits for the GIL, which the request's thread holds up to
``sys.getswitchinterval()`` at a time, so it samples less often and its samples miss time).
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# pylint: disable=wrong-import-position  # the checkout's tracker_07, after sys.path is set
from werkzeug.test import create_environ  # noqa: E402

import tracker_07  # noqa: E402
from tracker_07.profiles import middleware as profiles_middleware  # noqa: E402
from tracker_07.profiles.sampling import stacks_from_records  # noqa: E402
from tracker_07.profiles.sampled import stats_from_stacks, to_speedscope  # noqa: E402

VARIANTS = ("bare", "cprofile", "pyinstrument", "sampler-thread")


class SamplerThread:
    """The prototype: one daemon thread samples every registered thread's stack."""

    def __init__(self, interval):
        self.interval = interval
        self.threads = {}  # thread id -> list of (frames, seconds)
        self.lock = threading.Lock()
        self.active = threading.Event()  # set while a thread is registered: no idle polling
        threading.Thread(target=self.run, name="bench-sampler", daemon=True).start()

    def run(self):
        """Sample every interval while threads are registered."""
        while self.active.wait():
            time.sleep(self.interval)
            with self.lock:
                if not self.threads:
                    continue
                frames = sys._current_frames()  # pylint: disable=protected-access  # what samplers read
                for thread_id, records in self.threads.items():
                    frame = frames.get(thread_id)
                    stack = []
                    while frame is not None:
                        code = frame.f_code
                        stack.append(
                            f"{code.co_name}\x00{code.co_filename}\x00{code.co_firstlineno}")
                        frame = frame.f_back
                    stack.append("thread")  # the pseudo-frame pyinstrument's records start with
                    stack.reverse()
                    records.append((stack, self.interval))


class PrototypeProfile:
    """The prototype's per-request profile, shaped like ``SampledProfile`` for the middleware."""

    sampler = None

    def __init__(self, interval, root):
        self.interval, self.root = interval, root
        self.records = []
        self.stacks, self.samples = None, 0

    def enable(self):
        """Register this thread with the sampler."""
        with self.sampler.lock:
            self.sampler.threads[threading.get_ident()] = self.records
            self.sampler.active.set()

    def disable(self):
        """Unregister and convert the records."""
        with self.sampler.lock:
            del self.sampler.threads[threading.get_ident()]
            if not self.sampler.threads:
                self.sampler.active.clear()
        self.samples = len(self.records)
        self.stacks = stacks_from_records(self.records, self.root)

    def stats(self):
        """The stacks as pstats."""
        return stats_from_stacks(self.stacks, interval=self.interval)

    def dump_stats(self, path):
        """Save as the sampling engine does."""
        with open(path, "w", encoding="utf-8") as file:
            json.dump(to_speedscope(self.stacks, name="x", interval=self.interval), file)


def build(variant, folder, interval_ms):
    """One variant's app."""
    quiet = {"TRACKER_ENABLED": False, "DASHBOARD_ENABLED": False}
    if variant == "bare":
        return tracker_07.create_app("testing", **quiet)
    engine = "cprofile" if variant == "cprofile" else "sampling"
    with contextlib.redirect_stdout(io.StringIO()):
        app = tracker_07.create_app(
            "testing", PROFILER_ENABLED=True, PROFILER_ENGINE=engine,
            PROFILER_INTERVAL_MS=interval_ms, PROFILER_MAX_FILES=0,
            PROFILER_DIR=os.path.join(folder, variant), **quiet)
    middleware = app.extensions["tracker_profiler"]
    middleware._stream = open(os.devnull, "w", encoding="utf-8")  # pylint: disable=protected-access,consider-using-with
    if variant == "sampler-thread":
        original = profiles_middleware.SampledProfile
        # The middleware builds its profile by this name: the prototype takes its place.
        app.wsgi_app = _Swapped(middleware, original)
    return app


class _Swapped:  # pylint: disable=too-few-public-methods
    """Calls the middleware with the prototype in place of SampledProfile."""

    def __init__(self, middleware, original):
        self.middleware, self.original = middleware, original

    def __call__(self, environ, start_response):
        profiles_middleware.SampledProfile = PrototypeProfile
        try:
            return self.middleware(environ, start_response)
        finally:
            profiles_middleware.SampledProfile = self.original


def run(app, route, seconds):
    """Request ``route`` for ``seconds``; return CPU µs per request (all threads)."""
    def start_response(_status, _headers, _exc_info=None):
        return None

    app.wsgi_app(create_environ(route), start_response)  # warm (templates, caches)
    count = 0
    cpu_started = time.process_time()
    wall_ended = time.perf_counter() + seconds
    while time.perf_counter() < wall_ended or count < 3:
        body = app.wsgi_app(create_environ(route), start_response)
        b"".join(body)
        count += 1
    return (time.process_time() - cpu_started) * 1e6 / count


def main():
    """Measure, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--interval-ms", type=float, default=1.0)
    parser.add_argument("--routes", nargs="+", default=["/words/slow", "/index"])
    args = parser.parse_args()
    PrototypeProfile.sampler = SamplerThread(args.interval_ms / 1000.0)
    folder = tempfile.mkdtemp(prefix="bench-sampling-")
    apps = {variant: build(variant, folder, args.interval_ms) for variant in VARIANTS}
    results = {route: {variant: [] for variant in VARIANTS} for route in args.routes}
    for round_number in range(args.rounds):
        order = VARIANTS[round_number % len(VARIANTS):] + VARIANTS[:round_number % len(VARIANTS)]
        for route in args.routes:
            for variant in order:
                results[route][variant].append(run(apps[variant], route, args.seconds))
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    print(f"Python {sys.version.split()[0]}, interval {args.interval_ms:g} ms, "
          f"{args.rounds} rounds x {args.seconds:g} s per variant and route")
    for route in args.routes:
        print_route(route, results[route])
    print("\nSamples per interval of wall time (median [min-max] over the saved profiles):")
    for variant in ("pyinstrument", "sampler-thread"):
        print(f"  {variant:<15} {coverage(os.path.join(folder, variant), args.interval_ms)}")


def coverage(folder, interval_ms):
    """How many samples each saved profile got per interval of its request's wall time."""
    with open(os.path.join(folder, "index.jsonl"), encoding="ascii") as index:
        records = [json.loads(line) for line in index]
    ratios = [record["samples"] * interval_ms / record["elapsed_ms"] for record in records
              if record.get("samples") is not None and record["elapsed_ms"] >= 50]
    if not ratios:
        return "no request of 50 ms or more"
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"


def print_route(route, cpu):
    """One route's table: CPU per request, added time, ratio to cProfile's added time."""
    print(f"\n{route}: CPU µs per request (median of rounds), added vs bare, "
          "added / cProfile's added (median [min-max] of per-round ratios)")
    added = {variant: [value - bare for value, bare in zip(cpu[variant], cpu["bare"])]
             for variant in VARIANTS}
    for variant in VARIANTS:
        line = (f"  {variant:<15} {statistics.median(cpu[variant]):>10.0f} µs   "
                f"added {statistics.median(added[variant]):>+9.0f} µs")
        if variant not in ("bare", "cprofile"):
            ratios = [mine / theirs for mine, theirs in zip(added[variant], added["cprofile"])
                      if theirs > 0]
            if ratios:
                line += (f"   x cProfile's added: {statistics.median(ratios):.2f} "
                         f"[{min(ratios):.2f}-{max(ratios):.2f}]")
        print(line)


if __name__ == "__main__":
    main()
