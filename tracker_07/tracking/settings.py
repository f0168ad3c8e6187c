"""The ``TRACKER_*`` settings as one frozen object that the request path and writer read.

Defaults and checks live in :mod:`tracker_07.settings`; this only gathers the checked
values, so a hot loop reads attributes instead of looking keys up in ``app.config``.
"""
from dataclasses import dataclass

from .. import settings as tracker_settings


@dataclass(frozen=True)
class Settings:
    """Checked ``TRACKER_*`` settings of one app."""

    database_url: str
    ignore: tuple
    sample_rate: float
    retention_days: float
    max_rows: int
    queue_size: int
    batch_size: int
    flush_interval: float
    slow_ms: float
    maintenance_interval: float


def read_settings(app):
    """Default and check ``app``'s settings (once), then gather the tracking ones."""
    config = tracker_settings.apply(app)
    return Settings(
        database_url=config["TRACKER_DATABASE_URL"],
        ignore=config["TRACKER_IGNORE"] + tracker_settings.dashboard_paths(config),
        sample_rate=config["TRACKER_SAMPLE_RATE"],
        retention_days=config["TRACKER_RETENTION_DAYS"],
        max_rows=config["TRACKER_MAX_ROWS"],
        queue_size=config["TRACKER_QUEUE_SIZE"],
        batch_size=config["TRACKER_BATCH_SIZE"],
        flush_interval=config["TRACKER_FLUSH_INTERVAL"],
        slow_ms=config["TRACKER_SLOW_MS"],
        maintenance_interval=config["TRACKER_MAINTENANCE_INTERVAL"],
    )
