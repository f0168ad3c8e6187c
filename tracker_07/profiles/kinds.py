"""What kind of work a profiled function does, for the views that mark it (SQL)."""
import re

#: Functions whose time is the database driver's execute: SQLAlchemy's hook for every
#: driver, and the drivers' own cursors (as cProfile and as a sampler name a C method).
SQL_FUNCTIONS = re.compile(
    r"sqlalchemy[/\\]engine[/\\]default\.py:\d+\(do_execute(?:many|_no_params)?\)$"
    r"|psycopg[/\\]cursor\.py:\d+\(execute(?:many)?\)$"
    r"|^\{method 'execute(?:many)?' of '[\w.]*Cursor' objects\}$"
    r"|^[\w.]*Cursor\.execute(?:many)?$")


def is_sql(label):
    """Tell whether a function (by its pstats label) is the database driver's execute."""
    return SQL_FUNCTIONS.search(label) is not None
