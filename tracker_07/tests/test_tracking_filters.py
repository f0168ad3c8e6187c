"""``Filters``: one validation for the dashboard and ``flask tracker``, the same rows and the
same error messages from both."""
import dataclasses
import html
import json
import unittest
from datetime import datetime, timezone
from urllib.parse import urlencode

from tracker_07.tracking import filters, reads, store, writes
from tracker_07.tracking.filters import Filters
from tracker_07.tests.base import AppTestCase

NOW = 1714600000.0  # 2024-05-01 21:46:40 UTC
ROWS = [
    (NOW - 3000, "/a", "GET", 200, 10.0),
    (NOW - 2500, "/a", "GET", 404, 30.0),
    (NOW - 2000, "/a", "POST", 500, 50.0),
    (NOW - 1500, "/b/<int:id>", "GET", 404, 5.0),
    (NOW - 1000, "/b/<int:id>", "GET", 503, 7.5),
    (NOW - 500, "/a", "GET", 201, 12.0),
    (NOW - 100, "/c", "DELETE", 204, 1.0),
]


def message_of(**values):
    """The error text ``Filters`` gives for these values."""
    try:
        Filters(**values)
    except ValueError as error:
        return str(error)
    raise AssertionError(f"Filters accepted {values}")


class HelperTest(unittest.TestCase):
    """The small converters the filters and the writes share."""

    def test_to_epoch(self):
        moment = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
        self.assertEqual(filters.to_epoch(moment), 1714557600.0)
        self.assertEqual(filters.to_epoch(moment.replace(tzinfo=None)), 1714557600.0)
        self.assertEqual(filters.to_epoch(5), 5.0)
        for bad in ("yesterday", True, None):
            with self.assertRaisesRegex(ValueError, "epoch seconds or a datetime"):
                filters.to_epoch(bad)

    def test_status_range(self):
        self.assertEqual(filters.status_range(404), (404, 405))
        self.assertEqual(filters.status_range("5xx"), (500, 600))
        self.assertEqual(filters.status_range(" 2XX "), (200, 300))
        for bad in ("6xx", 99, 600, "abc", "4x"):
            with self.assertRaisesRegex(ValueError, "status must be"):
                filters.status_range(bad)


class FiltersTest(unittest.TestCase):
    """Building, normalising and refusing filters."""

    def test_values_are_normalised(self):
        chosen = Filters(endpoint="/a", method=" post ", status=" 5XX ",
                         since=datetime(2024, 5, 1, tzinfo=timezone.utc), until=1714600000)
        self.assertEqual(dataclasses.astuple(chosen),
                         ("/a", "POST", "5xx", 1714521600.0, 1714600000.0))
        self.assertEqual(Filters(status=404).status, "404")
        self.assertEqual(dataclasses.astuple(Filters()), (None,) * 5)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            chosen.method = "GET"

    def test_bad_values_are_refused_with_one_message_each(self):
        cases = [
            ({"status": "6xx"}, "status must be a code like 404 or a class like 4xx; got '6xx'."),
            ({"method": "G ET"}, "method must be an HTTP method like GET; got 'G ET'."),
            ({"method": "X" * 17}, "method must be an HTTP method like GET"),
            ({"endpoint": 5}, "endpoint must be a URL rule"),
            ({"since": 10, "until": 10}, "until must be later than since."),
            ({"since": 20, "until": 10}, "until must be later than since."),
            ({"since": "yesterday"}, "expected epoch seconds or a datetime"),
        ]
        for values, message in cases:
            with self.subTest(values=values):
                self.assertIn(message, message_of(**values))

    def test_window_needs_both_ends(self):
        self.assertEqual(Filters(since=1, until=2).window(), (1.0, 2.0))
        for values in ({}, {"since": 1}, {"until": 2}):
            with self.assertRaisesRegex(ValueError, "since and until are both needed"):
                Filters(**values).window()

    def test_conditions_only_for_the_fields_given(self):
        columns = store.requests_table.c
        self.assertEqual(Filters().conditions(columns, columns.started_at), [])
        chosen = Filters(endpoint="/a", method="get", status="4xx", since=1, until=2)
        self.assertEqual(len(chosen.conditions(columns)), 4)  # status is two comparisons
        self.assertEqual(len(chosen.conditions(columns, columns.started_at)), 6)


class DashboardAndCliTest(AppTestCase):
    """The dashboard and ``flask tracker`` build the same filters from their inputs."""

    config_name = "development"

    def setUp(self):
        super().setUp()
        self.tracking = self.app.extensions["tracker_tracking"]
        with self.tracking.engine.begin() as conn:
            writes.insert_batch(conn, ROWS)

    def dashboard(self, since, until, **values):
        """The dashboard's JSON for a custom range (``datetime-local`` is local time)."""
        query = {"range": "custom", "since": datetime.fromtimestamp(since).isoformat(),
                 "until": datetime.fromtimestamp(until).isoformat(), **values}
        return self.client.get("/dashboard/api/endpoints?" + urlencode(query))

    def cli(self, since, until, **values):
        """``flask tracker stats --json`` for the same range, given as ISO dates in UTC."""
        args = ["tracker", "stats", "--json",
                "--since", datetime.fromtimestamp(since, timezone.utc).isoformat(),
                "--until", datetime.fromtimestamp(until, timezone.utc).isoformat()]
        for name, value in values.items():
            args += [f"--{name}", value]
        return self.runner.invoke(args=args)

    def test_same_rows_for_every_kind_of_filter(self):
        cases = [
            (NOW - 3600, NOW, {}),
            (NOW - 3600, NOW, {"endpoint": "/a"}),
            (NOW - 3600, NOW, {"method": "get"}),
            (NOW - 3600, NOW, {"status": "4xx"}),
            (NOW - 3600, NOW, {"status": "500"}),
            (NOW - 2200, NOW - 900, {}),
            (NOW - 3600, NOW, {"endpoint": "/b/<int:id>", "method": "GET", "status": "5xx"}),
        ]
        for since, until, values in cases:
            with self.subTest(since=since, until=until, **values):
                page = self.dashboard(since, until, **values)
                self.assertEqual(page.status_code, 200, page.data[:300])
                shell = self.cli(since, until, **values)
                self.assertEqual(shell.exit_code, 0, shell.output)
                self.assertEqual(page.get_json()["summary"], json.loads(shell.output))
                with self.tracking.engine.connect() as conn:
                    exported = list(reads.export_rows(conn, Filters(
                        since=since, until=until, **values)))
                self.assertEqual(sum(row["count"] for row in json.loads(shell.output)),
                                 len(exported))
                self.assertTrue(exported)

    def test_same_message_for_a_bad_status_method_or_range(self):
        cases = [
            (NOW - 3600, NOW, {"status": "6xx"}, message_of(status="6xx")),
            (NOW - 3600, NOW, {"method": "G ET"}, message_of(method="G ET")),
            (NOW, NOW - 3600, {}, message_of(since=NOW, until=NOW - 3600)),
        ]
        for since, until, values, message in cases:
            with self.subTest(message=message):
                page = self.dashboard(since, until, **values)
                self.assertEqual(page.status_code, 400)
                self.assertIn(message, html.unescape(page.get_data(as_text=True)))
                shell = self.cli(since, until, **values)
                self.assertEqual(shell.exit_code, 2)
                self.assertIn(f"Error: {message}\n", shell.output)


if __name__ == "__main__":
    unittest.main()
