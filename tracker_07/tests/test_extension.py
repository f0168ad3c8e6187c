"""``Tracker(app)`` on apps that are not the demo: factory or module-level, one or two at once."""
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from flask import Blueprint, Flask, jsonify

from tracker_07 import Tracker
from tracker_07.config import ConfigError
from tracker_07.tests.base import stop_tracking
from tracker_07.tracking import reads
from tracker_07.tracking.filters import Filters

shop = Blueprint("shop", __name__)


@shop.route("/items/<int:item_id>")
def item(item_id):
    """A view in a blueprint, as real apps have."""
    return jsonify(id=item_id)


def make_shop(instance_path, **config):
    """A user's app factory: a blueprint, its own config, nothing of Tracker's."""
    app = Flask("shop", instance_path=instance_path)
    app.config.update(SECRET_KEY="shop-secret", **config)
    app.register_blueprint(shop)

    @app.route("/")
    def home():
        return "<!doctype html><title>shop</title><p>home</p>"

    return app


class TrackerTestCase(unittest.TestCase):
    """Each test gets a temporary instance folder; every tracked app is stopped after."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-ext-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.apps = []

    def tearDown(self):
        for app in self.apps:
            stop_tracking(app)

    def shop_app(self, name="instance", **config):
        """Build the user's app with its instance folder in this test's folder."""
        app = make_shop(os.path.join(self.tmp, name), **config)
        self.apps.append(app)
        return app

    def stored_endpoints(self, app):
        """The endpoints of every row in ``app``'s store."""
        with app.extensions["tracker_tracking"].engine.connect() as conn:
            return sorted(row["endpoint"] for row in reads.export_rows(conn, Filters()))


class AttachTestCase(TrackerTestCase):
    """One call adds each enabled feature; every setting has a default."""

    def test_an_app_that_sets_nothing_gets_dashboard_tracking_and_both_commands(self):
        app = self.shop_app()
        tracker = Tracker(app)
        self.assertIs(app.extensions["tracker"], tracker)
        instance = os.path.join(self.tmp, "instance")
        self.assertEqual(app.config["PROFILER_DIR"], os.path.join(instance, "profiles"))
        self.assertEqual(app.config["TRACKER_DATABASE_URL"],
                         "sqlite:///" + os.path.join(instance, "tracker.sqlite3"))
        self.assertNotIn("tracker_profiler", app.extensions)  # profile mode is off by default
        self.assertIn("profiles", app.cli.commands)
        self.assertIn("tracker", app.cli.commands)
        client = app.test_client()
        self.assertEqual(client.get("/items/7").get_json(), {"id": 7})
        self.assertEqual(client.get("/dashboard/").status_code, 200)
        self.assertEqual(client.get("/dashboard/profiles/").status_code, 200)
        self.assertTrue(tracker.flush())
        self.assertEqual(self.stored_endpoints(app), ["/items/<int:item_id>"])

    def test_keyword_settings_override_app_config(self):
        app = self.shop_app(PROFILER_ENABLED=False, DASHBOARD_PREFIX="/_tracker")
        report = io.StringIO()
        with contextlib.redirect_stdout(report):
            Tracker(app, PROFILER_ENABLED=True, PROFILER_DIR=os.path.join(self.tmp, "p"))
            response = app.test_client().get("/items/3")
        self.assertEqual(response.status_code, 200)
        self.assertIn("PATH: '/items/3'", report.getvalue())
        self.assertEqual(len([name for name in os.listdir(os.path.join(self.tmp, "p"))
                              if name.endswith(".prof")]), 1)
        self.assertEqual(app.test_client().get("/_tracker/").status_code, 200)
        self.assertEqual(app.test_client().get("/dashboard/").status_code, 404)
        ignored = app.extensions["tracker_tracking"].settings.ignore  # its own prefix, no other
        self.assertIn("^/_tracker/", ignored)
        self.assertFalse(any("dashboard" in pattern for pattern in ignored))

    def test_each_feature_follows_its_own_switch(self):
        app = self.shop_app(DASHBOARD_ENABLED=False, TRACKER_ENABLED=False,
                            TRACKER_SQL_ENABLED=False)
        Tracker(app)
        self.assertEqual(app.test_client().get("/dashboard/").status_code, 404)
        self.assertNotIn("tracker_tracking", app.extensions)
        self.assertNotIn("wsgi_app", vars(app))  # nothing wraps the app's own wsgi_app
        self.assertIn("profiles", app.cli.commands)

    def test_factory_style_and_two_apps_keep_separate_state(self):
        tracker = Tracker(TRACKER_FLUSH_INTERVAL=0.05)
        first, second = self.shop_app("one"), self.shop_app("two")
        tracker.init_app(first)
        tracker.init_app(second, TRACKER_SLOW_MS=1)
        first.test_client().get("/items/1")
        for item_id in range(3):
            second.test_client().get(f"/items/{item_id}")
        self.assertTrue(tracker.flush())
        self.assertEqual(len(self.stored_endpoints(first)), 1)
        self.assertEqual(len(self.stored_endpoints(second)), 3)
        self.assertNotEqual(first.config["TRACKER_DATABASE_URL"],
                            second.config["TRACKER_DATABASE_URL"])
        self.assertEqual((first.config["TRACKER_SLOW_MS"], second.config["TRACKER_SLOW_MS"]),
                         (500, 1))
        self.assertTrue(tracker.flush(first))

    def test_attaching_twice_is_an_error(self):
        app = self.shop_app()
        Tracker(app)
        with self.assertRaisesRegex(RuntimeError, "already attached"):
            Tracker(app)

    def test_bad_settings_stop_start_up_with_one_message(self):
        with self.assertRaisesRegex(ConfigError, "DASHBOARD_PREFIX must be a path like"):
            Tracker(make_shop(os.path.join(self.tmp, "x")), DASHBOARD_PREFIX="dash")

    def test_a_file_where_the_profile_folder_should_be_is_a_config_error(self):
        blocker = os.path.join(self.tmp, "blocker")
        with open(blocker, "w", encoding="utf-8"):
            pass
        app = self.shop_app(TRACKER_ENABLED=False)
        with self.assertRaisesRegex(ConfigError, "PROFILER_DIR .* cannot be the profile folder"):
            Tracker(app, PROFILER_ENABLED=True, PROFILER_DIR=blocker)



class ImportTestCase(unittest.TestCase):
    """``from tracker_07 import Tracker`` needs only Tracker's own dependencies."""

    def test_the_demos_dependencies_are_not_imported_by_tracker(self):
        script = ("import sys; from flask import Flask; from tracker_07 import Tracker; "
                  "Tracker(Flask('x'), TRACKER_ENABLED=False); "
                  "print(sorted(m for m in ('flask_caching', 'flask_sqlalchemy') "
                  "if m in sys.modules))")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        output = subprocess.run([sys.executable, "-c", script], cwd=tempfile.gettempdir(),
                                env=dict(os.environ, PYTHONPATH=root), check=True,
                                capture_output=True, text=True).stdout
        self.assertEqual(output.strip(), "[]")

if __name__ == "__main__":
    unittest.main()
