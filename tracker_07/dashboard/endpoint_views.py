"""Endpoint timings in the browser: per-endpoint statistics, charts and their JSON."""
from flask import redirect, url_for

from .blueprint import bp


@bp.route("/")
def index():
    """Show per-endpoint timings (until tracking is on, the saved profiles)."""
    return redirect(url_for("dashboard.profiles"))
