"""The request path: what is recorded per request, what is ignored or sampled."""
import os
import unittest
from unittest import mock

from flask import Response
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import ClosingIterator

from tracker_07.tracking import middleware
from tracker_07.tests.tracking_helpers import FakeClock, TrackedAppCase, get

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RecordingTest(TrackedAppCase):
    """What ends up in the store for each kind of request."""

    def test_endpoint_is_the_url_rule_not_the_path(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        for user_id in (1, 2, 30):
            get(client, f"/user/{user_id}")
        rows = self.stored_rows(tracking)
        self.assertEqual([row["endpoint"] for row in rows], ["/user/<int:user_id>"] * 3)
        self.assertEqual({row["method"] for row in rows}, {"GET"})
        self.assertEqual({row["status"] for row in rows}, {200})

    def test_unmatched_urls_share_one_label_and_never_store_the_path(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        for number in range(5):
            get(client, f"/attack/{number}/<script>")
        get(client, "/user/1", method="DELETE")
        get(client, "/user/1", method="BREW")
        rows = self.stored_rows(tracking)
        self.assertEqual([row["endpoint"] for row in rows], ["<404>"] * 5 + ["<405>"] * 2)
        self.assertEqual([row["method"] for row in rows][-2:], ["DELETE", "OTHER"])
        self.assertFalse(any("attack" in str(value) for row in rows for value in row.values()))

    def test_statuses_are_recorded(self):
        app, tracking = self.tracked_app(TRACKER_SLOW_MS=0)
        client = app.test_client()
        for code in (201, 302, 404, 503):
            get(client, f"/status/{code}")
        get(client, "/status/200", method="POST")
        with self.assertLogs(app.logger, "ERROR"):
            get(client, "/boom")
        rows = self.stored_rows(tracking)
        self.assertEqual([(row["endpoint"], row["method"], row["status"]) for row in rows], [
            ("/status/<int:code>", "GET", 201), ("/status/<int:code>", "GET", 302),
            ("/status/<int:code>", "GET", 404), ("/status/<int:code>", "GET", 503),
            ("/status/<int:code>", "POST", 200), ("/boom", "GET", 500),
        ])

    def test_propagated_exception_is_recorded_as_500(self):
        # With PROPAGATE_EXCEPTIONS no response is started, so the rule is never seen.
        app, tracking = self.tracked_app(TESTING=True)
        with self.assertRaisesRegex(RuntimeError, "boom"):
            get(app.test_client(), "/boom")
        rows = self.stored_rows(tracking)
        self.assertEqual([(row["endpoint"], row["status"]) for row in rows], [("<500>", 500)])

    def test_duration_covers_streaming_the_body(self):
        for path in ("/stream", "/passthrough"):
            with self.subTest(path=path):
                clock = FakeClock()
                with mock.patch.object(middleware, "perf_counter", clock):
                    app, tracking = self.tracked_app(
                        clock=clock, TRACKER_SLOW_MS=0,
                        TRACKER_DATABASE_URL=f"sqlite:///{self.tmpdir}/{path[1:]}.sqlite3")
                    response = app.test_client().get(path)
                    self.assertEqual(tracking.stats()["queued"], 0)  # not closed: not queued
                    self.assertEqual(response.get_data(as_text=True).count("chunk"), 3)
                    response.close()
                rows = self.stored_rows(tracking)
                self.assertEqual([row["endpoint"] for row in rows], [path])
                self.assertAlmostEqual(rows[0]["duration_ms"], 750.0)
        self.assertTrue(app.config["PASSTHROUGH_CLOSED"])  # the wrapper closed the body

    def test_duration_includes_the_responses_close_callbacks(self):
        clock = FakeClock()
        with mock.patch.object(middleware, "perf_counter", clock):
            app, tracking = self.tracked_app(clock=clock, TRACKER_SLOW_MS=0)
            get(app.test_client(), "/on-close")
        self.assertAlmostEqual(self.stored_rows(tracking)[0]["duration_ms"], 500.0)

    def test_flask_bodies_are_joined_other_bodies_wrapped(self):
        app, tracking = self.tracked_app()
        for path, kind in (("/user/1", ClosingIterator), ("/passthrough", middleware.TrackedBody)):
            with self.subTest(path=path):
                body = app.wsgi_app(EnvironBuilder(path=path).get_environ(),
                                    lambda status, headers, exc_info=None: None)
                self.assertIs(type(body), kind)
                self.assertTrue(b"".join(body))
                self.assertEqual(tracking.stats()["queued"], 0)
                body.close()
                self.assertEqual(tracking.stats()["queued"], 1)
                self.assertTrue(tracking.flush())
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>", "/passthrough"])

    def test_bodies_the_tracker_cannot_join_are_wrapped(self):
        _, tracking = self.tracked_app()
        odd = ClosingIterator([b"odd"])
        odd._callbacks = ()  # pylint: disable=protected-access  # not a list: not joined
        for inner_body, chunks in (([b"plain list"], [b"plain list"]), (odd, [b"odd"])):
            with self.subTest(body=type(inner_body).__name__):
                wrapper = middleware.TrackingMiddleware(
                    lambda environ, start_response, body=inner_body: body, tracking.settings)
                body = wrapper(EnvironBuilder(path="/raw").get_environ(), None)
                self.assertIs(type(body), middleware.TrackedBody)
                self.assertEqual(list(body), chunks)
                body.close()
                self.assertEqual(len(wrapper.queue), 1)
                self.assertEqual(wrapper.queue[0][2:], (None, "GET", "500", None))

    def test_sampled_cost_covers_every_part_of_the_wrapper(self):
        app, tracking = self.tracked_app()
        # Each clock read is one second later: each part the sample times adds 1.0.
        ticks = iter(range(1000))
        for path in ("/user/1", "/passthrough"):
            with self.subTest(path=path), \
                    mock.patch.object(middleware, "COST_SAMPLE_EVERY", 1), \
                    mock.patch.object(middleware, "perf_counter", lambda: float(next(ticks))):
                tracking.middleware.cost.seconds = 0.0
                body = app.wsgi_app(EnvironBuilder(path=path).get_environ(),
                                    lambda status, headers, exc_info=None: None)
                b"".join(body)
                body.close()
                # Before the app is called, in start_response, after the app returned
                # and when the body is closed.
                self.assertEqual(tracking.middleware.cost.seconds, 4.0)

    def test_a_sample_held_up_by_another_thread_moves_the_average_one_step_only(self):
        meter = middleware.CostMeter()
        meter.note(2e-6)
        meter.note(5e-3)  # the GIL was elsewhere for 5 ms of this sample
        self.assertAlmostEqual(meter.seconds, 2e-6 + 0.05 * (4 * 2e-6 - 2e-6))
        for _ in range(200):  # a lasting change is followed, a step at a time
            meter.note(20e-6)
        self.assertAlmostEqual(meter.seconds, 20e-6)

    def test_closing_twice_records_once(self):
        app, tracking = self.tracked_app()
        response = app.test_client().get("/user/1")
        response.close()
        response.close()
        self.assertEqual(len(self.stored_rows(tracking)), 1)

    def test_default_ignore_patterns(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        for path in ("/static/app.css", "/dashboard/", "/dashboard/endpoints", "/favicon.ico",
                     "/user/5"):
            get(client, path)
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>"])

    def test_custom_ignore_patterns_are_regular_expressions(self):
        app, tracking = self.tracked_app(TRACKER_IGNORE=[r"^/user/\d*7$", r"^/status/"])
        client = app.test_client()
        for path in ("/user/7", "/user/17", "/user/70", "/status/200", "/static-ish/x"):
            get(client, path)
        self.assertEqual([row["endpoint"] for row in self.stored_rows(tracking)],
                         ["/user/<int:user_id>", "/static-ish/<path:name>"])

    def test_ignore_matcher_prefixes_exact_paths_and_regexes(self):
        is_ignored = middleware.ignore_matcher(
            [r"^/static/", r"^/favicon\.ico$", r"^/a\-b", r"\.php$", r"^/x/.*/y"]
        )
        for path in ("/static/x", "/favicon.ico", "/a-b/c", "/wp/login.php", "/x/1/y"):
            self.assertTrue(is_ignored(path), path)
        for path in ("/statics", "/favicon.ico2", "/favicon_ico", "/a", "/x/y", "/"):
            self.assertFalse(is_ignored(path), path)
        self.assertFalse(middleware.ignore_matcher([])("/static/x"))

    def test_sampling(self):
        cases = ((0.0, 0), (1.0, 10))
        for rate, stored in cases:
            with self.subTest(rate=rate):
                app, tracking = self.tracked_app(TRACKER_SAMPLE_RATE=rate,
                                                 TRACKER_DATABASE_URL="sqlite://")
                client = app.test_client()
                for user_id in range(10):
                    get(client, f"/user/{user_id}")
                self.assertEqual(len(self.stored_rows(tracking)), stored)
        draws = iter([0.1, 0.9, 0.2, 0.7])
        with mock.patch.object(middleware, "random", lambda: next(draws)):
            app, tracking = self.tracked_app(TRACKER_SAMPLE_RATE=0.5,
                                             TRACKER_DATABASE_URL="sqlite://")
            for user_id in range(4):
                get(app.test_client(), f"/user/{user_id}")
        self.assertEqual(len(self.stored_rows(tracking)), 2)

    def test_slow_requests_log_a_warning(self):
        clock = FakeClock()
        with mock.patch.object(middleware, "perf_counter", clock):
            app, tracking = self.tracked_app(clock=clock, TRACKER_SLOW_MS=500)
            client = app.test_client()
            with self.assertLogs(app.logger, "WARNING") as logs:
                get(client, "/stream")  # 750 ms on the fake clock
                get(client, "/user/1")  # 0 ms
                tracking.flush()
        self.assertEqual(len(logs.records), 1)
        message = logs.records[0].getMessage()
        for part in ("GET", "/stream", "200", "750.0 ms"):
            self.assertIn(part, message)

    def test_slow_warning_disabled_with_zero(self):
        clock = FakeClock()
        with mock.patch.object(middleware, "perf_counter", clock):
            app, tracking = self.tracked_app(clock=clock, TRACKER_SLOW_MS=0)
            with self.assertNoLogs(app.logger, "WARNING"):
                get(app.test_client(), "/stream")
                tracking.flush()
        self.assertEqual(len(self.stored_rows(tracking)), 1)



class UnclosedBodyTest(TrackedAppCase):
    """Requests whose body the server never closes are recorded all the same."""

    def test_every_test_client_request_is_a_row(self):
        app, tracking = self.tracked_app()
        client = app.test_client()
        statuses = [client.get(f"/user/{user_id}").status_code for user_id in range(5)]
        statuses.append(client.post("/status/201").status_code)
        statuses.append(client.get("/status/404").status_code)
        self.assertEqual(statuses, [200] * 5 + [201, 404])
        rows = self.stored_rows(tracking)
        self.assertEqual(sorted((row["endpoint"], row["status"]) for row in rows),
                         [("/status/<int:code>", 201), ("/status/<int:code>", 404)]
                         + [("/user/<int:user_id>", 200)] * 5)
        self.assertEqual(tracking.stats()["dropped"], 0)

    def test_a_held_response_is_recorded_when_let_go_and_timed_to_its_start(self):
        clock = FakeClock()
        with mock.patch.object(middleware, "perf_counter", clock):
            app, tracking = self.tracked_app(clock=clock, TRACKER_SLOW_MS=0)
            response = app.test_client().get("/user/1")
            clock.advance(2.0)  # the test holds the response; that is not the request's time
            self.assertEqual(tracking.stats()["queued"], 0)
            del response
        rows = self.stored_rows(tracking)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["duration_ms"], 0.0)

    def test_a_raising_close_callback_does_not_lose_the_record(self):
        app, tracking = self.tracked_app()

        @app.route("/bad-close")
        def bad_close():
            response = Response("ok")
            response.call_on_close(lambda: 1 / 0)
            return response

        with self.assertRaises(ZeroDivisionError):
            get(app.test_client(), "/bad-close")
        rows = self.stored_rows(tracking)
        self.assertEqual([(row["endpoint"], row["status"]) for row in rows], [("/bad-close", 200)])


if __name__ == "__main__":
    unittest.main()
