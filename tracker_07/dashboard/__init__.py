"""The dashboard: endpoint timings and saved profiles in the browser, with no extra install."""
from . import compare_views, endpoint_views, profile_views  # pylint: disable=unused-import  # they add the routes
from .blueprint import bp


def init_app(app):
    """Mount the dashboard at ``DASHBOARD_PREFIX`` when ``DASHBOARD_ENABLED`` is set."""
    if app.config["DASHBOARD_ENABLED"]:
        app.register_blueprint(bp, url_prefix=app.config["DASHBOARD_PREFIX"])
