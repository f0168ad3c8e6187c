"""Index lines parsed into records, with orjson when it is installed, exactly as ``json`` would.

A first listing of a 50,000-profile folder parses a 12 MB index; ``orjson``
(in requirements.txt) does that in about 60% of ``json``'s time.  The records
are the same whichever is installed, because ``json`` decides wherever the two
could differ:

- orjson makes a float of an integer beyond 64 bits where json keeps an int, so
  text with a run of 19 digits or more is left to json;
- orjson refuses what json accepts beyond the JSON standard (``NaN``,
  ``Infinity``, a number too large for a float, a lone surrogate such as
  ``\\ud800``, very deep nesting): what orjson refuses, json parses;
- the whole lines are parsed as one array only if they hold nothing that
  ``str.splitlines`` would split at besides ``\\n``, and no byte beyond ASCII
  (which json's reader turns into U+FFFD): otherwise they are decoded and split
  as always.

Everything orjson accepts otherwise, json accepts with the same values and
types (``tracker_07/tests/test_profiles_index_lines.py`` compares them).
"""
import json

try:
    from orjson import JSONDecodeError as OrjsonDecodeError, loads as orjson_loads
except ImportError:  # pragma: no cover  # installed from requirements.txt; json then
    orjson_loads = None

#: Bytes that ``str.splitlines`` splits at besides ``\n`` (as ASCII), and bytes beyond ASCII.
_SPLIT_ELSEWHERE = b"\r\x0b\x0c\x1c\x1d\x1e" + bytes(range(0x80, 0x100))
#: Maps each digit to ``0``, the bytes above to ``!`` and every other byte to ``.``.
_CLASSES = bytes(
    ord("0") if byte in b"0123456789" else ord("!") if byte in _SPLIT_ELSEWHERE else ord(".")
    for byte in range(256))
#: The shortest run of digits that may be an integer orjson turns into a float.
_LONG_INTEGER = b"0" * 19


class IndexLines:
    """Whole lines of an index as read: one bytes object ending in ``\\n``.

    Its length is its number of lines, as for a list of lines.
    """

    __slots__ = ("data",)

    def __init__(self, data):
        """Keep the bytes (empty, or ending in a newline)."""
        self.data = data

    def __len__(self):
        """Count the lines."""
        return self.data.count(b"\n")

    def parts(self, size):
        """Yield the lines in order as IndexLines of whole lines, each ``size`` bytes or a
        little more (the last one maybe less)."""
        data, start = self.data, 0
        while start < len(data):
            end = data.find(b"\n", start + size - 1) + 1 or len(data)
            yield IndexLines(data[start:end])
            start = end

    def may_spell(self, text):
        """Whether a JSON string in the lines may hold ``text`` (ASCII): as it is, or through a
        ``\\u`` escape, the only other way JSON can spell it.  Searched for in about half the
        time of a look at 1,000 records' ids (one byte is searched for quickly, two slowly:
        the backslash first)."""
        data = self.data
        return text.encode("ascii") in data or (b"\\" in data and b"\\u" in data)

    def split(self):
        """Return the lines as text, as the index has always been read."""
        return self.data.decode("ascii", "replace").splitlines()

    def parse_whole(self):
        """Parse every line as one JSON array with orjson; None where json must do it."""
        if orjson_loads is None:
            return None
        classes = self.data.translate(_CLASSES)
        if b"!" in classes or _LONG_INTEGER in classes:
            return None
        listed = self.data.replace(b"\n", b",")  # a blank line or a damaged one fails the whole
        try:
            return orjson_loads(b"".join((b"[", memoryview(listed)[:-1], b"]")))
        except OrjsonDecodeError:
            return None


def parse_values(lines):
    """Return the JSON values of ``lines`` (an IndexLines or a list of lines) but damaged ones.

    All lines are parsed as one array first (about twice as fast as line by
    line); only if that fails are they parsed one by one.
    """
    if isinstance(lines, IndexLines):
        values = lines.parse_whole()
        if values is not None:
            return values
        lines = lines.split()
    if not lines:
        return []
    joined = ",".join(lines)
    try:  # json decides even when orjson refused it: blank lines make this fail too
        return json.loads("[" + joined + "]")
    except ValueError:
        pass
    fits = orjson_loads is not None and _fits_orjson(joined)
    loads = _loads_either if fits else json.loads
    values = []
    for line in lines:
        if not line.strip():
            continue
        try:
            values.append(loads(line))
        except ValueError:
            continue
    return values


def _fits_orjson(text):
    """Tell whether orjson reads ``text`` as json does wherever it accepts it (no long integer)."""
    return _LONG_INTEGER not in text.encode("ascii", "replace").translate(_CLASSES)


def _loads_either(line):
    """Parse one line with orjson, or with json where orjson refuses it."""
    try:
        return orjson_loads(line)
    except OrjsonDecodeError:
        return json.loads(line)
