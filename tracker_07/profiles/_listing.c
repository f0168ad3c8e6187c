/* The profiles list's passes over 50,000 things, written in C (optional).
 *
 * tracker_07/profiles/files.py, index.py and route_columns.py use these when the module is
 * compiled and do the same in Python otherwise; the tests hold both to the same results.
 *
 * profile_names(folder) reads the folder's entries with the GIL released throughout (a
 * thread reads them while another parses the index, catalog._scan) and returns
 * (regular, unsure), each the names as bytes followed by a NUL: the names with a profile
 * suffix that are regular files and safe by the bytes alone (files.SAFE_NAME_RE), and those
 * with a profile suffix whose type the system did not give or whose length needs the pattern
 * to judge.  Names unsafe by their bytes (a leading dot, a backslash, a control character)
 * and entries of any other type are left out.
 *
 * group_by_route(records) groups index records by (method, path), for routes.RouteTable:
 * a dict from (method, path) to [elapsed_ms values, ids, times], and a list of the records
 * Python groups: those that name a rule or an endpoint, are not dicts, or whose method or
 * path is not text.  Records whose method or path is None are left out.
 *
 * key_orders(records, most) groups freshly parsed index records by their keys in order, as
 * index.normalise_parsed does: a dict from the keys (a tuple) to [the records, a set per
 * position of the types of the values there]; None for more than most key orders, or for
 * anything but dicts with text keys, which Python checks one by one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROFILE_SUFFIX ".prof"
#define SAMPLED_SUFFIX ".speedscope.json"
/* files.MAX_FAST_LENGTH: the longest name SAFE_NAME_RE accepts with either suffix. */
#define MAX_FAST_LENGTH (1 + 250 + sizeof(PROFILE_SUFFIX) - 1)

enum { LEFT_OUT, REGULAR, UNSURE, KINDS };

static int
ends_with(const char *name, size_t length, const char *suffix, size_t suffix_length)
{
    return length >= suffix_length && memcmp(name + length - suffix_length, suffix,
                                              suffix_length) == 0;
}

/* What the listing makes of an entry: LEFT_OUT, REGULAR or UNSURE. */
static int
kind_of(const struct dirent *entry, size_t length)
{
    const char *name = entry->d_name;
    if (!ends_with(name, length, PROFILE_SUFFIX, sizeof(PROFILE_SUFFIX) - 1)
        && !ends_with(name, length, SAMPLED_SUFFIX, sizeof(SAMPLED_SUFFIX) - 1))
        return LEFT_OUT;
    if (name[0] == '.')
        return LEFT_OUT;
    for (size_t i = 0; i < length; i++) {
        unsigned char byte = (unsigned char)name[i];
        if (byte < 0x20 || byte == 0x7f || byte == '\\')
            return LEFT_OUT;
    }
#ifdef DT_UNKNOWN
    if (entry->d_type == DT_UNKNOWN)
        return UNSURE;
    if (entry->d_type != DT_REG)
        return LEFT_OUT;
    return length > MAX_FAST_LENGTH ? UNSURE : REGULAR;
#else
    return UNSURE;
#endif
}

/* The kept names of one kind, each followed by a NUL. */
typedef struct {
    char *data;
    size_t used, size;
} Names;

static int
keep(Names *names, const char *name, size_t length)
{
    if (names->used + length + 1 > names->size) {
        size_t size = names->size ? names->size * 2 : 1 << 16;
        while (size < names->used + length + 1)
            size *= 2;
        char *grown = realloc(names->data, size);
        if (grown == NULL)
            return ENOMEM;
        names->data = grown;
        names->size = size;
    }
    memcpy(names->data + names->used, name, length + 1);
    names->used += length + 1;
    return 0;
}

/* Read the folder's entries into kept[REGULAR] and kept[UNSURE] without the GIL; 0 or an
 * errno. */
static int
read_folder(const char *path, Names kept[KINDS])
{
    int descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (descriptor < 0)
        return errno;
    DIR *folder = fdopendir(descriptor);
    if (folder == NULL) {
        int error = errno;
        close(descriptor);
        return error;
    }
    int error = 0;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(folder);
        if (entry == NULL) {
            error = errno;
            break;
        }
        size_t length = strlen(entry->d_name);
        int kind = kind_of(entry, length);
        if (kind != LEFT_OUT && (error = keep(&kept[kind], entry->d_name, length)) != 0)
            break;
    }
    closedir(folder);
    return error;
}

/* The names as two bytes objects, each name followed by a NUL: the caller decodes and splits
 * each at once, in C (one string made at a time here would hold the GIL longer, while the
 * caller's thread waits for it). */
static PyObject *
profile_names(PyObject *Py_UNUSED(module), PyObject *folder)
{
    PyObject *encoded;
    if (!PyUnicode_FSConverter(folder, &encoded))
        return NULL;
    Names kept[KINDS] = {{NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0}};
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = read_folder(PyBytes_AS_STRING(encoded), kept);
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    PyObject *result = NULL;
    if (error) {
        errno = error;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, folder);
    }
    else {
        Names *regular = &kept[REGULAR], *unsure = &kept[UNSURE];
        result = Py_BuildValue("(y#y#)", regular->data ? regular->data : "",
                               (Py_ssize_t)regular->used, unsure->data ? unsure->data : "",
                               (Py_ssize_t)unsure->used);
    }
    for (int kind = 0; kind < KINDS; kind++)
        free(kept[kind].data);
    return result;
}

/* The fields group_by_route reads, in this order. */
enum { METHOD, PATH, ELAPSED, ID, TIME, RULE, ENDPOINT, FIELDS };
static const char *const FIELD_NAMES[FIELDS] = {
    "method", "path", "elapsed_ms", "id", "time", "rule", "endpoint"};
static PyObject *field_names[FIELDS];

/* Append a record's elapsed time, id and time to the three lists of its (method, path). */
static int
add_to_group(PyObject *groups, PyObject *values[FIELDS])
{
    PyObject *key = PyTuple_Pack(2, values[METHOD], values[PATH]);
    if (key == NULL)
        return -1;
    PyObject *columns = PyDict_GetItemWithError(groups, key);
    if (columns == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        columns = Py_BuildValue("[[][][]]");
        if (columns == NULL || PyDict_SetItem(groups, key, columns) < 0) {
            Py_XDECREF(columns);
            Py_DECREF(key);
            return -1;
        }
        Py_DECREF(columns);  /* the dict holds it */
    }
    Py_DECREF(key);
    for (int i = 0; i < 3; i++) {
        if (PyList_Append(PyList_GET_ITEM(columns, i), values[ELAPSED + i]) < 0)
            return -1;
    }
    return 0;
}

/* Read the five fields every record must have into values (borrowed); -1 with KeyError when
 * one is missing, as route_columns.ROUTE_FIELDS raises. */
static int
read_fields(PyObject *record, PyObject *values[FIELDS])
{
    for (int i = METHOD; i <= TIME; i++) {
        values[i] = PyDict_GetItemWithError(record, field_names[i]);
        if (values[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, field_names[i]);
            return -1;
        }
    }
    return 0;
}

/* 1 if Python groups the record (see the top), 0 if it is grouped here, -1 on an error. */
static int
left_to_python(PyObject *record, PyObject *values[FIELDS])
{
    if (!PyUnicode_CheckExact(values[METHOD]) || !PyUnicode_CheckExact(values[PATH]))
        return 1;  /* their hash or comparison may run Python code */
    int named = PyDict_Contains(record, field_names[RULE]);
    return named ? named : PyDict_Contains(record, field_names[ENDPOINT]);
}

static PyObject *
group_by_route(PyObject *Py_UNUSED(module), PyObject *records)
{
    /* A list of its own: nothing the loop calls can change it under the loop. */
    PyObject *sequence = PySequence_List(records);
    if (sequence == NULL)
        return NULL;
    PyObject *groups = PyDict_New(), *others = PyList_New(0), *result = NULL;
    if (groups == NULL || others == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sequence); i++) {
        PyObject *record = PyList_GET_ITEM(sequence, i), *values[FIELDS];
        int python = 1;
        if (PyDict_CheckExact(record)) {
            if (read_fields(record, values) < 0)
                goto done;
            if (values[METHOD] == Py_None || values[PATH] == Py_None)
                continue;
            if ((python = left_to_python(record, values)) < 0)
                goto done;
        }
        if (python ? PyList_Append(others, record) : add_to_group(groups, values))
            goto done;
    }
    result = PyTuple_Pack(2, groups, others);
done:
    Py_DECREF(sequence);
    Py_XDECREF(groups);
    Py_XDECREF(others);
    return result;
}

/* Whether every key of record is an exact str (comparing them then runs no Python code). */
static int
keys_are_text(PyObject *record)
{
    Py_ssize_t at = 0;
    PyObject *key, *value;
    while (PyDict_Next(record, &at, &key, &value)) {
        if (!PyUnicode_CheckExact(key))
            return 0;
    }
    return 1;
}

/* Whether record has the keys of previous, in the same order (both exact dicts; previous's
 * keys all exact str, so a comparison runs no Python code). */
static int
same_keys(PyObject *record, PyObject *previous)
{
    if (PyDict_GET_SIZE(record) != PyDict_GET_SIZE(previous))
        return 0;
    Py_ssize_t at = 0, previous_at = 0;
    PyObject *key, *value, *previous_key;
    while (PyDict_Next(record, &at, &key, &value)) {
        PyDict_Next(previous, &previous_at, &previous_key, &value);
        if (key != previous_key
            && (!PyUnicode_CheckExact(key) || PyUnicode_Compare(key, previous_key) != 0))
            return 0;
    }
    return 1;
}

/* The group of records with record's keys: [records, [set of value types per position]]. */
static PyObject *
group_of(PyObject *groups, PyObject *record)
{
    PyObject *keys = PyDict_Keys(record), *order = NULL, *group = NULL;
    if (keys == NULL || (order = PyList_AsTuple(keys)) == NULL)
        goto done;
    group = PyDict_GetItemWithError(groups, order);
    if (group != NULL || PyErr_Occurred()) {
        Py_XINCREF(group);
        goto done;
    }
    PyObject *types = PyList_New(PyTuple_GET_SIZE(order));
    if (types == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(order); i++) {
        PyObject *seen = PySet_New(NULL);
        if (seen == NULL) {
            Py_DECREF(types);
            goto done;
        }
        PyList_SET_ITEM(types, i, seen);
    }
    group = Py_BuildValue("[[]N]", types);
    if (group != NULL && PyDict_SetItem(groups, order, group) < 0)
        Py_CLEAR(group);
done:
    Py_XDECREF(keys);
    Py_XDECREF(order);
    return group;  /* a new reference, or NULL */
}

/* Add the types of record's values to its group's sets; last caches the type added last
 * at each position (most records repeat it), so a set is touched only for a change. */
static int
note_types(PyObject *record, PyObject *types, PyTypeObject **last)
{
    Py_ssize_t at = 0, position = 0;
    PyObject *key, *value;
    while (PyDict_Next(record, &at, &key, &value)) {
        PyTypeObject *type = Py_TYPE(value);
        if (type != last[position]) {
            if (PySet_Add(PyList_GET_ITEM(types, position), (PyObject *)type) < 0)
                return -1;
            last[position] = type;
        }
        position++;
    }
    return 0;
}

static PyObject *
key_orders(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *records;
    Py_ssize_t most;
    if (!PyArg_ParseTuple(args, "On", &records, &most))
        return NULL;
    /* A list of its own: nothing the loop calls can change it under the loop. */
    PyObject *sequence = PySequence_List(records);
    if (sequence == NULL)
        return NULL;
    PyObject *groups = PyDict_New(), *group = NULL, *result = NULL, *previous = NULL;
    PyTypeObject **last = NULL;
    if (groups == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sequence); i++) {
        PyObject *record = PyList_GET_ITEM(sequence, i);
        if (!PyDict_CheckExact(record)) {
            result = Py_NewRef(Py_None);  /* not an index's record: Python checks them */
            goto done;
        }
        if (previous == NULL || !same_keys(record, previous)) {
            if (!keys_are_text(record)) {
                result = Py_NewRef(Py_None);  /* likewise */
                goto done;
            }
            Py_XDECREF(group);
            if ((group = group_of(groups, record)) == NULL)
                goto done;
            if (PyDict_GET_SIZE(groups) > most) {
                result = Py_NewRef(Py_None);  /* a damaged index: no groups worth the name */
                goto done;
            }
            PyMem_Free(last);
            last = PyMem_Calloc(PyDict_GET_SIZE(record) + 1, sizeof(PyTypeObject *));
            if (last == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
        previous = record;
        if (PyList_Append(PyList_GET_ITEM(group, 0), record) < 0
            || note_types(record, PyList_GET_ITEM(group, 1), last) < 0)
            goto done;
    }
    result = Py_NewRef(groups);
done:
    PyMem_Free(last);
    Py_XDECREF(group);
    Py_XDECREF(groups);
    Py_DECREF(sequence);
    return result;
}

static PyMethodDef methods[] = {
    {"profile_names", profile_names, METH_O,
     "profile_names(folder) -> (regular, unsure): the folder's profile files' names."},
    {"group_by_route", group_by_route, METH_O,
     "group_by_route(records) -> (groups, others): records' columns by (method, path)."},
    {"key_orders", key_orders, METH_VARARGS,
     "key_orders(records, most) -> {keys: [records, [types seen per position]]}, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef listing_module = {
    PyModuleDef_HEAD_INIT, "_listing", "The profiles list's passes over many names and records.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__listing(void)
{
    for (int i = 0; i < FIELDS; i++) {
        if (field_names[i] == NULL
            && (field_names[i] = PyUnicode_InternFromString(FIELD_NAMES[i])) == NULL)
            return NULL;
    }
    return PyModule_Create(&listing_module);
}
