"""The profile folder as a list: reconciling, caching, sorting, paging, safe paths, pruning.

Past 350 lines because each of those six duties of ``profiles/listing.py`` has its edge cases.
"""
import builtins
import json
import os
import shutil
import tempfile
import time
import unittest
from unittest import mock

from tracker_07.profiles import listing
from tracker_07.profiles.errors import NotAFolder, ProfileNotFound
from tracker_07.profiles.index import INDEX_NAME, append_index, read_index
from tracker_07.profiles.records import named_mtime
from tracker_07.tests import profile_fixtures as fx


class CatalogRecordsTest(fx.TempFolderTestCase):
    """The list reconciles the index with the files actually in the folder."""

    def test_indexed_profile_keeps_index_fields(self):
        """An indexed file is listed with its full path and status from the index."""
        name = fx.write_profile(self.folder, path="/user/42?<script>", status=404)
        (item,) = listing.list_profiles(self.folder).items
        self.assertEqual(item["id"], name)
        self.assertEqual(item["path"], "/user/42?<script>")
        self.assertEqual(item["status"], 404)
        self.assertTrue(item["indexed"])

    def test_index_line_of_deleted_file_is_dropped(self):
        """An index line whose file is gone does not appear."""
        kept = fx.write_profile(self.folder)
        gone = fx.write_profile(self.folder, path="/gone")
        os.remove(os.path.join(self.folder, gone))
        ids = [item["id"] for item in listing.list_profiles(self.folder).items]
        self.assertEqual(ids, [kept])

    def test_file_without_index_line_is_read_from_its_name(self):
        """A tracker-named file with no index line gets method, path, ms and time from its name."""
        name = fx.fake_name(method="POST", slug="api.items", start_ms=1_700_000_000_500, elapsed=12)
        fx.write_raw(self.folder, name, fx.synthetic_stats())
        (item,) = listing.list_profiles(self.folder).items
        self.assertEqual(
            (item["method"], item["path"], item["elapsed_ms"], item["time"]),
            ("POST", "/api/items", 12.0, 1_700_000_000.5),
        )
        self.assertIsNone(item["status"])
        self.assertIsNone(item["calls"])
        self.assertFalse(item["indexed"])

    def test_werkzeug_stock_name_is_understood(self):
        """Werkzeug's own ``{method}.{path}.{ms}ms.{time}.prof`` names are parsed too."""
        fx.write_raw(self.folder, "GET.user.42.7ms.1700000000.prof", {})
        fx.write_raw(self.folder, "GET.root.3ms.1700000001.prof", {})
        items = listing.list_profiles(self.folder, sort="path", descending=False).items
        self.assertEqual([item["path"] for item in items], ["/", "/user/42"])
        self.assertEqual(items[1]["elapsed_ms"], 7.0)
        self.assertEqual(items[1]["time"], 1_700_000_000.0)

    def test_other_prof_file_uses_modification_time(self):
        """Any other safe ``.prof`` name is listed with its file's modification time."""
        path = fx.write_raw(self.folder, "from-colleague.prof", {})
        os.utime(path, (1_600_000_000, 1_600_000_000))
        (item,) = listing.list_profiles(self.folder).items
        self.assertEqual(item["time"], 1_600_000_000)
        self.assertIsNone(item["method"])

    def test_non_profiles_are_ignored(self):
        """Dot files, other suffixes, folders and symlinks are not profiles."""
        fx.write_raw(self.folder, ".hidden.prof", {})
        fx.write_raw(self.folder, "notes.txt", b"x")
        os.mkdir(os.path.join(self.folder, "dir.prof"))
        target = fx.write_raw(tempfile.mkdtemp(dir=self.folder), "real.prof", {})
        os.symlink(target, os.path.join(self.folder, "link.prof"))
        self.assertEqual(listing.list_profiles(self.folder).total, 0)

    def test_file_in_the_folders_place_is_not_a_folder(self):
        """A file where the folder should be is NotAFolder for listing and pruning alike."""
        path = fx.write_raw(self.folder, "plain-file", b"x")
        for call in (listing.list_profiles, listing.catalog_records,
                     lambda folder: listing.prune(folder, keep=0)):
            with self.assertRaises(NotAFolder):
                call(path)

    def test_missing_folder_is_an_empty_list(self):
        """A folder that does not exist yet lists nothing instead of failing."""
        page = listing.list_profiles(os.path.join(self.folder, "nope"))
        self.assertEqual((page.items, page.total, page.page, page.pages), ([], 0, 1, 1))

    def test_last_duplicate_index_line_wins(self):
        """If a profile is indexed twice, the later line is used."""
        name = fx.write_profile(self.folder, status=200)
        append_index(self.folder, fx.index_entry(name, status=500))
        (item,) = listing.list_profiles(self.folder).items
        self.assertEqual(item["status"], 500)

    def test_wrongly_typed_index_fields_become_unknown(self):
        """A hand-edited index with odd types cannot break sorting."""
        name = fx.fake_name()
        fx.write_raw(self.folder, name, {})
        append_index(self.folder, fx.index_entry(name, status="200", calls=True, time="late"))
        (item,) = listing.list_profiles(self.folder, sort="status").items
        self.assertEqual((item["status"], item["calls"], item["time"]), (None, None, None))

    def test_vanished_entry_has_no_time(self):
        """A file removed between the scan and its stat gets no time instead of an error."""
        entry = mock.Mock()
        entry.stat.side_effect = FileNotFoundError
        self.assertIsNone(listing.entry_mtime(entry))
        self.assertIsNone(named_mtime(self.folder, "gone.prof"))
        path = fx.write_raw(self.folder, "here.prof", {})
        os.utime(path, (1_600_000_000, 1_600_000_000))
        self.assertEqual(named_mtime(self.folder, "here.prof"), 1_600_000_000)

    def test_indexed_names_that_are_no_plain_file_here_are_not_listed(self):
        """Index lines naming a link, a folder, a pipe, a file elsewhere or an unsafe name,
        all present on disk, list nothing; nor do such entries without a line."""
        outside = tempfile.mkdtemp(dir=self.folder)
        target = fx.write_raw(outside, fx.fake_name(seq=9), {})
        names = {"link": fx.fake_name(seq=1), "folder": fx.fake_name(seq=2),
                 "pipe": fx.fake_name(seq=3)}
        os.symlink(target, os.path.join(self.folder, names["link"]))
        os.mkdir(os.path.join(self.folder, names["folder"]))
        os.mkfifo(os.path.join(self.folder, names["pipe"]))
        fx.write_raw(self.folder, ".hidden.prof", {})
        for name in [*names.values(), ".hidden.prof", "../" + os.path.basename(target),
                     os.path.join(os.path.basename(outside), os.path.basename(target))]:
            append_index(self.folder, fx.index_entry(name))
        os.symlink("nowhere", os.path.join(self.folder, "dangling.prof"))
        listing.clear_listing_cache(index_too=True)
        self.assertEqual(listing.list_profiles(self.folder).total, 0)
        self.assertEqual(listing.catalog_records(self.folder), [])

    def test_page_load_opens_no_profile(self):
        """Listing reads only the index: no ``.prof`` file is opened."""
        for number in range(20):
            fx.write_raw(self.folder, fx.fake_name(seq=number), {})
        opened = []
        real_open = builtins.open

        def spy(path, *args, **kwargs):
            opened.append(str(path))
            return real_open(path, *args, **kwargs)

        with mock.patch("builtins.open", spy):
            listing.list_profiles(self.folder)
        self.assertFalse([path for path in opened if path.endswith(".prof")])


class ListingCacheTest(fx.TempFolderTestCase):
    """An idle folder's listing is reused; any added file or index line invalidates it."""

    def setUp(self):
        """Write two profiles and date the folder and index an hour back."""
        super().setUp()
        listing.clear_listing_cache()
        self.addCleanup(listing.clear_listing_cache)
        for start in (1_700_000_000.0, 1_700_000_001.0):
            fx.write_profile(self.folder, start=start)
        self.settle()

    def settle(self):
        """Make the folder and index look untouched for an hour."""
        an_hour_ago = time.time() - 3600
        for path in (os.path.join(self.folder, INDEX_NAME), self.folder):
            os.utime(path, (an_hour_ago, an_hour_ago))

    def scans(self):
        """List the folder and return how many times it was scanned."""
        with fx.counting_scans() as scandir:
            total = listing.list_profiles(self.folder).total
        return scandir.call_count, total

    def test_idle_folder_is_scanned_once(self):
        """The second listing of an unchanged folder does not scan it again."""
        self.assertEqual(self.scans(), (1, 2))
        self.assertEqual(self.scans(), (0, 2))

    def test_changes_invalidate(self):
        """A new file, a new index line or a removed file is seen at once."""
        self.scans()
        fx.write_profile(self.folder, indexed=False)
        self.assertEqual(self.scans(), (1, 3))
        self.settle()
        self.scans()
        os.remove(os.path.join(self.folder, read_index(self.folder)[0]["id"]))
        self.assertEqual(self.scans(), (1, 2))

    def test_recent_change_is_not_reused(self):
        """A folder changed within the last two seconds is scanned every time."""
        fx.write_profile(self.folder)
        self.assertEqual(self.scans(), (1, 3))
        self.assertEqual(self.scans(), (1, 3))

    def test_page_items_are_copies(self):
        """Changing a listed record cannot change the reused listing."""
        listing.list_profiles(self.folder).items[0]["path"] = "changed"
        paths = {item["path"] for item in listing.list_profiles(self.folder).items}
        self.assertEqual(paths, {"/work"})

    def test_no_index_and_no_folder(self):
        """A folder without index is listed; a missing folder is never cached."""
        os.remove(os.path.join(self.folder, INDEX_NAME))
        self.settle_folder_only()
        self.assertEqual(self.scans(), (1, 2))
        self.assertEqual(self.scans(), (0, 2))
        missing = os.path.join(self.folder, "missing")
        self.assertIsNone(listing.folder_signature(missing))
        self.assertEqual(listing.list_profiles(missing).total, 0)

    def settle_folder_only(self):
        """Date only the folder an hour back (for a folder without index)."""
        an_hour_ago = time.time() - 3600
        os.utime(self.folder, (an_hour_ago, an_hour_ago))


class SortFilterPageTest(fx.TempFolderTestCase):
    """Sorting by every column, filtering and paging."""

    def setUp(self):
        """Index five profiles with distinct values in every column; one file has no line."""
        super().setUp()
        rows = [
            ("GET", "/b", 200, 5.0, 10, 0),
            ("POST", "/a", 500, 50.0, 30, 2),
            ("GET", "/c/slow", 200, 500.0, 20, 1),
            ("DELETE", "/A/x", 404, 1.0, 40, 3),
        ]
        for seq, (method, path, status, elapsed, calls, overlapped) in enumerate(rows):
            name = fx.fake_name(method=method, seq=seq, start_ms=1_700_000_000_000 + seq * 1000)
            fx.write_raw(self.folder, name, {})
            fields = {"status": status, "elapsed_ms": elapsed, "calls": calls}
            append_index(
                self.folder,
                fx.index_entry(name, method=method, path=path, time=1_700_000_000.0 + seq,
                       overlapped=overlapped, **fields),
            )
        fx.write_raw(self.folder, fx.fake_name(method="PUT", slug="z", seq=9), {})

    def test_every_column_sorts_both_ways_with_unknown_last(self):
        """Each whitelisted column sorts ascending and descending; None stays at the end."""
        for key in listing.SORT_KEYS:
            for descending in (False, True):
                items = listing.list_profiles(self.folder, sort=key, descending=descending).items
                values = [item[key] for item in items if item[key] is not None]
                self.assertEqual(values, sorted(values, reverse=descending), key)
                nones = [item[key] is None for item in items]
                self.assertEqual(nones, sorted(nones), key)

    def test_default_is_newest_first(self):
        """Without options the newest profile comes first."""
        items = listing.list_profiles(self.folder).items
        times = [item["time"] for item in items]
        self.assertEqual(times, sorted(times, reverse=True))

    def test_bad_sort_key_names_the_allowed_ones(self):
        """An unknown sort key is refused with the list of allowed keys."""
        with self.assertRaises(ValueError) as caught:
            listing.list_profiles(self.folder, sort="__class__")
        self.assertIn("elapsed_ms", str(caught.exception))
        with self.assertRaises(ValueError):
            listing.sort_records([], "id")

    def test_filters(self):
        """Path text (any case), method, status and minimum ms each narrow the list."""
        def paths(**filters):
            page = listing.list_profiles(self.folder, **filters)
            return sorted(item["path"] for item in page.items)

        self.assertEqual(paths(path_contains="a"), ["/A/x", "/a"])
        self.assertEqual(paths(method="get"), ["/b", "/c/slow"])
        self.assertEqual(paths(status=200), ["/b", "/c/slow"])
        self.assertEqual(paths(min_ms=50), ["/a", "/c/slow"])
        self.assertEqual(paths(method="GET", min_ms=10), ["/c/slow"])

    def test_paging(self):
        """Pages split the list, report their count and clamp out-of-range numbers."""
        page = listing.list_profiles(self.folder, per_page=2, page=2)
        self.assertEqual((page.total, page.pages, page.page, len(page.items)), (5, 3, 2, 2))
        self.assertEqual(listing.list_profiles(self.folder, per_page=2, page=99).page, 3)
        self.assertEqual(listing.list_profiles(self.folder, per_page=2, page=-1).page, 1)
        for per_page in (0, listing.MAX_PER_PAGE + 1):
            with self.assertRaises(ValueError):
                listing.list_profiles(self.folder, per_page=per_page)

    def test_route_profiles(self):
        """All profiles of one method and path are found, oldest first."""
        first = fx.write_profile(self.folder, path="/r", start=1_700_000_100.0)
        second = fx.write_profile(self.folder, path="/r", start=1_700_000_200.0)
        fx.write_profile(self.folder, path="/r", method="POST")
        self.assertEqual(listing.route_profiles(self.folder, "get", "/r"), [first, second])


class SortOrderTest(unittest.TestCase):
    """Every sort gives the documented total order, with equal, unknown and distinct times."""

    @staticmethod
    def reference(records, sort, descending):
        """The order spelled out: known values by the column, newest first, then id."""
        def tie(record):
            return (-(record["time"] or 0.0), record["id"])
        known = sorted((r for r in records if r[sort] is not None), key=tie)
        known.sort(key=lambda record: record[sort], reverse=descending)
        return known + sorted((r for r in records if r[sort] is None), key=tie)

    def test_against_the_reference(self):
        distinct = [{"id": f"p{n:02}.prof", "time": 100.0 + n * 7 % 13, "status": 200 + n % 3,
                     "elapsed_ms": None if n % 5 == 0 else float(n % 4)} for n in range(13)]
        tied = [dict(record, time=float(record["time"] // 4)) for record in distinct]
        tied += [dict(tied[0], id="a-first.prof"), dict(tied[-1], id="z-last.prof")]
        unknown = distinct + [dict(distinct[1], id="none.prof", time=None)]
        for name, records in (("distinct", distinct), ("tied", tied), ("unknown", unknown)):
            for sort in ("time", "status", "elapsed_ms"):
                for descending in (True, False):
                    with self.subTest(records=name, sort=sort, descending=descending):
                        expected = self.reference(records, sort, descending)
                        got = listing.sort_records(list(reversed(records)), sort, descending)
                        self.assertEqual([r["id"] for r in got], [r["id"] for r in expected])


class ProfilePathTest(fx.TempFolderTestCase):
    """Only files directly inside the folder can be reached by id."""

    def test_valid_ids_resolve(self):
        """A tracker id and a plain safe name resolve to absolute paths inside the folder."""
        name = fx.write_profile(self.folder)
        fx.write_raw(self.folder, "GET.a.1ms.1700000000.prof", {})
        path = listing.profile_path(self.folder, name)
        self.assertEqual(path, os.path.join(os.path.realpath(self.folder), name))
        stock = listing.profile_path(self.folder, "GET.a.1ms.1700000000.prof")
        self.assertTrue(os.path.isabs(stock))

    def test_traversal_and_odd_ids_are_refused(self):
        """Separators, parent references, NUL, dot files, other types and missing files fail."""
        outside = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, outside)
        bad_ids = [
            "../x.prof", "/etc/passwd", "a/b.prof", "a\\b.prof", "%2e%2e", "x.prof\x00", "x.prof\n",
            "..", ".", "", ".hidden.prof", "x.txt", "missing.prof", None, 42,
            os.path.join(outside, "x.prof"), "../" + os.path.basename(self.folder) + "/x.prof",
        ]
        fx.write_raw(self.folder, ".hidden.prof", {})
        for bad in bad_ids:
            with self.subTest(profile_id=bad), self.assertRaises(ProfileNotFound):
                listing.profile_path(self.folder, bad)

    def test_not_found_names_the_id_never_the_folder(self):
        """The message the dashboard shows says which id is missing and nothing about paths."""
        missing = fx.fake_name(seq=77)
        with self.assertRaises(ProfileNotFound) as caught:
            listing.profile_path(self.folder, missing)
        self.assertIn(repr(missing), str(caught.exception))
        self.assertNotIn(self.folder, str(caught.exception))
        self.assertNotIn(os.path.realpath(self.folder), str(caught.exception))

    def test_symlink_out_of_folder_is_refused(self):
        """A symlink pointing outside the folder is not followed."""
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside)
        target = fx.write_raw(outside, "secret.prof", {})
        os.symlink(target, os.path.join(self.folder, "GET.x.1ms.1700000000000.1-1.prof"))
        with self.assertRaises(ProfileNotFound):
            listing.profile_path(self.folder, "GET.x.1ms.1700000000000.1-1.prof")

    def test_directory_is_not_a_profile(self):
        """A directory with a profile-like name is not a profile."""
        os.mkdir(os.path.join(self.folder, "dir.prof"))
        with self.assertRaises(ProfileNotFound):
            listing.profile_path(self.folder, "dir.prof")

    def test_find_record(self):
        """The record of an indexed id comes from the index, of another id from its name."""
        name = fx.write_profile(self.folder, path="/full?q=1")
        self.assertEqual(listing.find_record(self.folder, name)["path"], "/full?q=1")
        other = fx.fake_name(slug="x.y")
        fx.write_raw(self.folder, other, {})
        self.assertEqual(listing.find_record(self.folder, other)["path"], "/x/y")
        with self.assertRaises(ProfileNotFound):
            listing.find_record(self.folder, "../x.prof")


class PruneTest(fx.TempFolderTestCase):
    """Pruning removes the right files and index lines."""

    def setUp(self):
        """Write five indexed profiles one day apart (newest: day 0) and one unindexed file."""
        super().setUp()
        self.now = 1_700_000_000.0
        self.ids = []
        for age in range(5):
            name = fx.fake_name(seq=age, start_ms=int((self.now - age * 86400) * 1000))
            fx.write_raw(self.folder, name, {})
            append_index(self.folder, fx.index_entry(name, time=self.now - age * 86400))
            self.ids.append(name)
        self.unindexed = fx.fake_name(seq=99, start_ms=int((self.now - 10 * 86400) * 1000))
        fx.write_raw(self.folder, self.unindexed, {})

    def remaining(self):
        """Return the ids of the profiles left in the folder."""
        return sorted(name for name in os.listdir(self.folder) if name.endswith(".prof"))

    def test_keep_newest(self):
        """``keep`` keeps the N newest files and drops the other index lines."""
        removed = listing.prune(self.folder, keep=2)
        self.assertEqual(removed, self.ids[2:] + [self.unindexed])
        self.assertEqual(self.remaining(), sorted(self.ids[:2]))
        self.assertEqual(sorted(r["id"] for r in read_index(self.folder)), sorted(self.ids[:2]))

    def test_older_than(self):
        """``older_than_days`` removes what started before the cut-off."""
        removed = listing.prune(self.folder, older_than_days=2.5, now=self.now)
        self.assertEqual(removed, self.ids[3:] + [self.unindexed])
        self.assertEqual(self.remaining(), sorted(self.ids[:3]))

    def test_both_criteria_are_combined(self):
        """Either criterion is enough for a profile to go."""
        removed = listing.prune(self.folder, keep=4, older_than_days=1.5, now=self.now)
        self.assertEqual(removed, self.ids[2:] + [self.unindexed])

    def test_default_now_is_the_clock(self):
        """Without ``now`` the current time is used (all fixtures are years old)."""
        self.assertEqual(len(listing.prune(self.folder, older_than_days=1)), 6)

    def test_dry_run_removes_nothing(self):
        """A dry run reports the same ids and leaves files and index alone."""
        before = fx.index_lines(self.folder)
        removed = listing.prune(self.folder, keep=1, dry_run=True)
        self.assertEqual(len(removed), 5)
        self.assertEqual(len(self.remaining()), 6)
        self.assertEqual(fx.index_lines(self.folder), before)

    def test_bad_arguments(self):
        """No criterion, or a negative, NaN or absurdly large one, is refused."""
        too_many, too_old = listing.MAX_KEEP + 1, listing.MAX_AGE_DAYS + 1
        for kwargs in ({}, {"keep": -1}, {"older_than_days": -1}, {"keep": too_many},
                       {"older_than_days": float("nan")}, {"older_than_days": 10**400},
                       {"older_than_days": too_old}):
            with self.subTest(kwargs=kwargs), self.assertRaises(ValueError):
                listing.prune(self.folder, **kwargs)

    def test_file_already_gone_is_skipped(self):
        """A file deleted by someone else during the prune is not reported as removed."""
        real_remove = os.remove

        def racing_remove(path):
            real_remove(path)
            if path.endswith(self.ids[4]):
                raise FileNotFoundError(path)

        with mock.patch("tracker_07.profiles.listing.os.remove", racing_remove):
            removed = listing.prune(self.folder, keep=4)
        self.assertEqual(removed, [self.unindexed])

    def test_no_index_file(self):
        """Pruning a folder without an index removes files and creates no index."""
        os.remove(os.path.join(self.folder, INDEX_NAME))
        self.assertEqual(len(listing.prune(self.folder, keep=0)), 6)
        self.assertFalse(os.path.exists(os.path.join(self.folder, INDEX_NAME)))

class RecordHelpersTest(unittest.TestCase):
    """Records built from file names alone."""

    def test_record_from_name_marks_index_fields_unknown(self):
        """Fields only the index knows are None in a record built from a name."""
        made = listing.record_from_name("anything.prof", mtime=5.0)
        self.assertEqual(made["time"], 5.0)
        for field in listing.INDEX_ONLY_FIELDS:
            self.assertIsNone(made[field])
        self.assertEqual(json.loads(json.dumps(made))["id"], "anything.prof")


if __name__ == "__main__":
    unittest.main()
