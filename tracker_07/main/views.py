"""Views of the demo app."""
import time

import click
from flask import Blueprint, current_app, render_template, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..app_utils import runtime_facts
from . import wordcount
from .caching import cache
from .models import Comment, Post, db, ensure_data

bp = Blueprint("main", __name__, template_folder="templates", cli_group="demo")
#: How many of the newest posts the posts pages show.
POSTS_SHOWN = 50


@bp.route("/")
@bp.route("/index")
def index():
    """Show what is running, with a large image and a script to load."""
    facts = runtime_facts(current_app.config["CONFIG_NAME"])
    return render_template("main/index.html", facts=facts,
                           profiling=current_app.config["PROFILER_ENABLED"],
                           profile_dir=current_app.config["PROFILER_DIR"])


@bp.route("/words/slow")
def words_slow():
    """The most common words, counted with one ``list.count`` scan per distinct word."""
    return _words_page(wordcount.top_words_naive, "slow")


@bp.route("/words/fast")
def words_fast():
    """The same result in one pass with ``collections.Counter``."""
    return _words_page(wordcount.top_words_fast, "fast")


@bp.route("/words/cached")
@cache.cached(key_prefix="tracker_demo_words_cached")
def words_cached():
    """The slow page's answer, computed once and then served from Flask-Caching."""
    return _words_page(wordcount.top_words_naive, "cached")


@bp.route("/posts/slow")
def posts_slow():
    """The newest posts with author and comments, loaded lazily: one query per post and
    relation as the template touches them (N+1)."""
    ensure_data()
    posts = db.session.scalars(select(Post).order_by(Post.id.desc()).limit(POSTS_SHOWN)).all()
    return _posts_page(posts, "slow")


@bp.route("/posts/fast")
def posts_fast():
    """The same page with every relation eager-loaded by ``selectinload``: four queries."""
    ensure_data()
    posts = db.session.scalars(
        select(Post).order_by(Post.id.desc()).limit(POSTS_SHOWN).options(
            selectinload(Post.author),
            selectinload(Post.comments).selectinload(Comment.author))).all()
    return _posts_page(posts, "fast")


def _posts_page(posts, variant):
    """Render the posts page (the template reads each post's author and comments)."""
    return render_template("main/posts.html", posts=posts, variant=variant)


@bp.cli.command("clear-cache")
def clear_cache():
    """Empty the demo's cache (the cached words page is computed again on its next visit)."""
    cache.clear()
    click.echo("Cache cleared.")


def _words_page(count_words, variant):
    """Render the word report computed by ``count_words`` and how long it took."""
    words = wordcount.corpus()
    started = time.perf_counter()
    top = count_words(words)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return render_template("main/words.html", top=top, variant=variant,
                           elapsed_ms=elapsed_ms, word_count=len(words))


@bp.app_context_processor
def navigation():
    """Link the dashboard from the demo pages when it is mounted."""
    if "dashboard" not in current_app.blueprints:
        return {"dashboard_url": None}
    return {"dashboard_url": url_for("dashboard.index")}
