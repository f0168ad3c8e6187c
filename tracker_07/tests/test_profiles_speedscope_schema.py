"""Tests that both engines' speedscope exports pass speedscope's published file-format schema."""
import json
import os
import time
import unittest

import jsonschema
from pyinstrument import Profiler
from pyinstrument.renderers import SpeedscopeRenderer

from tracker_07.profiles import paths, sampled
from tracker_07.tests import profile_fixtures as fx
from tracker_07.tests.test_dashboard_profiles import DashboardTestCase

#: speedscope 1.25.0's schema, as its npm package publishes it (see the README beside it).
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "data", "speedscope",
                           "file-format-schema.json")
STACKS = [((("app.py", 1, "view"), ("app.py", 10, "a")), 0.004),
          ((("app.py", 1, "view"), ("~", 0, "<built-in method time.sleep>")), 0.002)]


def validator():
    """A validator of speedscope's schema (draft 7, as its ``$schema`` says)."""
    with open(SCHEMA_PATH, encoding="utf-8") as file:
        schema = json.load(file)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(document):
    """The schema's complaints about a document, after a trip through JSON text."""
    return [error.message for error in validator().iter_errors(json.loads(json.dumps(document)))]


class SchemaTestCase(unittest.TestCase):
    """Exports of both engines are valid speedscope files; known-bad files are not."""

    def test_the_kept_schema_is_speedscopes(self):
        schema = validator().schema
        self.assertEqual(schema["$ref"], "#/definitions/FileFormat.File")
        self.assertEqual(schema["definitions"]["FileFormat.File"]["properties"]["$schema"]["const"],
                         sampled.SPEEDSCOPE_SCHEMA)

    def test_cprofile_export(self):
        self.assertEqual(errors(paths.speedscope(fx.real_stats(), "GET /work")), [])

    def test_sampled_export(self):
        stats = sampled.stats_from_stacks(STACKS, interval=0.001)
        self.assertEqual(errors(paths.speedscope(stats, "GET /work")), [])

    def test_known_bad_files_are_rejected(self):
        good = paths.speedscope(sampled.stats_from_stacks(STACKS, interval=0.001), "x")
        bad = {
            "null activeProfileIndex": dict(good, activeProfileIndex=None),
            "null file of a [self] frame": dict(good, shared={"frames": [
                {"name": "[self]", "file": None, "line": None}]}),
            "unknown unit": dict(good, profiles=[dict(good["profiles"][0], unit="ticks")]),
            "no $schema": {key: value for key, value in good.items() if key != "$schema"},
        }
        for what, document in bad.items():
            with self.subTest(what):
                self.assertNotEqual(errors(document), [])

    def test_pyinstrument_own_renderer_is_rejected(self):
        """pyinstrument 5.1's speedscope file fails the schema; Tracker writes its own."""
        profiler = Profiler(interval=0.0005)
        profiler.start()
        deadline = time.perf_counter() + 0.01
        while time.perf_counter() < deadline:
            sum(range(100))
        profiler.stop()
        document = json.loads(profiler.output(SpeedscopeRenderer()))
        self.assertIn("None is not of type 'number'", errors(document))


class DashboardExportTestCase(DashboardTestCase):
    """The export the dashboard sends for a real request is a valid speedscope file."""

    def test_real_profile_export(self):
        (record,) = self.save_profiles("/words/slow")
        response = self.client.get(f"/dashboard/profiles/{record['id']}/export/speedscope")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(errors(json.loads(response.data)), [])


if __name__ == "__main__":
    unittest.main()
