"""Always-on endpoint tracking: every request's endpoint, method, status and duration in a
SQL store that the dashboard and ``flask tracker`` read.

``middleware`` is the request path, ``writer`` the thread that stores, ``extension`` wires
them to an app (``Tracking(app)``); ``Tracker(app)`` attaches it with everything else.
"""
