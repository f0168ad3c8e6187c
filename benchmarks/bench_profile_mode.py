"""Benchmark Tracker's profile mode against bare Flask and Werkzeug's stock ProfilerMiddleware.

Run from the repository root, once per interpreter::

    python benchmarks/bench_profile_mode.py                  # defaults: 400 requests, 3 rounds
    python benchmarks/bench_profile_mode.py --quick          # a quick smoke run
    /tmp/venv3.12.1/bin/python benchmarks/bench_profile_mode.py --requests 300 --rounds 3

Four variants of the same app (``tracker_07.create_app``) are compared side by side:

* ``bare Flask``: ``create_app("testing", PROFILER_DIR="")``, no profiler;
* ``stock``: the same app wrapped in ``werkzeug.middleware.profiler.ProfilerMiddleware``
  (reports to a discarded ``io.StringIO``, ``restrictions=(30,)``, ``.prof`` files in a
  temporary folder);
* ``Tracker``: ``create_app("profile", PROFILER_DIR=<temporary folder>)`` with its reports
  printed to a discarded ``io.StringIO``;
* ``Tracker, save only``: the same with ``PROFILER_PRINT=False``.

Part (a) times sequential requests to ``/index`` and ``/words/fast`` through the WSGI app
(``werkzeug.test.Client``), in chunks that interleave the variants, for several rounds, and
counts the ``.prof`` files each variant left after ``--requests`` requests to one path.
Part (b) serves each variant on a real threaded server (``werkzeug.serving.make_server``)
on 127.0.0.1 and fires ``--clients`` simultaneous requests to ``/words/slow``; it counts
HTTP 200 and 500 answers, the wall time, and for Tracker how many requests were profiled.
Everything is printed as markdown tables.
"""
import argparse
import contextlib
import gc
import importlib
import io
import json
import logging
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from importlib import metadata

from werkzeug.middleware.profiler import ProfilerMiddleware
from werkzeug.serving import make_server
from werkzeug.test import Client

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
tracker_07 = importlib.import_module("tracker_07")

ROUTES = ("/index", "/words/fast")
SLOW_ROUTE = "/words/slow"
VARIANTS = ("bare Flask", "stock", "Tracker", "Tracker, save only")
WARMUP_REQUESTS = 5
#: Every variant gets these, so that the profiler is the only difference between the apps:
#: the ``profile`` configuration also turns on endpoint tracking (a WSGI wrapper and a
#: writer thread filling ``instance/tracker.sqlite3``) and the dashboard.
ONLY_THE_PROFILER = {"TRACKER_ENABLED": False, "DASHBOARD_ENABLED": False}
#: Option values of a full run and of ``--quick``; options given explicitly win.
FULL = {"requests": 400, "rounds": 3, "chunk": 20, "clients": 40, "burst_rounds": 1}
QUICK = {"requests": 100, "rounds": 2, "chunk": 20, "clients": 10, "burst_rounds": 1}
ANOTHER_PROFILER = "Another profiling tool is already active"


class Variant:
    """One app to benchmark, its profile folder and the stream its reports go to."""

    def __init__(self, name, app, profile_dir=None, stream=None):
        self.name = name
        self.app = app
        self.profile_dir = profile_dir
        self.stream = stream

    @property
    def tracker(self):
        """Tracker's middleware (with its ``counts``), or None for the other variants."""
        return self.app.extensions.get("tracker_profiler")

    def discard_reports(self):
        """Drop the reports printed so far, so the buffer does not grow without bound."""
        if self.stream is not None:
            self.stream.seek(0)
            self.stream.truncate(0)

    def clear_profiles(self):
        """Delete everything in the profile folder (the warm-up requests' files)."""
        if self.profile_dir is None:
            return
        for entry in os.listdir(self.profile_dir):
            os.remove(os.path.join(self.profile_dir, entry))

    def overlaps(self):
        """Return the ``overlapped`` count of every request in Tracker's ``index.jsonl``."""
        try:
            with open(os.path.join(self.profile_dir, "index.jsonl"), encoding="ascii") as index:
                return [json.loads(line)["overlapped"] for line in index]
        except (FileNotFoundError, TypeError):
            return []

    def prof_files(self):
        """Count the ``.prof`` files in the profile folder, or None when nothing is saved."""
        if self.profile_dir is None:
            return None
        return sum(1 for entry in os.listdir(self.profile_dir) if entry.endswith(".prof"))


def build_variant(name, workdir):
    """Build the app of one variant, with a new profile folder under ``workdir``."""
    if name == "bare Flask":
        return Variant(name, tracker_07.create_app("testing", PROFILER_DIR="",
                                                   **ONLY_THE_PROFILER))
    profile_dir = tempfile.mkdtemp(prefix="prof-", dir=workdir)
    if name == "stock":
        app = tracker_07.create_app("testing", PROFILER_DIR="", **ONLY_THE_PROFILER)
        stream = io.StringIO()
        app.wsgi_app = ProfilerMiddleware(app.wsgi_app, stream=stream, restrictions=(30,),
                                          profile_dir=profile_dir)
        return Variant(name, app, profile_dir, stream)
    settings = dict(ONLY_THE_PROFILER, PROFILER_DIR=profile_dir)
    if name == "Tracker, save only":
        settings["PROFILER_PRINT"] = False
    # init_app takes the standard output of the moment as its report stream.
    with contextlib.redirect_stdout(io.StringIO()) as stream:
        app = tracker_07.create_app("profile", **settings)
    return Variant(name, app, profile_dir, stream)


def rotated(items, by):
    """Return ``items`` rotated left by ``by`` places, to vary which variant runs first."""
    by %= len(items)
    return items[by:] + items[:by]


def run_chunk(client, route, count, samples=None):
    """Send ``count`` GET requests and return how many were not HTTP 200.

    Each request's wall time and the CPU time of this thread, in seconds, are appended to
    ``samples["wall"]`` and ``samples["cpu"]``.  CPU time excludes the time the process
    waited for a core, so it is steadier than wall time on a busy machine.
    """
    bad = 0
    for _ in range(count):
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = client.get(route)
        ended_cpu, ended = time.thread_time(), time.perf_counter()
        if samples is not None:
            samples["wall"].append(ended - started)
            samples["cpu"].append(ended_cpu - started_cpu)
        if response.status_code != 200:
            bad += 1
    return bad


def sequential(args, workdir):
    """Part (a): latency and ``.prof`` file counts, variants interleaved in chunks."""
    results = {(route, name): {"wall": [], "cpu": [], "round_medians": [], "bad": 0,
                               "files": []}
               for route in ROUTES for name in VARIANTS}
    chunk = max(1, min(args.chunk, args.requests))
    for round_no in range(args.rounds):
        for route in ROUTES:
            variants = {name: build_variant(name, workdir) for name in VARIANTS}
            clients = {name: Client(variant.app) for name, variant in variants.items()}
            for name, variant in variants.items():
                run_chunk(clients[name], route, WARMUP_REQUESTS)
                variant.clear_profiles()
                variant.discard_reports()
            round_samples = {name: {"wall": [], "cpu": []} for name in VARIANTS}
            done = 0
            while done < args.requests:
                count = min(chunk, args.requests - done)
                for name in rotated(list(VARIANTS), round_no + done // chunk):
                    gc.collect()
                    result = results[(route, name)]
                    result["bad"] += run_chunk(clients[name], route, count, round_samples[name])
                    variants[name].discard_reports()
                done += count
            for name, variant in variants.items():
                result = results[(route, name)]
                result["wall"].extend(round_samples[name]["wall"])
                result["cpu"].extend(round_samples[name]["cpu"])
                result["round_medians"].append(statistics.median(round_samples[name]["wall"]))
                result["files"].append(variant.prof_files())
                if variant.profile_dir is not None:
                    shutil.rmtree(variant.profile_dir, ignore_errors=True)
    return results


class ErrorCollector(logging.Handler):
    """Collect the errors Werkzeug's server logs (tracebacks of HTTP 500s) instead of printing."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def fetch(url, barrier, outcomes, index):
    """Wait for every client, then GET ``url`` and store the HTTP status (or the error)."""
    barrier.wait()
    try:
        with urllib.request.urlopen(url, timeout=300) as response:
            response.read()
            outcomes[index] = response.status
    except urllib.error.HTTPError as exc:
        outcomes[index] = exc.code
    except OSError as exc:
        outcomes[index] = type(exc).__name__


def fire(url, clients):
    """GET ``url`` from ``clients`` threads at once; return their outcomes and the wall time."""
    outcomes = [None] * clients
    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=fetch, args=(url, barrier, outcomes, i))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    gc.collect()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - started


def burst(variant, clients, errors):
    """Serve ``variant`` on a threaded server and fire ``clients`` simultaneous requests."""
    server = make_server("127.0.0.1", 0, variant.app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    before = dict(variant.tracker.counts) if variant.tracker is not None else None
    logged_before = len(errors.messages)
    outcomes, wall = fire(f"http://127.0.0.1:{server.server_port}{SLOW_ROUTE}", clients)
    server.shutdown()
    server.server_close()
    serving.join()
    variant.discard_reports()
    logged = errors.messages[logged_before:]
    result = {
        "ok": sum(1 for outcome in outcomes if outcome == 200),
        "http_500": sum(1 for outcome in outcomes if outcome == 500),
        "other": [outcome for outcome in outcomes if outcome not in (200, 500)],
        "wall": wall,
        "another_profiler": sum(1 for message in logged if ANOTHER_PROFILER in message),
        "profiled": None,
        "not_profiled": None,
        "files": variant.prof_files(),
        "overlaps": variant.overlaps(),
    }
    if before is not None:
        after = variant.tracker.counts
        result["profiled"] = after["profiled"] - before["profiled"]
        result["not_profiled"] = after["not_profiled"] - before["not_profiled"]
    return result


def overlapping(args, workdir):
    """Part (b): ``--clients`` overlapping requests per variant on a real threaded server."""
    errors = ErrorCollector()
    server_log = logging.getLogger("werkzeug")
    server_log.setLevel(logging.ERROR)
    server_log.addHandler(errors)
    server_log.propagate = False
    results = {name: [] for name in VARIANTS}
    try:
        for round_no in range(args.burst_rounds):
            for name in rotated(list(VARIANTS), round_no):
                variant = build_variant(name, workdir)
                run_chunk(Client(variant.app), SLOW_ROUTE, 1)
                variant.clear_profiles()
                variant.discard_reports()
                results[name].append(burst(variant, args.clients, errors))
                if variant.profile_dir is not None:
                    shutil.rmtree(variant.profile_dir, ignore_errors=True)
    finally:
        server_log.removeHandler(errors)
    return results


def sequential_table(results, args):
    """Format part (a) as a markdown table."""
    lines = [
        f"(a) Sequential requests through the WSGI app: {args.requests} per variant per route "
        f"per round, {args.rounds} round(s), interleaved in chunks of {args.chunk}.",
        "",
        "| route | variant | median wall µs/request | vs bare Flask | round medians wall µs "
        "(min–max) | median CPU µs/request | CPU vs bare Flask | non-200 "
        "| .prof files per round |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for route in ROUTES:
        bare = {kind: statistics.median(results[(route, "bare Flask")][kind])
                for kind in ("wall", "cpu")}
        for name in VARIANTS:
            result = results[(route, name)]
            median = {kind: statistics.median(result[kind]) for kind in ("wall", "cpu")}
            extra = {kind: "—" if name == "bare Flask" else (
                f"+{(median[kind] - bare[kind]) * 1e6:.0f} µs (×{median[kind] / bare[kind]:.2f})")
                for kind in ("wall", "cpu")}
            rounds = result["round_medians"]
            files = "—" if result["files"][0] is None else (
                ", ".join(f"{count}/{args.requests}" for count in result["files"]))
            lines.append(f"| `{route}` | {name} | {median['wall'] * 1e6:.0f} | {extra['wall']} | "
                         f"{min(rounds) * 1e6:.0f}–{max(rounds) * 1e6:.0f} | "
                         f"{median['cpu'] * 1e6:.0f} | {extra['cpu']} | "
                         f"{result['bad']} | {files} |")
    return "\n".join(lines)


def overlapping_table(results, args):
    """Format part (b) as a markdown table, one row per variant and burst round."""
    lines = [
        f"(b) {args.clients} simultaneous GET `{SLOW_ROUTE}` on a threaded Werkzeug server "
        f"(127.0.0.1), {args.burst_rounds} burst(s) per variant.",
        "",
        "| variant | burst | HTTP 200 | HTTP 500 | other | wall s | profiled | not profiled "
        "| .prof files | server errors \"Another profiling tool\" "
        "| other requests during a profiled one (median, max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in VARIANTS:
        for number, result in enumerate(results[name], 1):
            other = ", ".join(map(str, result["other"])) or "0"
            profiled = "—" if result["profiled"] is None else str(result["profiled"])
            not_profiled = "—" if result["not_profiled"] is None else str(result["not_profiled"])
            files = "—" if result["files"] is None else str(result["files"])
            overlaps = "—" if not result["overlaps"] else (
                f"{statistics.median(result['overlaps']):g}, {max(result['overlaps'])}")
            lines.append(f"| {name} | {number} | {result['ok']} | {result['http_500']} | "
                         f"{other} | {result['wall']:.2f} | {profiled} | {not_profiled} | "
                         f"{files} | {result['another_profiler']} | {overlaps} |")
    return "\n".join(lines)


def parse_args(argv=None):
    """Read the command line; ``--quick`` shrinks every count for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int,
                        help="sequential requests per variant, route and round "
                             f"(default {FULL['requests']})")
    parser.add_argument("--rounds", type=int,
                        help="interleaved rounds of sequential requests "
                             f"(default {FULL['rounds']})")
    parser.add_argument("--chunk", type=int,
                        help="requests a variant serves before the next one takes over "
                             f"(default {FULL['chunk']})")
    parser.add_argument("--clients", type=int,
                        help=f"simultaneous requests to {SLOW_ROUTE} (default {FULL['clients']})")
    parser.add_argument("--burst-rounds", type=int,
                        help=f"overlapping bursts per variant (default {FULL['burst_rounds']})")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: " + ", ".join(f"{key.replace('_', '-')} {value}"
                                                         for key, value in QUICK.items()))
    args = parser.parse_args(argv)
    for option, value in (QUICK if args.quick else FULL).items():
        if getattr(args, option) is None:
            setattr(args, option, value)
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    args.chunk = min(args.chunk, args.requests)
    return args


def main(argv=None):
    """Run both parts and print the interpreter, versions and markdown tables."""
    args = parse_args(argv)
    print(f"Python {platform.python_version()} ({sys.executable}), "
          f"Flask {metadata.version('flask')}, Werkzeug {metadata.version('werkzeug')}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-profile-mode-") as workdir:
        latency = sequential(args, workdir)
        print()
        print(sequential_table(latency, args))
        print(f"\nPart (a) took {time.perf_counter() - started:.1f} s.")
        part_b = time.perf_counter()
        bursts = overlapping(args, workdir)
        print()
        print(overlapping_table(bursts, args))
        print(f"\nPart (b) took {time.perf_counter() - part_b:.1f} s.")
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.1f} s; "
          f"load average now {os.getloadavg()[0]:.2f}.")


if __name__ == "__main__":
    main()
