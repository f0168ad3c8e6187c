"""The toolbar's WSGI wrapper: what it changes, what it never changes, and who sees what.

Past 350 lines because each kind of response it must leave alone has a test of its own.
"""
import base64
import gzip
import os
import shutil
import tempfile
import unittest
from unittest import mock

from flask import Flask, Response, current_app, jsonify, send_file, stream_with_context
from sqlalchemy import create_engine, text

from tracker_07 import Tracker, toolbar
from tracker_07.tests.base import ProfiledAppTestCase
from tracker_07.tests.server_timing import parse
from tracker_07.toolbar import middleware as toolbar_middleware

PAGE = b"<!doctype html><html><head><title>Host</title></head><body><p>Hello</p></body></html>"
REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
MARK = b"<tracker-toolbar"


VIEWS = {
    "/page": lambda: PAGE,
    "/json": lambda: jsonify(html="</body>"),
    "/file": lambda: send_file(current_app.config["HTML_FILE"], mimetype="text/html"),
    "/redirect": lambda: Response(PAGE, 302, headers={"Location": "/page"},
                                  mimetype="text/html"),
    "/stream": lambda: Response(stream_with_context(iter([PAGE[:20], PAGE[20:]])),
                                mimetype="text/html"),
    "/text": lambda: Response(PAGE, mimetype="text/plain"),
    "/gzip": lambda: Response(gzip.compress(PAGE), mimetype="text/html",
                              headers={"Content-Encoding": "gzip"}),
    "/attachment": lambda: Response(PAGE, mimetype="text/html", headers={
        "Content-Disposition": "attachment; filename=a.html"}),
    "/no-body-end": lambda: b"<!doctype html><title>t</title><p>No end tag",
    "/upper": lambda: b"<HTML><BODY><p>x</p></BODY >\n</HTML>",
    "/two-ends": lambda: b"<body><pre>&lt;/body&gt; </body> in text</pre></body>",
    "/latin": lambda: Response("<body>caf\u00e9</body>".encode("latin-1"),
                               content_type="text/html; charset=latin-1"),
    "/etag": lambda: Response(PAGE, mimetype="text/html", headers={"ETag": '"v1"'}),
    "/error": lambda: (PAGE, 500),
    "/empty": lambda: ("", 204),
}


def host_app(folder):
    """A plain Flask app with one route per kind of response."""
    app = Flask(__name__, instance_path=os.path.join(folder, "instance"))
    app.config["HTML_FILE"] = os.path.join(folder, "file.html")
    with open(app.config["HTML_FILE"], "wb") as html_file:
        html_file.write(PAGE)
    for path, view in VIEWS.items():
        app.add_url_rule(path, path.strip("/"), view)
    return app


class HostAppTestCase(unittest.TestCase):
    """A plain app with ``Tracker(app, TOOLBAR_ENABLED=True)``."""

    settings = {"TOOLBAR_ENABLED": True, "TRACKER_ENABLED": False}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-toolbar-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.app = self.make(**self.settings)
        self.client = self.app.test_client()

    def make(self, **settings):
        """A new host app with Tracker attached."""
        app = host_app(self.tmp)
        Tracker(app, **settings)
        return app

    def assert_untouched(self, response, body=PAGE):
        """The body is the app's own and its Content-Length is the body's."""
        self.assertNotIn(MARK, response.data)
        if body is not None:
            self.assertEqual(response.data, body)
        if "Content-Length" in response.headers:
            self.assertEqual(int(response.headers["Content-Length"]), len(response.data))


class InjectionTestCase(HostAppTestCase):
    """Whole HTML pages get the toolbar before their last ``</body>``, nothing else does."""

    def test_the_toolbar_goes_before_the_body_end_and_content_length_follows(self):
        response = self.client.get("/page")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.data.startswith(PAGE[:-len(b"</body></html>")] + MARK))
        self.assertTrue(response.data.endswith(b"</script></body></html>"))
        self.assertEqual(int(response.headers["Content-Length"]), len(response.data))
        self.assertEqual(self.app.extensions[toolbar.EXTENSION_KEY].injected, 1)

    def test_no_inline_script_or_style(self):
        data = self.client.get("/page").data.decode()
        added = data[data.index("<tracker-toolbar"):data.rindex("</body>")]
        self.assertNotIn("style=", added)
        self.assertNotIn("<style", added)
        self.assertRegex(added, r'<script src="/dashboard/static/toolbar\.js" defer></script>$')
        self.assertIn('<link rel="stylesheet" href="/dashboard/static/toolbar.css">', added)
        self.assertIn('<template shadowrootmode="open">', added)
        self.assertEqual(added.count("<script"), 1)

    def test_the_stylesheet_and_the_script_are_served(self):
        for name, kind in (("toolbar.css", "text/css"), ("toolbar.js", "text/javascript")):
            response = self.client.get(f"/dashboard/static/{name}")
            self.assertEqual(response.status_code, 200, name)
            self.assertIn(kind, response.content_type)
            response.close()

    def test_case_and_spaces_in_the_end_tag_and_the_last_one_wins(self):
        upper = self.client.get("/upper").data
        self.assertIn(b"</p>" + MARK, upper)
        self.assertTrue(upper.endswith(b"</script></BODY >\n</HTML>"))
        two = self.client.get("/two-ends").data
        self.assertIn(b"</body> in text</pre>" + MARK, two)

    def test_the_page_charset_is_kept(self):
        response = self.client.get("/latin")
        self.assertIn("caf\u00e9".encode("latin-1"), response.data)
        self.assertIn(MARK, response.data)
        self.assertEqual(int(response.headers["Content-Length"]), len(response.data))

    def test_the_etag_of_the_page_without_toolbar_is_dropped(self):
        response = self.client.get("/etag")
        self.assertIn(MARK, response.data)
        self.assertNotIn("ETag", response.headers)

    def test_error_pages_get_the_toolbar_too(self):
        response = self.client.get("/error")
        self.assertEqual(response.status_code, 500)
        self.assertIn(MARK, response.data)

    def test_other_responses_are_never_changed(self):
        for path in ("/json", "/file", "/redirect", "/stream", "/text", "/attachment",
                     "/no-body-end", "/dashboard/"):
            with self.subTest(path=path):
                response = self.client.get(path)
                body = {"/json": None, "/no-body-end": None, "/dashboard/": None}.get(path, PAGE)
                self.assert_untouched(response, body)
                response.close()
        response = self.client.get("/gzip")
        self.assert_untouched(response, gzip.compress(PAGE))
        self.assertEqual(self.client.get("/empty").data, b"")

    def test_json_and_redirect_headers_are_the_apps_own(self):
        plain = self.make(TOOLBAR_ENABLED=False, TRACKER_ENABLED=False).test_client()
        for path in ("/json", "/redirect", "/file", "/stream"):
            with self.subTest(path=path):
                seen = []
                for client in (self.client, plain):
                    response = client.get(path)
                    seen.append(([(k, v) for k, v in response.headers.items()
                                  if k != "Server-Timing"], response.data))
                    response.close()
                self.assertEqual(seen[0], seen[1])

    def test_head_requests_are_not_changed(self):
        response = self.client.head("/page")
        self.assertEqual(response.data, b"")
        self.assertEqual(int(response.headers["Content-Length"]), len(PAGE))

    def test_a_failing_toolbar_never_fails_the_page(self):
        panel = self.app.extensions[toolbar.EXTENSION_KEY].panel
        with mock.patch.object(panel, "render", side_effect=RuntimeError("broken template")), \
                self.assertLogs("tracker_07.toolbar.middleware", "ERROR") as logs:
            response = self.client.get("/page")
        self.assertEqual(response.status_code, 200)
        self.assert_untouched(response)
        self.assertIn("broken template", "\n".join(logs.output))

    def test_hidden_for_the_session_by_its_cookie(self):
        self.client.set_cookie("tracker_toolbar", "hidden")
        response = self.client.get("/page")
        self.assert_untouched(response)
        self.assertIn("Server-Timing", response.headers)


class WhoSeesItTestCase(HostAppTestCase):
    """Only the clients the dashboard answers see the toolbar and the profile header."""

    def test_remote_clients_see_nothing(self):
        response = self.client.get("/page", environ_base=REMOTE)
        self.assert_untouched(response)
        self.assertNotIn("Server-Timing", response.headers)
        self.assertNotIn("X-Tracker-Profile-Id", response.headers)

    def test_server_timing_for_all_still_hides_the_toolbar(self):
        client = self.make(TOOLBAR_ENABLED=True, TRACKER_SERVER_TIMING="all",
                           TRACKER_ENABLED=False).test_client()
        response = client.get("/page", environ_base=REMOTE)
        self.assert_untouched(response)
        self.assertEqual(parse(response.headers["Server-Timing"])[0][0], "total")

    def test_with_credentials_only_who_sends_them(self):
        app = self.make(TOOLBAR_ENABLED=True, TRACKER_ENABLED=False,
                        DASHBOARD_USERNAME="ada", DASHBOARD_PASSWORD="s3cret")
        client = app.test_client()

        def auth(password):
            token = base64.b64encode(f"ada:{password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}

        remote = client.get("/page", environ_base=REMOTE, headers=auth("s3cret"))
        self.assertIn(MARK, remote.data)
        self.assertIn("Server-Timing", remote.headers)
        for headers in (auth("wrong"), {}):
            for environ in (REMOTE, {"REMOTE_ADDR": "127.0.0.1"}):
                response = client.get("/page", environ_base=environ, headers=headers)
                self.assert_untouched(response)
                self.assertNotIn("Server-Timing", response.headers)


class WiringTestCase(HostAppTestCase):
    """Which settings install the wrapper, and raw WSGI apps it must respect."""

    def test_nothing_is_installed_when_both_are_off(self):
        app = self.make(TRACKER_ENABLED=False)
        self.assertNotIn(toolbar.EXTENSION_KEY, app.extensions)
        self.assertNotIsInstance(app.wsgi_app, toolbar.ToolbarMiddleware)
        self.assertNotIn("Server-Timing", app.test_client().get("/page").headers)

    def test_server_timing_alone(self):
        app = self.make(TRACKER_ENABLED=False, TRACKER_SERVER_TIMING=True)
        response = app.test_client().get("/page")
        self.assert_untouched(response)
        metrics = dict(parse(response.headers["Server-Timing"]))
        self.assertEqual(list(metrics), ["total", "sql"])  # its queries are captured: none
        self.assertEqual(metrics["sql"], {"dur": 0.0, "desc": "0 queries"})

    def test_server_timing_can_be_turned_off_under_the_toolbar(self):
        app = self.make(TOOLBAR_ENABLED=True, TRACKER_ENABLED=False, TRACKER_SERVER_TIMING=False)
        response = app.test_client().get("/page")
        self.assertIn(MARK, response.data)
        self.assertNotIn("Server-Timing", response.headers)

    def test_the_toolbar_needs_the_dashboard(self):
        with self.assertLogs(level="WARNING") as logs:
            app = self.make(TOOLBAR_ENABLED=True, DASHBOARD_ENABLED=False, TRACKER_ENABLED=False)
        self.assertIn("TOOLBAR_ENABLED needs DASHBOARD_ENABLED", logs.output[0])
        response = app.test_client().get("/page")
        self.assert_untouched(response)
        self.assertIn("Server-Timing", response.headers)

    def test_the_server_timing_covers_the_toolbar(self):
        metrics = dict(parse(self.client.get("/page").headers["Server-Timing"]))
        self.assertGreater(metrics["total"]["dur"], 0)
        self.assertGreaterEqual(metrics["toolbar"]["dur"], 0)
        self.assertNotIn("profile", metrics)

    def raw(self, wsgi_app):
        """Put a raw WSGI app under the toolbar and return a client of it."""
        app = Flask(__name__, instance_path=os.path.join(self.tmp, "raw"))
        app.wsgi_app = wsgi_app
        Tracker(app, TOOLBAR_ENABLED=True, TRACKER_ENABLED=False)
        return app.test_client()

    def test_a_response_started_while_iterating_is_passed_on(self):
        def lazy(_environ, start_response):
            start_response("200 OK", [("Content-Type", "text/html"),
                                      ("Content-Length", str(len(PAGE)))])
            yield PAGE

        response = self.raw(lazy).get("/")
        self.assert_untouched(response)
        self.assertIn("Server-Timing", response.headers)

    def test_what_the_app_wrote_is_part_of_the_page(self):
        def writing(_environ, start_response):
            write = start_response("200 OK", [("Content-Type", "text/html"),
                                              ("Content-Length", str(len(PAGE)))])
            write(PAGE[:30])
            return [PAGE[30:]]

        response = self.raw(writing).get("/")
        self.assertTrue(response.data.startswith(PAGE[:-len(b"</body></html>")] + MARK))
        self.assertEqual(int(response.headers["Content-Length"]), len(response.data))

    def test_an_error_after_the_start_is_passed_on(self):
        def failing(_environ, start_response):
            start_response("200 OK", [("Content-Type", "text/html"),
                                      ("Content-Length", str(len(PAGE)))])
            try:
                raise RuntimeError("late")
            except RuntimeError:
                import sys  # pylint: disable=import-outside-toplevel
                start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")],
                               sys.exc_info())
            return [b"failed"]

        # The server gets the error: Werkzeug's test server re-raises it, as WSGI allows.
        with self.assertRaisesRegex(RuntimeError, "late"):
            self.raw(failing).get("/")

    def test_the_body_is_closed(self):
        closed = []

        class Body(list):
            """A body that notes its close."""

            def close(self):
                """Note the call."""
                closed.append(True)

        def closing(_environ, start_response):
            start_response("200 OK", [("Content-Type", "text/html"),
                                      ("Content-Length", str(len(PAGE)))])
            return Body([PAGE])

        self.assertIn(MARK, self.raw(closing).get("/").data)
        self.assertEqual(closed, [True])


class HelpersTestCase(unittest.TestCase):
    """The small functions that decide and insert."""

    def test_whole_html(self):
        html = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "5")]
        self.assertTrue(toolbar_middleware.whole_html("200 OK", html))
        self.assertTrue(toolbar_middleware.whole_html("404 NOT FOUND", html))
        for status in ("101 SWITCHING", "204 NO CONTENT", "206 PARTIAL", "301 MOVED",
                       "304 NOT MODIFIED"):
            self.assertFalse(toolbar_middleware.whole_html(status, html), status)
        self.assertFalse(toolbar_middleware.whole_html("200 OK", html[:1]))
        self.assertFalse(toolbar_middleware.whole_html("200 OK", html[1:]))
        self.assertFalse(toolbar_middleware.whole_html(
            "200 OK", [("Content-Type", "text/htmlx"), ("Content-Length", "5")]))
        self.assertFalse(toolbar_middleware.whole_html(
            "200 OK", html + [("Accept-Ranges", "bytes")]))

    def test_charset_of(self):
        self.assertEqual(toolbar_middleware.charset_of([("content-type", 'text/html; '
                                                         'Charset="ISO-8859-1"')]), "ISO-8859-1")
        self.assertEqual(toolbar_middleware.charset_of([("Content-Type", "text/html")]), "utf-8")
        self.assertEqual(toolbar_middleware.charset_of([]), "utf-8")

    def test_insert_before_body_end(self):
        insert = toolbar_middleware.insert_before_body_end
        self.assertEqual(insert(b"<body>a</body>", b"X"), b"<body>aX</body>")
        self.assertEqual(insert(b"<body>a</Body\t>", b"X"), b"<body>aX</Body\t>")
        self.assertIsNone(insert(b"<body>a", b"X"))


class ProfiledPagesTestCase(ProfiledAppTestCase):
    """In the demo's profile mode the headers and the toolbar name the saved profile."""

    settings = {"PROFILER_PRINT": False}

    def test_the_profile_header_names_the_saved_profile(self):
        response = self.client.get("/words/slow")
        (name,) = self.prof_files()
        self.assertEqual(response.headers["X-Tracker-Profile-Id"], name)
        metrics = dict(parse(response.headers["Server-Timing"]))
        self.assertGreater(metrics["total"]["dur"], metrics["profile"]["dur"])
        self.assertGreaterEqual(metrics["profiler"]["dur"], 0)
        self.assertIn(f'href="/dashboard/profiles/{name}"'.encode(), response.data)

    def test_json_is_not_changed_but_named(self):
        response = self.client.get("/dashboard/api/profiles")
        self.assertNotIn("X-Tracker-Profile-Id", response.headers)  # the dashboard: ignored
        self.assertIn("PROFILER_IGNORE", parse(response.headers["Server-Timing"])[1][1]["desc"])

    def test_remote_clients_get_no_profile_header(self):
        response = self.client.get("/words/fast", environ_base=REMOTE)
        self.assertEqual(len(self.prof_files()), 1)
        self.assertNotIn("X-Tracker-Profile-Id", response.headers)
        self.assertNotIn("Server-Timing", response.headers)
        self.assertNotIn(MARK, response.data)

    def test_a_busy_profiler_is_said_in_the_header(self):
        middleware = self.app.extensions["tracker_profiler"]
        with mock_busy(middleware):
            response = self.client.get("/index")
        self.assertNotIn("X-Tracker-Profile-Id", response.headers)
        self.assertIn("busy", dict(parse(response.headers["Server-Timing"]))["profile"]["desc"])
        self.assertIn(b"served unprofiled", response.data)


def mock_busy(middleware):
    """Make the profiler refuse the next requests, as when another request holds it."""
    return mock.patch.object(middleware, "_start_profile", return_value=None)



class DatabaseFiguresTestCase(unittest.TestCase):
    """With the database inside the profile, the tab and the header tell the queries."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tracker-toolbar-sql-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.app = Flask(__name__, instance_path=os.path.join(self.tmp, "instance"))
        tracker = Tracker(self.app, TOOLBAR_ENABLED=True, TRACKER_ENABLED=False)
        engine = tracker.watch_engine(create_engine(f"sqlite:///{self.tmp}/app.sqlite3"))
        self.addCleanup(engine.dispose)

        def run(times):
            with engine.connect() as conn:
                for number in range(times):
                    conn.execute(text("SELECT :n"), {"n": number})
            return PAGE

        self.app.add_url_rule("/one", "one", lambda: run(1))
        self.app.add_url_rule("/loop", "loop", lambda: run(6))

    def test_the_header_has_the_sql_time_and_the_query_count(self):
        for path, count in (("/one", "1 query"), ("/loop", "6 queries")):
            with self.subTest(path=path):
                response = self.app.test_client().get(path)
                metrics = dict(parse(response.headers["Server-Timing"]))
                self.assertEqual(metrics["sql"]["desc"], count)
                self.assertLessEqual(metrics["sql"]["dur"], metrics["total"]["dur"])

    def test_the_tab_counts_the_queries_and_marks_a_finding(self):
        one = self.app.test_client().get("/one").get_data(as_text=True)
        self.assertIn('id="queries"', one)
        self.assertRegex(one, r'id="queries"[^>]*>1 q<')
        self.assertNotIn('id="finding"', one)
        loop = self.app.test_client().get("/loop").get_data(as_text=True)
        self.assertRegex(loop, r'id="queries"[^>]*>6 q<')
        self.assertRegex(loop, r'id="finding" title="Database findings: [^"]*n plus one')
        self.assertIn("6 database queries in", loop)

if __name__ == "__main__":
    unittest.main()
