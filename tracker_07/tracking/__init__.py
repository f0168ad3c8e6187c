"""Always-on endpoint tracking: ``Tracking(app)`` records every request's endpoint,
method, status and duration in a SQL store that the dashboard and ``flask tracker`` read."""
from .extension import Tracking

__all__ = ["Tracking", "init_app"]


def init_app(app):
    """Attach endpoint tracking to ``app`` with one call and return the extension."""
    return Tracking(app)
