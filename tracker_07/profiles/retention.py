"""Keep the profile folder within a number of files and an age, at a small fixed cost per save.

At start-up :meth:`FolderRetention.apply` prunes the folder once and remembers the profiles
left in it, oldest first.  From then on each saved profile is added to that memory and, once
the folder is over its limits, the oldest file goes as the new one is saved: no index is
read per save.  The index lines of removed files are compacted away in the background once
they outnumber the live ones, and now and then (every ``rescan_every`` saves) the whole
folder is pruned again in the background, which also catches what other processes saved.

After either (not at start-up), a folder of ``listing_cache.MIN_RECORDS`` profiles or more
has its listing saved (:func:`save_listing`, in the same background thread), so that the
list page opened for the first time in another process need not parse the whole index: it
brings the saved listing up to date with what was saved since (:mod:`.listing_update`).
"""
import collections
import logging
import os
import threading
import time

from . import catalog, index, listing, listing_cache, routes, unprofiled
from .errors import ProfileError

logger = logging.getLogger(__name__)

#: Compact the index once this many of its lines (or more than the live ones) are dead.
MIN_DEAD_LINES = 1000
#: Prune the whole folder again after this many saves, at least.
MIN_RESCAN_EVERY = 1000


class FolderRetention:
    """Prune at start-up, then keep the folder within its limits as profiles are saved.

    :param folder: the profile folder.
    :param max_files: keep at most this many profiles, newest first (0: no limit).
    :param days: remove profiles older than this many days (0: keep them).
    :param rescan_every: saves between two full prunes in the background (default: a tenth
        of ``max_files``, at least 1,000).
    """

    def __init__(self, folder, max_files=0, days=0, rescan_every=None):
        self.folder = folder
        self.max_files = max_files
        self.days = days
        self.rescan_every = rescan_every or max(MIN_RESCAN_EVERY, max_files // 10)
        self.removed = 0
        self._known = collections.deque()  # (start time, id) of the folder's profiles
        self._known_lock = threading.Lock()
        self._saved = 0
        self._dead_lines = 0
        self._running = threading.Lock()

    def apply(self):
        """Prune the whole folder now, unless that already runs; never raise.

        :return: the ids removed.
        """
        if not self._running.acquire(blocking=False):  # pylint: disable=consider-using-with
            return []
        limits = {"keep": self.max_files or None, "older_than_days": self.days or None}
        try:
            removed = listing.prune(self.folder, dry_run=True, **limits)
            if removed:  # rewriting the index only when something goes keeps it cheap
                removed = listing.prune(self.folder, **limits)
            left = sorted((record["time"] or 0.0, record["id"])
                          for record in listing.catalog_records(self.folder))
        except (OSError, ProfileError) as error:
            logger.warning("Could not prune old profiles in %s: %s", self.folder, error)
            return []
        finally:
            self._running.release()
        with self._known_lock:
            self._known = collections.deque(left)
            self._dead_lines = 0
        self.removed += len(removed)
        if removed:
            logger.info("Removed %d old profile(s) from %s", len(removed), self.folder)
        return removed

    def note_saved(self, profile_id, started):
        """Remember a new profile and remove what it pushes over the limits (a few µs).

        :return: the background thread that compacts or rescans, or None.
        """
        with self._known_lock:
            self._known.append((started, profile_id))
            doomed = self._over_the_limits()
            self._saved += 1
            rescan = not self._saved % self.rescan_every
        for old_id in doomed:
            self._remove(old_id)
        if rescan:
            return self._in_background(self._rescan)
        with self._known_lock:
            compact = self._dead_lines >= max(MIN_DEAD_LINES, len(self._known))
            if compact:
                self._dead_lines = 0
        return self._in_background(self.compact) if compact else None

    def _over_the_limits(self):
        """Take the oldest remembered profiles that break a limit (caller holds the lock)."""
        known = self._known
        doomed = []
        while self.max_files and len(known) > self.max_files:
            doomed.append(known.popleft()[1])
        if self.days:
            cutoff = time.time() - self.days * 86400
            while known and known[0][0] < cutoff:
                doomed.append(known.popleft()[1])
        return doomed

    def _remove(self, profile_id):
        """Delete one profile file; its index line goes at the next compaction."""
        try:
            os.remove(os.path.join(self.folder, profile_id))
        except FileNotFoundError:
            return
        except OSError as error:
            logger.warning("Could not remove old profile %s: %s", profile_id, error)
            return
        catalog.note_removed(self.folder, (profile_id,))
        with self._known_lock:
            self.removed += 1
            self._dead_lines += 1

    def compact(self):
        """Drop the index lines of removed files and count up the unprofiled requests'
        lines; never raise."""
        try:
            index.rewrite_index(self.folder)
            unprofiled.compact_unprofiled(self.folder)
        except OSError as error:
            logger.warning("Could not compact the profile index in %s: %s", self.folder, error)
            return
        self._save_listing()  # the listing saved before is of the index just replaced

    def _rescan(self):
        """Prune the whole folder again, then save its listing."""
        self.apply()
        self._save_listing()

    def _save_listing(self):
        """Save the folder's listing if it holds enough profiles to be worth it."""
        with self._known_lock:
            big = len(self._known) >= listing_cache.MIN_RECORDS
        if big:
            save_listing(self.folder)

    @staticmethod
    def _in_background(work):
        """Run ``work`` in a daemon thread, off the request."""
        thread = threading.Thread(target=work, name="tracker-profile-retention", daemon=True)
        thread.start()
        return thread


def save_listing(folder):
    """Save the folder's listing as a scan would make it, with its newest-first order and its
    routes, for the first listing in a new process; return whether it was saved."""
    kept = catalog.scan_to_save(folder)
    if kept is None or len(kept.records) < listing_cache.MIN_RECORDS:
        return False
    records = kept.as_list()
    orders = {("time", True): listing.sort_records(records)}
    table = routes.RouteTable(kept, records)
    return listing_cache.save_unsettled(folder, kept, orders, table.saved_state())
