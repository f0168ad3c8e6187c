"""The profiles list's first listing of a big folder, this code against a git revision, paired.

    python -B benchmarks/bench_first_listing.py [--profiles 50000] [--rounds 5] [--runs 5]
        [--baseline REV] [--stale]

Builds one folder of ``--profiles`` saved profiles as ``bench_profiles.py`` does, lists it
once with each variant (untimed, so that the caches' folder exists) and dates the folder back
an hour again, then, round by round and in alternating order, runs a fresh process per variant
(this working tree, and REV checked out beside it) that opens ``/dashboard/profiles/`` (the
list with its route summary) once untimed, waits for the caches it writes in the background,
then opens it ``--runs`` times, forgetting everything kept in memory before each run
(untimed), and prints the median and minimum server time in ms.  So the caches a variant keeps
on disk are there for every timed run, as for a process started after another one listed the
folder.  With ``--stale``, one profile is saved (its file, then its index line) before each
timed run (untimed), so the saved listing is stale, as for a profile-mode server restarted.
"""
import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from baseline import checkout

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(folder, runs, stale=False):
    """List ``folder`` ``runs`` times in this process; print the median and minimum ms."""
    from tracker_07 import create_app  # pylint: disable=import-outside-toplevel,import-error  # the variant's
    from tracker_07.profiles import listing, routes  # pylint: disable=import-outside-toplevel,import-error

    client = create_app("testing", PROFILER_DIR=folder, DASHBOARD_ENABLED=True).test_client()
    client.get("/dashboard/profiles/").close()  # the template compiled, the caches written
    try:
        from tracker_07.profiles import index_cache  # pylint: disable=import-outside-toplevel,import-error
    except ImportError:  # a revision from before the index cache
        pass
    else:
        index_cache.wait_for_writes()
    durations = []
    for _ in range(runs):
        listing.clear_listing_cache(index_too=True)
        routes.forget()
        if stale:
            save_new_profile(folder)
        started = time.perf_counter()
        response = client.get("/dashboard/profiles/")
        durations.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
    print(f"{statistics.median(durations):.1f} {min(durations):.1f}")


def save_new_profile(folder):
    """Save one more profile as profile mode does: a new file, then its index line."""
    import bench_profiles  # pylint: disable=import-outside-toplevel  # with the variant's tracker_07

    started = time.time()
    name = bench_profiles.files.profile_filename("GET", "/new/profile", 12.0, started)
    with open(os.path.join(folder, name), "wb") as file:
        file.write(bench_profiles.make_small_profile_bytes())
    bench_profiles.index.append_index(folder, bench_profiles.index_record(
        name, "GET", "/new/profile", 12.0, started))


def main():
    """Build the folder, alternate the variants for ``--rounds`` rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--profiles", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", default="0c157ec")
    parser.add_argument("--stale", action="store_true",
                        help="save a profile before each timed run (a stale saved listing)")
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs, args.stale)
        return
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sys.path.insert(0, REPO_ROOT)
    import bench_profiles  # pylint: disable=import-outside-toplevel  # imports this tree

    root = tempfile.mkdtemp(prefix="bench-first-listing-")
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        folder = os.path.join(root, "profiles")
        bench_profiles.make_folder(folder, args.profiles, bench_profiles.make_small_profile_bytes())
        bench_profiles.settle_folder(folder)
        roots = {"this tree": REPO_ROOT,
                 args.baseline: stack.enter_context(checkout(args.baseline))}
        for variant in roots:  # untimed: each variant's cache folder made, as after a listing
            run_child(roots[variant], folder, 1)
        bench_profiles.settle_folder(folder)
        print(f"| round | {' | '.join(roots)} |\n|---:|{'---:|' * len(roots)}")
        for number in range(args.rounds):
            order = list(roots) if number % 2 else list(reversed(roots))
            cells = {}
            for variant in order:
                median, fastest = run_child(roots[variant], folder, args.runs, args.stale)
                cells[variant] = f"{median} ms ({fastest})"
            print(f"| {number + 1} | {' | '.join(cells[variant] for variant in roots)} |",
                  flush=True)


def run_child(root, folder, runs, stale=False):
    """Run :func:`child` in a fresh process on the code in ``root``; return its median and min."""
    return subprocess.run(
        [sys.executable, "-B", __file__, "--child", folder, "--runs", str(runs),
         *(["--stale"] if stale else [])],
        env=dict(os.environ, PYTHONPATH=root), cwd=root,
        check=True, capture_output=True, text=True).stdout.split()[-2:]


if __name__ == "__main__":
    main()
