"""Profile mode at steady state: total CPU per profiled request with a full profile folder.

    python benchmarks/bench_profile_steady.py [--requests 600] [--rounds 5] [--fill 0,10000]
        [--baseline REV]

Each measurement runs in a fresh process: it builds the app, fills its profile folder with
``--fill`` saved profiles (a comma-separated list: by default an empty folder and one at the
10,000-profile cap, measured side by side in the same rounds; real ``.prof`` files with
their index lines, as a server that has run for a while has; not measured), warms up, then
sends ``--requests`` requests to ``/words/fast`` through the WSGI app and reads the process
CPU time (every thread: Tracker's background retention counts) once the background work has
ended.  Variants, interleaved and
rotated round by round:

* ``stock``: the demo app in Werkzeug's ``ProfilerMiddleware`` (report to a discarded stream,
  ``restrictions=(30,)``, ``.prof`` files in the folder);
* ``tracker``: ``create_app("profile")`` (``PROFILER_MAX_FILES`` 10,000: with ``--fill
  10000`` the folder is at its cap and every save removes the oldest profile), report to a
  discarded stream;
* ``tracker@REV``: the same as of git revision REV (``--baseline``), checked out into a
  temporary worktree.

Printed, for each fill: the median CPU µs per request of each variant, and per round the
ratio of each Tracker variant to stock (measured next to each other), with the median and the
range of those paired ratios.
"""
import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from baseline import checkout

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
ROUTE = "/words/fast"


def fill_folder(folder, count, sample_path):
    """Put ``count`` copies of one real profile in ``folder``, named and indexed as Tracker does."""
    with open(sample_path, "rb") as sample:
        data = sample.read()
    started = time.time() - 86400
    lines = []
    for number in range(count):
        name = f"GET.words.fast.1ms.{int((started + number) * 1000)}.1-{number}.prof"
        with open(os.path.join(folder, name), "wb") as profile:
            profile.write(data)
        lines.append(json.dumps({"id": name, "method": "GET", "path": ROUTE, "status": 200,
                                 "elapsed_ms": 1.0, "time": started + number, "calls": 100,
                                 "primitive_calls": 100, "total_time": 0.001,
                                 "overlapped": 0, "python": "3"}) + "\n")
    with open(os.path.join(folder, "index.jsonl"), "a", encoding="ascii") as index:
        index.writelines(lines)


def build_app(variant, folder):
    """The variant's app; its reports go to a discarded stream."""
    import tracker_07  # pylint: disable=import-outside-toplevel,import-error  # the variant's checkout
    from werkzeug.middleware.profiler import ProfilerMiddleware  # pylint: disable=import-outside-toplevel

    quiet = {"TRACKER_ENABLED": False, "DASHBOARD_ENABLED": False}
    if variant == "stock":
        app = tracker_07.create_app("testing", PROFILER_DIR="", **quiet)
        app.wsgi_app = ProfilerMiddleware(app.wsgi_app, stream=io.StringIO(),
                                          restrictions=(30,), profile_dir=folder)
        return app
    with contextlib.redirect_stdout(io.StringIO()):
        return tracker_07.create_app("profile", PROFILER_DIR=folder,
                                     PROFILER_MAX_FILES=10_000, **quiet)


def child(variant, requests, fill):
    """Measure one variant in this process and print its CPU µs per request as JSON."""
    folder = tempfile.mkdtemp(prefix="bench-steady-")
    try:
        sample_app = build_app("stock", folder)
        sample_app.test_client().get(ROUTE).close()
        (sample,) = [name for name in os.listdir(folder) if name.endswith(".prof")]
        os.rename(os.path.join(folder, sample), os.path.join(folder, "..sample"))
        fill_folder(folder, fill, os.path.join(folder, "..sample"))
        os.remove(os.path.join(folder, "..sample"))
        app = build_app(variant, folder)
        client = app.test_client()
        for _ in range(20):
            client.get(ROUTE).close()
        _wait_for_background(threading.active_count())
        threads = threading.active_count()
        cpu = time.process_time()
        for _ in range(requests):
            client.get(ROUTE).close()
        _wait_for_background(threads)
        cpu = time.process_time() - cpu
        files = sum(1 for name in os.listdir(folder) if name.endswith(".prof"))
        print(json.dumps({"cpu_us": cpu / requests * 1e6, "files": files}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_background(threads, timeout=60):
    """Let background threads (retention, compaction) finish, so their CPU is counted."""
    deadline = time.monotonic() + timeout
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)


def measure(variant, root, args, fill):
    """Run one variant in a fresh process with ``root`` importable."""
    name = "stock" if variant == "stock" else "tracker"
    output = subprocess.run(
        [sys.executable, __file__, "--child", name, "--requests", str(args.requests),
         "--fill", str(fill)],
        env=dict(os.environ, PYTHONPATH=root), check=True, capture_output=True, text=True,
        cwd=root, timeout=1800).stdout
    return json.loads(output.strip().splitlines()[-1])


def fills(text):
    """Read ``--fill``: one or more profile counts, comma-separated."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError("profile counts cannot be negative")
    return counts


def main():
    """Interleave the variants for ``--rounds`` rounds and print medians and paired ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fill", type=fills, default=[0, 10_000])
    parser.add_argument("--baseline", metavar="REV")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests, args.fill[0])
        return
    with contextlib.ExitStack() as stack:
        roots = {"stock": REPO_ROOT, "tracker": REPO_ROOT}
        if args.baseline:
            roots[f"tracker@{args.baseline}"] = stack.enter_context(checkout(args.baseline))
        variants = list(roots)
        results = {(fill, variant): [] for fill in args.fill for variant in variants}
        for round_number in range(args.rounds):
            shift = round_number % len(variants)
            for fill in args.fill:
                for variant in variants[shift:] + variants[:shift]:
                    result = measure(variant, roots[variant], args, fill)
                    results[(fill, variant)].append(result)
                    print(f"round {round_number + 1} fill {fill} {variant}: {result}",
                          file=sys.stderr)
    print(f"\n{args.requests} requests to {ROUTE} per measurement, {args.rounds} rounds, "
          f"Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}\n")
    print("| folder before | variant | CPU µs per request (median) | × stock, paired per "
          "round: median (range) | .prof files after |")
    print("|---|---|---:|---|---:|")
    for fill in args.fill:
        stock = [result["cpu_us"] for result in results[(fill, "stock")]]
        for variant in variants:
            cpu = [result["cpu_us"] for result in results[(fill, variant)]]
            ratios = [mine / theirs for mine, theirs in zip(cpu, stock)]
            paired = ("" if variant == "stock" else
                      f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})")
            print(f"| {fill:,} profiles | {variant} | {statistics.median(cpu):,.0f} | {paired} "
                  f"| {results[(fill, variant)][-1]['files']:,} |")


if __name__ == "__main__":
    main()
