"""Chart geometry for the dashboard's SVG: pure functions from data to shapes, no Flask."""
import dataclasses
import datetime
import hashlib
import math

from ..profiles.kinds import is_sql

FLAME_WIDTH = 1200
FLAME_ROW = 20
CHAR_WIDTH = 7.0

#: What a flame rectangle carries over from its tree node for the page to show.
RECT_FIELDS = (
    "label",
    "name",
    "func_id",
    "time",
    "self_time",
    "calls",
    "callers",
    "split_unknown",
    "recursive",
    "virtual",
    "sql",
    "hidden_children",
    "hidden_time",
)


def place_children(node, x, node_width):
    """Give each child of a node its x and width: by time, squeezed to fit the parent."""
    scale = node_width / node["time"] if node["time"] > 0 else 0.0
    children_time = sum(child["time"] for child in node["children"])
    if children_time * scale > node_width:
        scale = node_width / children_time
    placed = []
    for child in node["children"]:
        placed.append((child, x, child["time"] * scale))
        x += child["time"] * scale
    return placed


def _rect(node, x, width, depth, total):
    """Describe one node's rectangle and what a page shows about it."""
    rect = {field: node[field] for field in RECT_FIELDS}
    rect.update(
        node_id=node["id"],
        x=x,
        width=width,
        depth=depth,
        fraction=node["time"] / total if total > 0 else 0.0,
    )
    return rect


def flame_layout(tree, width, *, min_width=0.0):
    """Turn a flame tree into rectangles (x, width, depth) an SVG can draw as they are.

    The root spans ``width``; children sit side by side from their parent's x,
    in tree order, scaled by time (and squeezed to fit should clock noise make
    them add up to more than their parent).  Rectangles narrower than
    ``min_width`` (or empty) are left out with their subtrees.  Sorted by
    depth, then x.
    """
    total = tree["root"]["time"]
    rects = []
    stack = [(tree["root"], 0.0, float(width), 0)]
    while stack:
        node, x, node_width, depth = stack.pop()
        rects.append(_rect(node, x, node_width, depth, total))
        for child, child_x, child_width in place_children(node, x, node_width):
            if child_width > 0 and child_width >= min_width:
                stack.append((child, child_x, child_width, depth + 1))
    rects.sort(key=lambda rect: (rect["depth"], rect["x"]))
    return rects


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
                           hue=_hue(rect["label"]),
                           sql=rect.get("sql") or is_sql(rect["label"])))
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


TIME_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)


def time_ticks(start, end, count=6):
    """Return moments on round minutes, hours or days covering ``start``..``end``."""
    step = next((s for s in TIME_STEPS if (end - start) / s <= count), TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    return list(range(int(first), int(end) + 1, step))


@dataclasses.dataclass(frozen=True)
class Frame:
    """The plotting area of a chart: its SVG size and the margins kept for the axes."""

    width: int
    height: int
    top: int = 12
    right: int = 16
    bottom: int = 30
    left: int = 56

    @property
    def plot_width(self):
        """Width between the axes."""
        return self.width - self.left - self.right

    @property
    def plot_height(self):
        """Height between the axes."""
        return self.height - self.top - self.bottom

    @property
    def baseline(self):
        """The y of the horizontal axis."""
        return self.top + self.plot_height

    def x_of(self, value, low, high):
        """Map ``value`` in ``low``..``high`` onto the plot's width."""
        return self.left + (value - low) / (high - low) * self.plot_width

    def y_of(self, value, high):
        """Map ``value`` in ``0``..``high`` onto the plot's height, 0 at the bottom."""
        return self.baseline - value / high * self.plot_height

    def axes(self, **layout):
        """Return the chart's layout with the frame's size and axis positions."""
        return dict(layout, width=self.width, height=self.height, left=self.left,
                    right=self.width - self.right, bottom=self.baseline)


def time_chart(series, frame=Frame(900, 220)):
    """Lay out a response-time chart: mean and p95 lines over time, request counts as bars.

    ``series`` is ``time_series`` output (``start``, ``end``, ``count``, ``mean``, ``p95``).
    Returns SVG paths, dots, bars and axis ticks in pixel coordinates.
    """
    if not series:
        return frame.axes(lines={}, dots={}, bars=[], x_ticks=[], y_ticks=[], empty=True)
    start, end = series[0]["start"], series[-1]["end"]
    peak = max(point["p95"] or 0.0 for point in series) or 1.0
    y_ticks = nice_ticks(0.0, peak, 4)
    if y_ticks[-1] < peak:  # one more round tick above the highest point
        y_ticks.append(y_ticks[-1] + y_ticks[1] - y_ticks[0])
    y_top = y_ticks[-1]
    lines, dots = {}, {}
    for key in ("mean", "p95"):
        dots[key] = [{"x": frame.x_of((point["start"] + point["end"]) / 2, start, end),
                      "y": frame.y_of(point[key], y_top), "value": point[key]}
                     for point in series if point[key] is not None]
        lines[key] = " ".join(f"{'M' if i == 0 else 'L'}{dot['x']:.1f},{dot['y']:.1f}"
                              for i, dot in enumerate(dots[key]))
    clock = "%H:%M" if end - start <= 86400 else "%b %d %H:%M"
    return frame.axes(
        lines=lines, dots=dots, bars=_count_bars(series, frame, start, end), empty=False,
        x_ticks=[{"x": frame.x_of(moment, start, end), "at": moment,
                  "label": datetime.datetime.fromtimestamp(moment).strftime(clock)}
                 for moment in time_ticks(start, end)],
        y_ticks=[{"y": frame.y_of(value, y_top), "value": value} for value in y_ticks])


def _count_bars(series, frame, start, end):
    """Draw request counts as bars along the bottom third of a time chart."""
    most = max(point["count"] for point in series) or 1
    slot = frame.plot_width / len(series)
    bars = []
    for point in series:
        if point["count"]:
            height = point["count"] / most * frame.plot_height * 0.35
            bars.append(dict(point, x=frame.x_of(point["start"], start, end) + slot * 0.1,
                             width=slot * 0.8, y=frame.baseline - height, height=height))
    return bars


def histogram_chart(buckets, frame=Frame(900, 200, bottom=40)):
    """Lay out a latency histogram: one bar per logarithmic bucket, labelled by its range."""
    most = max((bucket["count"] for bucket in buckets), default=0) or 1
    slot = frame.plot_width / max(1, len(buckets))
    bars = [dict(bucket, x=frame.left + index * slot + 1, width=max(1.0, slot - 2),
                 y=frame.y_of(bucket["count"], most),
                 height=bucket["count"] / most * frame.plot_height)
            for index, bucket in enumerate(buckets)]
    step = max(1, len(buckets) // 6)
    labels = [{"x": shape["x"], "text": f"{shape['low_ms']:.3g} ms", "anchor": "start"}
              for shape in bars[::step]]
    for label in labels:  # a label that would run past the right edge ends at it instead
        if label["x"] + len(label["text"]) * CHAR_WIDTH > frame.width:
            label.update(x=frame.width - 1, anchor="end")
    return frame.axes(
        bars=bars, empty=not buckets, labels=labels,
        y_ticks=[{"y": frame.y_of(value, most), "value": value}
                 for value in nice_ticks(0, most, 3) if value <= most])
