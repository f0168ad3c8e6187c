"""The dashboard blueprint, its access rules and what every page's template needs."""
import datetime

from flask import Blueprint, abort, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from ..profiles.errors import CorruptProfile, NotAFolder, ProfileNotFound
from ..tracking.cli import EXTENSION_KEY as TRACKING_KEY
from . import security

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static")
bp.before_request(security.check_access)
bp.after_request(security.add_security_headers)


@bp.app_template_filter("ms")
def format_ms(value):
    """Format milliseconds for a table cell (``-`` when unknown)."""
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


@bp.app_template_filter("seconds")
def format_seconds(value):
    """Format seconds as pstats does, with three decimals."""
    return "-" if value is None else f"{value:.3f}"


@bp.app_template_filter("datetime")
def format_datetime(epoch):
    """Format an epoch time as local date and time to the second."""
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


@bp.context_processor
def page_globals():
    """Give every dashboard template the CSRF token and the state of profiling."""
    config = current_app.config
    return {
        "csrf_token": security.csrf_token,
        "csrf_field": security.CSRF_FIELD,
        "profiles_saved": bool(config["PROFILER_DIR"]),
        "profiling": config["PROFILER_ENABLED"],
        "tracking_on": TRACKING_KEY in current_app.extensions,
        "app_root": request.script_root + "/",
    }


def is_api_request():
    """Tell whether the request is for one of the JSON routes under ``<prefix>/api/``."""
    return request.path.startswith(current_app.config["DASHBOARD_PREFIX"] + "/api/")


def error_response(title, message, status, **details):
    """Answer an error as JSON (status, message) to the ``/api/`` routes, as a page otherwise."""
    if is_api_request():
        return jsonify(status=status, message=message, **details), status
    return render_template("dashboard/error.html", title=title, message=message,
                           details=details), status


@bp.route("/api/<path:_unknown>")
def unknown_api_route(_unknown):
    """An unknown JSON route is a JSON 404, not the host app's HTML page."""
    abort(404, "No such API route; see the README for the dashboard's JSON routes.")


@bp.errorhandler(HTTPException)
def http_error(error):
    """Every HTTP error of the dashboard: JSON under ``/api/``, the dashboard's page elsewhere."""
    response = error_response(error.name, error.description, error.code)
    if error.code == 401:  # the browser asks for the password on this header
        response = (response[0], response[1], {"WWW-Authenticate": security.BASIC_CHALLENGE})
    return response


@bp.errorhandler(ProfileNotFound)
def profile_not_found(error):
    """Answer a bad or unknown profile id with a 404 that names the id (never a server path)."""
    return error_response("Profile not found", str(error), 404)


@bp.errorhandler(CorruptProfile)
def corrupt_profile(error):
    """Answer an unreadable ``.prof`` file with a page that names the problem, not a 500."""
    return error_response("This profile cannot be read", str(error), 422)


@bp.errorhandler(NotAFolder)
def not_a_folder(error):
    """Answer a PROFILER_DIR that names a file with a 503 that says so, not a 500."""
    current_app.logger.warning("PROFILER_DIR %s is not a folder", error.folder)
    return error_response("No profile folder", str(error), 503)
