"""What always-on tracking costs per request: bare Flask, Flask + Tracker's tracking,
flask-profiler and Flask-MonitoringDashboard, side by side on the same one-route app, with
Tracker's store empty and full (a copy of a store at its 1,000,000-row cap).

    python benchmarks/bench_tracking_overhead.py [--rounds 5] [--seconds 3]
        [--rates 100,4000] [--states empty,full] [--paired] [--http] [--python PATH]

The comparison packages are not project dependencies: the script creates its own
virtualenv in ``benchmarks/.venv-compare`` (git-ignored) and pip-installs pinned versions
there; nothing is installed globally (``--python`` runs the children with another
interpreter that has Flask, SQLAlchemy and pyinstrument instead).  Every measurement runs
in a fresh process, cases interleaved round by round; each is compared with bare Flask's
run of the same round, and the medians and ranges of those paired figures are printed.

(a) WSGI: ``app.wsgi_app(environ, start_response)`` called for ``--seconds`` at each of
    ``--rates`` requests per second (ten bursts a second; 0 for back to back); process CPU
    per request, every thread: the loop, the final flush and Tracker's maintenance pass.
    At a low rate a pass folds in more rows than the run makes: the writer thread writes
    the rest (not measured) and the pass's CPU is charged per row.  For Tracker, what its
    dashboard says it costs per request over the same rows is printed beside it.
(p) ``--paired``: bare Flask and Flask + Tracker as two apps in one process, their
    bursts alternated every 50 ms, per store state and rate; Tracker's added CPU is its
    bursts' thread CPU minus bare Flask's, plus every other thread's CPU, the final flush
    and its share of a maintenance pass (``--variants ""`` runs only these).  Every child
    collects garbage before its measured run and counts the full collections in it.
(b) ``--http``: ``gunicorn -w 1`` (sync worker) per case on 127.0.0.1 driven by ``wrk``
    (Debian: ``apt-get install wrk``) with ``--clients`` connections for ``--seconds``; the
    server's CPU per request (master and worker, all threads, from ``/proc``) and
    requests per second.  A full store runs maintenance on a one-second interval there.
"""
import argparse
import contextlib
import functools
import gc
import inspect
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from baseline import checkout

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv-compare")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
PINS = (
    "Flask==3.1.3", "Werkzeug==3.1.9", "SQLAlchemy==2.0.44", "gunicorn==25.3.0",
    "flask-profiler==1.8.1", "Flask-MonitoringDashboard==5.1.0",
    "pyinstrument==5.1.3",  # imported by tracker_07 (its sampling engine)
)
VARIANTS = ("bare", "tracker", "flask-profiler", "monitoringdashboard")
LABELS = {
    "bare": "bare Flask 3.1.3",
    "tracker": "Flask + Tracker tracking",
    "flask-profiler": "Flask + flask-profiler 1.8.1",
    "monitoringdashboard": "Flask + Flask-MonitoringDashboard 5.1.0",
}


# --- the app under test (imported by the child processes) ---------------------------


def make_app():
    """The one-route app with the variant named by BENCH_VARIANT attached."""
    from flask import Flask  # pylint: disable=import-outside-toplevel  # child only

    variant = os.environ["BENCH_VARIANT"]
    data_dir = os.environ["BENCH_DATA_DIR"]
    app = Flask("bench")

    @app.route("/hello")
    def hello():
        return "Hello, World!"

    if variant.startswith("tracker"):
        # pylint: disable-next=import-outside-toplevel,import-error  # child, on PYTHONPATH
        from tracker_07.tracking.extension import Tracking
        app.config["TRACKER_DATABASE_URL"] = f"sqlite:///{data_dir}/tracker.sqlite3"
        # A full store (a copy of --store) keeps the defaults: 1,000,000 rows, 30 days.
        if variant == "tracker-ignored":  # diagnostic: the wrapper's ignore path only
            app.config["TRACKER_IGNORE"] = ["^/hello"]
        if variant == "tracker-nowriter":  # diagnostic: request path only, records dropped
            app.config["TRACKER_QUEUE_SIZE"] = 1
            app.config["TRACKER_FLUSH_INTERVAL"] = 3600
        if os.environ.get("BENCH_MAINTENANCE_INTERVAL"):
            app.config["TRACKER_MAINTENANCE_INTERVAL"] = float(
                os.environ["BENCH_MAINTENANCE_INTERVAL"])
        tracking = Tracking(app)
        if variant == "tracker-nowriter" and hasattr(tracking.middleware, "wake_at"):
            # A tenth of a one-row queue would wake the writer for every record.
            tracking.middleware.wake_at = float("inf")
        flush = tracking.flush
        if "collect_garbage" in inspect.signature(flush).parameters:
            # A server closes every body, so it never needs the garbage collection that
            # flush() does for test clients; that is not a cost of tracking.
            flush = functools.partial(flush, collect_garbage=False)
        app.extensions["bench_flush"] = flush
        app.extensions["bench_tracking"] = tracking
        # The roll-up the writer runs once a minute, so its share of the rows measured
        # here is counted too (a 3-second run would otherwise never reach it).
        app.extensions["bench_maintain"] = lambda: (
            flush(), tracking.writer.maintain(force=True))
    elif variant == "flask-profiler":
        import flask_profiler  # pylint: disable=import-outside-toplevel,import-error
        app.config["flask_profiler"] = {
            "enabled": True,
            "storage": {"engine": "sqlite", "FILE": f"{data_dir}/flask_profiler.sqlite"},
            "basicAuth": {"enabled": False},
        }
        flask_profiler.init_app(app)
    elif variant == "monitoringdashboard":
        import flask_monitoringdashboard  # pylint: disable=import-outside-toplevel,import-error
        flask_monitoringdashboard.config.database_name = f"sqlite:///{data_dir}/fmd.db"
        flask_monitoringdashboard.bind(app)
    return app


def synthetic_records(count, seed=1):
    """Queue tuples of the last five minutes over 50 endpoints, as the store benchmark
    makes them: the rest of a maintenance pass's rows at a low rate."""
    generator = random.Random(seed)
    now = time.perf_counter()
    rules = [f"/api/v1/resource{i}/<int:id>" for i in range(50)]
    weights = [1 / (i + 1) for i in range(50)]
    return [(started, started + generator.lognormvariate(2.0, 1.0) / 1000.0, rule, "GET",
             "200 OK", None)
            for started, rule in zip(sorted(now - generator.random() * 300
                                            for _ in range(count)),
                                     generator.choices(rules, weights, k=count))]


def maintenance_pass_rows(writer_module, rate):
    """How many rows one maintenance pass folds in at ``rate`` requests/s: a minute's, or
    (the adaptive policy, where the revision has it) at least ``ROWS_PER_PASS`` within
    ``MAX_DEFERRED_INTERVALS`` minutes."""
    minute = int(rate * 60)
    least = getattr(writer_module, "ROWS_PER_PASS", 0)
    if minute >= least:
        return minute
    return min(least, minute * getattr(writer_module, "MAX_DEFERRED_INTERVALS", 1))


def paced(one_request, seconds, rate):
    """Requests at ``rate`` per second (0: back to back) for ``seconds``; returns count."""
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    if not rate:
        while time.perf_counter() < deadline:
            for _ in range(100):
                one_request()
            count += 100
        return count
    # Ten bursts a second: after a sleep the first request runs with cold caches, and a
    # request alone every 10 ms measured 120 to 250 µs of CPU for bare Flask from one
    # process to the next, which would bury Tracker's few µs.
    chunk = max(1, int(rate / 10))
    while True:
        due = started + count / rate
        now = time.perf_counter()
        if due >= deadline:
            return count
        if due > now:
            time.sleep(due - now)
        for _ in range(chunk):
            one_request()
        count += chunk


def wsgi_child(seconds, rate):  # pylint: disable=too-many-locals  # one measured sequence
    """Call the WSGI app ``rate`` times a second (0: back to back) for ``seconds``; print
    wall and process CPU µs per request as JSON, and for Tracker what its dashboard says
    it costs per request."""
    app = make_app()
    one_request = wsgi_caller(app.wsgi_app)
    for _ in range(500):  # warm-up: imports, first connections, caches
        one_request()
    flush = app.extensions.get("bench_flush")
    tracking = app.extensions.get("bench_tracking")
    if flush:
        flush(30)
        app.extensions["bench_maintain"]()  # the warm-up's rows are rolled up unmeasured
        said_before = writer_cost(tracking)
    threads_before = threading.active_count()
    full_collections = settle_garbage()
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    count = paced(one_request, seconds, rate)
    wall = time.perf_counter() - wall_started
    maintenance_cpu = 0.0
    if flush:
        flush(60)
        cpu = time.process_time() - cpu_started
        full_gcs = full_collections_since(full_collections)
        said_after = writer_cost(tracking)
        maintenance_cpu, dashboard_us = charge_maintenance(
            app, tracking, count, rate, said_before, said_after)
        cpu += maintenance_cpu
    else:
        for _ in range(1000):  # let other tools' per-request threads finish
            if threading.active_count() <= threads_before:
                break
            time.sleep(0.01)
        cpu = time.process_time() - cpu_started
        full_gcs = full_collections_since(full_collections)
    result = {"requests": count, "wall_us": wall / count * 1e6, "cpu_us": cpu / count * 1e6,
              "maintenance_us": maintenance_cpu / count * 1e6,
              "full_gcs": full_gcs,
              "python": sys.version.split()[0]}
    if tracking is not None:
        result["dashboard_us"] = dashboard_us
        result["stored"] = stored_rows(tracking)
    print(json.dumps(result))


def alternated(requests, seconds, rate):  # pylint: disable=too-many-locals  # one pacing loop
    """Call each of two ``requests`` in alternate bursts for ``seconds``, the first one
    first, each ``rate`` times a second in ten bursts a second (0: back to back, blocks
    of 100); returns each one's request count and its bursts' CPU seconds (this thread's
    clock: the other threads' CPU is counted for Tracker by the caller)."""
    counts, cpu = [0, 0], [0.0, 0.0]
    thread_time = time.thread_time
    started = time.perf_counter()
    deadline = started + seconds
    chunk = max(1, int(rate / 10)) if rate else 100
    slot_seconds = 1 / 20 if rate else 0.0  # two bursts, one of each, per tenth of a second
    slot = 0
    while True:
        due = started + slot * slot_seconds
        now = time.perf_counter()
        if now >= deadline or due >= deadline:
            return counts, cpu
        if due > now:
            time.sleep(due - now)
        which = slot % 2
        one_request = requests[which]
        before = thread_time()
        for _ in range(chunk):
            one_request()
        cpu[which] += thread_time() - before
        counts[which] += chunk
        slot += 1


def paired_child(seconds, rate, tracker_first):  # pylint: disable=too-many-locals  # one sequence
    """Bare Flask and Flask + Tracker in one process, bursts alternated every 50 ms, so
    both see the same machine at the same moments and the same process layout; prints
    each one's CPU per request and Tracker's added CPU: its bursts' CPU minus bare's, plus
    every other thread's CPU (the writer), the final flush and its share of a maintenance
    pass, as in ``wsgi_child``.  Which app is made first and runs first alternates by
    round (``tracker_first``), so neither position's luck stays with one of them."""
    variants = ("tracker", "bare") if tracker_first else ("bare", "tracker")
    apps = {}
    for variant in variants:
        os.environ["BENCH_VARIANT"] = variant
        apps[variant] = make_app()
    requests = [wsgi_caller(apps[variant].wsgi_app) for variant in variants]
    for _ in range(500):
        for one_request in requests:
            one_request()
    app = apps["tracker"]
    flush, tracking = app.extensions["bench_flush"], app.extensions["bench_tracking"]
    flush(30)
    app.extensions["bench_maintain"]()
    said_before = writer_cost(tracking)
    full_collections = settle_garbage()
    process_started, thread_started = time.process_time(), time.thread_time()
    counts, cpu = alternated(requests, seconds, rate)
    if tracker_first:
        counts, cpu = counts[::-1], cpu[::-1]
    flush_started = time.thread_time()
    flush(60)
    flush_cpu = time.thread_time() - flush_started
    time.sleep(0.05)  # the writer thread's last steps after the flush (no CPU spent here)
    others = (time.process_time() - process_started) - (time.thread_time() - thread_started)
    full_gcs = full_collections_since(full_collections)
    said_after = writer_cost(tracking)
    count = counts[1]
    maintenance_cpu, dashboard_us = charge_maintenance(
        app, tracking, count, rate, said_before, said_after)
    bare_us = cpu[0] / counts[0] * 1e6
    tracker_us = (cpu[1] + flush_cpu + others + maintenance_cpu) / count * 1e6
    print(json.dumps({
        "requests": count, "bare_cpu_us": bare_us, "cpu_us": tracker_us,
        "added_us": tracker_us - bare_us, "others_us": others / count * 1e6,
        "flush_us": flush_cpu / count * 1e6, "maintenance_us": maintenance_cpu / count * 1e6,
        "dashboard_us": dashboard_us, "stored": stored_rows(tracking), "full_gcs": full_gcs,
        "python": sys.version.split()[0]}))


def wsgi_caller(wsgi):
    """One request to ``/hello`` through the WSGI callable, its body read and closed."""
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/hello", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": None,
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }

    def start_response(_status, _headers, _exc_info=None):
        return None

    def one_request():
        body = wsgi(dict(environ), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return one_request


def charge_maintenance(app, tracking, count, rate, said_before, said_after):
    """A maintenance pass's CPU charged to ``count`` rows (the rest of the rows it folds in
    at this rate come synthetic, written unmeasured), and what the dashboard says per
    request over the same rows."""
    pass_rows = count if not rate else max(count, maintenance_pass_rows(
        sys.modules[type(tracking.writer).__module__], rate))
    if pass_rows > count:
        tracking.middleware.queue.extend(synthetic_records(pass_rows - count))
        app.extensions["bench_flush"](120)
    maintenance_started, said_maintenance = time.process_time(), writer_cost(tracking)
    app.extensions["bench_maintain"]()
    maintenance_cpu = (time.process_time() - maintenance_started) * count / pass_rows
    dashboard_us = tracking.stats()["request_path_us"] + 1e6 * (
        (said_after[0] - said_before[0]) / max(said_after[1] - said_before[1], 1)
        + (writer_cost(tracking)[0] - said_maintenance[0]) / pass_rows)
    return maintenance_cpu, dashboard_us


def settle_garbage():
    """Collect all garbage before the measured run, in every variant alike; returns the
    count of full collections so far.  Starting the app and the warm-up leave thousands of
    new long-lived objects, and the full collection they are due (15–18 ms with Tracker's
    imports, under 10 without) otherwise falls into some rounds and not others: 25 µs a
    request in a 6-second round at 100 requests/s.  At steady state tracking leaves next to
    nothing long-lived (52 new objects in the oldest generation over 3,000 requests), so
    its cost is not hidden; each run still counts the full collections in it."""
    gc.collect()
    return gc.get_stats()[2]["collections"]


def full_collections_since(count):
    """Full collections since ``count`` (see :func:`settle_garbage`)."""
    return gc.get_stats()[2]["collections"] - count


def writer_cost(tracking):
    """The writer's CPU seconds so far, as the dashboard counts them, and rows written."""
    time.sleep(0.05)  # the writer thread notes its CPU after it flushed (no CPU spent)
    stats = tracking.stats()
    return stats.get("writer_cpu_seconds", tracking.writer.cpu_seconds), stats["written"]


def stored_rows(tracking):
    """Rows in the store after the run (the full store stays at its cap)."""
    with tracking.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM tracker_requests").scalar()


# --- the driver ----------------------------------------------------------------------


def ensure_venv(install):
    """Create benchmarks/.venv-compare with the pinned comparison packages."""
    if os.path.exists(VENV_PYTHON) and not install:
        missing = subprocess.run([VENV_PYTHON, "-c", "import pyinstrument"], check=False,
                                 capture_output=True).returncode
        if not missing:
            return
    print(f"creating {VENV} and installing into it only: {' '.join(PINS)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", *PINS], check=True)


#: ``tracker@REV`` variants: the folder where that revision of the repo is checked out.
BASELINES = {}


def child_env(variant, data_dir):
    """Environment for a child: the variant, a data folder, and the repo importable (for a
    ``tracker@REV`` variant, that revision's checkout)."""
    return dict(os.environ, BENCH_VARIANT=variant, BENCH_DATA_DIR=data_dir,
                PYTHONPATH=os.pathsep.join((HERE, BASELINES.get(variant, REPO_ROOT))))


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_wsgi(args, variant, state, rate):
    """One WSGI measurement in a fresh process; a ``full`` Tracker starts from a copy of
    ``--store`` (copied before the child starts, so not measured)."""
    with tempfile.TemporaryDirectory() as data_dir:
        if state == "full" and variant.startswith("tracker"):
            shutil.copyfile(args.store, os.path.join(data_dir, "tracker.sqlite3"))
        output = subprocess.run(
            [args.python, __file__, "--child-wsgi", str(args.seconds), str(rate)],
            env=child_env(variant, data_dir), check=True, capture_output=True, text=True,
            timeout=900,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])


def process_cpu_seconds(pids):
    """User and system CPU of ``pids`` so far, all their threads, from ``/proc``."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_pids(master):
    """The gunicorn master and its workers."""
    try:
        with open(f"/proc/{master}/task/{master}/children", encoding="ascii") as children:
            return [master, *map(int, children.read().split())]
    except OSError:
        return [master]


def wrk(port, seconds, connections):
    """Run wrk against /hello; the number of requests it completed and its error count."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
         f"http://127.0.0.1:{port}/hello"],
        check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    requests = errors = 0
    for line in output.splitlines():
        words = line.split()
        if "requests in" in line:
            requests = int(words[0])
        elif line.strip().startswith(("Socket errors", "Non-2xx")):
            errors += sum(int(word.rstrip(",")) for word in words if word.rstrip(",").isdigit())
    return requests, errors


def run_paired(args, state, rate, round_number):
    """One same-process pair (bare Flask and Tracker alternated) in a fresh process;
    Tracker first in odd rounds."""
    with tempfile.TemporaryDirectory() as data_dir:
        if state == "full":
            shutil.copyfile(args.store, os.path.join(data_dir, "tracker.sqlite3"))
        output = subprocess.run(
            [args.python, __file__, "--child-paired", str(args.seconds), str(rate),
             str(round_number % 2)],
            env=child_env("tracker", data_dir), check=True, capture_output=True, text=True,
            timeout=900,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_http(args, variant, state):
    """One HTTP measurement: a fresh ``gunicorn -w 1`` (sync worker) on 127.0.0.1, a
    warm-up, then wrk for ``--seconds``; the server's CPU (master and worker, every
    thread, from /proc) per request completed."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = child_env(variant, data_dir)
        if state == "full" and variant.startswith("tracker"):
            shutil.copyfile(args.store, os.path.join(data_dir, "tracker.sqlite3"))
            # Passes as the writer's policy decides, on a one-second interval: at least
            # as often as in production, so maintenance is not undercounted.
            env["BENCH_MAINTENANCE_INTERVAL"] = "1"
        port = free_port()
        with subprocess.Popen(
            [args.python, "-m", "gunicorn", "-w", "1", "-k", "sync", "-b",
             f"127.0.0.1:{port}", "--log-level", "warning", "bench_tracking_overhead:make_app()"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ) as server:
            try:
                for _ in range(400):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.05)
                wrk(port, 1, args.clients)  # warm-up
                pids = server_pids(server.pid)
                cpu = process_cpu_seconds(pids)
                requests, errors = wrk(port, args.seconds, args.clients)
                cpu = process_cpu_seconds(pids) - cpu
            finally:
                server.terminate()
                server.wait(60)
    return {"rps": requests / args.seconds, "errors": errors,
            "cpu_us": cpu / max(requests, 1) * 1e6}


def rotated(variants, round_number):
    """Variant order for one round, rotated so no variant always runs first."""
    shift = round_number % len(variants)
    return variants[shift:] + variants[:shift]


def main():
    """Measure every variant, interleaved, and print markdown tables of medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=2, help="wrk connections")
    parser.add_argument("--http", action="store_true",
                        help="also measure over HTTP: gunicorn driven by wrk")
    parser.add_argument("--reinstall", action="store_true")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset; diagnostics: tracker-ignored, "
                             "tracker-nowriter")
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure Tracker as of git revision REV (variant tracker@REV)")
    parser.add_argument("--states", default="empty,full",
                        help="empty and/or full: Tracker's store empty, or a copy of --store")
    parser.add_argument("--store", default=os.path.join(HERE, "results", "store-1m.tmp"),
                        help="a store at its cap, made by bench_tracking_store.py --store")
    parser.add_argument("--rates", default="0",
                        help="requests per second in the WSGI loop, 0 for back to back; "
                             "e.g. 100,4000")
    parser.add_argument("--python", default=VENV_PYTHON,
                        help="interpreter of the children (with Flask and SQLAlchemy)")
    parser.add_argument("--paired", action="store_true",
                        help="also bare Flask and Tracker in one process, bursts alternated")
    parser.add_argument("--child-wsgi", nargs=2, type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-paired", nargs=3, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_wsgi is not None:
        wsgi_child(args.child_wsgi[0], args.child_wsgi[1])
        return
    if args.child_paired is not None:
        paired_child(args.child_paired[0], args.child_paired[1], bool(args.child_paired[2]))
        return

    if args.python == VENV_PYTHON:
        ensure_venv(args.reinstall)
    if "full" in args.states.split(",") and not os.path.exists(args.store):
        sys.exit(f"no full store at {args.store}: make one with bench_tracking_store.py "
                 "--rows 1000000 --store ...")
    variants = tuple(variant for variant in args.variants.split(",") if variant)
    with contextlib.ExitStack() as stack:
        if args.baseline:
            variant = f"tracker@{args.baseline}"
            BASELINES[variant] = stack.enter_context(checkout(args.baseline))
            variants += (variant,)
        measure(args, variants)


def wsgi_cases(args, variants):
    """(variant, state, rate) triples: bare once per rate, Tracker's variants per state."""
    cases = []
    for rate in (float(rate) for rate in args.rates.split(",")):
        for variant in variants:
            states = args.states.split(",") if variant.startswith("tracker") else ["empty"]
            cases += [(variant, state, rate) for state in states]
    return cases


def measure(args, variants):
    """Run every case, interleaved round by round, and print the tables."""
    cases = wsgi_cases(args, variants)
    http_cases = list(dict.fromkeys((variant, state) for variant, state, _rate in cases))
    paired_cases = [("paired", state, float(rate)) for rate in args.rates.split(",")
                    for state in args.states.split(",")] if args.paired else []
    wsgi = {case: [] for case in cases + paired_cases}
    http = {case: [] for case in http_cases}
    for round_number in range(args.rounds):
        for case in rotated(cases + paired_cases, round_number):
            result = (run_paired(args, *case[1:], round_number) if case[0] == "paired"
                      else run_wsgi(args, *case))
            wsgi[case].append(result)
            print(f"round {round_number + 1} wsgi {case}: {result}", file=sys.stderr)
        if not args.http:
            continue
        for case in rotated(http_cases, round_number):
            result = run_http(args, *case)
            http[case].append(result)
            print(f"round {round_number + 1} http {case}: {result}", file=sys.stderr)

    if cases:
        print_wsgi(args, cases, wsgi)
    if paired_cases:
        print_paired(args, paired_cases, wsgi)
    if args.http:
        print_http(args, http_cases, http)


def spread(values, digits=1):
    """Median and range of ``values``, e.g. ``+8.1 (+6.0 … +9.9)``."""
    return (f"{statistics.median(values):+.{digits}f} "
            f"({min(values):+.{digits}f} … {max(values):+.{digits}f})")


def print_wsgi(args, cases, wsgi):
    """Per case: CPU per request, and beside bare Flask at the same rate and in the same
    round, the added CPU and the ratio (median and range of the paired rounds); for
    Tracker also what its dashboard said it costs per request."""
    version = next(iter(wsgi.values()))[0]["python"]
    print(f"\nWSGI, {args.rounds} interleaved rounds, {args.seconds:g} s each, "
          f"Python {version}, {os.cpu_count()} CPUs; process CPU of all threads\n")
    print("| variant | store | requests/s | CPU µs/request | added CPU µs (paired) "
          "| × bare (paired) | maintenance µs | dashboard says µs | says ÷ added (paired) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for variant, state, rate in cases:
        runs = wsgi[(variant, state, rate)]
        bare = wsgi[("bare", "empty", rate)]
        added = [run["cpu_us"] - base["cpu_us"] for run, base in zip(runs, bare)]
        ratio = [run["cpu_us"] / base["cpu_us"] for run, base in zip(runs, bare)]
        said = [run["dashboard_us"] for run in runs if "dashboard_us" in run]
        agreement = [run["dashboard_us"] / cost for run, cost in zip(runs, added)
                     if "dashboard_us" in run and cost > 0]
        cells = (
            LABELS.get(variant, variant), state if variant.startswith("tracker") else "",
            f"{rate:,.0f}" if rate else "back to back",
            f"{statistics.median(run['cpu_us'] for run in runs):.1f}",
            "" if variant == "bare" else spread(added),
            "" if variant == "bare" else spread(ratio, 3).replace("+", ""),
            f"{statistics.median(run['maintenance_us'] for run in runs):.2f}" if said else "",
            spread(said).replace("+", "") if said else "",
            spread(agreement, 2).replace("+", "") if agreement else "",
        )
        print("| " + " | ".join(cells) + " |")


def print_paired(args, cases, results):
    """The same-process table: per store and rate, bare Flask's and Tracker's CPU per
    request, Tracker's added CPU (median and range of the rounds, and all rounds' CPU
    together), what of it ran outside the request thread, and the self-report."""
    version = results[cases[0]][0]["python"]
    print(f"\nWSGI, bare Flask and Tracker in one process, bursts alternated every 50 ms, "
          f"{args.rounds} rounds of {args.seconds:g} s, Python {version}; "
          "process CPU of all threads\n")
    print("| store | requests/s | bare CPU µs/request | Tracker CPU µs/request "
          "| added CPU µs (rounds) | all rounds together | of it: writer thread "
          "| final flush | maintenance | dashboard says µs | says ÷ added (rounds) "
          "| full GCs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        runs = results[case]
        added = [run["added_us"] for run in runs]
        together = (sum(run["added_us"] * run["requests"] for run in runs)
                    / sum(run["requests"] for run in runs))
        agreement = [run["dashboard_us"] / run["added_us"] for run in runs
                     if run["added_us"] > 0]
        cells = (
            case[1], f"{case[2]:,.0f}" if case[2] else "back to back",
            f"{statistics.median(run['bare_cpu_us'] for run in runs):.1f}",
            f"{statistics.median(run['cpu_us'] for run in runs):.1f}",
            spread(added), f"{together:+.1f}",
            *(f"{statistics.median(run[key] for run in runs):.2f}"
              for key in ("others_us", "flush_us", "maintenance_us")),
            spread([run["dashboard_us"] for run in runs]).replace("+", ""),
            spread(agreement, 2).replace("+", "") if agreement else "",
            str(sum(run["full_gcs"] for run in runs)),
        )
        print("| " + " | ".join(cells) + " |")


def print_http(args, cases, http):
    """The HTTP table: the server's CPU per request and requests per second, each
    beside bare Flask's in the same round (median and range of the paired rounds)."""
    print(f"\nHTTP: gunicorn -w 1 (sync) on 127.0.0.1, wrk -t1 -c{args.clients}, "
          f"{args.seconds:g} s, server CPU (all processes and threads) from /proc\n")
    print("| variant | store | server CPU µs/request | added CPU µs (paired) "
          "| × bare CPU (paired) | requests/s | × bare requests/s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    bare = http[("bare", "empty")]
    for variant, state in cases:
        runs = http[(variant, state)]
        added = [run["cpu_us"] - base["cpu_us"] for run, base in zip(runs, bare)]
        ratio = [run["cpu_us"] / base["cpu_us"] for run, base in zip(runs, bare)]
        rps = [run["rps"] / base["rps"] for run, base in zip(runs, bare)]
        cells = (
            LABELS.get(variant, variant), state if variant.startswith("tracker") else "",
            f"{statistics.median(run['cpu_us'] for run in runs):.1f}",
            "" if variant == "bare" else spread(added),
            "" if variant == "bare" else spread(ratio, 3).replace("+", ""),
            f"{statistics.median(run['rps'] for run in runs):,.0f}",
            "" if variant == "bare" else spread(rps, 3).replace("+", ""),
            str(sum(run["errors"] for run in runs)),
        )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
