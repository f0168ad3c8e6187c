"""Index lines parsed with orjson give exactly json's records; a folder's names sifted in bulk."""
import contextlib
import json
import os
import random
import threading
import unittest
from unittest import mock

from tracker_07.profiles import catalog, files, index, index_lines, routes
from tracker_07.profiles.errors import NotAFolder
from tracker_07.tests import profile_fixtures as fx

#: Lines of every kind a folder's index holds, as ``append_index`` writes them.
RECORDS = [
    fx.index_entry(fx.fake_name(seq=1)),
    fx.index_entry(fx.fake_name(seq=2), engine="sampling", interval_ms=1.0, samples=12,
                   view=["app.py", 10, "view"]),
    fx.index_entry(fx.fake_name(seq=3), queries=2, sql_ms=1.25,
                   sql={"statements": [{"sql": "SELECT 1", "ms": 0.5}], "findings": []}),
    fx.index_entry(fx.fake_name(seq=4), status=None, rule="/items/<int:id>", path="/é/\u2028"),
]


def reference_values(lines):
    """Parse lines as the index was parsed before orjson: json alone, as one array or line by
    line (the code this module replaced)."""
    try:
        return json.loads("[" + ",".join(lines) + "]") if lines else []
    except ValueError:
        values = []
        for line in lines:
            if not line.strip():
                continue
            try:
                values.append(json.loads(line))
            except ValueError:
                continue
        return values


def reference_records(data):
    """The records the whole lines in ``data`` (bytes) gave before orjson, as a reader kept them."""
    lines = data.decode("ascii", "replace").splitlines()
    return [value for value in reference_values(lines)
            if isinstance(value, dict) and isinstance(value.get("id"), str)]


def joined(*lines):
    """Whole index lines as the index holds them (bytes, each ending in a newline)."""
    return b"".join(line + b"\n" for line in lines)


def dumped(record):
    """One index line as ``append_index`` writes it."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class SameAsJsonTest(unittest.TestCase):
    """Whatever the lines hold, the records are json's, value for value and type for type."""

    def assert_as_json(self, data):
        """Parse ``data`` with orjson and without it: both equal the reference, types too."""
        expected = reference_records(data)
        for orjson_loads in (index_lines.orjson_loads, None):
            with self.subTest(orjson=orjson_loads is not None), \
                    mock.patch.object(index_lines, "orjson_loads", orjson_loads):
                parsed = index.parse_index_lines(index_lines.IndexLines(data))
                self.assertEqual(repr(parsed), repr(expected))
        return expected

    def test_orjson_is_installed(self):
        """The requirements install orjson, so the quick path is the one tested below."""
        self.assertIsNotNone(index_lines.orjson_loads)

    def test_a_folders_lines_are_parsed_at_once_with_orjson(self):
        """Lines as the middleware writes them are one orjson call, and json's records."""
        data = joined(*map(dumped, RECORDS))
        with mock.patch.object(index_lines.json, "loads", side_effect=AssertionError):
            records = index.parse_index_lines(index_lines.IndexLines(data))
        self.assertEqual(records, RECORDS)
        self.assertEqual(self.assert_as_json(data), RECORDS)

    def test_what_orjson_refuses_json_parses(self):
        """NaN, Infinity, a number beyond a float and a lone surrogate are json's to read."""
        for value in (b"NaN", b"-Infinity", b"1E400", b'"\\ud800"'):
            with self.subTest(value=value):
                odd = b'{"id":"odd.prof","elapsed_ms":%s}' % value
                records = self.assert_as_json(joined(dumped(RECORDS[0]), odd))
                self.assertEqual([record["id"] for record in records],
                                 [RECORDS[0]["id"], "odd.prof"])

    def test_integers_beyond_64_bits_stay_integers(self):
        """orjson makes a float of them; json, which reads such text, keeps the integer."""
        for digits in ("18446744073709551616", "-9223372036854775809", "1" * 40):
            with self.subTest(digits=digits):
                line = b'{"id":"big.prof","calls":%s}' % digits.encode()
                (record,) = self.assert_as_json(joined(line))
                self.assertEqual((record["calls"], type(record["calls"])), (int(digits), int))

    def test_damaged_and_blank_lines_are_skipped(self):
        """A half line, a blank line, non-objects and ids that are not text leave the rest."""
        good = [dumped(record) for record in RECORDS[:2]]
        records = self.assert_as_json(joined(
            good[0], b'{"id":"half', b"", b"  ", b"[1]", b'{"id":5}', b"null", good[1]))
        self.assertEqual(records, RECORDS[:2])

    def test_other_line_breaks_and_bytes_beyond_ascii_are_split_as_before(self):
        """Carriage returns and other breaks ``splitlines`` knows, and non-ASCII bytes."""
        good = dumped(RECORDS[0])
        for data in (good + b"\r\n" + good + b"\r\n",
                     joined(b'{"id":"a.prof",\r"x":1}', good),
                     joined(b'{"id":"a.prof"}\x1c{"id":"b.prof"}', good),
                     joined(b'{"id":"caf\xc3\xa9.prof"}', good)):
            with self.subTest(data=data[:40]):
                self.assertTrue(self.assert_as_json(data))

    def test_lines_that_join_into_one_value_are_as_before(self):
        """Two halves of a record on two lines are one record, as json read them joined."""
        (record,) = self.assert_as_json(joined(b'{"id":"a.prof"', b'"calls":3}'))
        self.assertEqual(record, {"id": "a.prof", "calls": 3})

    def test_a_damaged_index_reads_its_other_lines_with_orjson(self):
        """Line by line, orjson reads the lines it can and json only the ones it refuses."""
        lines = [dumped(record).decode() for record in RECORDS]
        lines += ["{broken", '{"id":"n","x":NaN}']
        orjson_loads = index_lines.orjson_loads
        with mock.patch.object(index_lines, "orjson_loads", wraps=orjson_loads) as fast, \
                mock.patch.object(index_lines.json, "loads", wraps=json.loads) as slow:
            values = index_lines.parse_values(lines)
        self.assertEqual(repr(values), repr(reference_values(lines)))
        self.assertEqual(len(fast.call_args_list), len(lines))
        self.assertEqual([call.args[0] for call in slow.call_args_list[1:]], lines[-2:])

    def test_a_damaged_index_with_a_long_integer_is_read_by_json(self):
        """Line by line too, text with a run of 19 digits is left to json."""
        lines = ['{"id":"a.prof","calls":123456789012345678901}', "{broken"]
        with mock.patch.object(index_lines, "orjson_loads", side_effect=AssertionError):
            values = index_lines.parse_values(lines)
        self.assertEqual(values, [{"id": "a.prof", "calls": 123456789012345678901}])

    def test_random_damage_gives_json_records(self):
        """Lines with random bytes changed, removed or added give exactly json's records."""
        generator = random.Random(11)
        alphabet = b'{}[]",:.-+eE0123456789 \t\r\n\\/ubtnfrNaIy\x00\x1f\x7f\xc3\xa9'
        lines = [bytearray(dumped(record)) for record in RECORDS]
        for _ in range(300):
            damaged = [bytearray(line) for line in lines]
            for _ in range(generator.randint(1, 4)):
                line = generator.choice(damaged)
                at = generator.randrange(len(line))
                if generator.random() < 0.5:
                    line[at] = generator.choice(alphabet)
                else:
                    line.insert(at, generator.choice(alphabet))
            self.assert_as_json(joined(*map(bytes, damaged)))

    def test_numbers_are_the_same(self):
        """Floats of every size and integers up to 64 bits read as json reads them."""
        generator = random.Random(5)
        numbers = [repr(generator.uniform(-1e6, 1e6)) for _ in range(200)]
        numbers += [f"{generator.random():.17g}e{generator.randint(-300, 300)}" for _ in range(200)]
        numbers += [str(generator.randint(-2**63, 2**64 - 1)) for _ in range(200)]
        numbers += ["0.1", "-0.0", "-0", "1e-320", "4.9e-324", "1.7976931348623157e308"]
        lines = [b'{"id":"n.prof","x":%s}' % number.encode() for number in numbers]
        records = self.assert_as_json(joined(*lines))
        self.assertEqual(len(records), len(numbers))


class IndexLinesTest(unittest.TestCase):
    """The bytes of whole lines count as their lines."""

    def test_length_is_the_number_of_lines(self):
        self.assertEqual(len(index_lines.IndexLines(joined(b"{}", b"", b"[]"))), 3)
        self.assertEqual(len(index_lines.IndexLines(b"")), 0)
        self.assertEqual(index.parse_index_lines(index_lines.IndexLines(b"")), [])


class PartsTest(fx.TempFolderTestCase):
    """The index parsed and normalised a part at a time gives the records of the whole."""

    def test_parts_are_whole_lines_in_order(self):
        """Each part ends a line and is at least the size asked (but the last); all in order."""
        data = joined(*(b"x" * length for length in (0, 3, 10, 1, 0, 7)))
        for size in (1, 2, 5, 11, 100):
            with self.subTest(size=size):
                parts = [part.data for part in index_lines.IndexLines(data).parts(size)]
                self.assertEqual(b"".join(parts), data)
                self.assertTrue(all(part.endswith(b"\n") for part in parts))
                self.assertTrue(all(len(part) >= size for part in parts[:-1]))
        self.assertEqual(list(index_lines.IndexLines(b"").parts(4)), [])

    def test_records_are_the_same_whatever_the_parts(self):
        """Damaged, blank, non-ASCII lines, other line breaks, long integers, key orders,
        wrong types and sampled files spread over parts: the records read one way before."""
        lines = [dumped(record) for record in RECORDS]
        lines += [b"", b"not json", b'{"id":"n.prof","x":%d}' % 2**70, b"\r".join(lines[:2]),
                  b'{"status":"200","id":"a.speedscope.json","engine":null}',
                  b"\xc3\xa9" + lines[0], lines[1] + b" ", b'{"id":"w.prof","time":"x"}']
        data = joined(*lines, *lines[:3])
        with open(os.path.join(self.folder, index.INDEX_NAME), "wb") as file:
            file.write(data)
        expected = [index.normalise_record(record) for record in reference_records(data)]
        for size in (1, 60, 400, index.PART_BYTES):
            with self.subTest(size=size), mock.patch.object(index, "PART_BYTES", size):
                index.forget_snapshots()
                self.addCleanup(index.forget_snapshots)
                records = index.indexed_records(self.folder)
                self.assertEqual([list(record.items()) for record in records],
                                 [list(record.items()) for record in expected])


class RouteKeysTest(unittest.TestCase):
    """Routes keyed by path or, when a record names its rule, by rule, alike."""

    def test_records_without_method_or_path_are_left_out_either_way(self):
        plain = [fx.index_entry("a.prof", path="/items/1", elapsed_ms=2.0),
                 fx.index_entry("b.prof", method=None), fx.index_entry("c.prof", path=None)]
        ruled = [fx.index_entry("d.prof", path="/items/2", rule="/items/<id>", elapsed_ms=4.0)]
        for records in (plain, plain + ruled):
            with self.subTest(rules=len(records) > len(plain)):
                table = routes.RouteTable(None, records)
                counts = {key: route.count for key, route in table.routes.items()}
                expected = {("GET", "/items/1"): 1}
                if len(records) > len(plain):
                    expected[("GET", "/items/<id>")] = 1
                self.assertEqual(counts, expected)
                self.assertEqual(table.size, len(records))
        self.assertEqual(table.path_routes, {("GET", "/items/2"): "/items/<id>"})


class ProfileEntriesTest(fx.TempFolderTestCase):
    """A folder's profile files are found as one by one, whatever else it holds."""

    def one_by_one(self):
        """The regular, safely named profile files, each checked by itself."""
        return sorted(name for name in os.listdir(self.folder) if files.is_safe_name(name)
                      and os.path.isfile(os.path.join(self.folder, name))
                      and not os.path.islink(os.path.join(self.folder, name)))

    def test_links_folders_and_odd_names_are_left_out(self):
        """Symbolic links (to a profile too), folders, a pipe, hidden and odd names: alike by
        the compiled reader, by the reader in Python, and by the compiled one when the system
        gives no entry's type (every name then checked in Python, with an ``lstat``)."""
        names = [fx.fake_name(seq=number) for number in range(20)]
        for name in names:
            fx.write_raw(self.folder, name, b"")
        os.symlink(names[0], os.path.join(self.folder, "link.prof"))
        os.symlink("nowhere", os.path.join(self.folder, "dangling.prof"))
        os.mkdir(os.path.join(self.folder, "dir.prof"))
        os.mkfifo(os.path.join(self.folder, "pipe.prof"))
        cases = {"all plain": [], "hidden": [".hidden.prof"], "odd": ["a\x7fb.prof"],
                 "not ascii": ["café.prof", "é" * 115 + ".speedscope.json"],
                 "not utf-8": [os.fsdecode(b"\xff\xfe.prof")], "backslash": ["a\\b.prof"],
                 "bare suffixes": [".prof", ".speedscope.json"], "control": ["a\tb.prof"]}
        for label, extra in cases.items():
            for name in extra:
                fx.write_raw(self.folder, name, b"")
            expected = self.one_by_one()
            entries = files.profile_entries(self.folder)
            with self.subTest(label, read="entries"):
                self.assertEqual(sorted(entries), expected)
                self.assertTrue(all(name == entry.name for name, entry in entries.items()))
            for reader, names_read in self.readers().items():
                with self.subTest(label, read=reader), names_read:
                    self.assertEqual(sorted(files.profile_names(self.folder)), expected)
            for name in extra:
                os.remove(os.path.join(self.folder, name))
        self.assertNotIn("link.prof", entries)

    def readers(self):
        """Each way of reading the names, as a context to read them in."""
        compiled = files._listing  # pylint: disable=protected-access
        self.assertIsNotNone(compiled,
                             "tracker_07/profiles/_listing.c is not compiled: pip install -e .")

        def no_types(folder):
            """A reader that leaves every name with a profile suffix to Python, as the
            compiled one does on a system that gives no entry's type (odd names too)."""
            return b"", b"".join(os.fsencode(name) + b"\0" for name in os.listdir(folder)
                                 if name.endswith((files.PROFILE_SUFFIX, files.SAMPLED_SUFFIX)))

        return {"compiled": contextlib.nullcontext(),
                "python": mock.patch.object(files, "_listing", None),
                "no types": mock.patch.object(compiled, "profile_names", no_types)}

    def test_the_compiled_reader_sorts_names_into_sure_and_unsure(self):
        """Regular files with safe names are sure; anything else with a suffix is left out."""
        fx.write_raw(self.folder, "a.prof", b"")
        fx.write_raw(self.folder, "b.speedscope.json", b"")
        fx.write_raw(self.folder, "notes.txt", b"")
        fx.write_raw(self.folder, ".a.prof", b"")
        os.mkdir(os.path.join(self.folder, "dir.prof"))
        os.symlink("a.prof", os.path.join(self.folder, "link.prof"))
        read = files._listing.profile_names  # pylint: disable=protected-access
        regular, unsure = read(self.folder)
        self.assertEqual((sorted(regular.split(b"\0")), unsure),
                         ([b"", b"a.prof", b"b.speedscope.json"], b""))
        with self.assertRaises(FileNotFoundError):
            read(os.path.join(self.folder, "nope"))
        with self.assertRaises(NotADirectoryError):
            read(os.path.join(self.folder, "a.prof"))
        with self.assertRaises(TypeError):
            read(None)

    def test_an_unsure_name_that_vanishes_is_left_out(self):
        """A name the system gave no type for, removed before its ``lstat``."""
        fx.write_raw(self.folder, "a.prof", b"")
        with mock.patch.object(files._listing, "profile_names",  # pylint: disable=protected-access
                               return_value=(b"", b"a.prof\0gone.prof\0")):
            self.assertEqual(files.profile_names(self.folder), {"a.prof"})


class NamesReadTest(fx.TempFolderTestCase):
    """The names are read beside the caller where the compiled reader is, and alike."""

    def test_read_in_a_thread_of_its_own_by_the_compiled_reader(self):
        fx.write_raw(self.folder, "a.prof", b"")
        threads = []
        compiled = files._listing  # pylint: disable=protected-access
        read = compiled.profile_names

        def reader(folder):
            threads.append(threading.current_thread())
            return read(folder)

        with mock.patch.object(compiled, "profile_names", reader):
            self.assertEqual(files.NamesRead(self.folder).result(), {"a.prof"})
        self.assertEqual([thread.name for thread in threads], ["tracker-profile-names"])
        self.assertIsNot(threads[0], threading.current_thread())

    def test_read_at_once_in_python(self):
        fx.write_raw(self.folder, "a.prof", b"")
        with mock.patch.object(files, "_listing", None), \
                mock.patch.object(files, "profile_entries") as other_reader:
            names_read = files.NamesRead(self.folder)
            self.assertIsNone(names_read.thread)
            self.assertEqual(names_read.names, {"a.prof"})  # before result() is asked
            self.assertEqual(names_read.result(), {"a.prof"})
        other_reader.assert_not_called()

    def test_read_at_once_when_no_thread_can_start(self):
        fx.write_raw(self.folder, "a.prof", b"")
        with mock.patch.object(threading.Thread, "start",
                               side_effect=RuntimeError("can't start new thread")):
            names_read = files.NamesRead(self.folder)
        self.assertIsNone(names_read.thread)
        self.assertEqual(names_read.result(), {"a.prof"})

    def test_errors_come_from_result_either_way(self):
        path = fx.write_raw(self.folder, "plain-file", b"x")
        for compiled in (True, False):
            with self.subTest(compiled=compiled), contextlib.ExitStack() as stack:
                if not compiled:
                    stack.enter_context(mock.patch.object(files, "_listing", None))
                names_read = files.NamesRead(path)
                with self.assertRaises(NotAFolder):
                    names_read.result()
                self.assertEqual(files.NamesRead(os.path.join(self.folder, "nope")).result(),
                                 set())

    def test_a_file_in_the_folders_place_is_not_a_folder_for_the_list(self):
        """The names' error comes first, also when the index's read fails too."""
        path = fx.write_raw(self.folder, "plain-file", b"x")
        with self.assertRaises(NotAFolder):
            catalog._scan(path, None)  # pylint: disable=protected-access
        with mock.patch.object(index, "indexed_records", side_effect=OSError("index")), \
                self.assertRaises(NotAFolder):
            catalog._scan(path, None)  # pylint: disable=protected-access
        with mock.patch.object(index, "indexed_records", side_effect=OSError("index")), \
                self.assertRaisesRegex(OSError, "index"):
            catalog._scan(self.folder, None)  # pylint: disable=protected-access


if __name__ == "__main__":
    unittest.main()
