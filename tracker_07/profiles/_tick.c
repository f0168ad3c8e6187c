/* The sampling engine's tick on Python 3.12+: sys.monitoring callbacks written in C.
 *
 * tracker_07/profiles/tick.py registers the functions below for the events a profiler
 * sees (a function starts, resumes, returns, yields or unwinds; a call; a C function
 * returns or raises) under one sys.monitoring tool id.  Each event in a thread that
 * called start() reads the monotonic clock; once per interval it calls the thread's
 * recorder as recorder(frame, event, arg), with the event names and arguments of a
 * sys.setprofile hook ("call", "return", "c_call", "c_return", "c_exception"), so a
 * recorder works the same over pyinstrument's setstatprofile.  record() does what
 * sampling.recorder() does, here in C: it appends (leaf, codes, seconds) to a list, codes
 * being the code objects of the stack below a root code object, leaf first, and leaf the
 * C function that just returned (or None).  Threads that did not start return at once.  It is what setstatprofile does over
 * PyEval_SetProfile, without the compatibility layer that 3.12 puts between
 * sys.monitoring and PyEval_SetProfile (a frame object made for every call).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

typedef struct {
    PyObject *recorder;     /* called once per interval; NULL when recording in C */
    PyObject *samples;      /* record(): the list appended to */
    PyObject *root;         /* record(): the code object the stacks are cut at */
    PyObject *last_frame;   /* record(): the frame walked last, and its code objects */
    PyObject *last_codes;   /*   (None when outside the root) */
    double interval;
    double last;
} Sampler;

/* The sampler of the running thread, or NULL: one per OS thread, as Python's threads. */
static _Thread_local Sampler *thread_sampler = NULL;

enum { CALL, RETURN, C_CALL, C_RETURN, C_EXCEPTION, EVENT_COUNT };
static const char *const EVENT_NAMES[EVENT_COUNT] = {
    "call", "return", "c_call", "c_return", "c_exception"};
static PyObject *event_names[EVENT_COUNT];

static double
monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static void
forget(Sampler *sampler)
{
    Py_XDECREF(sampler->recorder);
    Py_XDECREF(sampler->samples);
    Py_XDECREF(sampler->root);
    Py_XDECREF(sampler->last_frame);
    Py_XDECREF(sampler->last_codes);
    PyMem_RawFree(sampler);
}

/* The code objects from frame up to (not with) root, leaf first; None when root is not
 * on the stack.  Steals the reference to frame. */
static PyObject *
codes_below(PyFrameObject *frame, PyObject *root)
{
    PyObject *codes = PyList_New(0);
    if (codes == NULL) {
        Py_DECREF(frame);
        return NULL;
    }
    while (frame != NULL) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        if ((PyObject *)code == root) {
            Py_DECREF(code);
            Py_DECREF(frame);
            PyObject *below = PyList_AsTuple(codes);
            Py_DECREF(codes);
            return below;
        }
        int failed = PyList_Append(codes, (PyObject *)code);
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
        if (failed) {
            Py_XDECREF(frame);
            Py_DECREF(codes);
            return NULL;
        }
    }
    Py_DECREF(codes);
    Py_RETURN_NONE;
}

/* One sample in C: append (leaf, codes, seconds) unless the stack is outside the root.
 * A sample in the same frame as the one before (a hot loop) reuses its walk. */
static int
record_sample(Sampler *sampler, int event, PyObject *arg, double seconds)
{
    PyFrameObject *frame = PyEval_GetFrame();  /* borrowed */
    if (frame == NULL) {
        return 0;
    }
    if (event == CALL) {  /* the function has not started: the time is its caller's */
        frame = PyFrame_GetBack(frame);
        if (frame == NULL) {
            return 0;
        }
        Py_DECREF(frame);  /* its callee's frame holds it while the sample is taken */
    }
    if ((PyObject *)frame != sampler->last_frame) {
        Py_INCREF(frame);
        PyObject *codes = codes_below((PyFrameObject *)Py_NewRef(frame), sampler->root);
        if (codes == NULL) {
            Py_DECREF(frame);
            return -1;
        }
        Py_XSETREF(sampler->last_frame, (PyObject *)frame);
        Py_XSETREF(sampler->last_codes, codes);
    }
    PyObject *codes = sampler->last_codes;
    if (codes == Py_None) {
        return 0;
    }
    int ended = (event == C_RETURN || event == C_EXCEPTION);
    if (!ended && PyTuple_GET_SIZE(codes) == 0) {  /* the root's own time */
        return 0;
    }
    PyObject *item = Py_BuildValue("(OOd)", ended ? arg : Py_None, codes, seconds);
    if (item == NULL) {
        return -1;
    }
    int failed = PyList_Append(sampler->samples, item);
    Py_DECREF(item);
    return failed;
}

/* Report the exception set while recording as unraisable (naming culprit) and end this
 * thread's sampling. */
static void
end_after_failure(Sampler *sampler, PyObject *culprit)
{
    PyErr_WriteUnraisable(culprit);
    thread_sampler = NULL;
    forget(sampler);
}

/* One event: call the recorder when an interval has passed.  A recorder that fails is
 * reported as unraisable and this thread's sampling ends: the program goes on. */
static PyObject *
tick(int event, PyObject *arg)
{
    Sampler *sampler = thread_sampler;
    if (sampler == NULL) {
        Py_RETURN_NONE;
    }
    double now = monotonic_seconds();
    if (now - sampler->last < sampler->interval) {
        Py_RETURN_NONE;
    }
    double seconds = now - sampler->last;
    sampler->last = now;
    if (sampler->recorder == NULL) {
        if (record_sample(sampler, event, arg, seconds) < 0) {
            end_after_failure(sampler, sampler->samples);
        }
        Py_RETURN_NONE;
    }
    PyFrameObject *frame = PyEval_GetFrame();  /* borrowed */
    if (frame == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *args[3] = {(PyObject *)frame, event_names[event], arg};
    PyObject *result = PyObject_Vectorcall(sampler->recorder, args, 3, NULL);
    if (result == NULL) {
        end_after_failure(sampler, sampler->recorder);
        Py_RETURN_NONE;
    }
    Py_DECREF(result);
    Py_RETURN_NONE;
}

/* The functions a profile hook names: a C function, or a method descriptor
 * (list.count), as PyEval_SetProfile reports them; other callables are not. */
static int
is_c_function(PyObject *callable)
{
    return PyCFunction_Check(callable) || Py_IS_TYPE(callable, &PyMethodDescr_Type);
}

/* PY_START and PY_RESUME (code, offset): the new frame has not run yet. */
static PyObject *
on_start(PyObject *Py_UNUSED(module), PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(n))
{
    return tick(CALL, Py_None);
}

/* PY_RETURN, PY_YIELD (code, offset, value) and PY_UNWIND (code, offset, exception). */
static PyObject *
on_return(PyObject *Py_UNUSED(module), PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(n))
{
    return tick(RETURN, Py_None);
}

/* CALL (code, offset, callable, arg0): the time until now was the caller's. */
static PyObject *
on_call(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t n)
{
    return tick(C_CALL, n >= 3 ? args[2] : Py_None);
}

/* C_RETURN (code, offset, callable, arg0): the time until now was the C function's. */
static PyObject *
on_c_return(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t n)
{
    if (n >= 3 && is_c_function(args[2])) {
        return tick(C_RETURN, args[2]);
    }
    return tick(RETURN, Py_None);
}

/* C_RAISE (code, offset, callable, arg0). */
static PyObject *
on_c_raise(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t n)
{
    if (n >= 3 && is_c_function(args[2])) {
        return tick(C_EXCEPTION, args[2]);
    }
    return tick(RETURN, Py_None);
}

/* Sample this thread: call recorder, or (recorder NULL) append to samples. */
static PyObject *
begin(PyObject *recorder, PyObject *samples, PyObject *root, double interval)
{
    if (!(interval > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "the interval must be a positive number of seconds");
        return NULL;
    }
    if (thread_sampler != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this thread is sampled already");
        return NULL;
    }
    Sampler *sampler = PyMem_RawCalloc(1, sizeof(Sampler));
    if (sampler == NULL) {
        return PyErr_NoMemory();
    }
    sampler->recorder = Py_XNewRef(recorder);
    sampler->samples = Py_XNewRef(samples);
    sampler->root = Py_XNewRef(root);
    sampler->interval = interval;
    sampler->last = monotonic_seconds();
    thread_sampler = sampler;
    Py_RETURN_NONE;
}

static PyObject *
start(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *recorder;
    double interval;
    if (!PyArg_ParseTuple(args, "Od:start", &recorder, &interval)) {
        return NULL;
    }
    if (!PyCallable_Check(recorder)) {
        PyErr_SetString(PyExc_TypeError, "the recorder must be callable");
        return NULL;
    }
    return begin(recorder, NULL, NULL, interval);
}

static PyObject *
record(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *samples, *root;
    double interval;
    if (!PyArg_ParseTuple(args, "O!O!d:record", &PyList_Type, &samples, &PyCode_Type, &root,
                          &interval)) {
        return NULL;
    }
    return begin(NULL, samples, root, interval);
}

static PyObject *
stop(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    Sampler *sampler = thread_sampler;
    if (sampler == NULL) {
        Py_RETURN_FALSE;
    }
    thread_sampler = NULL;
    forget(sampler);
    Py_RETURN_TRUE;
}

static PyObject *
is_sampled(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return PyBool_FromLong(thread_sampler != NULL);
}

#define EVENT_CALLBACK(name, doc) \
    {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL, doc}

static PyMethodDef tick_methods[] = {
    EVENT_CALLBACK(on_start, "sys.monitoring callback of PY_START and PY_RESUME."),
    EVENT_CALLBACK(on_return, "sys.monitoring callback of PY_RETURN, PY_YIELD and PY_UNWIND."),
    EVENT_CALLBACK(on_call, "sys.monitoring callback of CALL."),
    EVENT_CALLBACK(on_c_return, "sys.monitoring callback of C_RETURN."),
    EVENT_CALLBACK(on_c_raise, "sys.monitoring callback of C_RAISE."),
    {"start", start, METH_VARARGS,
     "start(recorder, interval): call recorder(frame, event, arg) in this thread once per "
     "interval (seconds) of its events; RuntimeError if this thread is sampled already."},
    {"record", record, METH_VARARGS,
     "record(samples, root, interval): append (leaf, codes, seconds) to the list samples "
     "once per interval of this thread's events, codes being the code objects below the "
     "code object root, leaf first, and leaf the C function that just returned, or None."},
    {"stop", stop, METH_NOARGS, "Stop sampling this thread; tell whether it was sampled."},
    {"is_sampled", is_sampled, METH_NOARGS, "Tell whether this thread is sampled."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tick_module = {
    PyModuleDef_HEAD_INIT, "_tick",
    "The sampling engine's per-thread tick over sys.monitoring (see tick.py).", -1,
    tick_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__tick(void)
{
    for (int event = 0; event < EVENT_COUNT; event++) {
        event_names[event] = PyUnicode_InternFromString(EVENT_NAMES[event]);
        if (event_names[event] == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&tick_module);
}
