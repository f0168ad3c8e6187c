"""The listing saved on disk: a new process lists a settled folder from it, exactly, or scans."""
import contextlib
import marshal
import os
import random
import shutil
import statistics
import struct
import tempfile
import time
import zlib
from unittest import mock

from tracker_07 import create_app
from tracker_07.profiles import catalog, index, index_cache, listing, listing_cache, routes
from tracker_07.profiles.retention import FolderRetention
from tracker_07.tests import profile_fixtures as fx
from tracker_07.tests.test_profiles_routes import nearest_rank_p95

START = 1_700_000_000.0
ROUTES = (("GET", "/a"), ("GET", "/b"), ("POST", "/a"))


class ListingCacheTestCase(fx.TempFolderTestCase):
    """A settled folder of 60 profiles on three routes (one file without an index line, one
    index line without its file), listed once so that its listing is saved."""

    def setUp(self):
        super().setUp()
        for target, value in ((listing_cache, 3), (index_cache, 0)):
            name = "MIN_RECORDS" if target is listing_cache else "WRITE_DELAY_SECONDS"
            patch = mock.patch.object(target, name, value)
            patch.start()
            self.addCleanup(patch.stop)
        self.addCleanup(self.new_process)
        self.generator = random.Random(11)
        self.saved = {}  # (method, path) -> {id: (elapsed, start, start in ms as named)}
        self.seq = 0
        for _ in range(60):
            self.save()
        start_ms = int(START * 1000) + 5
        unindexed = fx.fake_name(slug="b", start_ms=start_ms, seq=900, elapsed=42)
        fx.write_raw(self.folder, unindexed, {})  # read from its name: GET /b, 42 ms
        self.saved[("GET", "/b")][unindexed] = (42.0, start_ms / 1000, start_ms)
        gone = fx.fake_name(seq=901)
        index.append_index(self.folder, fx.index_entry(gone, path="/a"))
        self.cache_path = os.path.join(self.folder, index_cache.CACHE_DIR,
                                       listing_cache.CACHE_NAME)
        os.mkdir(os.path.dirname(self.cache_path))
        self.settle()
        self.new_process()
        self.scanned = self.listed()
        self.assertTrue(os.path.isfile(self.cache_path))

    def save(self, route=None, elapsed=None):
        """Save one profile as profile mode does (its file, then its index line); return its id."""
        self.seq += 1
        method, path = route or self.generator.choice(ROUTES)
        elapsed = elapsed or self.generator.choice((1.5, 7.25, 30.0, 99.0)) * self.seq
        start = START + self.generator.randint(0, 10_000) + self.seq / 1000
        start_ms = int(start * 1000)
        name = fx.fake_name(method=method, slug=path.strip("/"), start_ms=start_ms,
                            seq=self.seq, elapsed=int(elapsed))
        fx.write_raw(self.folder, name, {})
        index.append_index(self.folder, fx.index_entry(name, method=method, path=path,
                                                      time=start, elapsed_ms=elapsed))
        self.saved.setdefault((method, path), {})[name] = (elapsed, start, start_ms)
        return name

    def settle(self):
        """Date the folder and index an hour back, as for a folder nobody is writing to."""
        an_hour_ago = time.time() - 3600
        for path in (os.path.join(self.folder, index.INDEX_NAME), self.folder):
            with contextlib.suppress(FileNotFoundError):
                os.utime(path, (an_hour_ago, an_hour_ago))

    @staticmethod
    def new_process():
        """Forget everything kept in memory, as a new process starts (writes finished first)."""
        index_cache.wait_for_writes()
        listing.clear_listing_cache(index_too=True)
        routes.forget()

    def listed(self, **options):
        """List the folder as the list page does: its page, its routes and the scans it made."""
        with fx.counting_scans() as scandir:
            page = listing.list_profiles(self.folder, per_page=100, **options)
            summaries = routes.route_summaries(self.folder, listed=True)
        index_cache.wait_for_writes()
        return page, summaries, scandir.call_count

    def listed_only(self):
        """List the folder's first page alone; return how often the folder was scanned."""
        with fx.counting_scans() as scandir:
            listing.list_profiles(self.folder)
        return scandir.call_count

    def assert_exact(self, page, summaries):
        """The page lists every profile newest first; each route's figures are the saved ones'."""
        profiles = {name: value for saved in self.saved.values() for name, value in saved.items()}
        self.assertEqual([item["id"] for item in page.items],
                         sorted(profiles, key=lambda name: profiles[name][1], reverse=True))
        self.assertEqual(page.total, len(profiles))
        self.assertEqual({(s["method"], s["path"]) for s in summaries}, set(self.saved))
        for summary in summaries:
            saved = self.saved[(summary["method"], summary["path"])]
            times = sorted(elapsed for elapsed, *_start in saved.values())
            by_time = sorted((elapsed, name) for name, (elapsed, *_start) in saved.items())
            newest = [name for _start, name in sorted(
                ((start, name) for name, (_elapsed, start, _ms) in saved.items()), reverse=True)]
            with self.subTest(route=(summary["method"], summary["path"])):
                self.assertEqual((summary["count"], summary["timed"]), (len(saved), len(saved)))
                self.assertEqual(summary["median_ms"], statistics.median(times))
                self.assertEqual(summary["p95_ms"], nearest_rank_p95(times))
                self.assertEqual((summary["min_ms"], summary["max_ms"]), (times[0], times[-1]))
                self.assertAlmostEqual(summary["total_ms"], sum(times))
                self.assertEqual((summary["fastest_id"], summary["slowest_id"]),
                                 (by_time[0][1], by_time[-1][1]) if len(saved) > 1
                                 else (None, None))
                self.assertEqual((summary["newest_id"], summary["previous_id"]),
                                 tuple((newest + [None])[:2]))

    def damage(self, content):
        """Replace the saved listing with ``content`` (the folder's own time stays as it was)."""
        with open(self.cache_path, "wb") as cache:
            cache.write(content)


class SavedListingTest(ListingCacheTestCase):
    """A new process takes the saved listing while the folder is exactly as it was."""

    def test_a_new_process_lists_from_it_without_a_scan(self):
        """No scan, no index line parsed, and the same page and figures as the scan gave."""
        self.assert_exact(*self.scanned[:2])
        self.assertEqual(self.scanned[2], 1)
        self.new_process()
        with mock.patch.object(index, "parse_index_lines", wraps=index.parse_index_lines) as parse:
            page, summaries, scans = self.listed()
        self.assertEqual((scans, parse.call_count), (0, 0))
        self.assertEqual((page, summaries), self.scanned[:2])
        self.assert_exact(page, summaries)

    def test_every_sort_order_equals_a_scans(self):
        """Orders not saved are built from the loaded records, as from scanned ones."""
        for sort in listing.SORT_KEYS:
            for descending in (True, False):
                self.new_process()
                loaded = self.listed(sort=sort, descending=descending)
                os.remove(self.cache_path)
                self.new_process()
                with self.subTest(sort=sort, descending=descending):
                    self.assertEqual(loaded[2], 0)
                    self.assertEqual(loaded, (*self.listed(sort=sort, descending=descending)[:2],
                                              0))  # scanned, and saved again

    def test_a_new_profile_after_loading_is_followed_exactly(self):
        """The loaded listing follows new index lines like a scanned one: no scan, exact routes,
        for a route with saved times and for a new route."""
        self.new_process()
        self.assertEqual(self.listed()[2], 0)
        for route, elapsed in ((("GET", "/b"), 0.5), (("GET", "/b"), 10_000.0),
                               (("PUT", "/new"), 3.0)):
            self.save(route, elapsed)
        with mock.patch.object(index, "parse_index_lines", wraps=index.parse_index_lines) as parse:
            page, summaries, scans = self.listed()
        self.assertEqual((scans, [len(call.args[0]) for call in parse.call_args_list]), (0, [3]))
        self.assert_exact(page, summaries)

    def test_the_list_page_and_its_json_from_the_saved_listing(self):
        """Through the app: the same page and JSON fields in a new process as after the scan."""
        client = create_app("testing", PROFILER_DIR=self.folder,
                            DASHBOARD_ENABLED=True).test_client()
        scanned_json = client.get("/dashboard/api/profiles?per_page=100").get_json()
        scanned_html = client.get("/dashboard/profiles/?routes=all").get_data()
        self.new_process()
        with fx.counting_scans() as scandir:
            loaded_json = client.get("/dashboard/api/profiles?per_page=100").get_json()
            self.new_process()
            loaded_html = client.get("/dashboard/profiles/?routes=all").get_data()
        self.assertEqual(scandir.call_count, 0)
        self.assertEqual((loaded_json, loaded_html), (scanned_json, scanned_html))
        self.assertEqual(loaded_json["total"], 61)
        self.assertEqual({route["path"] for route in loaded_json["routes"]}, {"/a", "/b"})


class StaleListingTest(ListingCacheTestCase):
    """Any change since the scan is shown (caught up, see test_profiles_listing_update, or
    scanned); any damage makes a new process scan; never shown stale."""

    def test_a_profile_saved_since_is_seen_then_saved_again(self):
        self.save(("GET", "/b"), 0.25)
        self.new_process()
        page, summaries, scans = self.listed()
        self.assertEqual(scans, 0)  # caught up from the stale listing
        self.assert_exact(page, summaries)
        self.settle()  # written only once the folder has been left alone
        self.new_process()
        self.assertEqual(self.listed()[2], 0)
        self.new_process()
        with mock.patch.object(index, "parse_index_lines", wraps=index.parse_index_lines) as parse:
            page, summaries, scans = self.listed()
        self.assertEqual((scans, parse.call_count), (0, 0))  # loaded as saved: exact
        self.assert_exact(page, summaries)

    def test_files_removed_by_retention_or_by_hand_are_not_shown(self):
        """Retention in another process, or ``rm``: a new process counts exactly."""
        gone_by_hand = next(iter(self.saved[("GET", "/a")]))
        os.remove(os.path.join(self.folder, gone_by_hand))
        del self.saved[("GET", "/a")][gone_by_hand]
        self.new_process()
        page, summaries, _scans = self.listed()
        self.assert_exact(page, summaries)
        slowest = max(self.saved[("POST", "/a")], key=lambda name: self.saved[("POST", "/a")][name])
        FolderRetention(self.folder, max_files=1000)._remove(slowest)  # pylint: disable=protected-access  # the saving path
        del self.saved[("POST", "/a")][slowest]
        self.new_process()
        self.assert_exact(*self.listed()[:2])

    def test_retention_in_the_process_that_loaded_it(self):
        """A removal by this process's retention, before or after the routes are read, builds
        them again from the remaining records; the changed listing is not saved."""
        for before_routes in (True, False):
            with self.subTest(before_routes=before_routes):
                self.settle()
                self.new_process()
                self.listed()  # scanned and saved
                self.new_process()
                self.assertEqual(self.listed_only(), 0)
                if not before_routes:
                    routes.route_summaries(self.folder, listed=True)
                route = self.saved[("GET", "/b")]
                fastest = min(route.items(), key=lambda item: item[1])[0]
                FolderRetention(self.folder, max_files=1000)._remove(fastest)  # pylint: disable=protected-access  # the saving path
                del route[fastest]
                saved_before = os.stat(self.cache_path).st_mtime_ns
                page, summaries, scans = self.listed()
                self.assertEqual(scans, 0)
                self.assert_exact(page, summaries)
                self.assertEqual(os.stat(self.cache_path).st_mtime_ns, saved_before)

    def test_an_index_edited_in_place_is_read_again(self):
        """Same file, size and time, other bytes: the saved edges differ, so it is scanned."""
        index_path = os.path.join(self.folder, index.INDEX_NAME)
        info = os.stat(index_path)
        with open(index_path, "rb") as file:
            content = file.read()
        with open(index_path, "wb") as file:
            file.write(content.replace(b'"GET"', b'"PUT"'))
        os.utime(index_path, ns=(info.st_atime_ns, info.st_mtime_ns))
        self.assertEqual(catalog.folder_signature(self.folder)[3],
                         (info.st_ino, info.st_size, info.st_mtime_ns))
        self.new_process()
        _page, summaries, scans = self.listed()
        self.assertEqual(scans, 1)
        listed_routes = {(summary["method"], summary["path"]) for summary in summaries}
        self.assertEqual(listed_routes, {("PUT", "/a"), ("PUT", "/b"), ("GET", "/b"),
                                         ("POST", "/a")})  # GET /b: the file without a line

    def test_a_damaged_or_foreign_cache_is_never_shown_and_is_written_again(self):
        with open(self.cache_path, "rb") as cache:
            good = cache.read()
        for name, content in damaged_versions(good):
            with self.subTest(name):
                self.damage(content)
                self.new_process()
                page, summaries, scans = self.listed()
                self.assertEqual(scans, 1)
                self.assert_exact(page, summaries)
                self.new_process()  # the scan's listing, saved again, is good
                self.assertEqual(self.listed(), (page, summaries, 0))


def damaged_versions(good):
    """Name and bytes of damaged, foreign or altered versions of a good saved listing."""
    magic = listing_cache.MAGIC
    header_end = len(magic) + 4 + struct.unpack_from("<I", good, len(magic))[0]
    header = marshal.loads(good[len(magic) + 4:header_end])
    key, head, tail, length, checksum = header[2]
    body = good[header_end:]

    def with_header(fields, version=listing_cache.VERSION, content=body):
        encoded = marshal.dumps((version, index_cache.VERSION, fields))
        return magic + struct.pack("<I", len(encoded)) + encoded + content

    wrong_shape = marshal.dumps(([], {}, {}, []))
    flipped = bytearray(body)
    flipped[len(flipped) // 2] ^= 0x01
    return (
        ("empty", b""), ("garbage", b"garbage" * 10), ("magic only", good[:12]),
        ("header too long", magic + struct.pack("<I", 10**6) + good[12:]),
        ("header garbage", magic + struct.pack("<I", 3) + b"\xff\xff\xff"),
        ("other version", with_header(header[2], version=listing_cache.VERSION + 1)),
        ("fields of other types", with_header((key, head, tail, str(length), checksum))),
        ("another folder's", with_header(((1, 2, None), head, tail, length, checksum))),
        ("other index edges", with_header((key, head[:-1] + b"x", tail, length, checksum))),
        ("a byte flipped", with_header(header[2], content=bytes(flipped))),
        ("cut short", good[:-1]), ("longer", good + b"\x00"),
        ("body not marshal", with_header((key, head, tail, 3, zlib.crc32(b"\xff\xfe\xfd")),
                                         content=b"\xff\xfe\xfd")),
        ("body of another form", with_header(
            (key, head, tail, len(wrong_shape), zlib.crc32(wrong_shape)), content=wrong_shape)),
    )


class NotSavedTest(ListingCacheTestCase):
    """Only a scan that is exact for its folder signature is saved, and only while it holds."""

    def scan_again(self):
        """Remove the saved listing and list in a new process; return whether it was saved."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.cache_path)
        self.new_process()
        self.listed()
        return os.path.exists(self.cache_path)

    def test_a_folder_changed_just_now_or_a_small_one_is_not_saved(self):
        self.assertTrue(self.scan_again())
        os.utime(self.folder)  # changed within CACHE_MIN_AGE_NS: a later change may share its time
        self.assertFalse(self.scan_again())
        self.settle()
        with mock.patch.object(listing_cache, "MIN_RECORDS", 62):
            self.assertFalse(self.scan_again())

    def test_a_listing_changed_before_the_write_is_not_saved(self):
        """A profile saved, or removed by this process, between the scan and the write."""
        for change in ("save", "remove"):
            with self.subTest(change):
                self.settle()
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.cache_path)
                self.new_process()
                with mock.patch.object(index_cache, "WRITE_DELAY_SECONDS", 0.3):
                    listing.list_profiles(self.folder)
                    routes.route_summaries(self.folder, listed=True)
                    if change == "save":
                        self.save()
                        listing.list_profiles(self.folder)
                    else:
                        FolderRetention(self.folder, max_files=1000)._remove(  # pylint: disable=protected-access  # the saving path
                            next(iter(self.saved[("GET", "/a")])))
                    index_cache.wait_for_writes()
                self.assertFalse(os.path.exists(self.cache_path))

    def test_routes_replaced_before_the_write_are_not_saved(self):
        """Another folder listed meanwhile (one folder is kept): nothing of this one is saved."""
        os.remove(self.cache_path)
        self.new_process()
        with mock.patch.object(index_cache, "WRITE_DELAY_SECONDS", 0.3):
            listing.list_profiles(self.folder)
            routes.route_summaries(self.folder, listed=True)
            routes.route_summaries(os.path.join(self.folder, "missing"))
            other = tempfile.mkdtemp(prefix="tracker07-other-")
            self.addCleanup(shutil.rmtree, other, ignore_errors=True)
            routes.route_summaries(other)
            index_cache.wait_for_writes()
        self.assertFalse(os.path.exists(self.cache_path))

    def test_making_the_cache_folder_changes_the_folder_so_the_next_scan_saves(self):
        os.remove(self.cache_path)
        os.rmdir(os.path.dirname(self.cache_path))
        self.settle()
        self.new_process()
        self.listed()
        self.assertFalse(os.path.exists(self.cache_path))
        self.assertTrue(os.path.isdir(os.path.dirname(self.cache_path)))
        self.settle()
        self.new_process()
        self.listed()
        self.assertTrue(os.path.exists(self.cache_path))

    def test_a_cache_that_cannot_be_written_leaves_nothing(self):
        for failure in (mock.patch.object(index_cache.tempfile, "mkstemp",
                                          side_effect=PermissionError("read-only")),
                        mock.patch.object(index_cache.os, "replace", side_effect=OSError("full")),
                        mock.patch.object(index_cache.os, "mkdir",
                                          side_effect=PermissionError("read-only"))):
            with self.subTest(failure=failure), failure:
                self.assertFalse(self.scan_again())
                self.assertEqual(os.listdir(os.path.dirname(self.cache_path)), [])
            self.assertTrue(self.scan_again())

    def test_an_index_changed_between_capture_and_write_is_not_saved(self):
        """The header's index edges are read last; an index grown or gone by then saves nothing."""
        capture = routes._capture  # pylint: disable=protected-access  # the moment to change it
        index_path = os.path.join(self.folder, index.INDEX_NAME)
        for change in (self.save, lambda: os.remove(index_path)):
            def capture_then_change(*args, change=change):
                captured = capture(*args)
                change()
                return captured

            with self.subTest(change=change), mock.patch.object(
                    routes, "_capture", side_effect=capture_then_change):
                self.settle()
                self.assertFalse(self.scan_again())

    def test_an_index_ending_in_a_line_being_written_is_not_saved(self):
        """Only an index read to its end is saved: the part of a line cannot be told apart
        later from a new line (a fresh read would join the two into one damaged line)."""
        with open(os.path.join(self.folder, index.INDEX_NAME), "a", encoding="ascii") as file:
            file.write('{"id": "GET.work.5ms.1700000000000.4242-999.prof", "pa')
        self.settle()
        self.assertFalse(self.scan_again())

    def test_a_folder_without_an_index(self):
        """Profiles read from their names alone are saved and loaded as well."""
        os.remove(os.path.join(self.folder, index.INDEX_NAME))
        for saved in self.saved.values():  # as read from the names: whole ms, start in ms
            for name, (elapsed, _start, start_ms) in saved.items():
                saved[name] = (float(int(elapsed)), start_ms / 1000, start_ms)
        self.settle()
        self.new_process()
        self.listed()
        self.assertTrue(os.path.exists(self.cache_path))
        self.new_process()
        page, summaries, scans = self.listed()
        self.assertEqual(scans, 0)
        self.assert_exact(page, summaries)
