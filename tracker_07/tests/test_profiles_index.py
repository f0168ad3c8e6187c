"""The index file: appending, incremental reading, damaged lines and atomic rewrites."""
import json
import os
import random
import threading
import unittest
from unittest import mock

from tracker_07.profiles import files, index
from tracker_07.tests import profile_fixtures as fx


class AppendReadTest(fx.TempFolderTestCase):
    """Appended records read back; damaged lines and missing files cost nothing."""

    def test_damaged_index_lines_are_skipped(self):
        """Only well-formed lines naming Tracker's own files are read back."""
        good = {"id": files.profile_filename("GET", "/a", 1, 1), "path": "/a"}
        index.append_index(self.folder, good)
        with open(os.path.join(self.folder, index.INDEX_NAME), "a", encoding="ascii") as file:
            file.write('{"id": "../escape.prof"}\nnot json\n[1, 2]\n{"id": 3')
        self.assertEqual(index.read_index(self.folder), [good])

    def test_long_paths_are_cut_in_the_index(self):
        """A huge request path cannot make a huge index line."""
        index.append_index(self.folder, {"id": "x", "path": "/" + "p" * 5000})
        with open(os.path.join(self.folder, index.INDEX_NAME), encoding="ascii") as file:
            record = json.loads(file.readline())
        self.assertEqual(len(record["path"]), index.MAX_INDEXED_PATH_LENGTH)

    def test_missing_index_is_empty(self):
        """A folder that does not exist has an empty index."""
        self.assertEqual(index.read_index(os.path.join(self.folder, "nowhere")), [])

    def test_wrongly_typed_fields_become_unknown(self):
        """Normalised records blank fields of the wrong type and mark themselves indexed."""
        made = index.normalise_record(fx.index_entry("a.prof", status="200", calls=True))
        self.assertEqual((made["status"], made["calls"], made["indexed"]), (None, None, True))


class ShapeTest(fx.TempFolderTestCase):
    """Records are judged by the types of their fields, each kind of record once."""

    def test_same_rules_whether_a_shape_is_kept_or_not(self):
        """A complete record keeps its fields; wrong types become None even past MAX_SHAPES."""
        complete = fx.index_entry("a.prof", engine="cprofile", queries=2, sql_ms=1.5,
                                  interval_ms=None, samples=None)
        wrong = fx.index_entry("b.prof", status="200", calls=True, elapsed_ms=3)
        for limit in (index.MAX_SHAPES, 0):
            with self.subTest(limit=limit), mock.patch.object(index, "MAX_SHAPES", limit):
                index._shape_blanks.clear()  # pylint: disable=protected-access  # a cold start
                made = index.normalise_record(complete)
                self.assertEqual({key: made[key] for key in complete}, complete)
                made = index.normalise_record(wrong)
                self.assertEqual((made["status"], made["calls"], made["elapsed_ms"]),
                                 (None, None, 3))
                self.assertEqual((made["queries"], made["engine"]), (None, "cprofile"))


class BulkNormaliseTest(unittest.TestCase):
    """Records normalised in bulk are exactly those normalised one by one, keys in order."""

    def assert_as_one_by_one(self, records):
        """Normalise copies one by one and in bulk, grouped in C and in Python: the same
        dicts, keys in the same order, same objects."""
        expected = [index.normalise_record(record) for record in records]
        self.assertIsNotNone(index.key_orders, "tracker_07/profiles/_listing.c is not compiled")
        for grouped_by in (index.key_orders, None):
            fresh = [dict(record) for record in records]
            with mock.patch.object(index, "key_orders", grouped_by):
                made = index.normalise_parsed(fresh)
            self.assertEqual([list(record.items()) for record in made],
                             [list(record.items()) for record in expected])
            self.assertEqual(list(map(id, made)), list(map(id, fresh)))  # normalised in place

    def test_groups_by_key_order_in_c_as_in_python(self):
        """The groups, their records and the types seen at each position, alike."""
        generator = random.Random(9)
        pool = [None, True, 0, 3, 1.5, "x", [1], {"a": 1}]
        for _round in range(100):
            shapes = [generator.sample(index.FIELD_NAMES, generator.randint(0, 5))
                      for _shape in range(generator.randint(1, 4))]
            records = [{"id": f"{number}.prof",
                        **{field: generator.choice(pool) for field in generator.choice(shapes)}}
                       for number in range(generator.randint(0, 30))]
            for most in (1, 2, index.MAX_KEY_ORDERS):
                compiled = index.key_orders(records, most)
                in_python = index._key_orders(records, most)  # pylint: disable=protected-access
                if in_python is None:
                    self.assertIsNone(compiled)
                    continue
                self.assertEqual({keys: (list(group), list(types))
                                  for keys, (group, types) in compiled.items()},
                                 {keys: (list(group), list(types))
                                  for keys, (group, types) in in_python.items()})
        for odd in ([{"id": "a.prof", 1: 2}], [{"id": "a.prof", "b": 2}, {"id": "c.prof", 1: 2}],
                    [["not", "a", "dict"]]):
            self.assertIsNone(index.key_orders(odd, index.MAX_KEY_ORDERS))

    def test_a_folder_of_like_records_is_normalised_without_a_call_per_record(self):
        """One key order, every field well typed: filled in C, the same as one by one."""
        records = [fx.index_entry(f"GET.a.1ms.{n}.1-1.prof", time=float(n)) for n in range(50)]
        expected = [index.normalise_record(record) for record in records]
        with mock.patch.object(index, "_normalise_in_place") as one_by_one:
            made = index.normalise_parsed(records)
        one_by_one.assert_not_called()
        self.assertEqual([list(record.items()) for record in made],
                         [list(record.items()) for record in expected])
        self.assertEqual(index.normalise_parsed([]), [])

    def test_what_needs_a_record_by_record_look(self):
        """Wrong types, a field some lack, engines from names or null, ``indexed`` given."""
        like = [fx.index_entry(f"a{n}.prof", time=float(n)) for n in range(5)]
        cases = {
            "a string status": [*like, fx.index_entry("s.prof", status="200")],
            "a bool count": [*like[:2], fx.index_entry("b.prof", calls=True), *like[2:]],
            "an int for a float": [*like, fx.index_entry("i.prof", elapsed_ms=3, time=7)],
            "a list path": [fx.index_entry("l.prof", path=["/x"]), *like],
            "a field some lack": [*like, {**like[0], "id": "q.prof", "queries": 3}],
            "sampled names": [*like, fx.index_entry("z.speedscope.json")],
            "a null engine": [{**record, "engine": None} for record in like],
            "engines given": [{**record, "engine": "sampling"} for record in like],
            "indexed false": [{**record, "indexed": False} for record in like],
            "keys in another order": [*like, dict(reversed(like[0].items()))],
            "only an id": [{"id": "o.prof"}, {"id": "p.speedscope.json"}],
            "extra fields": [{**record, "view": ["a"], "sql": {"n": 1}} for record in like],
        }
        for name, records in cases.items():
            with self.subTest(name):
                self.assert_as_one_by_one(records)

    def test_many_key_orders_are_normalised_one_by_one(self):
        """Past MAX_KEY_ORDERS orders (a damaged index) records go one by one, still exact."""
        records = [{"id": f"{n}.prof", f"extra{n}": n, "status": n} for n in range(80)]
        with mock.patch.object(index, "_group_fill", wraps=index._group_fill) as grouped:  # pylint: disable=protected-access
            self.assert_as_one_by_one(records)
        grouped.assert_not_called()

    def test_random_records(self):
        """Random mixes of fields, types and orders: the same as one by one."""
        generator = random.Random(7)
        pool = [None, True, 0, 3, 2**70, 1.5, "x", "GET", [1], {"a": 1}]
        names = ["a.prof", "b.speedscope.json"]
        for _round in range(200):
            shapes = [generator.sample(index.FIELD_NAMES, generator.randint(0, 4))
                      for _shape in range(generator.randint(1, 3))]
            records = []
            for number in range(generator.randint(1, 12)):
                record = {"id": f"{number}{generator.choice(names)}"}
                for field in generator.choice(shapes):
                    record[field] = generator.choice(pool[:4] if generator.random() < 0.8
                                                     else pool)
                records.append(record)
            self.assert_as_one_by_one(records)


class EngineFromNameTest(fx.TempFolderTestCase):
    """Index lines without an engine get their file's, read from the id only where the lines
    could name a sampled file."""

    def read(self, lines, part_bytes=index.PART_BYTES):
        """Write ``lines`` as the index and read it afresh: the engines, and the ids looked at."""
        with open(os.path.join(self.folder, index.INDEX_NAME), "w", encoding="ascii") as file:
            file.writelines(line + "\n" for line in lines)
        index.forget_snapshots()
        self.addCleanup(index.forget_snapshots)
        looked = mock.Mock(side_effect=index._IS_SAMPLED_NAME)  # pylint: disable=protected-access
        with mock.patch.object(index, "_IS_SAMPLED_NAME", looked), \
                mock.patch.object(index, "PART_BYTES", part_bytes):
            records = index.indexed_records(self.folder)
        return {record["id"]: record["engine"] for record in records}, looked.call_count

    def test_lines_of_cprofile_files_alone_need_no_look_at_their_ids(self):
        lines = [json.dumps(fx.index_entry(f"{number}.prof")) for number in range(5)]
        engines, looked = self.read(lines)
        self.assertEqual(engines, {f"{number}.prof": "cprofile" for number in range(5)})
        self.assertEqual(looked, 0)

    def test_sampled_files_named_plainly_or_by_escapes(self):
        sampled = json.dumps(fx.index_entry("s.speedscope.json"))
        escaped = json.dumps(fx.index_entry("e.speedscope.json")).replace(
            ".speedscope", "\\u002espeedscope")
        plain = [json.dumps(fx.index_entry(f"{number}.prof")) for number in range(3)]
        for lines, name in (([*plain, sampled], "s.speedscope.json"),
                            ([*plain, escaped], "e.speedscope.json")):
            for part_bytes in (index.PART_BYTES, 200):  # one part, or a part a line
                with self.subTest(name=name, part_bytes=part_bytes):
                    engines, looked = self.read(lines, part_bytes)
                    self.assertEqual(engines, {**{f"{number}.prof": "cprofile"
                                                  for number in range(3)}, name: "sampling"})
                    self.assertLessEqual(looked, 4 if part_bytes > 200 else 1)
                    self.assertGreater(looked, 0)


class IncrementalIndexTest(fx.TempFolderTestCase):
    """After a change, only the index lines appended since the last read are parsed."""

    def setUp(self):
        """Index two profiles and read the index once."""
        super().setUp()
        index.forget_snapshots()
        self.addCleanup(index.forget_snapshots)
        self.ids = [fx.write_profile(self.folder, start=1_700_000_000.0 + n) for n in range(2)]
        self.index_path = os.path.join(self.folder, index.INDEX_NAME)
        index.indexed_records(self.folder)

    def parsed_lines(self):
        """Read the index again; return the records and how many lines were parsed."""
        with mock.patch(
            "tracker_07.profiles.index.parse_index_lines", wraps=index.parse_index_lines
        ) as parse:
            records = index.indexed_records(self.folder)
        return [record["id"] for record in records], len(parse.call_args.args[0])

    def test_only_appended_lines_are_parsed(self):
        """A new index line is parsed alone and added after the known records."""
        self.assertEqual(self.parsed_lines(), (self.ids, 0))
        third = fx.write_profile(self.folder, start=1_700_000_002.0)
        self.assertEqual(self.parsed_lines(), (self.ids + [third], 1))

    def test_line_being_written_waits(self):
        """A line without its newline yet is read once it is complete."""
        name = fx.fake_name(seq=7)
        line = json.dumps(fx.index_entry(name))
        with open(self.index_path, "a", encoding="ascii") as file:
            file.write(line[:20])
        self.assertEqual(self.parsed_lines(), (self.ids, 0))
        with open(self.index_path, "a", encoding="ascii") as file:
            file.write(line[20:] + "\n")
        self.assertEqual(self.parsed_lines(), (self.ids + [name], 1))

    def test_replaced_or_edited_index_is_read_again(self):
        """A rewritten index (new file, new first bytes or a moved line end) is read whole."""
        os.remove(os.path.join(self.folder, self.ids[0]))
        index.rewrite_index(self.folder)
        self.assertEqual(self.parsed_lines(), (self.ids[1:], 1))
        self.prepend_space()
        self.assertEqual(self.parsed_lines(), (self.ids[1:], 1))
        with mock.patch("tracker_07.profiles.index.INDEX_HEAD_BYTES", 1):
            index.indexed_records(self.folder)
            self.prepend_space()
            self.assertEqual(self.parsed_lines(), (self.ids[1:], 1))

    def prepend_space(self):
        """Rewrite the index in place with a space in front (still valid JSON lines)."""
        with open(self.index_path, "r+b") as file:
            content = file.read()
            file.seek(0)
            file.write(b" " + content)

    def test_index_that_starts_empty(self):
        """An index read while still empty is read from its start once lines arrive."""
        with open(self.index_path, "w", encoding="ascii"):
            pass
        self.assertEqual(index.indexed_records(self.folder), [])
        index.append_index(self.folder, fx.index_entry(self.ids[0]))
        self.assertEqual(self.parsed_lines(), (self.ids[:1], 1))

    def test_removed_index(self):
        """Without an index there are no records."""
        os.remove(self.index_path)
        self.assertEqual(index.indexed_records(self.folder), [])

    def test_damaged_lines_are_skipped(self):
        """Lines that are not JSON objects with a string id are left out."""
        lines = ['{"id": "a.prof"}', "{broken", "[1]", '{"id": 5}', "", '{"id": "b.prof"}']
        ids = [parsed["id"] for parsed in index.parse_index_lines(lines)]
        self.assertEqual(ids, ["a.prof", "b.prof"])


class RewriteIndexTest(fx.TempFolderTestCase):
    """A rewrite drops lines of vanished files, keeps damaged ones and loses no append."""

    def setUp(self):
        """Index five profiles, one second apart."""
        super().setUp()
        self.ids = []
        for seq in range(5):
            name = fx.fake_name(seq=seq)
            fx.write_raw(self.folder, name, {})
            index.append_index(self.folder, fx.index_entry(name, time=1_700_000_000.0 + seq))
            self.ids.append(name)

    def temp_files(self):
        """Return the rewrite's temporary files left in the folder."""
        return [name for name in os.listdir(self.folder) if name.endswith(".tmp")]

    def test_keeps_damaged_and_drops_stale_lines(self):
        """Damaged lines survive a rewrite; lines of vanished files go; no temp file stays."""
        with open(os.path.join(self.folder, index.INDEX_NAME), "a", encoding="ascii") as file:
            file.write('{not json\n\n[1]\n{"id": ["unhashable"]}\n')
        index.append_index(self.folder, fx.index_entry(fx.fake_name(seq=50)))
        os.remove(os.path.join(self.folder, self.ids[0]))
        index.rewrite_index(self.folder)
        lines = fx.index_lines(self.folder)
        self.assertIn("{not json", lines)
        self.assertIn("[1]", lines)
        self.assertNotIn('{"id": ["unhashable"]}', lines)
        self.assertEqual([json.loads(line)["id"] for line in lines if line.startswith('{"id"')],
                         self.ids[1:])
        self.assertEqual(self.temp_files(), [])

    def test_concurrent_append_restarts_the_rewrite(self):
        """If the index grows during the rewrite, it is read again so no line is lost."""
        sizes = iter([-1])
        real_getsize = os.path.getsize

        def growing(path):
            return next(sizes, None) or real_getsize(path)

        with mock.patch("tracker_07.profiles.index.os.path.getsize", growing):
            index.rewrite_index(self.folder)
        self.assertEqual(len(fx.index_lines(self.folder)), 5)

    def test_failed_replace_leaves_no_temp_file(self):
        """If the index cannot be replaced, the error surfaces and the temp file is removed."""
        os.remove(os.path.join(self.folder, self.ids[0]))
        with mock.patch("tracker_07.profiles.index.os.replace", side_effect=PermissionError):
            with self.assertRaises(PermissionError):
                index.rewrite_index(self.folder)
        self.assertEqual(self.temp_files(), [])
        self.assertEqual(len(fx.index_lines(self.folder)), 5)

    def test_index_that_keeps_changing_is_left_alone(self):
        """An index that changes on every attempt is not replaced and the error says so."""
        before = fx.index_lines(self.folder)
        with mock.patch("tracker_07.profiles.index.os.path.getsize", return_value=-1):
            with self.assertRaises(OSError):
                index.rewrite_index(self.folder)
        self.assertEqual(fx.index_lines(self.folder), before)
        self.assertEqual(self.temp_files(), [])

    def test_no_index_file(self):
        """Rewriting a folder without an index creates none."""
        os.remove(os.path.join(self.folder, index.INDEX_NAME))
        index.rewrite_index(self.folder)
        self.assertFalse(os.path.exists(os.path.join(self.folder, index.INDEX_NAME)))


class IndexRewriteRaceTest(fx.TempFolderTestCase):
    """Appends from this process's request threads are never lost to a rewrite of the index."""

    def test_appends_during_rewrites(self):
        """Rewrites running all the time while a thread appends lose none of its lines."""
        names = []

        def append_many():
            for number in range(300):
                name = files.write_stats(
                    self.folder, lambda n=number: files.profile_filename("GET", f"/{n}", 1, 1), {})
                index.append_index(self.folder, {"id": name, "path": f"/{number}"})
                names.append(name)

        writer = threading.Thread(target=append_many)
        writer.start()
        while writer.is_alive():
            index.rewrite_index(self.folder)
        writer.join()
        self.assertEqual(sorted(r["id"] for r in index.read_index(self.folder)), sorted(names))


if __name__ == "__main__":
    unittest.main()
