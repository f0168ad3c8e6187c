"""Findings and summaries (tracker_07/sql/analysis.py): normalised statements, N+1,
duplicates and slow queries with advice, the JSON shape and the console block."""
import os
import unittest

from tracker_07.sql import analysis
from tracker_07.sql.capture import CaptureOptions, Query, RequestQueries, hash_params

HERE = os.path.abspath(__file__)


def query(statement, ms=1.0, site=(HERE, 10, "view"), params=(1,), many=False, rows=None):
    """One captured query."""
    return Query(statement, ms / 1000.0, rows, site, hash_params(params), None, many)


def request_of(queries, **options):
    """A request's queries with running totals, as capture leaves them."""
    result = RequestQueries(CaptureOptions(**options))
    result.queries = list(queries)
    result.count = len(result.queries)
    result.seconds = sum(item.seconds for item in result.queries)
    return result


class NormaliseTest(unittest.TestCase):
    """Statements that differ only in literals or list lengths are one statement."""

    def test_literals_lists_and_space_are_folded(self):
        self.assertEqual(
            analysis.normalise("SELECT *\n  FROM t WHERE id IN (?, ?, ?) AND x = 'it''s' "
                               "AND y > 42 AND z = -1.5 AND name = t1.col2"),
            "SELECT * FROM t WHERE id IN (...) AND x = ? AND y > ? AND z = ? "
            "AND name = t1.col2")
        self.assertEqual(analysis.normalise("WHERE a IN (%(a_1)s, %(a_2)s)"),
                         analysis.normalise("WHERE a IN (%(a_1)s, %(a_2)s, %(a_3)s)"))
        self.assertEqual(analysis.normalise("VALUES ($1, $2)"), "VALUES (...)")
        self.assertEqual(analysis.normalise("WHERE a = :a AND b = ?"), "WHERE a = :a AND b = ?")


class FindingsTest(unittest.TestCase):
    """Each kind of finding, its threshold and its advice."""

    def test_n_plus_one_needs_five_from_one_site(self):
        four = [query("SELECT a FROM t WHERE id = ?", params=(n,)) for n in range(4)]
        self.assertEqual(analysis.findings(four), [])
        five = four + [query("SELECT a FROM t WHERE id = ?", params=(9,))]
        found = analysis.findings(five)
        self.assertEqual(len(found), 1)
        finding = found[0]
        self.assertEqual((finding["kind"], finding["count"]), ("n_plus_one", 5))
        self.assertEqual(finding["total_ms"], 5.0)
        self.assertEqual(finding["site"], {"file": "tracker_07/tests/test_sql_analysis.py",
                                           "line": 10, "function": "view"})
        self.assertIn("selectinload", finding["advice"])

    def test_the_same_statement_from_five_sites_is_no_n_plus_one(self):
        queries = [query("SELECT 1", site=(HERE, line, "view"), params=(line,))
                   for line in range(5)]
        self.assertEqual(analysis.findings(queries), [])

    def test_two_levels_give_two_findings(self):
        queries = []
        for post in range(5):
            queries.append(query("SELECT comments WHERE post = ?", site=(HERE, 1, "v"),
                                 params=(post,)))
            queries += [query("SELECT author WHERE id = ?", site=(HERE, 2, "v"),
                              params=(post, n)) for n in range(2)]
        found = analysis.findings(queries)
        self.assertEqual([(item["kind"], item["count"], item["site"]["line"]) for item in found],
                         [("n_plus_one", 10, 2), ("n_plus_one", 5, 1)])

    def test_duplicates_need_the_same_parameters(self):
        queries = [query("SELECT 1", params=(1,)), query("SELECT 1", params=(1,)),
                   query("SELECT 1", params=(2,))]
        found = analysis.findings(queries)
        self.assertEqual(len(found), 1)
        finding = found[0]
        self.assertEqual((finding["kind"], finding["count"]), ("duplicate", 2))
        self.assertIn("reuse", finding["advice"])

    def test_executemany_batches_are_neither_n_plus_one_nor_duplicates(self):
        queries = [query("INSERT INTO t VALUES (?)", many=True, params=[(1,), (2,)])
                   for _ in range(6)]
        self.assertEqual(analysis.findings(queries), [])

    def test_slow_queries_at_the_threshold_and_off(self):
        queries = [query("SELECT slow", ms=100.0), query("SELECT quick", ms=99.9, params=(2,))]
        found = analysis.findings(queries, slow_ms=100)
        self.assertEqual(len(found), 1)
        finding = found[0]
        self.assertEqual((finding["kind"], finding["statement"]), ("slow", "SELECT slow"))
        self.assertIn("index", finding["advice"])
        self.assertEqual(analysis.findings(queries, slow_ms=0), [])

    def test_findings_come_worst_kind_first(self):
        queries = ([query("SELECT n WHERE id = ?", params=(n,)) for n in range(5)]
                   + [query("SELECT d"), query("SELECT d"), query("SELECT s", ms=300)])
        self.assertEqual([item["kind"] for item in analysis.findings(queries)],
                         ["n_plus_one", "slow", "duplicate"])


class SummaryTest(unittest.TestCase):
    """The JSON of one request's queries, and the console block."""

    def test_summary_shape_and_statement_groups(self):
        queries = [query("SELECT a WHERE id = ?", ms=2.0, params=(n,), rows=1) for n in range(5)]
        queries.append(query("SELECT b", ms=9.0, site=None))
        summary = analysis.summarise(request_of(queries))
        self.assertEqual(set(summary), {"queries", "findings"})
        self.assertEqual((summary["queries"]["count"], summary["queries"]["total_ms"]),
                         (6, 19.0))
        self.assertEqual(len(summary["queries"]["statements"]), 2)
        first = summary["queries"]["statements"][0]
        second = summary["queries"]["statements"][1]
        self.assertEqual(first, {"statement": "SELECT a WHERE id = ?", "count": 5,
                                 "total_ms": 10.0, "max_ms": 2.0, "rows": 5,
                                 "site": {"file": "tracker_07/tests/test_sql_analysis.py",
                                          "line": 10, "function": "view"}})
        self.assertEqual((second["site"], second["rows"]), (None, None))
        self.assertEqual(set(summary["findings"][0]),
                         {"kind", "statement", "count", "total_ms", "site", "advice"})
        self.assertEqual(analysis.findings_count(request_of(queries)), 1)

    def test_kept_parameters_and_the_statement_limit(self):
        kept = Query("SELECT p", 0.001, None, None, 1, "(7,)", False)
        other = [query(f"SELECT {n}") for n in range(3)]
        summary = analysis.statements([kept, *other], limit=2)
        self.assertEqual(len(summary), 2)
        self.assertEqual(analysis.statements([kept])[0]["params"], "(7,)")
        long_statement = "SELECT " + ", ".join(f"c{n}" for n in range(500)) + " FROM t"
        items = analysis.statements([query(long_statement)])
        self.assertEqual([item["statement"] for item in items],
                         [long_statement[:analysis.STATEMENT_LENGTH]])

    def test_console_block(self):
        queries = [query("SELECT a WHERE id = ?", params=(n,)) for n in range(5)]
        block = analysis.console_block(analysis.summarise(request_of(queries)), 50.0)
        lines = block.splitlines()
        self.assertEqual(lines[0], "SQL: 5 queries in 5.0 ms (10% of the request)")
        self.assertTrue(lines[1].startswith(
            "  N+1: 5 x 5.0 ms at tracker_07/tests/test_sql_analysis.py:10 (view): SELECT a"))
        clean = analysis.console_block(analysis.summarise(request_of([query("SELECT 1")])), 0)
        self.assertIn("(0% of the request)", clean)
        self.assertIn("No N+1, duplicate or slow queries.", clean)
        self.assertEqual(analysis.where(None), "an unknown line")

    def test_long_statements_are_cut_on_the_console(self):
        self.assertEqual(len(analysis._short("x" * 300)), 100)  # pylint: disable=protected-access  # the helper itself
        self.assertEqual(analysis._short("short"), "short")  # pylint: disable=protected-access  # the helper itself
