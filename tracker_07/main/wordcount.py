"""The demo's bottleneck: the most common words of a text, counted naively and sensibly."""
import random
from collections import Counter
from functools import lru_cache

CORPUS_WORDS = 20_000
VOCABULARY_SIZE = 1_500


@lru_cache(maxsize=1)
def corpus(size=CORPUS_WORDS, vocabulary=VOCABULARY_SIZE):
    """Return a fixed pseudo-random text as a tuple of words (the same on every run)."""
    rng = random.Random(7)
    letters = "etaoinshrdlucmfwypvbgkqjxz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
             for _ in range(vocabulary)]
    weights = [1.0 / rank for rank in range(1, vocabulary + 1)]  # Zipf-like, as in real text
    return tuple(rng.choices(words, weights=weights, k=size))


def top_words_naive(words, limit=20):
    """Count each distinct word with ``list.count``: one full scan of the text per word."""
    text = list(words)
    counts = {word: text.count(word) for word in set(text)}
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def top_words_fast(words, limit=20):
    """Count every word in one pass with ``collections.Counter``."""
    counts = Counter(words)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
