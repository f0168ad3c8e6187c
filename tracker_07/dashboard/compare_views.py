"""Compare two saved profiles (or merged routes) in the browser and as JSON.

Given one profile only, the other side is chosen: its route's previous
profile, else the next one (:func:`tracker_07.profiles.routes.compare_pair`).
"""
import urllib.parse

from flask import abort, jsonify, redirect, render_template, request, url_for

from ..profiles import analysis, listing, routes, sampled
from . import args
from . import profile_display as display
from .blueprint import bp
from .profile_views import ROUTE_PREFIX, classifier, load_profile, profile_folder


def comparison(before, after, key, limit):
    """Diff two profiles (or merged routes): the result, both records and both engines."""
    before_stats, before_record = load_profile(before)
    after_stats, after_record = load_profile(after)
    result = analysis.diff(before_stats, after_stats, key=key)
    result["rows"] = result["rows"][:limit]
    engines = (sampled.engine_of(before_stats), sampled.engine_of(after_stats))
    return result, (before_record, after_record), engines


def fill_missing_side():
    """Redirect a compare given one profile only to both sides (None when that is not wanted)."""
    before, after = request.args.get("a", ""), request.args.get("b", "")
    alone = before or after
    if bool(before) == bool(after) or alone.startswith(ROUTE_PREFIX):
        return None
    pair = routes.compare_pair(profile_folder(), alone)
    if pair is None:
        return None
    params = dict(request.args.to_dict(), a=pair[0], b=pair[1])
    return redirect(f"{url_for(request.endpoint)}?{urllib.parse.urlencode(params)}")


def compare_arguments():
    """Read compare's two sides, key and limit from the query string."""
    return (request.args.get("a", ""), request.args.get("b", ""),
            args.choice("key", analysis.DIFF_KEYS, "tottime"),
            args.number("limit", 50, low=1, high=5000))


@bp.route("/profiles/compare")
def compare():
    """Compare two profiles (or two merged routes): before, after and the difference.

    Given one profile only (``?a=<id>``, the profile page's "Compare with..."),
    the other side is its route's previous profile, else the next one.
    """
    filled = fill_missing_side()
    if filled is not None:
        return filled
    before, after, key, limit = compare_arguments()
    result = records = engines = None
    if before and after:
        result, records, engines = comparison(before, after, key, limit)
        sorter = classifier()
        result["rows"] = [dict(row, **display.describe(sorter, *display.split_label(row["label"])))
                          for row in result["rows"]]
    recent = listing.list_profiles(profile_folder(), per_page=200).items
    route_choices = sorted({(item["method"], item["path"]) for item in recent if item["path"]})
    return render_template("dashboard/compare.html", result=result, records=records,
                           engines=engines, before=before, after=after, key=key, limit=limit,
                           recent=recent, routes=route_choices, route_prefix=ROUTE_PREFIX)


@bp.route("/api/profiles/compare")
def compare_json():
    """Return the comparison of two profiles (``a`` before, ``b`` after) as JSON."""
    filled = fill_missing_side()
    if filled is not None:
        return filled
    before, after, key, limit = compare_arguments()
    if not (before and after):
        abort(400, "Give two profiles: a (before) and b (after), ids or route:METHOD:/path.")
    result, records, engines = comparison(before, after, key, limit)
    records = [{name: value for name, value in record.items() if name != "sql"}
               for record in records]
    return jsonify(before=dict(records[0], engine=engines[0]),
                   after=dict(records[1], engine=engines[1]), **result)
