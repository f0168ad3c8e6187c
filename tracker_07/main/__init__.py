"""The demo app: an index page, and slow pages with their fast twins to profile (CPU,
the database's N+1 queries, no cache)."""
from . import caching, models
from .views import bp

__all__ = ["bp", "init_app"]


def init_app(app):
    """Give ``app`` the demo's pages, its database and its cache."""
    models.init_app(app)
    caching.init_app(app)
    app.register_blueprint(bp)
