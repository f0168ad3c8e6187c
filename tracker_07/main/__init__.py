"""The demo app: an index page, and a slow page with its fast twin to profile."""
from .views import bp

__all__ = ["bp"]
