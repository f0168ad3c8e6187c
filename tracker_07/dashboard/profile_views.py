"""Saved profiles in the browser: list, one profile (table, flame graph, callers), compare."""
import json
import os

from flask import (abort, current_app, flash, jsonify, redirect, render_template, request,
                   send_file, url_for)

from ..profiles import analysis, errors, files, index, listing, unprofiled
from ..profiles.stats import cached_stats, merge
from . import args, charts
from .blueprint import bp

LIST_SORTS = listing.SORT_KEYS
#: The table's sort keys, named as pstats names them in "Ordered by: ...".
TABLE_SORTS = {"ncalls": "call count", "tottime": "internal time",
               "tottime_percall": "internal time per call", "cumtime": "cumulative time",
               "cumtime_percall": "cumulative time per call", "label": "function name"}
TABLE_LIMITS = ("10", "30", "100", "500", "all")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ROUTE_PREFIX = "route:"


def profile_folder():
    """Return the profile folder, or show why there is none."""
    folder = current_app.config["PROFILER_DIR"]
    if not folder:
        abort(404, "Profiles are not saved by this app (PROFILER_DIR is empty): set PROFILER_DIR "
                   "to a folder, or leave it unset for the instance folder's profiles/.")
    return folder


def list_filters():
    """Read the list filters from the query string."""
    method = request.args.get("method", "").upper() or None
    if method is not None and method not in METHODS:
        abort(400, f"method must be one of: {', '.join(METHODS)}.")
    return {
        "path_contains": args.text("path"),
        "method": method,
        "status": args.number("status", low=100, high=599),
        "min_ms": args.number("min_ms", low=0, kind=float),
    }


def list_page(filters):
    """Return the page of the profiles list that the query string asks for."""
    return listing.list_profiles(
        profile_folder(), sort=args.choice("sort", LIST_SORTS, "time"),
        descending=args.choice("order", ("asc", "desc"), "desc") == "desc",
        page=args.number("page", 1, low=1), per_page=args.number("per_page", 50, low=1, high=500),
        **filters)


@bp.route("/profiles/")
def profiles():
    """List saved profiles, sortable by every column and filtered by path, method, status, time."""
    filters = list_filters()
    page = list_page(filters)
    routes = sorted({(item["method"], item["path"]) for item in page.items if item["path"]})
    return render_template("dashboard/profiles.html", page=page, filters=filters,
                           methods=METHODS, routes=routes, args=request.args)


@bp.route("/api/profiles")
def profiles_json():
    """Return what the profiles list shows, as JSON, with the requests served unprofiled."""
    page = list_page(list_filters())
    counts = unprofiled.unprofiled_counts(profile_folder())
    return jsonify(items=page.items, total=page.total, page=page.page, pages=page.pages,
                   unprofiled=[{"method": method, "path": path, "count": count}
                               for (method, path), count in sorted(counts.items())],
                   unprofiled_total=sum(counts.values()))


def load_profile(reference):
    """Load one profile by id, or every profile of a route by ``route:METHOD:/path``."""
    folder = profile_folder()
    if reference.startswith(ROUTE_PREFIX):
        method, _, path = reference[len(ROUTE_PREFIX):].partition(":")
        ids = listing.route_profiles(folder, method, path)
        if not ids:
            raise errors.ProfileNotFound(f"no saved profiles of {method} {path}")
        stats = merge(listing.profile_path(folder, profile_id) for profile_id in ids)
        return stats, {"id": None, "method": method.upper(), "path": path, "merged": len(ids)}
    stats = cached_stats(listing.profile_path(folder, reference))
    return stats, dict(listing.find_record(folder, reference), merged=0)


def table_options():
    """Read the pstats table's sort, order, restriction and text filter from the query string."""
    limit = args.choice("limit", TABLE_LIMITS, "30")
    return {
        "sort": args.choice("sort", TABLE_SORTS, "tottime"),
        "descending": args.choice("order", ("asc", "desc"), "desc") == "desc",
        "limit": None if limit == "all" else int(limit),
        "text": args.text("filter"),
    }


def stats_table(stats, options):
    """Build the pstats table the options ask for (``ncalls`` sorts by the call count)."""
    return analysis.table(stats, sort="calls" if options["sort"] == "ncalls" else options["sort"],
                          descending=options["descending"], limit=options["limit"],
                          text=options["text"])


def profile_page(reference):
    """Render one profile (or a merged route): header, table, flame graph and a function."""
    stats, record = load_profile(reference)
    options = table_options()
    table = stats_table(stats, options)
    tree = analysis.flame_tree(stats)
    rects = charts.flame_rects(charts.flame_layout(tree, charts.FLAME_WIDTH, min_width=0.5))
    selected = None
    if request.args.get("fn"):
        try:
            selected = analysis.callers_callees(stats, request.args["fn"])
        except analysis.UnknownFunction as error:
            abort(404, str(error))
    return render_template(
        "dashboard/profile.html", record=record, reference=reference, table=table,
        database=database(record),
        options=options, sort_name=TABLE_SORTS[options["sort"]], tree=tree, rects=rects,
        flame_height=charts.flame_height(rects), flame_width=charts.FLAME_WIDTH,
        selected=selected, limits=TABLE_LIMITS, args=request.args)


def database(record):
    """A profile's ``queries`` and ``findings`` (None and [] when none were captured)."""
    sql = record.get("sql")
    if not isinstance(sql, dict) or not isinstance(sql.get("queries"), dict):
        return {"queries": None, "findings": []}
    return {"queries": sql["queries"], "findings": sql.get("findings") or []}


@bp.route("/profiles/<profile_id>")
def profile(profile_id):
    """Show one saved profile."""
    return profile_page(profile_id)


@bp.route("/profiles/route")
def route_profile():
    """Show every saved profile of one route added together."""
    method = request.args.get("method", "GET").upper()
    path = request.args.get("path", "")
    if method not in METHODS or not path.startswith("/"):
        abort(400, "Give a method and a path starting with /.")
    return profile_page(f"{ROUTE_PREFIX}{method}:{path}")


@bp.route("/api/profiles/<profile_id>")
def profile_json(profile_id):
    """Return one profile's header, table, flame tree, queries and findings as JSON."""
    stats, record = load_profile(profile_id)
    table = stats_table(stats, table_options())
    sql = database(record)
    record = {key: value for key, value in record.items() if key != "sql"}
    return jsonify(record=record, table=table, flame=analysis.flame_tree(stats),
                   queries=sql["queries"], findings=sql["findings"])


@bp.route("/api/profiles/<profile_id>/functions/<func_id>")
def function_json(profile_id, func_id):
    """Return one function's callers and callees with the time of each edge, as JSON."""
    stats, _record = load_profile(profile_id)
    try:
        return jsonify(analysis.callers_callees(stats, func_id))
    except analysis.UnknownFunction as error:
        abort(404, str(error))


@bp.route("/profiles/<profile_id>/download")
def download(profile_id):
    """Send the ``.prof`` file itself, for snakeviz, gprof2dot or pstats."""
    path = listing.profile_path(profile_folder(), profile_id)
    return send_file(path, mimetype="application/octet-stream", as_attachment=True,
                     download_name=os.path.basename(path))


@bp.route("/profiles/<profile_id>/export/<export_format>")
def export(profile_id, export_format):
    """Send one profile as collapsed stacks (flamegraph.pl) or speedscope JSON."""
    stats, _record = load_profile(profile_id)
    stem = profile_id
    for suffix in (files.PROFILE_SUFFIX, files.SAMPLED_SUFFIX):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    if export_format == "collapsed":
        body = "\n".join(analysis.collapsed_stacks(stats)) + "\n"
        mimetype, name = "text/plain; charset=utf-8", f"{stem}.collapsed.txt"
    elif export_format == "speedscope":
        body = json.dumps(analysis.speedscope(stats, stem))
        mimetype, name = "application/json", f"{stem}.speedscope.json"
    else:
        abort(404, "Export formats are collapsed and speedscope.")
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers.set("Content-Disposition", "attachment", filename=name)
    return response


@bp.route("/profiles/compare")
def compare():
    """Compare two profiles (or two merged routes): before, after and the difference."""
    before, after = request.args.get("a", ""), request.args.get("b", "")
    key = args.choice("key", analysis.DIFF_KEYS, "tottime")
    limit = args.number("limit", 50, low=1, high=5000)
    result = records = None
    if before and after:
        before_stats, before_record = load_profile(before)
        after_stats, after_record = load_profile(after)
        result = analysis.diff(before_stats, after_stats, key=key)
        result["rows"] = result["rows"][:limit]
        records = (before_record, after_record)
    recent = listing.list_profiles(profile_folder(), per_page=200).items
    routes = sorted({(item["method"], item["path"]) for item in recent if item["path"]})
    return render_template("dashboard/compare.html", result=result, records=records,
                           before=before, after=after, key=key, limit=limit, recent=recent,
                           routes=routes, route_prefix=ROUTE_PREFIX)


@bp.route("/profiles/prune", methods=["POST"])
def prune():
    """Delete saved profiles beyond a count or older than some days (POST with CSRF)."""
    keep = _form_number("keep", listing.MAX_KEEP)
    days = _form_number("older_than_days", listing.MAX_AGE_DAYS)
    if keep is None and days is None:
        flash("Give a number of profiles to keep, an age in days, or both.", "error")
    else:
        removed = listing.prune(profile_folder(), keep=keep, older_than_days=days)
        flash(f"Removed {len(removed)} profile(s).", "info")
    return redirect(url_for("dashboard.profiles"))


@bp.route("/profiles/<profile_id>/delete", methods=["POST"])
def delete(profile_id):
    """Delete one saved profile (POST with CSRF)."""
    folder = profile_folder()
    os.remove(listing.profile_path(folder, profile_id))
    index.rewrite_index(folder)
    flash(f"Deleted {profile_id}.", "info")
    return redirect(url_for("dashboard.profiles"))


def _form_number(name, high):
    """Read a whole number from 0 to ``high`` from the posted form (empty means not given)."""
    value = request.form.get(name, "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 12 and int(value) <= high):
        abort(400, f"{name} must be a whole number from 0 to {high}.")
    return int(value)
