"""Benchmark the saved-profiles backend: analysing a big profile and listing a big folder.

Run from the repository root::

    python benchmarks/bench_profiles.py                     # 5,000 functions, 10,000 files
    python benchmarks/bench_profiles.py --quick             # a quick smoke run
    python benchmarks/bench_profiles.py --functions 5000 --profiles 10000 --runs 7
    python benchmarks/bench_profiles.py --scale             # 20,000 functions, 50,000 files,
                                                            # the dashboard pages only (issue 9)

The fixture (built once in a temporary folder, removed at the end):

* a profile of about ``--functions`` distinct functions: generated source, each function
  compiled under one of many fake file names (50 functions per file), calling its children
  in a tree (fan-out 4); every 7th function also calls one of ten shared helpers, so many
  nodes have several callers (``split_unknown``).  It is run under cProfile and dumped;
* a profile folder of ``--profiles`` small ``.prof`` files named by ``profile_filename``
  with their ``index.jsonl`` lines (1% of the files have no index line, and 1% of the
  index lines point to deleted files, to exercise reconciling).

Every case is timed ``--runs`` times and reported as the median and the minimum in ms, in
a markdown table; a case's setup (such as saving one new profile) is not timed.  To time
more, write a function ``fixture -> [(name, callable[, untimed setup]), ...]`` and pass it to
``main(extra_cases=...)``, or append it to ``CASE_BUILDERS``.
"""
import argparse
import contextlib
import cProfile
import importlib
import os
import pathlib
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

analysis = importlib.import_module("tracker_07.profiles.analysis")
charts = importlib.import_module("tracker_07.dashboard.charts")
files = importlib.import_module("tracker_07.profiles.files")
index = importlib.import_module("tracker_07.profiles.index")
index_cache = importlib.import_module("tracker_07.profiles.index_cache")
listing = importlib.import_module("tracker_07.profiles.listing")
listing_cache = importlib.import_module("tracker_07.profiles.listing_cache")
routes = importlib.import_module("tracker_07.profiles.routes")
saved_stats = importlib.import_module("tracker_07.profiles.stats")

FANOUT = 4
FUNCTIONS_PER_FILE = 50
SHARED_HELPERS = 10
SHARED_EVERY = 7


@dataclass
class Fixture:
    """What the cases work on: a big profile (path and loaded stats) and a big folder."""

    root: str
    big_profile: str
    big_stats: pstats.Stats
    folder: str
    profile_count: int
    small_bytes: bytes


def function_source(number, functions):
    """Write the source of generated function ``f<number>``: a little work, then its children."""
    children = range(number * FANOUT + 1, min(functions, number * FANOUT + FANOUT + 1))
    body = ["    total = 0", "    for i in range(5):", "        total += i"]
    body += [f"    total += f{child}()" for child in children]
    if number % SHARED_EVERY == 0:
        body.append(f"    total += shared{number % SHARED_HELPERS}()")
    body.append("    return total")
    return f"def f{number}():\n" + "\n".join(body) + "\n"


def build_namespace(functions):
    """Compile the generated functions under many fake file names into one namespace."""
    # pylint: disable=exec-used  # running generated code is the point of this fixture
    namespace = {}
    for helper in range(SHARED_HELPERS):
        source = f"def shared{helper}():\n    return sum(range(20))\n"
        exec(compile(source, f"/bench/shared{helper}.py", "exec"), namespace)
    for number in range(functions):
        filename = f"/bench/module{number // FUNCTIONS_PER_FILE}.py"
        exec(compile(function_source(number, functions), filename, "exec"), namespace)
    return namespace


def make_big_profile(folder, functions):
    """Run the generated call tree under cProfile and dump it; return the file's path."""
    namespace = build_namespace(functions)
    profiler = cProfile.Profile()
    profiler.runcall(namespace["f0"])
    path = os.path.join(folder, "big.prof")
    profiler.dump_stats(path)
    return path


def make_small_profile_bytes():
    """Return the bytes of a small real profile to copy into every file of the big folder."""
    profiler = cProfile.Profile()
    profiler.runcall(sorted, [str(number) for number in range(50)])
    with tempfile.NamedTemporaryFile(suffix=".prof", delete=False) as handle:
        path = handle.name
    try:
        profiler.dump_stats(path)
        return pathlib.Path(path).read_bytes()
    finally:
        os.remove(path)


def make_folder(folder, count, data):
    """Fill ``folder`` with ``count`` profiles and index lines, some of them out of step."""
    os.makedirs(folder, exist_ok=True)
    start = 1_700_000_000.0
    for number in range(count):
        method = ("GET", "POST", "PUT")[number % 3]
        path = f"/items/{number % 97}/detail"
        elapsed = (number * 37) % 900 + 1.5
        name = files.profile_filename(method, path, elapsed, start + number)
        pathlib.Path(folder, name).write_bytes(data)
        if number % 100 != 1:
            index.append_index(folder, index_record(name, method, path, elapsed, start + number))
        if number % 100 == 2:
            os.remove(os.path.join(folder, name))


def index_record(name, method, path, elapsed, start):
    """Build an index line like the middleware's for one fake profile."""
    return {
        "id": name,
        "method": method,
        "path": path,
        "status": 500 if name.endswith("3.prof") else 200,
        "elapsed_ms": elapsed,
        "time": start,
        "calls": 60,
        "primitive_calls": 60,
        "total_time": elapsed / 1000,
        "overlapped": 0,
        "python": platform.python_version(),
    }


def settle_folder(folder):
    """Date the folder and index an hour back, as for a folder nobody is writing to."""
    an_hour_ago = time.time() - 3600
    for path in (os.path.join(folder, index.INDEX_NAME), folder):
        os.utime(path, (an_hour_ago, an_hour_ago))


def build_fixture(functions, profiles):
    """Create the big profile and the big folder in a new temporary directory."""
    root = tempfile.mkdtemp(prefix="tracker07-bench-profiles-")
    big_profile = make_big_profile(root, functions)
    folder = os.path.join(root, "profiles")
    small_bytes = make_small_profile_bytes()
    make_folder(folder, profiles, small_bytes)
    settle_folder(folder)
    return Fixture(root, big_profile, saved_stats.load_stats(big_profile), folder, profiles,
                   small_bytes)


def analysis_cases(fixture):
    """Time the analysis of the big profile, as the profile pages will use it."""
    stats = fixture.big_stats
    mid_function = analysis.function_id(sorted(stats.stats)[len(stats.stats) // 2])

    def page_work():
        analysis.table(stats, limit=30)
        charts.flame_layout(analysis.flame_tree(stats), 1200)

    return [
        ("load_stats (big profile)", lambda: saved_stats.load_stats(fixture.big_profile)),
        ("table, top 30 by tottime", lambda: analysis.table(stats, limit=30)),
        ("table, all rows, text filter", lambda: analysis.table(stats, limit=None, text="f1")),
        ("flame_tree (default limits)", lambda: analysis.flame_tree(stats)),
        ("flame_layout (1200 px)", lambda: charts.flame_layout(analysis.flame_tree(stats), 1200)),
        ("table + flame_tree + flame_layout", page_work),
        ("callers_callees", lambda: analysis.callers_callees(stats, mid_function)),
        ("collapsed_stacks (whole tree)", lambda: analysis.collapsed_stacks(stats)),
        ("speedscope (whole tree)", lambda: analysis.speedscope(stats, "big")),
    ]


def listing_cases(fixture):
    """Time listing the big folder, as the profiles list page will use it."""
    folder = fixture.folder
    some_id = sorted(os.listdir(folder))[len(os.listdir(folder)) // 2]

    def cold_list(**options):
        listing.clear_listing_cache(index_too=True)
        return listing.list_profiles(folder, **options)

    def after_new_profile():
        listing.clear_listing_cache()
        return listing.list_profiles(folder)

    return [
        ("list_profiles, page 1, first listing (whole index parsed)", cold_list),
        ("list_profiles, page 1, after a new profile (rescan)", after_new_profile),
        (
            "list_profiles, by elapsed_ms, page 50, first listing",
            lambda: cold_list(sort="elapsed_ms", page=50),
        ),
        ("list_profiles, page 1, warm (folder unchanged)", lambda: listing.list_profiles(folder)),
        (
            "list_profiles, path + method filter, warm",
            lambda: listing.list_profiles(folder, path_contains="/items/5", method="GET"),
        ),
        (
            "route_profiles (one route)",
            lambda: listing.route_profiles(folder, "GET", "/items/3/detail"),
        ),
        ("profile_path (one id)", lambda: listing.profile_path(folder, some_id)),
    ]


def page_cases(fixture):
    """Time the real dashboard pages through the Flask test client (server time, no network)."""
    create_app = importlib.import_module("tracker_07").create_app
    app = create_app("testing", PROFILER_DIR=fixture.folder, DASHBOARD_ENABLED=True)
    client = app.test_client()
    big_id = "GET.big.profile.100ms.1700000000000.1-1.prof"
    shutil.copy(fixture.big_profile, os.path.join(fixture.folder, big_id))
    os.makedirs(os.path.join(fixture.folder, index_cache.CACHE_DIR), exist_ok=True)  # as listed
    settle_folder(fixture.folder)

    def get(url):
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}")
        return response.data

    def save_new_profile():
        """Save one more profile as profile mode does: a new file, then its index line."""
        started = time.time()
        name = files.profile_filename("GET", "/new/profile", 12.0, started)
        pathlib.Path(fixture.folder, name).write_bytes(fixture.small_bytes)
        index.append_index(fixture.folder, index_record(name, "GET", "/new/profile", 12.0,
                                                        started))
        return name

    def first_listed():
        """Start from a fresh process's state: nothing listed, nothing parsed or loaded (the
        kept records are freed here, untimed, as a new process has none to free)."""
        index_cache.wait_for_writes()
        listing.clear_listing_cache(index_too=True)
        routes.forget()
        saved_stats.clear_cache()

    def forget_index_cache():
        """Start as before the first listing ever: no parsed index or listing kept on disk."""
        first_listed()
        for name in (index_cache.CACHE_NAME, listing_cache.CACHE_NAME):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(fixture.folder, index_cache.CACHE_DIR, name))

    def changed_since_saved():
        """A new process, after a profile was saved since the listing was saved (so it is
        stale, and the folder is scanned with the parsed index's help)."""
        first_listed()
        save_new_profile()

    profile_url = f"/dashboard/profiles/{big_id}"
    return [
        ("page: one profile (table + icicle graph), file not cached",
         lambda: get(profile_url), saved_stats.clear_cache),
        ("page: one profile, file not cached, index not read yet (a new process)",
         lambda: get(profile_url), first_listed),
        ("page: one profile (table + icicle graph), cached", lambda: get(profile_url)),
        ("page: one profile, a function's callers and callees",
         lambda: get(profile_url + "?fn=" + analysis.function_id(max(fixture.big_stats.stats)))),
        ("page: profiles list, first listing, no cache yet (a first-ever listing)",
         lambda: get("/dashboard/profiles/"), forget_index_cache),
        ("page: profiles list, first listing (a new process: saved listing on disk)",
         lambda: get("/dashboard/profiles/"), first_listed),
        ("page: profiles list, warm", lambda: get("/dashboard/profiles/")),
        ("route summary of every profile, built again (first listing, rescan)",
         lambda: routes.route_summaries(fixture.folder), routes.forget),
        ("page: profiles list sorted by ms, page 40",
         lambda: get("/dashboard/profiles/?sort=elapsed_ms&page=40")),
        ("JSON: profiles list, first listing", lambda: get("/dashboard/api/profiles"),
         first_listed),
        ("page: profiles list, after one new profile (file + index line)",
         lambda: get("/dashboard/profiles/"), save_new_profile),
        ("JSON: profiles list, after one new profile (file + index line)",
         lambda: get("/dashboard/api/profiles"), save_new_profile),
        ("page: profiles list, first listing, a profile saved since the listing was saved",
         lambda: get("/dashboard/profiles/"), changed_since_saved),
    ]


CASE_BUILDERS = [analysis_cases, listing_cases, page_cases]


def time_case(function, runs, setup=None):
    """Run ``function`` ``runs`` times (``setup`` untimed before each); return median and min ms."""
    durations = []
    for _ in range(runs):
        if setup is not None:
            setup()
        started = time.perf_counter()
        function()
        durations.append((time.perf_counter() - started) * 1000)
    return statistics.median(durations), min(durations)


def run_cases(fixture, builders, runs):
    """Time every case of every builder; return ``(name, median ms, min ms)`` rows."""
    rows = []
    for builder in builders:
        for name, function, *setup in builder(fixture):
            rows.append((name, *time_case(function, runs, *setup)))
    return rows


def markdown_table(rows, runs):
    """Format the timings as a markdown table."""
    lines = [f"| case | median ms ({runs} runs) | min ms |", "|---|---:|---:|"]
    lines += [f"| {name} | {median:.1f} | {fastest:.1f} |" for name, median, fastest in rows]
    return "\n".join(lines)


def parse_args(argv):
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--functions", type=int, default=5000, help="functions in the big profile")
    parser.add_argument("--profiles", type=int, default=10_000, help="files in the big folder")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case")
    parser.add_argument("--quick", action="store_true", help="500 functions, 500 files, 3 runs")
    parser.add_argument("--scale", action="store_true",
                        help="20,000 functions, 50,000 files, dashboard pages only")
    args = parser.parse_args(argv)
    if args.quick:
        args.functions, args.profiles, args.runs = 500, 500, 3
    args.builders = [page_cases] if args.scale else CASE_BUILDERS
    if args.scale:
        args.functions, args.profiles = 20_000, 50_000
    return args


def main(argv=None, extra_cases=()):
    """Build the fixture, time the built-in cases and ``extra_cases``, print the tables."""
    args = parse_args(argv)
    fixture = build_fixture(args.functions, args.profiles)
    try:
        rows = run_cases(fixture, [*args.builders, *extra_cases], args.runs)
        functions = len(fixture.big_stats.stats)
        listed = listing.list_profiles(fixture.folder).total
        print(
            f"Python {platform.python_version()}; big profile: {functions} functions; "
            f"folder: {args.profiles} files written, {listed} listed after reconciling.\n"
        )
        print(markdown_table(rows, args.runs))
    finally:
        shutil.rmtree(fixture.root, ignore_errors=True)


if __name__ == "__main__":
    main()
