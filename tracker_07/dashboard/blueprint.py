"""The dashboard blueprint, its access rules and what every page's template needs."""
import datetime

from flask import Blueprint, current_app, jsonify, render_template, request

from ..profiles.errors import CorruptProfile, NotAFolder, ProfileNotFound
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
    return {
        "csrf_token": security.csrf_token,
        "csrf_field": security.CSRF_FIELD,
        "profiles_saved": bool(current_app.config["PROFILER_DIR"]),
    }


def error_response(title, message, status):
    """Answer an error as JSON to the ``/api/`` routes and as a page to browsers."""
    if request.endpoint and request.endpoint.endswith("_json"):
        return jsonify(error=message), status
    return render_template("dashboard/error.html", title=title, message=message), status


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
