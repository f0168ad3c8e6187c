"""``flask tracker stats|prune|export`` through Flask's CLI test runner."""
import csv
import io
import json
import os
import re
import unittest
from unittest import mock

import click
from flask import Flask

from tracker_07.tracking import cli, filters, reads, store, writes
from tracker_07.tests.tracking_helpers import TrackedAppCase

NOW = 1714600000.0  # 2024-05-01 21:46:40 UTC
ROWS = [
    (NOW - 600, "/a", "GET", 200, 10.0),
    (NOW - 500, "/a", "GET", 200, 30.0),
    (NOW - 400, "/a", "POST", 500, 50.0),
    (NOW - 300, "/b/<int:id>", "GET", 404, 5.0),
    (NOW - 3 * 86400, "/old", "GET", 200, 1.0),
]


class CliTest(TrackedAppCase):
    """Each command's output, options and errors."""

    def setUp(self):
        super().setUp()
        self.app, self.tracking = self.tracked_app()
        with self.tracking.engine.begin() as conn:
            writes.insert_batch(conn, ROWS)
        self.runner = self.app.test_cli_runner()
        patcher = mock.patch.object(filters, "now", return_value=NOW)
        patcher.start()
        self.addCleanup(patcher.stop)

    def invoke(self, *args):
        """Run ``flask tracker ARGS`` and return the click result."""
        return self.runner.invoke(args=["tracker", *args])

    def test_help_on_every_command(self):
        group_help = self.invoke("--help")
        self.assertEqual(group_help.exit_code, 0)
        for command in ("stats", "prune", "export"):
            self.assertIn(command, group_help.output)
            result = self.invoke(command, "--help")
            self.assertEqual(result.exit_code, 0, result.output)
            self.assertIn("--", result.output)
        self.assertIn("percentiles", self.invoke("stats", "--help").output)

    def test_stats_table(self):
        result = self.invoke("stats")
        self.assertEqual(result.exit_code, 0, result.output)
        lines = result.output.splitlines()
        self.assertEqual(lines[0].split()[:3], ["endpoint", "method", "count"])
        self.assertEqual([line.split()[:3] for line in lines[1:]], [
            ["/a", "GET", "2"], ["/a", "POST", "1"], ["/b/<int:id>", "GET", "1"],
        ])
        self.assertIn("20.00", lines[1])  # mean of 10 and 30 ms
        self.assertEqual(re.split(r"\s{2,}", lines[0])[10:15],
                         ["queries", "max q", "sql ms", "sql %", "findings"])
        self.assertEqual(re.split(r"\s{2,}", lines[1])[10:15], ["0.0", "0", "0.00", "0", "0"])
        self.assertIn("2024-05-01 21:40:00", lines[2])  # last seen of POST /a

    def test_stats_json_with_filters_and_sort(self):
        result = self.invoke("stats", "--json", "--method", "get", "--sort", "max",
                             "--ascending")
        self.assertEqual(result.exit_code, 0, result.output)
        rows = json.loads(result.output)
        self.assertEqual([(row["endpoint"], row["max"]) for row in rows],
                         [("/b/<int:id>", 5.0), ("/a", 30.0)])
        result = self.invoke("stats", "--json", "--endpoint", "/a", "--status", "5xx")
        self.assertEqual([(row["method"], row["count_5xx"]) for row in json.loads(result.output)],
                         [("POST", 1)])

    def test_stats_time_range_forms(self):
        result = self.invoke("stats", "--json", "--since", "7d")
        self.assertIn("/old", {row["endpoint"] for row in json.loads(result.output)})
        result = self.invoke("stats", "--json", "--since", "2024-05-01T21:38:00",
                             "--until", "2024-05-01T21:40:00+00:00")
        self.assertEqual([(row["endpoint"], row["count"]) for row in json.loads(result.output)],
                         [("/a", 1)])
        result = self.invoke("stats", "--since", "30s")
        self.assertEqual(result.output.strip(), "No tracked requests in this range.")

    def test_stats_user_errors(self):
        cases = [
            (("--since", "last tuesday"), "neither a duration"),
            (("--since", "1h", "--until", "2h"), "until must be later than since."),
            (("--sort", "drop table"), "Invalid value for '--sort'"),
            (("--status", "6xx"), "status must be a code"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                result = self.invoke("stats", *args)
                self.assertEqual(result.exit_code, 2)
                self.assertIn(message, result.output)

    def test_prune(self):
        result = self.invoke("prune", "--older-than", "1")
        self.assertEqual((result.exit_code, result.output), (0, "Deleted 1 rows.\n"))
        result = self.invoke("prune", "--keep", "2")
        self.assertEqual(result.output, "Deleted 2 rows.\n")
        with self.tracking.engine.connect() as conn:
            self.assertEqual([row["duration_ms"] for row in reads.export_rows(conn)],
                             [50.0, 5.0])
        result = self.invoke("prune")
        self.assertEqual(result.exit_code, 2)
        self.assertIn("give --older-than DAYS, --keep N, or both", result.output)
        self.assertEqual(self.invoke("prune", "--keep", "-1").exit_code, 2)

    def test_export_csv_to_stdout(self):
        result = self.invoke("export", "--since", "1h", "--method", "GET")
        self.assertEqual(result.exit_code, 0, result.output)
        rows = list(csv.DictReader(io.StringIO(result.output)))
        self.assertEqual([(row["endpoint"], row["status"], row["duration_ms"]) for row in rows],
                         [("/a", "200", "10.0"), ("/a", "200", "30.0"),
                          ("/b/<int:id>", "404", "5.0")])
        self.assertEqual(list(rows[0]), list(reads.EXPORT_COLUMNS))

    def test_export_json_to_file(self):
        target = os.path.join(self.tmpdir, "export.json")
        result = self.invoke("export", "--format", "json", "--output", target)
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn(f"Exported 5 rows to {target}.", result.output)
        with open(target, encoding="utf-8") as stream:
            rows = json.load(stream)
        self.assertEqual([row["endpoint"] for row in rows],
                         ["/old", "/a", "/a", "/a", "/b/<int:id>"])
        result = self.invoke("export", "--format", "json", "--endpoint", "/none")
        self.assertEqual(json.loads(result.output), [])

    def test_unreachable_database_is_one_clear_line(self):
        working_engine = self.tracking.engine
        self.tracking.engine = self._broken_engine()
        try:
            for args in (("stats",), ("prune", "--keep", "1"), ("export",)):
                with self.subTest(args=args):
                    result = self.invoke(*args)
                    self.assertEqual(result.exit_code, 1)
                    self.assertEqual(len(result.output.strip().splitlines()), 1, result.output)
                    self.assertIn("Error: cannot use the tracking database sqlite:///",
                                  result.output)
                    self.assertIn("unable to open database file", result.output)
        finally:
            self.tracking.engine = working_engine

    def _broken_engine(self):
        """An engine on a path that cannot be opened: its folder is a regular file."""
        with open(os.path.join(self.tmpdir, "not-a-folder"), "w", encoding="utf-8"):
            pass
        missing = os.path.join(self.tmpdir, "not-a-folder", "x.sqlite3")
        engine = store.create_store_engine(f"sqlite:///{missing}")
        self.addCleanup(engine.dispose)
        return engine


class CliWithoutTrackingTest(unittest.TestCase):
    """The commands on an app where tracking is not enabled."""

    def test_usage_error_when_tracking_is_off(self):
        app = Flask(__name__)
        cli.init_app(app)
        result = app.test_cli_runner().invoke(args=["tracker", "stats"])
        self.assertEqual(result.exit_code, 2)
        self.assertIn("endpoint tracking is not enabled", result.output)

    def test_parse_time(self):
        self.assertEqual(cli.parse_time("90m", now=10000.0), 10000.0 - 5400)
        self.assertEqual(cli.parse_time("1.5h", now=10000.0), 10000.0 - 5400)
        self.assertEqual(cli.parse_time("2w", now=2e6), 2e6 - 2 * 604800)
        self.assertEqual(cli.parse_time("2024-05-01"), 1714521600.0)
        with self.assertRaises(click.BadParameter):
            cli.parse_time("soon")


if __name__ == "__main__":
    unittest.main()
