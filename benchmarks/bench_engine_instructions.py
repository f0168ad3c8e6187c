"""Instructions each profile-mode engine adds per request, counted by valgrind: a figure
that the machine's load does not move (a time measured on this shared machine does).

    python benchmarks/bench_engine_instructions.py [--route /words/slow] [--requests 2]
        [--variants bare cprofile sampling setstatprofile] [--slowdown 14]

Needs valgrind (``apt-get install valgrind``).  For each variant of
``bench_sampling_engine.py`` it runs, under ``valgrind --tool=cachegrind --cache-sim=no``,
one process that warms the app with two requests and then makes ``--requests`` more, and
one that makes none; the difference divided by ``--requests`` is the instructions of one
request (Python's start-up and imports cancel out).  Under valgrind the program runs about
``--slowdown`` times slower while the sampling interval is wall time, so the samplers run
with their interval multiplied by it to take as many samples per request as at full speed
(the script prints the samples per request it got).  ``PYTHONHASHSEED`` is fixed so that
both processes hash alike.  Added instructions are against ``bare``; "x cProfile" divides
them by cProfile's.  A count says nothing about cache misses: it is a floor under the time
added, not the time.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = """
import sys, json, glob
sys.path[:0] = [{repo!r}, {benchmarks!r}]
import bench_sampling_engine as bench
from werkzeug.test import create_environ
app = bench.build({variant!r}, {folder!r}, {interval_ms!r})
for _ in range(2 + {requests}):
    b"".join(app.wsgi_app(create_environ({route!r}), bench.ignore_response))
"""


def instructions(variant, requests, route, interval_ms):
    """Instructions of one process that makes 2 + ``requests`` requests; its samples per
    request (None for engines that do not sample)."""
    folder = tempfile.mkdtemp(prefix="bench-instructions-")
    code = CHILD.format(repo=REPO_ROOT, benchmarks=os.path.join(REPO_ROOT, "benchmarks"),
                        variant=variant, folder=folder, interval_ms=interval_ms,
                        requests=requests, route=route)
    result = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, "-c", code],
        capture_output=True, text=True, check=False,
        env=dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1"))
    if result.returncode != 0:
        sys.exit(f"{variant}: valgrind or the app failed:\n{result.stderr[-3000:]}")
    count = int(re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)[1].replace(",", ""))
    samples = None
    index_path = os.path.join(folder, variant, "index.jsonl")
    if os.path.exists(index_path):
        with open(index_path, encoding="utf-8") as index:
            counts = [json.loads(line).get("samples") for line in index]
        counts = [value for value in counts if value is not None]
        samples = counts[-1] if counts else None
    return count, samples


def main():
    """Count, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--route", default="/words/slow")
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--variants", nargs="+",
                        default=["bare", "cprofile", "sampling", "setstatprofile"])
    parser.add_argument("--interval-ms", type=float, default=1.0)
    parser.add_argument("--slowdown", type=float, default=14.0)
    args = parser.parse_args()
    per_request, samples = {}, {}
    for variant in args.variants:
        interval = args.interval_ms * (1.0 if variant in ("bare", "cprofile") else args.slowdown)
        without, _ = instructions(variant, 0, args.route, interval)
        with_requests, samples[variant] = instructions(variant, args.requests, args.route,
                                                       interval)
        per_request[variant] = (with_requests - without) / args.requests
        print(f"{variant} done", file=sys.stderr)
    print(f"Python {sys.version.split()[0]}, {args.route}, instructions per request "
          f"(valgrind, {args.requests} requests after 2 to warm up)")
    bare = per_request.get("bare")
    cprofile_added = (per_request["cprofile"] - bare
                      if bare is not None and "cprofile" in per_request else None)
    for variant, count in per_request.items():
        line = f"  {variant:<15} {count / 1e6:>10.1f} M"
        if bare is not None and variant != "bare":
            line += f"   added {(count - bare) / 1e6:>+7.1f} M"
            if cprofile_added and variant != "cprofile":
                line += f"   x cProfile's added: {(count - bare) / cprofile_added:.2f}"
        if samples.get(variant) is not None:
            line += f"   ({samples[variant]} samples in the last request)"
        print(line)


if __name__ == "__main__":
    main()
