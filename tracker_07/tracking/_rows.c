/* The tracking writer's two passes over every stored request, written in C (optional).
 *
 * tracker_07/tracking/rows.py uses these when the module is compiled and does the same in
 * Python otherwise; the tests hold both to the same rows and groups.
 *
 * rows_from(batch, offset, slow_ms, shape, status_code, sql_numbers) turns the request
 * path's queued tuples (started, ended, endpoint, method, status, sql) into the store's rows
 * (writes.INSERT_COLUMNS order) and returns (rows, slow): slow lists the positions of the
 * rows that took slow_ms or longer.  shape holds the store's constants (rows.ROW_SHAPE);
 * status_code(status) and sql_numbers(sql) are called for what only Python knows.  It
 * returns None, having changed nothing, for a batch with anything but the request path's
 * types in it, or a time that is not finite: Python then makes (or refuses) every row.
 *
 * count_groups(rows, groups, statuses, hour) counts stored rows into the writer's hourly
 * groups as counted.Pending does (one list per group: its table's key, then its values)
 * and returns (earliest, latest) start; None, having changed nothing, when a row is not a
 * tuple of nine with float times and a finite start.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define RECORD_FIELDS 6
#define ROW_FIELDS 9
#define STATUS_GROUP_SIZE 12
#define BUCKET_GROUP_SIZE 13
/* Starts beyond this many hours from 1970 are left to Python's unbounded integers. */
#define MAX_HOURS 1e12

static PyObject *OTHER_METHOD; /* "OTHER" */
static PyObject *ZERO_FLOAT;   /* 0.0, a request's SQL milliseconds without queries */
static PyObject *ZERO;         /* 0 */
static PyObject *ONE;          /* 1 */
static PyObject *NO_SQL;       /* (0, 0.0, 0): writes.NO_SQL */

/* The store's constants, from rows.ROW_SHAPE. */
typedef struct {
    Py_ssize_t endpoint_length;
    double min_bucket_ms, log_min_bucket, inverse_log_growth;
    long bucket_count;
    PyObject *known_methods;
} Shape;

static int
read_shape(PyObject *shape, Shape *out)
{
    return PyArg_ParseTuple(shape, "ndddlO!;shape: (endpoint length, min bucket ms, log min "
                            "bucket, inverse log growth, bucket count, known methods)",
                            &out->endpoint_length, &out->min_bucket_ms, &out->log_min_bucket,
                            &out->inverse_log_growth, &out->bucket_count,
                            &PyFrozenSet_Type, &out->known_methods);
}

/* Whether a queued record has the request path's types: then C makes its row. */
static int
is_plain_record(PyObject *record)
{
    if (!PyTuple_CheckExact(record) || PyTuple_GET_SIZE(record) != RECORD_FIELDS)
        return 0;
    PyObject *started = PyTuple_GET_ITEM(record, 0), *ended = PyTuple_GET_ITEM(record, 1);
    PyObject *endpoint = PyTuple_GET_ITEM(record, 2);
    if (!PyFloat_CheckExact(started) || !PyFloat_CheckExact(ended))
        return 0;
    if (!isfinite((PyFloat_AS_DOUBLE(ended) - PyFloat_AS_DOUBLE(started)) * 1000.0))
        return 0;
    return (endpoint == Py_None || PyUnicode_CheckExact(endpoint))
        && PyUnicode_CheckExact(PyTuple_GET_ITEM(record, 3));
}

/* A request's (queries, sql_ms, findings): sql_numbers(sql) where it ran queries. */
static PyObject *
sql_fields(PyObject *sql, PyObject *sql_numbers)
{
    if (sql == Py_None)
        return Py_NewRef(NO_SQL);
    PyObject *numbers = PyObject_CallOneArg(sql_numbers, sql);
    if (numbers != NULL && (!PyTuple_Check(numbers) || PyTuple_GET_SIZE(numbers) != 3)) {
        PyErr_SetString(PyExc_TypeError, "sql_numbers must return a tuple of three");
        Py_CLEAR(numbers);
    }
    return numbers;
}

/* One queued record's row (a new reference), or NULL with an exception set. */
static PyObject *
row_of(PyObject *record, double offset, const Shape *shape, PyObject *status_code,
       PyObject *sql_numbers, double *duration_ms)
{
    double started = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(record, 0));
    double ended = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(record, 1));
    PyObject *endpoint = PyTuple_GET_ITEM(record, 2), *method = PyTuple_GET_ITEM(record, 3);
    PyObject *code = NULL, *numbers = NULL, *name = NULL, *row = NULL;
    *duration_ms = (ended - started) * 1000.0;

    code = PyObject_CallOneArg(status_code, PyTuple_GET_ITEM(record, 4));
    if (code == NULL)
        goto done;
    numbers = sql_fields(PyTuple_GET_ITEM(record, 5), sql_numbers);
    if (numbers == NULL)
        goto done;
    if (endpoint == Py_None)
        name = PyUnicode_FromFormat("<%S>", code);
    else if (PyUnicode_GET_LENGTH(endpoint) > shape->endpoint_length)
        name = PyUnicode_Substring(endpoint, 0, shape->endpoint_length);
    else
        name = Py_NewRef(endpoint);
    if (name == NULL)
        goto done;
    int known = PySet_Contains(shape->known_methods, method);
    if (known < 0)
        goto done;
    long bucket = 0;
    if (!(*duration_ms < shape->min_bucket_ms)) { /* store.bucket_of, as writer.py inlines it */
        bucket = (long)((log(*duration_ms) - shape->log_min_bucket) * shape->inverse_log_growth) + 1;
        if (bucket >= shape->bucket_count)
            bucket = shape->bucket_count - 1;
    }
    row = Py_BuildValue("(dOOOdOOOl)", started + offset, name, known ? method : OTHER_METHOD,
                        code, *duration_ms, PyTuple_GET_ITEM(numbers, 0),
                        PyTuple_GET_ITEM(numbers, 1), PyTuple_GET_ITEM(numbers, 2), bucket);
done:
    Py_XDECREF(code);
    Py_XDECREF(numbers);
    Py_XDECREF(name);
    return row;
}

static PyObject *
rows_from(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *given, *shape_tuple, *status_code, *sql_numbers, *rows = NULL, *slow = NULL;
    double offset, slow_ms;
    Shape shape;
    if (!PyArg_ParseTuple(args, "OddO!OO:rows_from", &given, &offset, &slow_ms, &PyTuple_Type,
                          &shape_tuple, &status_code, &sql_numbers)
        || !read_shape(shape_tuple, &shape))
        return NULL;
    /* A tuple of the records, so that the code called back cannot change them under us. */
    PyObject *batch = PySequence_Tuple(given);
    if (batch == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(batch);
    for (Py_ssize_t i = 0; i < count; i++)
        if (!is_plain_record(PyTuple_GET_ITEM(batch, i))) {
            Py_DECREF(batch);
            Py_RETURN_NONE;
        }

    rows = PyList_New(count);
    slow = PyList_New(0);
    if (rows == NULL || slow == NULL)
        goto failed;
    for (Py_ssize_t i = 0; i < count; i++) {
        double duration_ms;
        PyObject *row = row_of(PyTuple_GET_ITEM(batch, i), offset, &shape, status_code,
                               sql_numbers, &duration_ms);
        if (row == NULL)
            goto failed;
        PyList_SET_ITEM(rows, i, row);
        if (duration_ms >= slow_ms) {
            PyObject *position = PyLong_FromSsize_t(i);
            if (position == NULL || PyList_Append(slow, position) < 0) {
                Py_XDECREF(position);
                goto failed;
            }
            Py_DECREF(position);
        }
    }
    PyObject *result = PyTuple_Pack(2, rows, slow);
    Py_DECREF(batch);
    Py_DECREF(rows);
    Py_DECREF(slow);
    return result;
failed:
    Py_DECREF(batch);
    Py_XDECREF(rows);
    Py_XDECREF(slow);
    return NULL;
}

/* Whether a stored row has the writer's types: then C counts it. */
static int
is_plain_row(PyObject *row)
{
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != ROW_FIELDS)
        return 0;
    PyObject *started = PyTuple_GET_ITEM(row, 0);
    return PyFloat_CheckExact(started) && PyFloat_CheckExact(PyTuple_GET_ITEM(row, 4))
        && fabs(PyFloat_AS_DOUBLE(started) / 3600.0) < MAX_HOURS;
}

/* group[i] = value, taking over the reference to value (NULL: an error already set). */
static int
put(PyObject *group, Py_ssize_t i, PyObject *value)
{
    if (value == NULL)
        return -1;
    PyObject *old = PyList_GET_ITEM(group, i);
    PyList_SET_ITEM(group, i, value);
    Py_DECREF(old);
    return 0;
}

/* group[i] += value. */
static int
add_to(PyObject *group, Py_ssize_t i, PyObject *value)
{
    PyObject *sum = PyList_GET_ITEM(group, i);
    if (PyFloat_CheckExact(sum) && PyFloat_CheckExact(value))
        return put(group, i, PyFloat_FromDouble(PyFloat_AS_DOUBLE(sum)
                                                + PyFloat_AS_DOUBLE(value)));
    return put(group, i, PyNumber_Add(sum, value));
}

/* group[i] = max(group[i], value), the group's value kept on a tie. */
static int
raise_to(PyObject *group, Py_ssize_t i, PyObject *value)
{
    int greater = PyObject_RichCompareBool(value, PyList_GET_ITEM(group, i), Py_GT);
    if (greater <= 0)
        return greater;
    return put(group, i, Py_NewRef(value));
}

/* Fold one row's values into a group whose count is at ``first``: the count, the sum and
 * maximum of the durations, the latest start, and the sums and maximum of the queries. */
static int
fold(PyObject *group, Py_ssize_t first, PyObject *duration, PyObject *started,
     PyObject *queries, PyObject *sql_ms, PyObject *findings)
{
    if (add_to(group, first, ONE) < 0 || add_to(group, first + 1, duration) < 0
        || raise_to(group, first + 2, duration) < 0 || raise_to(group, first + 3, started) < 0)
        return -1;
    int ran_queries = PyObject_IsTrue(queries);
    if (ran_queries <= 0)
        return ran_queries;
    if (add_to(group, first + 4, queries) < 0 || raise_to(group, first + 5, queries) < 0
        || add_to(group, first + 6, sql_ms) < 0 || add_to(group, first + 7, findings) < 0)
        return -1;
    return 0;
}

/* The group under ``key`` in ``groups``, a new one of ``items`` if there is none: 1 when
 * found (*group borrowed), 0 when made, -1 on error. */
static int
find_or_make(PyObject *groups, PyObject *key, PyObject **items, Py_ssize_t size,
             PyObject **group)
{
    *group = PyDict_GetItemWithError(groups, key);
    if (*group != NULL) {
        if (!PyList_CheckExact(*group) || PyList_GET_SIZE(*group) != size) {
            PyErr_SetString(PyExc_TypeError, "a counted group is not a list of its size");
            return -1;
        }
        return 1;
    }
    if (PyErr_Occurred())
        return -1;
    PyObject *made = PyList_New(size);
    if (made == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < size; i++)
        PyList_SET_ITEM(made, i, Py_NewRef(items[i]));
    int failed = PyDict_SetItem(groups, key, made);
    Py_DECREF(made);
    return failed ? -1 : 0;
}

/* Count one row into its status group and its bucket group. */
static int
count_row(PyObject *row, PyObject *groups, PyObject *statuses, long long hour_seconds)
{
    PyObject *started = PyTuple_GET_ITEM(row, 0), *endpoint = PyTuple_GET_ITEM(row, 1);
    PyObject *method = PyTuple_GET_ITEM(row, 2), *status = PyTuple_GET_ITEM(row, 3);
    PyObject *duration = PyTuple_GET_ITEM(row, 4), *queries = PyTuple_GET_ITEM(row, 5);
    PyObject *sql_ms = PyTuple_GET_ITEM(row, 6), *findings = PyTuple_GET_ITEM(row, 7);
    PyObject *bucket = PyTuple_GET_ITEM(row, 8), *group;
    /* The hour as the SQL roll-up computes it: a truncating cast of the division. */
    PyObject *hour = PyLong_FromLongLong(
        (long long)(PyFloat_AS_DOUBLE(started) / 3600.0) * hour_seconds);
    if (hour == NULL)
        return -1;
    int result = -1, found;
    PyObject *key = PyTuple_Pack(4, hour, endpoint, method, status);
    if (key == NULL)
        goto done;
    PyObject *status_items[STATUS_GROUP_SIZE] = {
        hour, endpoint, method, status, ONE, duration, duration, started, queries, queries,
        sql_ms, findings};
    found = find_or_make(statuses, key, status_items, STATUS_GROUP_SIZE, &group);
    Py_DECREF(key);
    if (found < 0 || (found && fold(group, 4, duration, started, queries, sql_ms, findings) < 0))
        goto done;
    key = PyTuple_Pack(5, hour, endpoint, method, status, bucket);
    if (key == NULL)
        goto done;
    PyObject *bucket_items[BUCKET_GROUP_SIZE] = {
        hour, endpoint, method, status, bucket, ONE, duration, duration, started, queries,
        queries, sql_ms, findings};
    found = find_or_make(groups, key, bucket_items, BUCKET_GROUP_SIZE, &group);
    Py_DECREF(key);
    if (found < 0 || (found && fold(group, 5, duration, started, queries, sql_ms, findings) < 0))
        goto done;
    result = 0;
done:
    Py_DECREF(hour);
    return result;
}

static PyObject *
count_groups(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *given, *groups, *statuses, *result = NULL;
    long long hour_seconds;
    if (!PyArg_ParseTuple(args, "OO!O!L:count_groups", &given, &PyDict_Type, &groups,
                          &PyDict_Type, &statuses, &hour_seconds))
        return NULL;
    PyObject *rows = PySequence_Tuple(given);
    if (rows == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(rows);
    double earliest = INFINITY, latest = -INFINITY;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = PyTuple_GET_ITEM(rows, i);
        if (!is_plain_row(row)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        double started = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(row, 0));
        earliest = fmin(earliest, started);
        latest = fmax(latest, started);
    }
    for (Py_ssize_t i = 0; i < count; i++)
        if (count_row(PyTuple_GET_ITEM(rows, i), groups, statuses, hour_seconds) < 0)
            goto done;
    result = Py_BuildValue("(dd)", earliest, latest);
done:
    Py_DECREF(rows);
    return result;
}

static PyMethodDef rows_methods[] = {
    {"rows_from", rows_from, METH_VARARGS,
     "rows_from(batch, offset, slow_ms, shape, status_code, sql_numbers) -> (rows, slow) or None"},
    {"count_groups", count_groups, METH_VARARGS,
     "count_groups(rows, groups, statuses, hour) -> (earliest, latest) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef rows_module = {
    PyModuleDef_HEAD_INIT, "_rows", "The tracking writer's passes over every stored request.",
    -1, rows_methods,
};

PyMODINIT_FUNC
PyInit__rows(void)
{
    OTHER_METHOD = PyUnicode_InternFromString("OTHER");
    ZERO_FLOAT = PyFloat_FromDouble(0.0);
    ZERO = PyLong_FromLong(0);
    ONE = PyLong_FromLong(1);
    if (OTHER_METHOD == NULL || ZERO_FLOAT == NULL || ZERO == NULL || ONE == NULL)
        return NULL;
    NO_SQL = PyTuple_Pack(3, ZERO, ZERO_FLOAT, ZERO);
    if (NO_SQL == NULL)
        return NULL;
    return PyModule_Create(&rows_module);
}
