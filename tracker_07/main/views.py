"""Views of the demo app."""
import time

from flask import Blueprint, current_app, render_template, url_for

from ..app_utils import runtime_facts
from . import wordcount

bp = Blueprint("main", __name__, template_folder="templates")


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
