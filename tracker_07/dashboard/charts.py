"""Chart geometry for the dashboard's SVG: pure functions from data to shapes, no Flask."""
import datetime
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


TIME_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)


def time_ticks(start, end, count=6):
    """Return moments on round minutes, hours or days covering ``start``..``end``."""
    step = next((s for s in TIME_STEPS if (end - start) / s <= count), TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    return list(range(int(first), int(end) + 1, step))


def time_chart(series, width=900, height=220, margin=(12, 16, 28, 56)):
    """Lay out a response-time chart: mean and p95 lines over time, request counts as bars.

    ``series`` is ``time_series`` output (``start``, ``end``, ``count``, ``mean``, ``p95``).
    Returns SVG paths, bars and axis ticks in pixel coordinates.
    """
    top, right, bottom, left = margin
    plot_width, plot_height = width - left - right, height - top - bottom
    if not series:
        return {"width": width, "height": height, "lines": {}, "dots": {}, "bars": [],
                "x_ticks": [], "y_ticks": [], "empty": True}
    start, end = series[0]["start"], series[-1]["end"]
    peak = max((point["p95"] or 0.0 for point in series), default=0.0) or 1.0
    y_ticks = nice_ticks(0.0, peak, 4)
    y_top = max(y_ticks[-1], peak)
    most = max(point["count"] for point in series) or 1

    def x_of(moment):
        return left + (moment - start) / (end - start) * plot_width

    def y_of(value):
        return top + plot_height - value / y_top * plot_height

    lines, dots = {}, {}
    for key in ("mean", "p95"):
        dots[key] = [{"x": x_of((p["start"] + p["end"]) / 2), "y": y_of(p[key]), "value": p[key]}
                     for p in series if p[key] is not None]
        lines[key] = " ".join(f"{'M' if i == 0 else 'L'}{dot['x']:.1f},{dot['y']:.1f}"
                              for i, dot in enumerate(dots[key]))
    slot = plot_width / len(series)
    bars = [{"x": x_of(p["start"]) + slot * 0.1, "width": slot * 0.8,
             "height": p["count"] / most * plot_height * 0.35, "count": p["count"],
             "y": top + plot_height - p["count"] / most * plot_height * 0.35,
             "start": p["start"], "mean": p["mean"], "p95": p["p95"]}
            for p in series if p["count"]]
    clock = "%H:%M" if end - start <= 86400 else "%b %d %H:%M"
    x_ticks = [{"x": x_of(moment), "at": moment,
                "label": datetime.datetime.fromtimestamp(moment).strftime(clock)}
               for moment in time_ticks(start, end)]
    return {"width": width, "height": height, "lines": lines, "dots": dots, "bars": bars,
            "x_ticks": x_ticks, "y_ticks": [{"y": y_of(v), "value": v} for v in y_ticks],
            "left": left, "bottom": top + plot_height, "right": width - right, "empty": False}


def histogram_chart(buckets, width=900, height=200, margin=(12, 16, 40, 56)):
    """Lay out a latency histogram: one bar per logarithmic bucket, labelled by its range."""
    top, right, bottom, left = margin
    plot_width, plot_height = width - left - right, height - top - bottom
    most = max((bucket["count"] for bucket in buckets), default=0) or 1
    slot = plot_width / max(1, len(buckets))
    bars = []
    for index, bucket in enumerate(buckets):
        bar_height = bucket["count"] / most * plot_height
        bars.append(dict(bucket, x=left + index * slot + 1, width=max(1.0, slot - 2),
                         y=top + plot_height - bar_height, height=bar_height))
    step = max(1, len(buckets) // 6)
    labels = [{"x": bar["x"], "text": f"{bar['low_ms']:.3g} ms"} for bar in bars[::step]]
    return {"width": width, "height": height, "bars": bars, "labels": labels,
            "left": left, "bottom": top + plot_height, "right": width - right,
            "y_ticks": [{"y": top + plot_height - v / most * plot_height, "value": v}
                        for v in nice_ticks(0, most, 3) if v <= most],
            "empty": not buckets}
