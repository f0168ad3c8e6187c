"""A test app for the database inside the profile: a plain SQLAlchemy engine (ORM and Core)
watched with ``tracker.watch_engine``, with N+1 shapes and their clean look-alikes.

Every line that runs a query the tests check is marked ``# site: NAME`` so a test can find
its number (:func:`site_line`).
"""
import os
import time

from flask import Flask, jsonify, render_template
from sqlalchemy import Column, ForeignKey, Integer, String, create_engine, event, select, text
from sqlalchemy.orm import Session, declarative_base, relationship

from tracker_07 import Tracker
from tracker_07.tracking.cli import EXTENSION_KEY as TRACKING_KEY

Base = declarative_base()
ITEMS = 10


class Author(Base):  # pylint: disable=too-few-public-methods  # a table
    """A writer."""

    __tablename__ = "sqltest_authors"
    id = Column(Integer, primary_key=True)
    name = Column(String(40), nullable=False)


class Post(Base):  # pylint: disable=too-few-public-methods  # a table
    """A post with a lazy author and lazy comments."""

    __tablename__ = "sqltest_posts"
    id = Column(Integer, primary_key=True)
    title = Column(String(40), nullable=False)
    author_id = Column(Integer, ForeignKey("sqltest_authors.id"), nullable=False)
    author = relationship(Author)
    comments = relationship("Comment", order_by="Comment.id")


class Comment(Base):  # pylint: disable=too-few-public-methods  # a table
    """A comment with a lazy author."""

    __tablename__ = "sqltest_comments"
    id = Column(Integer, primary_key=True)
    post_id = Column(Integer, ForeignKey("sqltest_posts.id"), nullable=False)
    author_id = Column(Integer, ForeignKey("sqltest_authors.id"), nullable=False)
    author = relationship(Author)


def site_line(name):
    """The line number of this file marked ``# site: name``."""
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if line.rstrip().endswith(f"# site: {name}"):
                return number
    raise LookupError(name)


def template_line(name):
    """The line number of the test template marked ``{# site: name #}``."""
    path = os.path.join(os.path.dirname(__file__), "templates", "sql_posts.html")
    with open(path, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if f"{{# site: {name} #}}" in line:
                return number
    raise LookupError(name)


def seed(engine):
    """Create the tables with ITEMS posts, each by its own author, each with two comments
    by two more authors of their own (so no lazy load is answered from the identity map)."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for number in range(1, ITEMS + 1):
            session.add(Author(id=number, name=f"author {number}"))
        for number in range(1, 2 * ITEMS + 1):
            session.add(Author(id=100 + number, name=f"commenter {number}"))
        session.flush()
        for number in range(1, ITEMS + 1):
            session.add(Post(id=number, title=f"post {number}", author_id=number))
        session.flush()
        for number in range(1, 2 * ITEMS + 1):
            session.add(Comment(id=number, post_id=(number + 1) // 2, author_id=100 + number))
        session.commit()


#: Far above what a query of these views takes even on a busy machine (one took 57 ms once,
#: and its request got a finding too many), far below the slow view's 300 ms of sleep.
SLOW_QUERY_MS = 150


def _add_sleep(dbapi_connection, _record):
    """Give SQLite ``sleep_ms(n)``, a query as slow as PostgreSQL's ``pg_sleep``."""
    dbapi_connection.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or ms)


def create_sql_app(tmpdir, database_url=None, **settings):
    """The test app: its data in ``database_url`` (an SQLite file in ``tmpdir`` by default),
    watched by a ``Tracker`` with tracking and profile mode into ``tmpdir``."""
    app = Flask(__name__, instance_path=os.path.join(tmpdir, "instance"))
    app.config.update({"TRACKER_DATABASE_URL": f"sqlite:///{tmpdir}/tracker.sqlite3",
                       "PROFILER_ENABLED": True, "PROFILER_DIR": os.path.join(tmpdir, "profiles"),
                       "PROFILER_PRINT": False, "TRACKER_SLOW_QUERY_MS": SLOW_QUERY_MS,
                       **settings})
    engine = create_engine(database_url or f"sqlite:///{tmpdir}/data.sqlite3")
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _add_sleep)
    seed(engine)
    tracker = Tracker(app)
    tracker.watch_engine(engine)
    app.extensions["sql_test_engine"] = engine
    _routes(app, engine)
    return app, tracker, engine


def _routes(app, engine):  # pylint: disable=too-many-locals  # one view per shape
    """The views: N+1 shapes, clean look-alikes, a duplicate, a slow query."""

    @app.route("/lazy-loop")
    def lazy_loop():
        """N+1: a lazy relation read in a loop."""
        with Session(engine) as session:
            posts = session.scalars(select(Post).order_by(Post.id)).all()  # site: lazy-list
            names = []
            for post in posts:
                names.append(post.author.name)  # site: lazy-loop
        return jsonify(names)

    @app.route("/query-per-item")
    def query_per_item():
        """N+1: one explicit query per item of a loop."""
        counts = []
        with engine.connect() as conn:
            for number in range(1, ITEMS + 1):
                statement = select(Comment.id).where(Comment.post_id == number)
                counts.append(conn.execute(statement).all())  # site: per-item
        return jsonify(len(counts))

    @app.route("/template")
    def template():
        """N+1: a query per row while the template renders."""
        with Session(engine) as session:
            posts = session.scalars(select(Post).order_by(Post.id)).all()
            return render_template("sql_posts.html", posts=posts)

    @app.route("/nested")
    def nested():
        """N+1 two levels deep: comments per post, then the author of each comment."""
        with Session(engine) as session:
            names = []
            for post in session.scalars(select(Post).order_by(Post.id)).all():
                for comment in post.comments:  # site: nested-outer
                    names.append(comment.author.name)  # site: nested-inner
        return jsonify(names)

    @app.route("/one-query-loop")
    def one_query_loop():
        """Clean: a loop over the rows of one query."""
        with engine.connect() as conn:
            rows = conn.execute(select(Comment.id, Comment.post_id)).all()  # site: one-query
        return jsonify(sum(1 for _row in rows))

    @app.route("/loop-one-query")
    def loop_one_query():
        """Clean: a loop of ten items that runs its query once and reuses the answer."""
        known = {}
        with engine.connect() as conn:
            for _ in range(ITEMS):
                if "authors" not in known:
                    known["authors"] = conn.execute(select(Author.name)).all()
        return jsonify(len(known["authors"]))

    @app.route("/batch-in")
    def batch_in():
        """Clean: one query with IN (...) for every item."""
        with engine.connect() as conn:
            rows = conn.execute(select(Comment.id).where(
                Comment.post_id.in_(list(range(1, ITEMS + 1))))).all()
        return jsonify(len(rows))

    @app.route("/duplicate")
    def duplicate():
        """The same query with the same parameters, three times."""
        with engine.connect() as conn:
            for _ in range(3):
                conn.execute(select(Author.name).where(Author.id == 1)).all()  # site: dup
        return jsonify(3)

    @app.route("/slow")
    def slow():
        """One query that takes twice TRACKER_SLOW_QUERY_MS (``SLOW_QUERY_MS``) at least."""
        sleep = "pg_sleep(0.3)" if engine.dialect.name == "postgresql" else "sleep_ms(300)"
        statement = text(f"SELECT {sleep}")
        with engine.connect() as conn:
            conn.execute(statement).all()  # site: slow
        return jsonify(1)

    @app.route("/store")
    def store():
        """Reads Tracker's own store during a request: never captured."""
        tracking = app.extensions[TRACKING_KEY]
        with tracking.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM tracker_requests")).scalar()
        return jsonify(count)

    @app.route("/nothing")
    def nothing():
        """No query at all."""
        return jsonify(0)
