"""Chart geometry for the dashboard's SVG: pure functions from data to shapes, no Flask."""
import hashlib
import math

FLAME_WIDTH = 1200
FLAME_ROW = 20
CHAR_WIDTH = 7.0


def flame_rects(rects, row=FLAME_ROW):
    """Place flame layout rectangles (root on top) and give each a fitting label and colour."""
    placed = []
    for rect in rects:
        chars = int((rect["width"] - 6) // CHAR_WIDTH)
        label = rect["label"] if rect["virtual"] else rect["name"]
        if chars < 3:
            label = ""
        elif len(label) > chars:
            label = label[: chars - 1] + "…"
        placed.append(dict(rect, y=rect["depth"] * row, height=row - 1, text=label,
                           hue=_hue(rect["label"])))
    return placed


def flame_height(rects, row=FLAME_ROW):
    """Return the SVG height that fits the deepest rectangle."""
    return (max((rect["depth"] for rect in rects), default=0) + 1) * row


def _hue(label):
    """Give each function a stable warm colour so it is recognisable across profiles."""
    digest = hashlib.blake2b(label.encode("utf-8", "backslashreplace"), digest_size=2).digest()
    return 10 + digest[0] % 40


def nice_ticks(low, high, count=5):
    """Return round tick values covering ``low``..``high`` (for chart axes)."""
    if high <= low:
        high = low + 1
    raw_step = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks
