"""The page tells on itself: a toolbar on HTML pages and Server-Timing on every response.

With ``TOOLBAR_ENABLED`` (on in the demo's development and profile configurations) every
whole HTML page a local client (or one with the dashboard's credentials) receives carries a
small tab before ``</body>``: the request's time, opening on the top functions of its
profile and links to the dashboard.  ``TRACKER_SERVER_TIMING`` (on where the toolbar is)
adds a ``Server-Timing`` header and ``X-Tracker-Profile-Id`` to every response.  Usage::

    app.config.update(TOOLBAR_ENABLED=True)
    toolbar.init_app(app)      # after profiler.init_app: it must be the outermost wrapper
"""
from .. import settings
from .middleware import ToolbarMiddleware
from .panel import Panel

__all__ = ["ToolbarMiddleware", "init_app"]

#: ``app.extensions[EXTENSION_KEY]`` is the app's :class:`ToolbarMiddleware`.
EXTENSION_KEY = "tracker_toolbar"


def init_app(app):
    """Wrap ``app.wsgi_app`` when the toolbar or Server-Timing is on; return the wrapper.

    The toolbar needs the dashboard (its links and its static files); with
    ``DASHBOARD_ENABLED`` off only Server-Timing is added.
    """
    config = settings.apply(app)
    toolbar = config["TOOLBAR_ENABLED"] and config["DASHBOARD_ENABLED"]
    if config["TOOLBAR_ENABLED"] and not config["DASHBOARD_ENABLED"]:
        app.logger.warning("TOOLBAR_ENABLED needs DASHBOARD_ENABLED: no toolbar, "
                           "Server-Timing only.")
    timing = config["TRACKER_SERVER_TIMING"]
    if not toolbar and not (config["TOOLBAR_ENABLED"] if timing is None else timing):
        return None
    middleware = ToolbarMiddleware(app.wsgi_app, Panel(app, config) if toolbar else None,
                                   config)
    app.wsgi_app = middleware
    app.extensions[EXTENSION_KEY] = middleware
    return middleware
