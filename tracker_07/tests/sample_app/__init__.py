"""A small notes app written the way Flask users write theirs: Tracker's test of a foreign app.

``create_app(test_config, extensions=(Tracker,))`` builds it with extensions attached, so the
same suite (:mod:`.sample_tests`) can run with and without Tracker.
"""
from flask import Flask

from .views import bp


def create_app(test_config=None, extensions=()):
    """Build the app; each of ``extensions`` is called with it once its routes exist.

    :param test_config: settings that override the defaults, e.g. ``{"TESTING": True}``.
    :param extensions: callables such as ``Tracker`` or ``lambda app: Tracker(app)``.
    """
    app = Flask(__name__)
    app.config.from_mapping(SECRET_KEY="sample-app-dev")
    if test_config:
        app.config.from_mapping(test_config)
    app.extensions["sample_notes"] = []
    app.register_blueprint(bp)
    for extension in extensions:
        extension(app)
    return app
