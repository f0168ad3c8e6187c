"""Saved profiles in the browser: list, one profile (table, flame graph, callers), compare."""
import functools
import json
import os
import urllib.parse

from flask import (abort, current_app, flash, jsonify, redirect, render_template, request,
                   send_file, url_for)

from ..profiles import (analysis, errors, files, frames, index, listing, paths, routes, sampled,
                         unprofiled, wrappers)
from ..profiles.stats import cached_stats, merge
from . import args, charts
from . import profile_display as display
from .blueprint import bp

LIST_SORTS = listing.SORT_KEYS
#: The table's sort keys, named as pstats names them in "Ordered by: ...".
TABLE_SORTS = {"ncalls": "call count", "tottime": "internal time",
               "tottime_percall": "internal time per call", "cumtime": "cumulative time",
               "cumtime_percall": "cumulative time per call", "label": "function name"}
TABLE_LIMITS = ("10", "30", "100", "500", "all")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ROUTE_PREFIX = "route:"
#: The icicle's width in SVG units: the page draws it beside the callers/callees panel.
FLAME_WIDTH = 1000
KIND_NAMES = {frames.OWN: "your code", frames.LIBRARY: "library", frames.STDLIB: "standard library",
              frames.BUILTIN: "built-in", "root": "all"}
#: Routes the list's summary shows before "all routes" is asked for.
ROUTES_SHOWN = 10


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


def route_summaries(filters):
    """Summarise the routes the list's filters keep (call it after the listing), and link bases."""
    summaries = routes.route_summaries(profile_folder(), method=filters["method"],
                                       path_contains=filters["path_contains"], listed=True)
    return summaries, url_for("dashboard.route_profile"), url_for("dashboard.compare")


def with_actions(summary, merge_url, compare_url):
    """Add a route's links: merge all, compare the last two, compare slowest with fastest."""
    quote = urllib.parse.quote
    method, path = summary["method"], quote(summary["path"], safe="")
    previous, newest = summary["previous_id"], summary["newest_id"]
    fastest, slowest = summary["fastest_id"], summary["slowest_id"]
    return dict(
        summary,
        merge_url=f"{merge_url}?method={method}&path={path}" if summary["count"] else None,
        compare_last_two_url=(f"{compare_url}?a={quote(previous, safe='')}"
                              f"&b={quote(newest, safe='')}" if previous else None),
        compare_extremes_url=(f"{compare_url}?a={quote(fastest, safe='')}"
                              f"&b={quote(slowest, safe='')}" if slowest else None),
    )


@bp.route("/profiles/")
def profiles():
    """List saved profiles, sortable by every column and filtered by path, method, status, time."""
    filters = list_filters()
    page = list_page(filters)
    summaries, merge_url, compare_url = route_summaries(filters)
    show_all = args.choice("routes", ("top", "all"), "top") == "all"
    # Past the top routes, those with requests served unprofiled are still shown: nothing hidden.
    shown = summaries if show_all else [
        summary for number, summary in enumerate(summaries)
        if number < ROUTES_SHOWN or summary["unprofiled"]]
    return render_template(
        "dashboard/profiles.html", page=page, filters=filters, methods=METHODS, args=request.args,
        route_rows=[with_actions(summary, merge_url, compare_url) for summary in shown],
        route_total=len(summaries), routes_shown=ROUTES_SHOWN)


@bp.route("/api/profiles")
def profiles_json():
    """Return what the profiles list shows, as JSON: a page of profiles, every route, and the
    requests served unprofiled."""
    filters = list_filters()
    page = list_page(filters)
    summaries, merge_url, compare_url = route_summaries(filters)
    counts = unprofiled.unprofiled_counts(profile_folder())
    return jsonify(items=page.items, total=page.total, page=page.page, pages=page.pages,
                   routes=[with_actions(summary, merge_url, compare_url)
                           for summary in summaries],
                   unprofiled=[{"method": method, "path": path, "count": count}
                               for (method, path), count in sorted(counts.items())],
                   unprofiled_total=sum(counts.values()))


def load_profile(reference):
    """Load one profile by id, or every profile of a route by ``route:METHOD:/path``.

    Tracker's own wrapper frames are left out here, for every view of it.
    """
    folder = profile_folder()
    if reference.startswith(ROUTE_PREFIX):
        method, _, path = reference[len(ROUTE_PREFIX):].partition(":")
        records = listing.route_records(folder, method, path)
        if not records:
            raise errors.ProfileNotFound(f"no saved profiles of {method} {path}")
        # The two engines' times measure different things: the newest profile's engine wins.
        engine = records[-1].get("engine", sampled.CPROFILE)
        ids = [item["id"] for item in records if item.get("engine", sampled.CPROFILE) == engine]
        stats = merge(listing.profile_path(folder, profile_id) for profile_id in ids)
        record = {"id": None, "method": method.upper(), "path": path, "merged": len(ids),
                  "engine": engine, "other_engine": len(records) - len(ids)}
    else:
        stats = cached_stats(listing.profile_path(folder, reference))
        record = dict(listing.find_record(folder, reference), merged=0)
    return wrappers.without_wrappers(stats), record


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


#: The table columns a merged view also shows per request.
MEAN_FIELDS = ("calls", "tottime", "cumtime")


def with_means(table, requests):
    """Add per-request means (each sum divided by the number of merged profiles) to a table."""
    header = table["header"]
    return dict(
        table,
        rows=[dict(row, **{f"{field}_mean": row[field] / requests for field in MEAN_FIELDS})
              for row in table["rows"]],
        header=dict(header, requests=requests, calls_mean=header["calls"] / requests,
                    total_time_mean=header["total_time"] / requests),
    )


def profile_page(reference):
    """Render one profile (or a merged route): header, table, flame graph and a function."""
    stats, record = load_profile(reference)
    return render_profile(stats, record, reference)


def classifier():
    """Sort this app's files into own code, libraries and the standard library."""
    return page_classifier(current_app.root_path)


@functools.lru_cache(maxsize=8)
def page_classifier(root_path):
    """One classifier per app folder: it caches each file's kind and short name."""
    return frames.Classifier([root_path])


def render_profile(stats, record, reference):
    """Render the profile page of ``stats`` (either engine) with its index ``record``."""
    options = table_options()
    own_only = args.choice("own", ("0", "1"), "0") == "1"
    table = stats_table(stats, options)
    if record["merged"]:
        table = with_means(table, record["merged"])
    sorter = classifier()
    total = table["header"]["total_time"]
    table["rows"] = [display.decorate_row(row, sorter, total) for row in table["rows"]]
    tree = paths.request_tree(stats, record)
    if own_only:
        tree = frames.fold_to_own(tree, display.is_own_node(sorter))
    nodes, parent_of = display.parents(tree)
    rects = display.decorate_rects(
        charts.flame_rects(charts.flame_layout(tree, FLAME_WIDTH, min_width=0.5)),
        nodes, sorter, tree["root"]["time"])
    selected = None
    if request.args.get("fn"):
        try:
            selected = function_edges(stats, request.args["fn"], sorter, total)
        except analysis.UnknownFunction as error:
            abort(404, str(error))
    return render_template(
        "dashboard/merged.html" if record["merged"] else "dashboard/profile.html",
        record=record, reference=reference, table=table,
        database=database(record), sampled=sampled.is_sampled(stats),
        interval=getattr(stats, "interval", None), total=total,
        hottest=display.hottest(stats, sorter, total), own_only=own_only,
        options=options, sort_name=TABLE_SORTS[options["sort"]], tree=tree, rects=rects,
        parent_of=parent_of, flame_height=charts.flame_height(rects), flame_width=FLAME_WIDTH,
        selected=selected, limits=TABLE_LIMITS, args=request.args, fmt_ms=frames.format_ms,
        fmt_pct=frames.format_percent, kind_names=KIND_NAMES, char_width=charts.CHAR_WIDTH)


def function_edges(stats, func_id, sorter, total):
    """A function's callers and callees, each with its kind, short name and share of the total."""
    edges = analysis.callers_callees(stats, func_id)
    return {
        "function": display.decorate_row(edges["function"], sorter, total),
        "callers": [display.decorate_row(row, sorter, total) for row in edges["callers"]],
        "callees": [display.decorate_row(row, sorter, total) for row in edges["callees"]],
        "total": total,
    }


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
    return profile_page(route_reference())


def route_reference():
    """Read a method and path from the query string as a ``route:METHOD:/path`` reference."""
    method = request.args.get("method", "GET").upper()
    path = request.args.get("path", "")
    if method not in METHODS or not path.startswith("/"):
        abort(400, "Give a method and a path starting with /.")
    return f"{ROUTE_PREFIX}{method}:{path}"


@bp.route("/api/profiles/<profile_id>")
def profile_json(profile_id):
    """Return one profile's header, table, flame tree, queries and findings as JSON."""
    stats, record = load_profile(profile_id)
    table = stats_table(stats, table_options())
    if record["merged"]:
        table = with_means(table, record["merged"])
    sql = database(record)
    record = {key: value for key, value in record.items() if key != "sql"}
    return jsonify(record=record, table=table, flame=paths.request_tree(stats, record),
                   queries=sql["queries"], findings=sql["findings"])


@bp.route("/api/profiles/route")
def route_profile_json():
    """Return every saved profile of one route added together, with per-request means, as JSON."""
    return profile_json(route_reference())


@bp.route("/api/profiles/<profile_id>/functions/<func_id>")
def function_json(profile_id, func_id):
    """Return one function's callers and callees with the time of each edge, as JSON."""
    stats, _record = load_profile(profile_id)
    try:
        return jsonify(function_edges(stats, func_id, classifier(),
                                      analysis.header(stats)["total_time"]))
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
        body = "\n".join(paths.collapsed_stacks(stats)) + "\n"
        mimetype, name = "text/plain; charset=utf-8", f"{stem}.collapsed.txt"
    elif export_format == "speedscope":
        body = json.dumps(paths.speedscope(stats, stem))
        mimetype, name = "application/json", f"{stem}.speedscope.json"
    else:
        abort(404, "Export formats are collapsed and speedscope.")
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers.set("Content-Disposition", "attachment", filename=name)
    return response


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
