"""Endpoint timings in the browser: per-endpoint statistics, charts and their JSON."""
import collections
import dataclasses
import datetime
import time

from flask import abort, current_app, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from ..profiles import listing
from ..tracking import reads
from ..tracking.cli import EXTENSION_KEY
from ..tracking.filters import Filters
from ..tracking.store import BUCKET_ERROR, first_line
from . import args, charts
from .blueprint import bp, error_response

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
SERIES_BUCKETS = 60


def tracking():
    """Return the app's tracking extension, or None when tracking is off."""
    return current_app.extensions.get(EXTENSION_KEY)


def _moment(name):
    """Read a ``datetime-local`` value (local time) as epoch seconds."""
    value = request.args.get(name, "").strip()
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        abort(400, f"{name} must be a date and time like 2026-11-21T09:30; got {value[:40]!r}.")


def selection():
    """Read the range name and the ``Filters`` from the query string; bad values are 400s."""
    window = args.choice("range", (*RANGES, "custom"), "1h")
    if window == "custom":
        since, until = _moment("since"), _moment("until")
    else:
        until = time.time() + 1
        since = until - RANGES[window]
    try:
        chosen = Filters(endpoint=args.text("endpoint"), method=args.text("method"),
                         status=args.text("status"), since=since, until=until)
    except ValueError as error:
        abort(400, str(error))
    return window, chosen


#: How long a dashboard read waits for the writer to store what is queued.
WRITE_WAIT_SECONDS = 0.5
#: With this many rows or more past the roll-up mark (the writer rolls up every minute, or
#: every few at low rates), a read asks for a roll-up first: the page reads each such row
#: raw, some 2-3 µs (30,000: +40-70 ms), while a roll-up merges the writer's counted
#: groups: 15-25 ms on SQLite however many rows they hold, some 5-10 µs a group on
#: PostgreSQL (30,000 rows over five minutes, 3,800 groups: about 40 ms).  The two cost
#: about the same from 15,000 rows on PostgreSQL (benchmarks/README_tracking.md).
ROLL_UP_BEFORE_READING = 10_000
ROLL_UP_WAIT_SECONDS = 2.0


def read_store(chosen):
    """Query the store for the summary, the charts' data and the filter choices.

    At low rates the writer lets rows wait a few seconds to write them together; the
    page asks for them now, so the request a developer just made is on it.  Many rows
    not rolled up yet are rolled up first.
    """
    extension = tracking()
    extension.flush(timeout=WRITE_WAIT_SECONDS, collect_garbage=False)
    with extension.engine.connect() as conn:
        behind = reads.rows_behind(conn)
    if behind >= ROLL_UP_BEFORE_READING:
        extension.roll_up_now(timeout=ROLL_UP_WAIT_SECONDS)
    with extension.engine.connect() as conn:
        summary, histogram = reads.summary_and_histogram(
            conn, chosen, sort=args.choice("sort", reads.SUMMARY_SORT_KEYS, "count"),
            descending=args.choice("order", ("asc", "desc"), "desc") == "desc")
        return {
            "summary": summary,
            "series": reads.time_series(conn, chosen, buckets=SERIES_BUCKETS),
            "histogram": histogram,
            "choices": reads.endpoints(conn),
            "dropped_in_store": reads.dropped_count(conn),
        }


def profiles_by_endpoint():
    """Count saved profiles per (URL rule, method) so endpoints can link to them."""
    folder = current_app.config["PROFILER_DIR"]
    if not folder:
        return {}
    adapter = current_app.url_map.bind("localhost")
    records = listing.catalog_records(folder)
    per_path = collections.Counter((record["method"], record["path"]) for record in records)
    counts = collections.Counter()
    for (method, path), saved in per_path.items():
        try:
            rule, _arguments = adapter.match(path or "/", method=method, return_rule=True)
        except HTTPException:  # no rule: a 404, a 405 or a redirect
            continue
        counts[(rule.rule, method)] += saved
    return counts


@bp.route("/")
def index():
    """Show per-endpoint counts, percentiles and errors, with charts, for a time range."""
    extension = tracking()
    if extension is None:
        return render_template("dashboard/endpoints_off.html")
    window, chosen = selection()
    data = read_store(chosen)
    return render_template(
        "dashboard/endpoints.html", window=window, chosen=chosen, data=data,
        stats=extension.stats(),
        time_chart=charts.time_chart(data["series"]),
        histogram=charts.histogram_chart(data["histogram"]),
        profile_counts=profiles_by_endpoint(), bucket_error=BUCKET_ERROR, args=request.args,
        sort=request.args.get("sort", "count"), descending=request.args.get("order") != "asc")


@bp.route("/api/endpoints")
def endpoints_json():
    """Return what the endpoints page shows, as JSON."""
    extension = tracking()
    if extension is None:
        abort(404, "Endpoint tracking is off (TRACKER_ENABLED).")
    window, chosen = selection()
    return jsonify(selection={"range": window, **dataclasses.asdict(chosen)},
                   tracker=extension.stats(), **read_store(chosen))


@bp.errorhandler(SQLAlchemyError)
def store_unavailable(error):
    """Answer a store that is down with a 503 that says why and what was lost, not a 500."""
    reason = first_line(error)
    current_app.logger.warning("Tracker store unavailable: %s", reason)
    extension = tracking()
    stats = extension.stats() if extension is not None else {}
    message = ("The tracking store cannot be read right now; requests are still being served "
               "and records are queued or counted as dropped.")
    return error_response("Store unavailable", message, 503, reason=reason,
                          dropped=stats.get("dropped"), queued=stats.get("queued"))
