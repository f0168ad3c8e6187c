"""Entry point for a bare ``flask run``: the configuration comes from ``FLASK_CONFIG``."""
import os

from tracker_07 import create_app

app = create_app(os.getenv("FLASK_CONFIG") or "default")
