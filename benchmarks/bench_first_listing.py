"""The profiles list's first listing of a big folder, this code against a git revision, paired.

    python -B benchmarks/bench_first_listing.py [--profiles 50000] [--rounds 5] [--runs 5]
        [--baseline REV] [--stale | --cold | --profile-mode SAVES]

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
With ``--cold``, the caches' folder is emptied before each timed run: a first-ever listing.
With ``--profile-mode SAVES``, before each timed run (untimed) the caches' folder is emptied,
profile mode's retention starts on the folder (capped at its size, as a server that filled
it; its index compacted if the lines of removed profiles outnumber the live ones, as
profile mode does), one profile is saved through it with a periodic full prune after it,
then SAVES more (each removes the oldest): what a profile-mode server leaves for the list
page opened for the first time, SAVES profiles after its last periodic prune.
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


def child(folder, runs, mode=None, saves=0):
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
        if mode == "cold":
            index_cache.wait_for_writes()
            shutil.rmtree(os.path.join(folder, index_cache.CACHE_DIR), ignore_errors=True)
        elif mode == "profile-mode":
            index_cache.wait_for_writes()
            shutil.rmtree(os.path.join(folder, index_cache.CACHE_DIR), ignore_errors=True)
            run_profile_mode(folder, saves)
            index_cache.wait_for_writes()
        listing.clear_listing_cache(index_too=True)
        routes.forget()
        if mode == "stale":
            save_new_profile(folder)
        started = time.perf_counter()
        response = client.get("/dashboard/profiles/")
        durations.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
    print(f"{statistics.median(durations):.1f} {min(durations):.1f}")


def run_profile_mode(folder, saves):
    """Start profile mode's retention on the folder, capped at its size, and save ``saves``
    profiles through it, as a profile-mode server would (its files removed as it goes)."""
    from tracker_07.profiles import files, index_cache, listing, routes  # pylint: disable=import-outside-toplevel,import-error
    from tracker_07.profiles.retention import FolderRetention  # pylint: disable=import-outside-toplevel,import-error

    listing.clear_listing_cache(index_too=True)
    routes.forget()
    count = len([name for name in os.listdir(folder) if files.is_safe_name(name)])
    retention = FolderRetention(folder, max_files=count, rescan_every=1)
    retention.apply()
    with open(os.path.join(folder, "index.jsonl"), "rb") as index_file:
        dead_lines = index_file.read().count(b"\n") - count
    if dead_lines >= count:  # as profile mode does once they outnumber the live ones
        retention.compact()
    retention.note_saved(*save_new_profile(folder)).join()  # a rescan: the listing saved
    retention.rescan_every = saves + 1  # (if this code does), then ``saves`` profiles since
    for _ in range(saves):
        thread = retention.note_saved(*save_new_profile(folder))
        if thread is not None:
            thread.join()
    index_cache.wait_for_writes()


def save_new_profile(folder):
    """Save one more profile as profile mode does: a new file, then its index line."""
    import bench_profiles  # pylint: disable=import-outside-toplevel  # with the variant's tracker_07

    started = time.time()
    name = bench_profiles.files.profile_filename("GET", "/new/profile", 12.0, started)
    with open(os.path.join(folder, name), "wb") as file:
        file.write(bench_profiles.make_small_profile_bytes())
    bench_profiles.index.append_index(folder, bench_profiles.index_record(
        name, "GET", "/new/profile", 12.0, started))
    return name, started


def main():
    """Build the folder, alternate the variants for ``--rounds`` rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--profiles", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", default="0c157ec")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--stale", action="store_const", const="stale", dest="mode",
                       help="save a profile before each timed run (a stale saved listing)")
    modes.add_argument("--cold", action="store_const", const="cold", dest="mode",
                       help="no caches on disk before each timed run (a first-ever listing)")
    modes.add_argument("--profile-mode", type=int, metavar="SAVES", dest="saves",
                       help="before each timed run, profile mode's retention starts on the "
                            "folder (no caches yet) and saves SAVES profiles")
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.saves is not None:
        if args.saves < 0:
            parser.error("--profile-mode needs a number of saves, 0 or more")
        args.mode = "profile-mode"
    if args.child:
        child(args.child, args.runs, args.mode, args.saves or 0)
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
                median, fastest = run_child(roots[variant], folder, args.runs,
                                            (args.mode, args.saves))
                cells[variant] = f"{median} ms ({fastest})"
            print(f"| {number + 1} | {' | '.join(cells[variant] for variant in roots)} |",
                  flush=True)


def run_child(root, folder, runs, mode=(None, None)):
    """Run :func:`child` in a fresh process on the code in ``root``; return its median and min."""
    mode, saves = mode
    options = {"stale": ["--stale"], "cold": ["--cold"],
               "profile-mode": ["--profile-mode", str(saves)]}.get(mode, [])
    return subprocess.run(
        [sys.executable, "-B", __file__, "--child", folder, "--runs", str(runs), *options],
        env=dict(os.environ, PYTHONPATH=root), cwd=root,
        check=True, capture_output=True, text=True).stdout.split()[-2:]


if __name__ == "__main__":
    main()
