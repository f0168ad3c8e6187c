"""The calibration of the request path's whole cost, and how the dashboard's figure uses it."""
import unittest
from dataclasses import replace
from unittest import mock

from werkzeug.test import EnvironBuilder

from tracker_07.tracking import calibration, middleware
from tracker_07.tracking.calibration import Calibration
from tracker_07.tests.tracking_helpers import TrackedAppCase, get

FEW = {"ROUNDS": 2, "REQUESTS_PER_BLOCK": 30}


def few_rounds():
    """Patch the calibration down to a few short blocks (what it measures is the same)."""
    return mock.patch.multiple(calibration, **FEW)


class CalibrationTest(TrackedAppCase):
    """Measured on a private app, with a queue of its own, once per process."""

    def test_every_calibration_request_goes_through_the_wrapper_and_none_into_the_store(self):
        app, tracking = self.tracked_app()
        with few_rounds():
            measured = calibration.calibrate(tracking.settings)
        self.assertEqual(measured.recorded, FEW["ROUNDS"] * FEW["REQUESTS_PER_BLOCK"])
        self.assertGreater(measured.sampled_seconds, 0)  # its timings ran (every 64th)
        self.assertGreater(measured.cpu_seconds, 0)
        self.assertGreaterEqual(measured.added_seconds, 0)
        self.assertEqual(len(tracking.middleware.queue), 0)
        get(app.test_client(), "/user/1")
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>"])

    def test_its_app_routes_like_flask_so_the_wrapper_notes_rule_and_status(self):
        _app, tracking = self.tracked_app()
        wrapped = middleware.TrackingMiddleware(calibration._calibration_app,  # pylint: disable=protected-access
                                                tracking.settings)
        environ = EnvironBuilder(path=calibration.CALIBRATION_PATH).get_environ()
        body = wrapped(environ, lambda status, headers, exc_info=None: None)
        self.assertEqual(b"".join(body), b"ok")
        body.close()
        self.assertEqual([record[2:5] for record in wrapped.queue],
                         [("/tracker-calibration/<int:number>", "GET", "200 OK")])

    def test_ignore_patterns_that_would_skip_its_path_are_left_out(self):
        _app, tracking = self.tracked_app(TRACKER_IGNORE=["^/"])
        with few_rounds():
            measured = calibration.calibrate(tracking.settings)
        self.assertEqual(measured.recorded, FEW["ROUNDS"] * FEW["REQUESTS_PER_BLOCK"])
        wrapped_settings = calibration._ignore_nothing_tracked(  # pylint: disable=protected-access
            replace(tracking.settings, ignore=("^/api",)))
        self.assertEqual(wrapped_settings.ignore, ("^/api",))  # kept: the path is not ignored

    def test_the_live_figure_is_the_calibrated_cost_scaled_by_the_live_timings(self):
        measured = Calibration(added_seconds=4e-6, sampled_seconds=2e-6, recorded=1,
                               cpu_seconds=0.1)
        self.assertAlmostEqual(measured.request_path_seconds(3e-6), 6e-6)
        self.assertEqual(measured.request_path_seconds(0.0), 0.0)
        # Noise cannot make the whole less than the part the timings see.
        self.assertAlmostEqual(replace(measured, added_seconds=1e-6).request_path_seconds(3e-6),
                               3e-6)
        self.assertEqual(replace(measured, sampled_seconds=0.0).request_path_seconds(3e-6), 0.0)

    def test_calibrated_once_and_only_after_a_live_timing(self):
        app, tracking = self.tracked_app()
        measured = Calibration(added_seconds=4e-6, sampled_seconds=2e-6, recorded=1,
                               cpu_seconds=0.15)
        with mock.patch.object(calibration, "calibrate", return_value=measured) as calibrate:
            get(app.test_client(), "/user/1")
            stats = tracking.stats()
            self.assertEqual((stats["request_path_us"], stats["calibration_cpu_ms"]), (0.0, 0.0))
            calibrate.assert_not_called()  # fewer than 64 requests: nothing timed yet
            for user_id in range(middleware.COST_SAMPLE_EVERY):
                get(app.test_client(), f"/user/{user_id}")
            first, second = tracking.stats(), tracking.stats()
        calibrate.assert_called_once_with(tracking.settings)
        timed = tracking.middleware.cost.seconds
        self.assertGreater(timed, 0)
        self.assertAlmostEqual(first["request_path_timed_us"], timed * 1e6)
        self.assertAlmostEqual(first["request_path_us"], 4e-6 * timed / 2e-6 * 1e6)
        self.assertAlmostEqual(first["cost_us_per_request"],
                               first["request_path_us"] + first["writer_us_per_row"])
        self.assertAlmostEqual(first["calibration_cpu_ms"], 150.0)
        self.assertEqual(first["request_path_us"], second["request_path_us"])


if __name__ == "__main__":
    unittest.main()
