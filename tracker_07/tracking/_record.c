/* The request path's record of one request, in C: tracker_07/tracking/middleware.py's
 * RequestRecord, which it replaces when this module is compiled.
 *
 * Record(middleware, environ, start_response, started, clock) notes the status and the
 * matched URL rule's string when the application starts its response, and appends one
 * tuple (started, ended, endpoint, method, status, sql) to middleware.queue when finish()
 * is called (the server closed the body), or when it is let go unfinished (then it ended
 * when its response started).  clock is the module's perf_counter, passed on each request
 * so that a test's stand-in is used.  It does in C what the Python class does, so that a
 * request pays about a microsecond less; middleware.py says why each step is there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

#if PY_VERSION_HEX < 0x030D0000
#define PyObject_GetOptionalAttr _PyObject_LookupAttr
#endif

/* The environ key under which tracker_07.sql.capture keeps a request's queries. */
#define SQL_KEY "tracker.sql"

typedef struct {
    PyObject_HEAD
    PyObject *middleware;
    PyObject *environ;
    PyObject *start_response;
    PyObject *clock;
    PyObject *endpoint;     /* the URL rule's string, or None */
    PyObject *status;       /* the status line, "500" until the response starts */
    double started;
    double responded;
    double measured;        /* the wrapper's own time so far, 0.0 when not measured */
    char pending;           /* not yet queued */
    char has_responded;
} Record;

static PyObject *str_queue, *str_capacity, *str_wake_at, *str_wake, *str_is_set, *str_set,
    *str_count_dropped, *str_cost, *str_note, *str_append, *str_url_rule, *str_rule,
    *str_request, *str_method_key, *str_sql_key, *str_get, *str_empty, *str_500;

static int
read_clock(Record *self, double *now)
{
    PyObject *value = PyObject_CallNoArgs(self->clock);
    if (value == NULL) {
        return -1;
    }
    *now = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return (*now == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* environ.get(key, fallback), new reference. */
static PyObject *
environ_get(PyObject *environ, PyObject *key, PyObject *fallback)
{
    if (PyDict_CheckExact(environ)) {
        PyObject *value = PyDict_GetItemWithError(environ, key);
        if (value == NULL) {
            return PyErr_Occurred() ? NULL : Py_NewRef(fallback);
        }
        return Py_NewRef(value);
    }
    return PyObject_CallMethodObjArgs(environ, str_get, key, fallback, NULL);
}

static PyObject *
Record_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *middleware, *environ, *start_response, *clock;
    double started;
    if (!PyArg_ParseTuple(args, "OOOdO:Record", &middleware, &environ, &start_response,
                          &started, &clock)) {
        return NULL;
    }
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Record() takes no keyword arguments");
        return NULL;
    }
    Record *self = (Record *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->middleware = Py_NewRef(middleware);
    self->environ = Py_NewRef(environ);
    self->start_response = Py_NewRef(start_response);
    self->clock = Py_NewRef(clock);
    self->endpoint = Py_NewRef(Py_None);
    self->status = Py_NewRef(str_500);
    self->started = started;
    self->pending = 1;
    return (PyObject *)self;
}

static PyObject *
Record_start_response(Record *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "start_response() takes 2 or 3 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *status = args[0], *exc_info = nargs == 3 ? args[2] : Py_None;
    Py_SETREF(self->status, Py_NewRef(status));
    double responded;
    if (read_clock(self, &responded) < 0) {
        return NULL;
    }
    self->responded = responded;
    self->has_responded = 1;
    PyObject *request = environ_get(self->environ, str_request, Py_None);
    if (request == NULL) {
        return NULL;
    }
    if (request != Py_None) {
        PyObject *rule;
        int found = PyObject_GetOptionalAttr(request, str_url_rule, &rule);
        Py_DECREF(request);
        if (found < 0) {
            return NULL;
        }
        if (found && rule != Py_None) {
            PyObject *endpoint = PyObject_GetAttr(rule, str_rule);
            Py_DECREF(rule);
            if (endpoint == NULL) {
                return NULL;
            }
            Py_SETREF(self->endpoint, endpoint);
        }
        else if (found) {
            Py_DECREF(rule);
        }
    }
    else {
        Py_DECREF(request);
    }
    if (self->measured) {
        double now;
        if (read_clock(self, &now) < 0) {
            return NULL;
        }
        self->measured += now - responded;
    }
    PyObject *call_args[3] = {status, args[1], exc_info};
    return PyObject_Vectorcall(self->start_response, call_args, 3, NULL);
}

/* Queue the record: the tuple appended to middleware.queue (or a drop counted). */
static int
queue_record(Record *self, double ended)
{
    PyObject *middleware = self->middleware;
    PyObject *queue = PyObject_GetAttr(middleware, str_queue);
    if (queue == NULL) {
        return -1;
    }
    Py_ssize_t queued = PyObject_Size(queue);
    PyObject *capacity_object = queued < 0 ? NULL : PyObject_GetAttr(middleware, str_capacity);
    Py_ssize_t capacity = capacity_object == NULL ? -1 : PyLong_AsSsize_t(capacity_object);
    Py_XDECREF(capacity_object);
    if (capacity == -1 && PyErr_Occurred()) {
        Py_DECREF(queue);
        return -1;
    }
    if (queued >= capacity) {
        Py_DECREF(queue);
        PyObject *result = PyObject_CallMethodNoArgs(middleware, str_count_dropped);
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    PyObject *method = environ_get(self->environ, str_method_key, str_empty);
    PyObject *sql = method == NULL ? NULL : environ_get(self->environ, str_sql_key, Py_None);
    PyObject *row = NULL;
    if (sql != NULL) {
        row = Py_BuildValue("(ddOOOO)", self->started, ended, self->endpoint, method,
                            self->status, sql);
    }
    Py_XDECREF(method);
    Py_XDECREF(sql);
    PyObject *appended = row == NULL ? NULL : PyObject_CallMethodOneArg(queue, str_append, row);
    Py_XDECREF(row);
    Py_DECREF(queue);
    if (appended == NULL) {
        return -1;
    }
    Py_DECREF(appended);
    PyObject *wake_at_object = PyObject_GetAttr(middleware, str_wake_at);
    Py_ssize_t wake_at = wake_at_object == NULL ? -1 : PyLong_AsSsize_t(wake_at_object);
    Py_XDECREF(wake_at_object);
    if (wake_at == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (queued < wake_at - 1) {
        return 0;
    }
    PyObject *wake = PyObject_GetAttr(middleware, str_wake);
    if (wake == NULL) {
        return -1;
    }
    PyObject *is_set = PyObject_CallMethodNoArgs(wake, str_is_set);
    int already = is_set == NULL ? -1 : PyObject_IsTrue(is_set);
    Py_XDECREF(is_set);
    PyObject *result = already != 0 ? NULL : PyObject_CallMethodNoArgs(wake, str_set);
    Py_DECREF(wake);
    Py_XDECREF(result);
    return already > 0 || result != NULL ? 0 : -1;
}

static PyObject *
finish(Record *self, PyObject *ended_object)
{
    double finishing, ended;
    if (read_clock(self, &finishing) < 0) {
        return NULL;
    }
    if (ended_object == Py_None) {
        ended = finishing;
    }
    else {
        ended = PyFloat_AsDouble(ended_object);
        if (ended == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (!self->pending) {
        Py_RETURN_NONE;
    }
    self->pending = 0;
    if (queue_record(self, ended) < 0) {
        return NULL;
    }
    if (self->measured) {
        double now;
        if (read_clock(self, &now) < 0) {
            return NULL;
        }
        PyObject *cost = PyObject_GetAttr(self->middleware, str_cost);
        PyObject *seconds = cost == NULL ? NULL
            : PyFloat_FromDouble(self->measured + (now - finishing));
        PyObject *result = seconds == NULL ? NULL
            : PyObject_CallMethodOneArg(cost, str_note, seconds);
        Py_XDECREF(cost);
        Py_XDECREF(seconds);
        if (result == NULL) {
            return NULL;
        }
        Py_DECREF(result);
    }
    Py_RETURN_NONE;
}

static PyObject *
Record_finish(Record *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "finish() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    return finish(self, nargs ? args[0] : Py_None);
}

/* A record let go unfinished ends when its response started (the Python class's __del__). */
static void
Record_finalize(Record *self)
{
    if (!self->pending) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *error = PyErr_GetRaisedException();
#else
    PyObject *error_type, *error_value, *error_traceback;
    PyErr_Fetch(&error_type, &error_value, &error_traceback);
#endif
    PyObject *ended = self->has_responded ? PyFloat_FromDouble(self->responded)
                                          : Py_NewRef(Py_None);
    PyObject *result = ended == NULL ? NULL : finish(self, ended);
    Py_XDECREF(ended);
    if (result == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(result);
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(error);
#else
    PyErr_Restore(error_type, error_value, error_traceback);
#endif
}

static int
Record_traverse(Record *self, visitproc visit, void *arg)
{
    Py_VISIT(self->middleware);
    Py_VISIT(self->environ);
    Py_VISIT(self->start_response);
    Py_VISIT(self->clock);
    Py_VISIT(self->endpoint);
    Py_VISIT(self->status);
    return 0;
}

static int
Record_clear(Record *self)
{
    Py_CLEAR(self->middleware);
    Py_CLEAR(self->environ);
    Py_CLEAR(self->start_response);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->endpoint);
    Py_CLEAR(self->status);
    return 0;
}

static void
Record_dealloc(Record *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return;  /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    Record_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Record_methods[] = {
    {"start_response", (PyCFunction)(void (*)(void))Record_start_response, METH_FASTCALL,
     "Note the status and the matched URL rule, then pass the call on."},
    {"finish", (PyCFunction)(void (*)(void))Record_finish, METH_FASTCALL,
     "Queue the request's record (once); it ended now, or at the time given."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Record_members[] = {
    {"measured", T_DOUBLE, offsetof(Record, measured), 0,
     "The wrapper's own time so far when this request measures it, else 0.0."},
    {"endpoint", T_OBJECT, offsetof(Record, endpoint), READONLY,
     "The matched URL rule's string, or None."},
    {"status", T_OBJECT, offsetof(Record, status), READONLY, "The status line."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RecordType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracker_07.tracking._record.Record",
    .tp_basicsize = sizeof(Record),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One tracked request: noted as its response starts, queued when closed.",
    .tp_new = Record_new,
    .tp_dealloc = (destructor)Record_dealloc,
    .tp_finalize = (destructor)Record_finalize,
    .tp_traverse = (traverseproc)Record_traverse,
    .tp_clear = (inquiry)Record_clear,
    .tp_methods = Record_methods,
    .tp_members = Record_members,
};

static struct PyModuleDef record_module = {
    PyModuleDef_HEAD_INIT, "_record",
    "The request path's record of one request, in C (see tracker_07/tracking/middleware.py).",
    -1, NULL,
};

#define INTERN(name, text) \
    if ((name = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC
PyInit__record(void)
{
    INTERN(str_queue, "queue");
    INTERN(str_capacity, "capacity");
    INTERN(str_wake_at, "wake_at");
    INTERN(str_wake, "wake");
    INTERN(str_is_set, "is_set");
    INTERN(str_set, "set");
    INTERN(str_count_dropped, "count_dropped");
    INTERN(str_cost, "cost");
    INTERN(str_note, "note");
    INTERN(str_append, "append");
    INTERN(str_url_rule, "url_rule");
    INTERN(str_rule, "rule");
    INTERN(str_request, "werkzeug.request");
    INTERN(str_method_key, "REQUEST_METHOD");
    INTERN(str_sql_key, SQL_KEY);
    INTERN(str_get, "get");
    INTERN(str_empty, "");
    INTERN(str_500, "500");
    if (PyType_Ready(&RecordType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&record_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Record", (PyObject *)&RecordType) < 0
            || PyModule_AddStringConstant(module, "SQL_KEY", SQL_KEY) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
