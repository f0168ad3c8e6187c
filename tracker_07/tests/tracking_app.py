"""A module-level app with ``Tracker(app)`` for the gunicorn test.

Run as ``gunicorn tracker_07.tests.tracking_app:app``.

The store URL comes from ``TRACKER_GUNICORN_DATABASE_URL``.  The writer is told to wait
for an hour and for a huge batch (and queue: a tenth of it wakes the writer), so rows
reach the store only through the flush at exit.
"""
import os

from flask import Flask

from tracker_07 import Tracker

app = Flask(__name__)
app.config.update(
    TRACKER_DATABASE_URL=os.environ["TRACKER_GUNICORN_DATABASE_URL"],
    TRACKER_FLUSH_INTERVAL=3600.0,
    TRACKER_BATCH_SIZE=100_000,
    TRACKER_QUEUE_SIZE=100_000,
    TRACKER_MAINTENANCE_INTERVAL=3600.0,
)


@app.route("/item/<int:item_id>")
def item(item_id):
    """One small response per request."""
    return f"item {item_id}"


Tracker(app)  # a module-level app, as many are written
