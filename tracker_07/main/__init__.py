"""The demo app: an index page and a slow page with its fast twin, so there is something to profile."""
from .views import bp

__all__ = ["bp"]
