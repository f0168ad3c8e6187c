"""The demo's database pages (tracker_07/main/models.py, views): an N+1 page and its
eager-loading twin, found and not found by Tracker (on SQLite and, with
TRACKER_TEST_DATABASE_URL set, on the real PostgreSQL server); the cached words page and
its CLI."""
import os
import pstats
import re
import unittest
import warnings

from tracker_07.main import models
from tracker_07.profiles import index
from tracker_07.tests.base import ProfiledAppTestCase


class PostsPagesTestCase(ProfiledAppTestCase):
    """The demo in profile mode, its data in a temporary SQLite file."""

    def records(self, *paths):
        """Request ``paths`` and return their profiles' index records."""
        before = len(index.read_index(self.profile_dir))
        for path in paths:
            response = self.client.get(path)
            self.assertEqual(response.status_code, 200)
        return index.read_index(self.profile_dir)[before:]

    def test_the_data_is_made_on_first_use_in_the_configured_file(self):
        database = self.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        self.assertFalse(os.path.exists(database))
        self.records("/posts/fast")
        self.assertTrue(os.path.exists(database))
        with self.app.app_context():
            self.assertEqual(models.db.session.query(models.Comment).count(),
                             models.POSTS * models.COMMENTS_PER_POST)
            models.ensure_data()  # a second call adds nothing
            models._ready.clear()  # pylint: disable=protected-access  # a new process
            models.ensure_data()  # finds the data there and adds nothing either
            self.assertEqual(models.db.session.query(models.Author).count(), models.AUTHORS)

    def test_the_slow_page_has_n_plus_one_findings_and_the_fast_one_none(self):
        slow, fast = self.records("/posts/slow", "/posts/fast")
        self.assertEqual(fast["queries"], 4)
        self.assertEqual(fast["sql"]["findings"], [])
        self.assertGreater(slow["queries"], 100)
        kinds = {finding["kind"] for finding in slow["sql"]["findings"]}
        self.assertEqual(kinds, {"n_plus_one"})
        sites = {finding["site"]["file"] for finding in slow["sql"]["findings"]}
        self.assertEqual(sites, {"tracker_07/main/templates/main/posts.html"})
        self.assertEqual(len(slow["sql"]["findings"]), 3)  # author, comments, comment author
        self.assertIn("selectinload", slow["sql"]["findings"][0]["advice"])

    def test_the_console_report_adds_the_database_block_only_when_queries_ran(self):
        self.records("/posts/slow")
        report = self.report.getvalue()
        self.assertRegex(report, r"\n-{80}\n\nSQL: \d+ queries in [\d.]+ ms "
                                 r"\(\d+% of the request\)\n  N\+1: \d+ x [\d.]+ ms at "
                                 r"tracker_07/main/templates/main/posts\.html:")
        self.report.truncate(0)
        self.report.seek(0)
        self.records("/words/fast")
        self.assertNotIn("SQL:", self.report.getvalue())

    def test_both_pages_show_the_same_posts(self):
        slow = self.client.get("/posts/slow").get_data(as_text=True)
        fast = self.client.get("/posts/fast").get_data(as_text=True)
        items = re.compile(r'<ol id="posts">(.*)</ol>', re.S)
        self.assertEqual(items.search(slow).group(1), items.search(fast).group(1))


class SampledPostsTestCase(ProfiledAppTestCase):
    """The demo's N+1 page under the sampling engine: its database time is marked in the icicle."""

    #: The page's queries take ~3% of it: at 0.1 ms a few dozen samples land in them, at
    #: 1 ms only two or three (none in some runs).
    settings = {"PROFILER_ENGINE": "sampling", "PROFILER_INTERVAL_MS": 0.1}

    def sql_node_names(self, record):
        """The names of the nodes marked SQL in a profile's icicle, as its JSON gives it."""
        flame = self.client.get(f"/dashboard/api/profiles/{record['id']}").get_json()["flame"]
        stack, names = [flame["root"]], set()
        while stack:
            node = stack.pop()
            stack.extend(node["children"])
            if node["sql"]:
                names.add(node["name"])
        return names

    def test_the_slow_page_icicle_marks_the_drivers_time_as_sql(self):
        self.client.get("/posts/slow")  # makes the data: the profiles below are the page alone
        # The queries' time is split over many call paths, each near the icicle's 0.5%
        # cut: in some profiles none of them is drawn, so up to five are looked at.
        for _ in range(5):
            before = len(index.read_index(self.profile_dir))
            self.assertEqual(self.client.get("/posts/slow").status_code, 200)
            record = index.read_index(self.profile_dir)[before]
            self.assertEqual(record["engine"], "sampling")
            names = self.sql_node_names(record)
            if names:
                break
        self.assertIn("do_execute", names)
        page = self.client.get(f"/dashboard/profiles/{record['id']}").get_data(as_text=True)
        self.assertRegex(page, r'class="frame kind-\w+ sql')
        self.assertIn("SQL (database driver)", page)


@unittest.skipUnless(os.environ.get("TRACKER_TEST_DATABASE_URL"),
                     "set TRACKER_TEST_DATABASE_URL (see .ci/postgres-start)")
class PostgresPostsTestCase(ProfiledAppTestCase):
    """The demo's data on the real PostgreSQL server."""

    def make_app(self, config_name="profile", **settings):
        settings.setdefault("SQLALCHEMY_DATABASE_URI", os.environ["TRACKER_TEST_DATABASE_URL"])
        return super().make_app(config_name, **settings)

    def tearDown(self):
        # The test's app context is the requests' too, so its session is still open.
        models.db.session.remove()
        models.db.drop_all()
        models.db.engine.dispose()
        models._ready.clear()  # pylint: disable=protected-access  # the tables are gone
        super().tearDown()

    def test_n_plus_one_on_the_slow_page_and_not_on_the_fast_one(self):
        for path in ("/posts/fast", "/posts/slow", "/posts/fast"):
            self.assertEqual(self.client.get(path).status_code, 200)
        _first, slow, fast = index.read_index(self.profile_dir)
        self.assertEqual((fast["queries"], fast["sql"]["findings"]), (4, []))
        self.assertEqual(slow["queries"], 110)
        self.assertEqual(sorted((finding["kind"], finding["site"]["file"], finding["count"])
                                for finding in slow["sql"]["findings"]),
                         [("n_plus_one", "tracker_07/main/templates/main/posts.html", count)
                          for count in (16, 43, 50)])
        rows = {item["count"]: item["rows"] for item in slow["sql"]["queries"]["statements"]}
        self.assertEqual(rows[50], 50 * models.COMMENTS_PER_POST)  # PostgreSQL counts rows


class CachedWordsTestCase(ProfiledAppTestCase):
    """The words page cached with Flask-Caching, and the command that empties the cache."""

    settings = {"TOOLBAR_ENABLED": False}  # the toolbar tells each request's own time

    def counted(self, app=None):
        """Request the cached page; tell whether its profile shows the words being counted."""
        (app or self.app).test_client().get("/words/cached")
        record = index.read_index(self.profile_dir)[-1]
        stats = pstats.Stats(os.path.join(self.profile_dir, record["id"]))
        return any(name == "top_words_naive" for _file, _line, name in stats.stats)

    def test_the_second_visit_is_served_from_the_cache(self):
        first = self.client.get("/words/cached")
        self.assertIn(b"(cached)", first.data)
        self.assertFalse(self.counted())
        self.assertEqual(self.client.get("/words/cached").data, first.data)

    def test_clear_cache_command_makes_the_next_visit_compute_again(self):
        self.assertTrue(self.counted())
        self.assertFalse(self.counted())
        result = self.runner.invoke(args=["demo", "clear-cache"])
        self.assertEqual(result.output, "Cache cleared.\n")
        self.assertTrue(self.counted())

    def test_cache_type_comes_from_the_config(self):
        self.assertEqual(self.app.config["CACHE_TYPE"], "SimpleCache")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Flask-Caching warns that NullCache caches nothing
            app = self.make_app("profile", CACHE_TYPE="NullCache")
        self.assertTrue(self.counted(app))
        self.assertTrue(self.counted(app))
