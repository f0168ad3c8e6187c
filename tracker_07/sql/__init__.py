"""The database inside every profile: SQLAlchemy queries per request, their call sites,
and N+1, duplicate and slow-query findings.

* :mod:`.capture` listens to the cursor events of the engines it is told to watch and
  collects each request's queries (a ``contextvars`` slot set by a WSGI wrapper);
* :mod:`.callsite` finds the first frame of the app's own code that ran a query;
* :mod:`.analysis` normalises statements, groups them and turns them into findings,
  for the profile page, its JSON, the console report and tracking;
* :mod:`.extension` attaches all of it to an app (``Tracker(app)`` does) and finds
  Flask-SQLAlchemy's engines.
"""
