"""What each profile-mode engine adds per request: bare Flask, cProfile, Tracker's sampling
engine, pyinstrument's whole Profiler, a sampler thread.

    python benchmarks/bench_sampling_engine.py [--rounds 5] [--seconds 2] [--interval-ms 1]
        [--routes /words/slow /index]

One process holds five apps of the demo (``create_app("testing")``, tracking and the
dashboard off), called through ``app.wsgi_app(environ, start_response)``:

* ``bare``: no profiler;
* ``cprofile``: profile mode as it runs (``SafeProfilerMiddleware``, engine ``cprofile``:
  the ``.prof`` file saved and indexed, the report printed to ``/dev/null``);
* ``sampling``: the same with ``PROFILER_ENGINE=sampling`` as it runs: Tracker's recorder
  of code objects called by the cheapest tick (``tracker_07/profiles/tick.py``: its
  ``sys.monitoring`` hook in C on 3.12+, pyinstrument's ``setstatprofile`` on 3.11)
  (speedscope file, call-tree report);
* ``setstatprofile``: the same engine with pyinstrument's ``setstatprofile`` as its tick
  on every version (on 3.11 the same as ``sampling``);
* ``pyinstrument``: the same middleware, but its profile is pyinstrument's whole
  ``Profiler`` (the engine's first version): its frame identifiers (strings built per
  frame per sample) turned into stacks at the end;
* ``sampler-thread``: the same middleware, but its profile is a prototype: one daemon
  thread that reads ``sys._current_frames()`` every interval for the registered request
  threads.

Round by round, variants interleaved (rotated), each route is requested once untimed and
then for ``--seconds`` per variant (see ``run``); the process CPU time of all threads
(``time.process_time``) per request is read. Printed per route: median CPU µs per request,
the added µs against ``bare`` of the same round, and the per-round ratio of each sampler's
added time to cProfile's (median and range; the issue's target is at most 0.5). For the
samplers it also prints how many samples a request got per interval of its wall time
(1.00: one sample every interval; a sampler thread waits for the GIL, which the request's
thread holds up to ``sys.getswitchinterval()`` at a time, so it samples less often and its
samples miss time).
"""
import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# pylint: disable=wrong-import-position  # the checkout's tracker_07, after sys.path is set
from pyinstrument import Profiler  # noqa: E402
from werkzeug.test import create_environ  # noqa: E402

import tracker_07  # noqa: E402
from tracker_07.profiles import middleware as profiles_middleware, tick  # noqa: E402
from tracker_07.profiles.sampling import stacks_from_samples  # noqa: E402
from tracker_07.profiles.sampled import stats_from_stacks, to_speedscope  # noqa: E402

VARIANTS = ("bare", "cprofile", "sampling", "setstatprofile", "pyinstrument", "sampler-thread")
SAMPLERS = VARIANTS[2:]


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
                for thread_id, (root, records) in self.threads.items():
                    frame = frames.get(thread_id)
                    items = []
                    while frame is not None and frame.f_code is not root:
                        items.append(frame.f_code)
                        frame = frame.f_back
                    if frame is not None and items:
                        records.append((None, items, self.interval))


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
            self.sampler.threads[threading.get_ident()] = (self.root, self.records)
            self.sampler.active.set()

    def disable(self):
        """Unregister and convert the records."""
        with self.sampler.lock:
            del self.sampler.threads[threading.get_ident()]
            if not self.sampler.threads:
                self.sampler.active.clear()
        self.samples = len(self.records)
        self.stacks = stacks_from_samples(self.records)

    def stats(self):
        """The stacks as pstats."""
        return stats_from_stacks(self.stacks, interval=self.interval)

    def dump_stats(self, path):
        """Save as the sampling engine does."""
        with open(path, "w", encoding="utf-8") as file:
            json.dump(to_speedscope(self.stacks, name="x", interval=self.interval), file)


class PyinstrumentProfile(PrototypeProfile):
    """pyinstrument's whole ``Profiler`` in the request's thread, its records made stacks."""

    def enable(self):
        """Start pyinstrument's profiler in this thread."""
        self.profiler = Profiler(interval=self.interval, async_mode="disabled")  # pylint: disable=attribute-defined-outside-init
        self.profiler.start(caller_frame=sys._getframe(1))  # pylint: disable=protected-access

    def disable(self):
        """Stop it and turn its frame identifiers into stacks below the root."""
        session = self.profiler.stop()
        self.samples = session.sample_count
        root = (self.root.co_name, self.root.co_filename, str(self.root.co_firstlineno))
        stacks = {}
        for identifiers, seconds in session.frame_records:
            fields = [identifier.split("\x01", 1)[0].split("\x00") for identifier in identifiers]
            names = [field[:3] for field in fields[1:]]
            if root not in names:
                continue
            below = names[len(names) - names[::-1].index(root):]
            if below:
                key = tuple(("~", 0, name) if filename == "<built-in>" else
                            (filename, int(line), name) for name, filename, line in below)
                stacks[key] = stacks.get(key, 0.0) + seconds
        self.stacks = list(stacks.items())


PROTOTYPES = {"pyinstrument": PyinstrumentProfile, "sampler-thread": PrototypeProfile}


class _OnStatProfile:  # pylint: disable=too-few-public-methods
    """Calls the middleware with pyinstrument's hook as the engine's tick."""

    def __init__(self, middleware):
        self.middleware = middleware

    def __call__(self, environ, start_response):
        chosen = tick.current()
        tick._chosen[0] = tick.StatProfileTick()  # pylint: disable=protected-access  # the variant
        try:
            return self.middleware(environ, start_response)
        finally:
            tick._chosen[0] = chosen  # pylint: disable=protected-access


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
    if variant in PROTOTYPES:
        # The middleware builds its profile by this name: the prototype takes its place.
        app.wsgi_app = _Swapped(middleware, PROTOTYPES[variant])
    elif variant == "setstatprofile":
        app.wsgi_app = _OnStatProfile(middleware)
    return app


class _Swapped:  # pylint: disable=too-few-public-methods
    """Calls the middleware with the prototype in place of SampledProfile."""

    def __init__(self, middleware, prototype):
        self.middleware, self.prototype = middleware, prototype
        self.original = profiles_middleware.SampledProfile

    def __call__(self, environ, start_response):
        profiles_middleware.SampledProfile = self.prototype
        try:
            return self.middleware(environ, start_response)
        finally:
            profiles_middleware.SampledProfile = self.original


def ignore_response(_status, _headers, _exc_info=None):
    """Take the response's status and headers, as a server would."""


def run(app, route, seconds):
    """Request ``route`` once untimed, then for ``seconds`` (at least once); return CPU µs
    per request (all threads).

    The untimed request is there for Python 3.12+: ``sys.monitoring``, which cProfile and
    both sampling ticks use, instruments the code objects that all the apps here share,
    and a variant that switches its events off leaves that code to be restored by
    whichever request runs it next.  So each variant's timed requests follow one of its
    own, as on a server that runs one of them.
    """
    b"".join(app.wsgi_app(create_environ(route), ignore_response))
    count = 0
    cpu_started = time.process_time()
    wall_ended = time.perf_counter() + seconds
    while time.perf_counter() < wall_ended or not count:
        b"".join(app.wsgi_app(create_environ(route), ignore_response))
        count += 1
    return (time.process_time() - cpu_started) * 1e6 / count


def main():
    """Measure, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--interval-ms", type=float, default=1.0)
    parser.add_argument("--routes", nargs="+", default=["/words/slow", "/index"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="bare and cprofile are always run (the ratios need them)")
    args = parser.parse_args()
    variants = tuple(variant for variant in VARIANTS
                     if variant in ("bare", "cprofile") or variant in args.variants)
    PrototypeProfile.sampler = SamplerThread(args.interval_ms / 1000.0)
    folder = tempfile.mkdtemp(prefix="bench-sampling-")
    apps = {variant: build(variant, folder, args.interval_ms) for variant in variants}
    for app in apps.values():
        for route in args.routes:  # warm: templates compiled, caches filled
            b"".join(app.wsgi_app(create_environ(route), ignore_response))
    results = {route: {variant: [] for variant in variants} for route in args.routes}
    for round_number in range(args.rounds):
        order = variants[round_number % len(variants):] + variants[:round_number % len(variants)]
        for route in args.routes:
            for variant in order:
                results[route][variant].append(run(apps[variant], route, args.seconds))
        if (round_number + 1) % 10 == 0 or round_number + 1 == args.rounds:
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    print(f"Python {sys.version.split()[0]}, interval {args.interval_ms:g} ms, "
          f"{args.rounds} rounds x {args.seconds:g} s per variant and route, "
          f"the engine's tick: {tick.current().name}")
    for route in args.routes:
        print_route(route, results[route])
    print("\nSamples per interval of wall time (median [min-max] over the saved profiles):")
    for variant in SAMPLERS:
        if variant not in variants:
            continue
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
    print(f"\n{route}: CPU µs per request (median of rounds), added vs bare of the same "
          "round (median), added / cProfile's added (ratio of the medians, and its 90% "
          "bootstrap interval over rounds)")
    added = {variant: [value - bare for value, bare in zip(cpu[variant], cpu["bare"])]
             for variant in cpu}
    for variant in cpu:
        line = (f"  {variant:<15} {statistics.median(cpu[variant]):>10.0f} µs   "
                f"added {statistics.median(added[variant]):>+9.0f} µs")
        if variant not in ("bare", "cprofile"):
            ratio, low, high = ratio_of_medians(added[variant], added["cprofile"])
            line += f"   x cProfile's added: {ratio:.2f} [{low:.2f}-{high:.2f}]"
        print(line)


def ratio_of_medians(mine, theirs, resamples=2000):
    """``median(mine) / median(theirs)`` of paired rounds, with a 90% bootstrap interval
    (rounds drawn again with replacement): one round's noise on a shared machine can be
    larger than the effect, so single-round ratios say little."""
    rng = random.Random(7)
    pairs = list(zip(mine, theirs))
    ratios = []
    for _ in range(resamples):
        drawn = [rng.choice(pairs) for _ in pairs]
        denominator = statistics.median(pair[1] for pair in drawn)
        if denominator > 0:
            ratios.append(statistics.median(pair[0] for pair in drawn) / denominator)
    ratios.sort()
    if not ratios:
        return float("nan"), float("nan"), float("nan")
    return (statistics.median(mine) / statistics.median(theirs),
            ratios[int(0.05 * len(ratios))], ratios[int(0.95 * len(ratios)) - 1])


if __name__ == "__main__":
    main()
