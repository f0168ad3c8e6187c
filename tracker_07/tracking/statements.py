"""Statements of a maintenance pass run as written: SQLAlchemy spends 30-100 µs building,
keying and looking up a statement, more than most of a pass's statements take to run."""


def run(conn, sql, *parameters):
    """Run ``sql``, written with ``?`` marks (and no ``%``), through the connection's driver;
    its errors still come as SQLAlchemy's."""
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    return conn.exec_driver_sql(sql, parameters)
