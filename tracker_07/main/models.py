"""The demo's database: authors, their posts and the comments on them (Flask-SQLAlchemy).

The data lives in an SQLite file in the instance folder (``SQLALCHEMY_DATABASE_URI``
overrides it) and is generated the first time a page needs it, with no download.
"""
import os
import random
import threading

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Column, ForeignKey, Integer, String, Text, func, insert, select
from sqlalchemy.orm import relationship

from ..sql.capture import paused

db = SQLAlchemy()

AUTHORS = 60
POSTS = 300
COMMENTS_PER_POST = 8
_seed_lock = threading.Lock()
#: Databases (URLs) whose data is known to be there, so later requests check nothing.
_ready = set()


class Author(db.Model):  # pylint: disable=too-few-public-methods  # a table
    """Someone who writes posts and comments."""

    __tablename__ = "demo_authors"
    id = Column(Integer, primary_key=True)
    name = Column(String(80), nullable=False)


class Post(db.Model):  # pylint: disable=too-few-public-methods  # a table
    """A post with its author and comments (both loaded lazily unless a query says so)."""

    __tablename__ = "demo_posts"
    id = Column(Integer, primary_key=True)
    title = Column(String(200), nullable=False)
    body = Column(Text, nullable=False)
    author_id = Column(Integer, ForeignKey("demo_authors.id"), nullable=False, index=True)
    author = relationship(Author)
    comments = relationship("Comment", back_populates="post", order_by="Comment.id")


class Comment(db.Model):  # pylint: disable=too-few-public-methods  # a table
    """A comment on a post, by an author."""

    __tablename__ = "demo_comments"
    id = Column(Integer, primary_key=True)
    text = Column(Text, nullable=False)
    post_id = Column(Integer, ForeignKey("demo_posts.id"), nullable=False, index=True)
    author_id = Column(Integer, ForeignKey("demo_authors.id"), nullable=False, index=True)
    post = relationship(Post, back_populates="comments")
    author = relationship(Author)


def init_app(app):
    """Point Flask-SQLAlchemy at the instance folder's ``demo.sqlite3`` unless configured."""
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", "sqlite:///" + os.path.join(
        app.instance_path, "demo.sqlite3"))
    db.init_app(app)


def ensure_data():
    """Create the tables and a few thousand generated rows the first time they are needed
    (not captured: set-up is not the page's work, and its profile should not show it)."""
    url = db.engine.url
    if url in _ready:
        return
    with _seed_lock, paused():
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        db.create_all()
        if db.session.scalar(select(func.count()).select_from(Author)):
            _ready.add(url)
            return
        rng = random.Random(11)
        words = ("flask", "query", "profile", "slow", "fast", "cache", "index", "join",
                 "lazy", "eager", "request", "template", "session", "row", "page")
        db.session.execute(insert(Author), [{"id": number, "name": f"Author {number}"}
                                            for number in range(1, AUTHORS + 1)])
        db.session.execute(insert(Post), [
            {"id": number, "title": " ".join(rng.choices(words, k=5)).capitalize(),
             "body": " ".join(rng.choices(words, k=60)), "author_id": rng.randint(1, AUTHORS)}
            for number in range(1, POSTS + 1)])
        db.session.execute(insert(Comment), [
            {"text": " ".join(rng.choices(words, k=12)), "post_id": number,
             "author_id": rng.randint(1, AUTHORS)}
            for number in range(1, POSTS + 1) for _ in range(COMMENTS_PER_POST)])
        db.session.commit()
        _ready.add(url)
