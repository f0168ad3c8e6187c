"""What always-on tracking costs per request: bare Flask, Flask + Tracker's tracking,
flask-profiler and Flask-MonitoringDashboard, side by side on the same one-route app.

    python benchmarks/bench_tracking_overhead.py [--rounds 5] [--seconds 3] [--skip-http]

The comparison packages are not project dependencies: the script creates its own
virtualenv in ``benchmarks/.venv-compare`` (git-ignored) and pip-installs pinned versions
there; nothing is installed globally.  Every measurement runs in a fresh process of that
virtualenv, variants interleaved round by round, and medians are reported.

(a) WSGI: ``app.wsgi_app(environ, start_response)`` called in a loop for ``--seconds``;
    wall µs per request on the request path, and process CPU µs per request including
    background threads (``time.process_time()`` over the loop, the final flush and, for
    Tracker, the roll-up of the measured rows that its writer does once a minute).
(b) HTTP: ``gunicorn -w 1`` (sync worker) on 127.0.0.1 and a load generator in another
    process (raw sockets, ``--clients`` threads, one connection per request since the
    sync worker closes connections); requests per second over ``--seconds``.
"""
import argparse
import contextlib
import functools
import inspect
import json
import os
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
)
VARIANTS = ("bare", "tracker", "flask-profiler", "monitoringdashboard")
LABELS = {
    "bare": "bare Flask 3.1.3",
    "tracker": "Flask + Tracker tracking",
    "flask-profiler": "Flask + flask-profiler 1.8.1",
    "monitoringdashboard": "Flask + Flask-MonitoringDashboard 5.1.0",
}
REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


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
        if variant == "tracker-ignored":  # diagnostic: the wrapper's ignore path only
            app.config["TRACKER_IGNORE"] = ["^/hello"]
        if variant == "tracker-nowriter":  # diagnostic: request path only, records dropped
            app.config["TRACKER_QUEUE_SIZE"] = 1
            app.config["TRACKER_FLUSH_INTERVAL"] = 3600
        tracking = Tracking(app)
        flush = tracking.flush
        if "collect_garbage" in inspect.signature(flush).parameters:
            # A server closes every body, so it never needs the garbage collection that
            # flush() does for test clients; that is not a cost of tracking.
            flush = functools.partial(flush, collect_garbage=False)
        app.extensions["bench_flush"] = flush
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


def wsgi_child(seconds):
    """Call the WSGI app in a loop; print wall and CPU µs per request as JSON."""
    app = make_app()
    wsgi = app.wsgi_app
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

    for _ in range(500):  # warm-up: imports, first connections, caches
        one_request()
    flush = app.extensions.get("bench_flush")
    if flush:
        flush(30)
        app.extensions["bench_maintain"]()  # the warm-up's rows are rolled up unmeasured
    threads_before = threading.active_count()
    count = 0
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    deadline = wall_started + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            one_request()
        count += 100
    wall = time.perf_counter() - wall_started
    if flush:
        flush(60)
        app.extensions["bench_maintain"]()
    for _ in range(1000):  # let other tools' per-request threads finish
        if threading.active_count() <= threads_before:
            break
        time.sleep(0.01)
    cpu = time.process_time() - cpu_started
    print(json.dumps({"requests": count, "wall_us": wall / count * 1e6,
                      "cpu_us": cpu / count * 1e6}))


def load_child(port, seconds, clients):
    """Send requests from ``clients`` threads for ``seconds``; print requests/s as JSON."""
    stop = time.perf_counter() + seconds
    counts, errors = [0] * clients, [0] * clients

    def client(slot):
        while time.perf_counter() < stop:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                    conn.sendall(REQUEST)
                    response = b""
                    while True:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        response += chunk
                if response.startswith(b"HTTP/1.1 200"):
                    counts[slot] += 1
                else:
                    errors[slot] += 1
            except OSError:
                errors[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    print(json.dumps({"rps": sum(counts) / elapsed, "errors": sum(errors)}))


# --- the driver ----------------------------------------------------------------------


def ensure_venv(install):
    """Create benchmarks/.venv-compare with the pinned comparison packages."""
    if os.path.exists(VENV_PYTHON) and not install:
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


def run_wsgi(variant, seconds):
    """One WSGI measurement in a fresh process."""
    with tempfile.TemporaryDirectory() as data_dir:
        output = subprocess.run(
            [VENV_PYTHON, __file__, "--child-wsgi", str(seconds)],
            env=child_env(variant, data_dir), check=True, capture_output=True, text=True,
            timeout=600,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_http(variant, seconds, clients):
    """One HTTP measurement: a fresh gunicorn, a warm-up, then the load generator."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        with subprocess.Popen(
            [VENV_PYTHON, "-m", "gunicorn", "-w", "1", "-k", "sync", "-b",
             f"127.0.0.1:{port}", "--log-level", "warning", "bench_tracking_overhead:make_app()"],
            env=child_env(variant, data_dir), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as server:
            try:
                for _ in range(200):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.05)
                load = [VENV_PYTHON, __file__, "--child-load", str(port)]
                subprocess.run([*load, "1", str(clients)], check=True, capture_output=True,
                               timeout=600)  # warm-up
                output = subprocess.run(
                    [*load, str(seconds), str(clients)], check=True, capture_output=True,
                    text=True, timeout=600,
                ).stdout
            finally:
                server.terminate()
                server.wait(60)
    return json.loads(output)


def rotated(variants, round_number):
    """Variant order for one round, rotated so no variant always runs first."""
    shift = round_number % len(variants)
    return variants[shift:] + variants[:shift]


def main():
    """Measure every variant, interleaved, and print markdown tables of medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--reinstall", action="store_true")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset; diagnostics: tracker-ignored, "
                             "tracker-nowriter")
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure Tracker as of git revision REV (variant tracker@REV)")
    parser.add_argument("--child-wsgi", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-load", nargs=3, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_wsgi is not None:
        wsgi_child(args.child_wsgi)
        return
    if args.child_load is not None:
        load_child(int(args.child_load[0]), args.child_load[1], int(args.child_load[2]))
        return

    ensure_venv(args.reinstall)
    variants = tuple(args.variants.split(","))
    with contextlib.ExitStack() as stack:
        if args.baseline:
            variant = f"tracker@{args.baseline}"
            BASELINES[variant] = stack.enter_context(checkout(args.baseline))
            variants += (variant,)
        measure(args, variants)


def measure(args, variants):
    """Run every variant, interleaved round by round, and print the tables."""
    wsgi = {variant: [] for variant in variants}
    http = {variant: [] for variant in variants}
    for round_number in range(args.rounds):
        for variant in rotated(variants, round_number):
            result = run_wsgi(variant, args.seconds)
            wsgi[variant].append(result)
            print(f"round {round_number + 1} wsgi {variant}: {result}", file=sys.stderr)
        if args.skip_http:
            continue
        for variant in rotated(variants, round_number):
            result = run_http(variant, args.seconds, args.clients)
            http[variant].append(result)
            print(f"round {round_number + 1} http {variant}: {result}", file=sys.stderr)

    print_tables(args, variants, wsgi, http)


def print_tables(args, variants, wsgi, http):
    """Markdown tables of the medians, with each variant compared to bare Flask."""
    print(f"\nMedians of {args.rounds} interleaved rounds, {args.seconds:g} s each, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    bare_wall = statistics.median(r["wall_us"] for r in wsgi["bare"])
    bare_cpu = statistics.median(r["cpu_us"] for r in wsgi["bare"])
    print("| variant | wall µs/request | CPU µs/request (all threads) | added CPU µs |")
    print("|---|---|---|---|")
    for variant in variants:
        wall = statistics.median(r["wall_us"] for r in wsgi[variant])
        cpu = statistics.median(r["cpu_us"] for r in wsgi[variant])
        added = "" if variant == "bare" else f"{cpu - bare_cpu:+.1f}"
        print(f"| {LABELS.get(variant, variant)} | {wall:.1f} ({wall - bare_wall:+.1f}) "
              f"| {cpu:.1f} | {added} |")
    if args.skip_http:
        return
    bare_rps = statistics.median(r["rps"] for r in http["bare"])
    print(f"\n| variant | requests/s (gunicorn -w 1, {args.clients} client threads) "
          "| × bare | errors |")
    print("|---|---|---|---|")
    for variant in variants:
        rps = statistics.median(r["rps"] for r in http[variant])
        errors = sum(r["errors"] for r in http[variant])
        print(f"| {LABELS.get(variant, variant)} | {rps:,.0f} | {rps / bare_rps:.3f} "
              f"| {errors} |")


if __name__ == "__main__":
    main()
