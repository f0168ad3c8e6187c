"""The demo's cache (Flask-Caching): ``CACHE_TYPE`` from the configuration, SimpleCache
(in the process's memory) by default, so ``FLASK_CACHE_TYPE=RedisCache`` with
``FLASK_CACHE_REDIS_URL`` uses Redis where one runs."""
from flask_caching import Cache

cache = Cache()
#: How long the cached words page is kept, in seconds.
WORDS_TIMEOUT = 300


def init_app(app):
    """Default the cache settings, then attach the cache."""
    app.config.setdefault("CACHE_TYPE", "SimpleCache")
    app.config.setdefault("CACHE_DEFAULT_TIMEOUT", WORDS_TIMEOUT)
    cache.init_app(app)
