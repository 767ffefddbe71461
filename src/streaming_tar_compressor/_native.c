/* stc's compiled hot paths (README "Compiled hot paths"): the unpack's file operations, run
   without the GIL; the reading of plain tar headers, one or a run at a time; the pack's read
   of a small source file, its walk's lstat of a folder's entries and the making of plain
   ustar headers. Each has a Python twin that the tests compare it with.

   Extracting a tree of small files costs a handful of system calls per file; made from
   Python each one takes the GIL back, so a writer thread in Python only convoys with the
   thread that parses the tar stream. Here batches run on a thread that never takes the GIL
   (OpThread, below) while that thread goes on. fs/ops.py holds the same operations in
   Python (the fallback, and the reference the tests compare this with); fs/writer.py
   decides every name, mode and check, so nothing here judges whether an operation is safe.

   A batch is a list of tuples, run in order up to the first that fails:

     (CREATE, dir_fd, name, data, mode, uid, gid, mtime_ns, member)
         openat(O_CREAT|O_EXCL|O_NOFOLLOW, 0600), write all of data, fchmod(mode),
         fchown(uid, gid) when uid >= 0, futimens(mtime_ns), close
     (RENAME, dir_fd, src, dst, flags, mtime_ns, member)
         renameat(src, dst) in one folder (EISDIR: src is unlinked, then reported);
         flags & 1: unlink src afterwards unless gone (two links to one file: rename did
         nothing); flags & 2: set the symlink dst's mtime without following it
     (CLOSE, fd)
         close(fd): a folder descriptor the writer no longer uses, closed after the
         operations queued before it
     (WRITE, fd, data, member)
         write all of data to a file the writer opened (a file of several pieces)
     (FINISH, fd, mode, uid, gid, mtime_ns, temp, parent, member)
         fchmod, fchown when uid >= 0, futimens, then close(fd), even when one failed;
         temp and parent are for the caller's clean-up and are not read here
     (FOLDER_FINISH, dir_fd, name, mode, uid, gid, mtime_ns, member)
         openat(name, O_DIRECTORY|O_NOFOLLOW), then as FINISH: a folder's metadata, set
         last
     (PLACE, dir_fd, name, data, mode, uid, gid, mtime_ns, temp, member)
         as CREATE, under the file's own name; when the name is taken, as CREATE under temp
         and RENAME to name. A failure removes what this operation made (never a file it
         did not create): the caller has nothing to clean up after it

   The member field is for the caller's messages and is not read here. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>  /* T_OBJECT_EX, PY_AUDIT_READ: a slot's member descriptor */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    OP_CREATE = 0, OP_RENAME = 1, OP_CLOSE = 2, OP_WRITE = 3, OP_FINISH = 4, OP_FOLDER_FINISH = 5,
    OP_PLACE = 6,
};
enum { RENAME_UNLINK_SOURCE = 1, RENAME_SYMLINK_MTIME = 2 };

typedef struct {
    int kind;
    int fd;
    PyObject *name;  /* bytes (file system encoding) */
    PyObject *other; /* bytes: RENAME's destination, PLACE's temp name */
    Py_buffer data;  /* CREATE's, PLACE's and WRITE's content */
    int has_data;
    int mode;
    int flags;
    long long uid, gid;
    long long mtime_ns;
} op_t;

static void release_ops(op_t *ops, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(ops[i].name);
        Py_XDECREF(ops[i].other);
        if (ops[i].has_data)
            PyBuffer_Release(&ops[i].data);
    }
    PyMem_Free(ops);
}

/* PyLong_AsInt is public only from Python 3.13 on. */
static int as_int(PyObject *value)
{
    long result = PyLong_AsLong(value);
    if (result == -1 && PyErr_Occurred())
        return -1;
    if (result < INT_MIN || result > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "an int is out of range");
        return -1;
    }
    return (int)result;
}

static int encode_name(PyObject *item, Py_ssize_t position, PyObject **out)
{
    PyObject *value = PyTuple_GET_ITEM(item, position);
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "a name must be a str");
        return -1;
    }
    *out = PyUnicode_EncodeFSDefault(value);
    return *out == NULL ? -1 : 0;
}

/* mode, uid, gid, mtime_ns: the tuple's items from ``first`` on. */
static int parse_metadata(PyObject *item, Py_ssize_t first, op_t *op)
{
    op->mode = as_int(PyTuple_GET_ITEM(item, first));
    op->uid = PyLong_AsLongLong(PyTuple_GET_ITEM(item, first + 1));
    op->gid = PyLong_AsLongLong(PyTuple_GET_ITEM(item, first + 2));
    op->mtime_ns = PyLong_AsLongLong(PyTuple_GET_ITEM(item, first + 3));
    return PyErr_Occurred() ? -1 : 0;
}

static int parse_op(PyObject *item, op_t *op)
{
    static const Py_ssize_t sizes[] = {9, 7, 2, 4, 9, 8, 10};
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2) {
        PyErr_SetString(PyExc_TypeError, "an operation must be a tuple");
        return -1;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
    if (kind == -1 && PyErr_Occurred())
        return -1;
    if (kind < OP_CREATE || kind > OP_PLACE || PyTuple_GET_SIZE(item) != sizes[kind]) {
        PyErr_SetString(PyExc_ValueError, "unknown operation");
        return -1;
    }
    op->kind = (int)kind;
    op->fd = as_int(PyTuple_GET_ITEM(item, 1));
    if (op->fd == -1 && PyErr_Occurred())
        return -1;
    if (kind == OP_CLOSE)
        return 0;
    if (kind == OP_WRITE) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(item, 2), &op->data, PyBUF_SIMPLE) < 0)
            return -1;
        op->has_data = 1;
        return 0;
    }
    if (kind == OP_FINISH)
        return parse_metadata(item, 2, op);
    if (encode_name(item, 2, &op->name) < 0)
        return -1;
    if (kind == OP_FOLDER_FINISH)
        return parse_metadata(item, 3, op);
    if (kind == OP_CREATE || kind == OP_PLACE) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(item, 3), &op->data, PyBUF_SIMPLE) < 0)
            return -1;
        op->has_data = 1;
        if (kind == OP_PLACE && encode_name(item, 8, &op->other) < 0)
            return -1;
        return parse_metadata(item, 4, op);
    }
    if (encode_name(item, 3, &op->other) < 0)
        return -1;
    op->flags = as_int(PyTuple_GET_ITEM(item, 4));
    op->mtime_ns = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 5));
    return PyErr_Occurred() ? -1 : 0;
}

static struct timespec to_timespec(long long ns)
{
    struct timespec ts;
    long long seconds = ns / 1000000000LL, rest = ns % 1000000000LL;
    if (rest < 0) { /* before 1970: tv_nsec must stay in [0, 1e9) */
        rest += 1000000000LL;
        seconds -= 1;
    }
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)rest;
    return ts;
}

/* 0, or the errno of the system call that failed. */
static int write_all(int fd, const Py_buffer *content)
{
    const char *data = content->buf;
    Py_ssize_t left = content->len;
    while (left > 0) {
        ssize_t written = write(fd, data, (size_t)left);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        data += written;
        left -= written;
    }
    return 0;
}

/* Mode, owner (uid >= 0) and mtime, then close: the descriptor is closed even on failure. */
static int finish_file(int fd, const op_t *op)
{
    int error = 0;
    struct timespec times[2];
    times[0] = times[1] = to_timespec(op->mtime_ns);
    if (fchmod(fd, (mode_t)op->mode) < 0 ||
        (op->uid >= 0 && fchown(fd, (uid_t)op->uid, (gid_t)op->gid) < 0) ||
        futimens(fd, times) < 0)
        error = errno;
    if (close(fd) < 0 && !error)
        error = errno;
    return error;
}

/* The file ``name`` made whole: content, then metadata. *made says whether it was created
   (a failure after that leaves it behind, for the caller to remove). */
static int create_named(const op_t *op, const char *name, int *made)
{
    *made = 0;
    int fd = openat(op->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    *made = 1;
    int error = write_all(fd, &op->data);
    if (error) {
        close(fd);
        return error;
    }
    return finish_file(fd, op);
}

static int create_file(const op_t *op)
{
    int made;
    return create_named(op, PyBytes_AS_STRING(op->name), &made);
}

/* A file whose bytes were all checked: made under its own name (no rename to pay), or,
   when that name is taken (a file or link to replace, a folder to refuse), under its temp
   name and renamed over it. Whatever this made is removed again when a step fails. */
static int place_file(const op_t *op)
{
    const char *name = PyBytes_AS_STRING(op->name), *temp = PyBytes_AS_STRING(op->other);
    int made;
    int error = create_named(op, name, &made);
    if (made || error != EEXIST) {
        if (error && made)
            unlinkat(op->fd, name, 0);
        return error;
    }
    error = create_named(op, temp, &made);
    if (!error && renameat(op->fd, temp, op->fd, name) < 0)
        error = errno;
    if (error && made)
        unlinkat(op->fd, temp, 0);
    return error;
}

static int finish_folder(const op_t *op)
{
    int fd = openat(op->fd, PyBytes_AS_STRING(op->name),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno;
    return finish_file(fd, op);
}

static int rename_file(const op_t *op)
{
    const char *src = PyBytes_AS_STRING(op->name), *dst = PyBytes_AS_STRING(op->other);
    if (renameat(op->fd, src, op->fd, dst) < 0) {
        int error = errno;
        if (error == EISDIR)
            unlinkat(op->fd, src, 0);
        return error;
    }
    if ((op->flags & RENAME_UNLINK_SOURCE) && unlinkat(op->fd, src, 0) < 0 && errno != ENOENT)
        return errno;
    if (op->flags & RENAME_SYMLINK_MTIME) {
        struct timespec times[2];
        times[0] = times[1] = to_timespec(op->mtime_ns);
        if (utimensat(op->fd, dst, times, AT_SYMLINK_NOFOLLOW) < 0)
            return errno;
    }
    return 0;
}

/* Runs the batch's operations in order until one fails: its index in *failed_at and its
   errno returned; 0 with *failed_at -1 when all ran. No Python object is touched. */
static int run_batch(const op_t *ops, Py_ssize_t count, Py_ssize_t *failed_at)
{
    *failed_at = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        int error;
        switch (ops[i].kind) {
        case OP_CREATE:
            error = create_file(&ops[i]);
            break;
        case OP_RENAME:
            error = rename_file(&ops[i]);
            break;
        case OP_WRITE:
            error = write_all(ops[i].fd, &ops[i].data);
            break;
        case OP_FINISH:
            error = finish_file(ops[i].fd, &ops[i]);
            break;
        case OP_FOLDER_FINISH:
            error = finish_folder(&ops[i]);
            break;
        case OP_PLACE:
            error = place_file(&ops[i]);
            break;
        default:
            error = close(ops[i].fd) < 0 ? errno : 0;
        }
        if (error) {
            *failed_at = i;
            return error;
        }
    }
    return 0;
}

/* OpThread: a thread of its own (pthread) that runs submitted batches in order and never
   takes the GIL. A Python thread had to take it back after every batch, and waited for it
   while the parsing thread held it (up to the 5 ms switch interval each time).

     submit(ops)  parses the list of tuples (with the GIL, on the caller's thread) and queues
                  it; the list stays referenced until the batch is settled
     settle()     waits (without the GIL) for the oldest batch not yet settled and returns
                  None when all of it ran, (index, errno, operation) when that operation
                  failed, or (index, 0, operation) when operations from index on did not run:
                  after a failure or stop(), later batches are not run
     pending      batches submitted and not yet settled
     stop()       batches not yet started will not run
     close()      stop(), end the thread, and return every operation that did not run, in
                  order: from the batches settled with a failure or unrun, and from those
                  never settled. So what did not run is known even when a settle()'s answer
                  was lost (Ctrl-C as it returned).

   One Python thread drives it: a second settle() while one waits, or close() then, is
   refused, and so is any use in a child after fork() (the thread is not there). */
typedef struct batch {
    PyObject *list; /* the operations as submitted */
    op_t *ops;
    Py_ssize_t count;
    Py_ssize_t failed_at;
    int error;
    int done;
    struct batch *next;
} batch_t;

typedef struct {
    PyObject_HEAD
    pthread_t thread;
    int running;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch_t *oldest, *newest; /* submitted and not yet settled, in order */
    batch_t *next_to_run;
    int stopped, closing;
    int settling; /* a settle() waits (read and written with the GIL held) */
    pid_t owner;  /* the process that started the thread */
    Py_ssize_t pending;
    PyObject *unrun; /* operations that did not run, of batches settled so far */
} OpThreadObject;

static int usable(OpThreadObject *self)
{
    if (getpid() != self->owner) {
        PyErr_SetString(PyExc_RuntimeError, "an OpThread cannot be used after fork()");
        return 0;
    }
    if (self->settling) {
        PyErr_SetString(PyExc_RuntimeError, "another thread waits in settle()");
        return 0;
    }
    return 1;
}

static void *op_thread_main(void *arg)
{
    OpThreadObject *self = arg;
    sigset_t blocked; /* signals are for Python's main thread, not EINTR here */
    sigfillset(&blocked);
    sigdelset(&blocked, SIGSEGV);
    sigdelset(&blocked, SIGBUS);
    sigdelset(&blocked, SIGFPE);
    sigdelset(&blocked, SIGILL);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (self->next_to_run == NULL && !self->closing)
            pthread_cond_wait(&self->changed, &self->lock);
        batch_t *batch = self->next_to_run;
        if (batch == NULL)
            break;
        self->next_to_run = batch->next;
        int skip = self->stopped;
        pthread_mutex_unlock(&self->lock);
        if (skip)
            batch->failed_at = 0;
        else
            batch->error = run_batch(batch->ops, batch->count, &batch->failed_at);
        pthread_mutex_lock(&self->lock);
        if (batch->error)
            self->stopped = 1;
        batch->done = 1;
        pthread_cond_broadcast(&self->changed);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

static void free_batch(batch_t *batch)
{
    release_ops(batch->ops, batch->count);
    Py_XDECREF(batch->list);
    PyMem_Free(batch);
}

/* The batch's operations that did not run go to self->unrun (with the GIL). */
static int keep_unrun(OpThreadObject *self, const batch_t *batch)
{
    Py_ssize_t from = batch->done ? batch->failed_at : 0;
    if (from < 0)
        return 0;
    PyObject *tail = PyList_GetSlice(batch->list, from, batch->count);
    if (tail == NULL)
        return -1;
    Py_ssize_t end = PyList_GET_SIZE(self->unrun);
    int result = PyList_SetSlice(self->unrun, end, end, tail);
    Py_DECREF(tail);
    return result;
}

static PyObject *op_thread_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "OpThread() takes no arguments");
        return NULL;
    }
    OpThreadObject *self = (OpThreadObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->changed, NULL);
    self->unrun = PyList_New(0);
    if (self->unrun == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    int error = pthread_create(&self->thread, NULL, op_thread_main, self);
    if (error) {
        Py_DECREF(self);
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->running = 1;
    self->owner = getpid();
    return (PyObject *)self;
}

/* Ends the thread and releases every batch, keeping what did not run; -1 (an exception
   set) when that could not be kept. */
static int op_thread_end(OpThreadObject *self)
{
    if (!self->running)
        return 0;
    if (getpid() == self->owner) { /* a forked child has no thread to end */
        pthread_mutex_lock(&self->lock);
        self->stopped = self->closing = 1;
        pthread_cond_broadcast(&self->changed);
        pthread_mutex_unlock(&self->lock);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
    }
    self->running = 0;
    int kept = 0;
    while (self->oldest != NULL) {
        batch_t *batch = self->oldest;
        self->oldest = batch->next;
        if (kept == 0)
            kept = keep_unrun(self, batch);
        free_batch(batch);
    }
    self->newest = NULL;
    self->pending = 0;
    return kept;
}

static void op_thread_dealloc(OpThreadObject *self)
{
    if (self->unrun != NULL && op_thread_end(self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    Py_XDECREF(self->unrun);
    pthread_cond_destroy(&self->changed);
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *op_thread_submit(OpThreadObject *self, PyObject *list)
{
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "submit takes a list");
        return NULL;
    }
    if (!usable(self))
        return NULL;
    if (!self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the thread is closed");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(list);
    batch_t *batch = PyMem_Calloc(1, sizeof(batch_t));
    op_t *ops = PyMem_Calloc((size_t)(count ? count : 1), sizeof(op_t));
    if (batch == NULL || ops == NULL) {
        PyMem_Free(batch);
        PyMem_Free(ops);
        return PyErr_NoMemory();
    }
    batch->ops = ops;
    batch->count = count;
    Py_INCREF(list);
    batch->list = list;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (parse_op(PyList_GET_ITEM(list, i), &ops[i]) < 0) {
            free_batch(batch);
            return NULL;
        }
    }
    pthread_mutex_lock(&self->lock);
    if (self->newest != NULL)
        self->newest->next = batch;
    else
        self->oldest = batch;
    self->newest = batch;
    if (self->next_to_run == NULL)
        self->next_to_run = batch;
    pthread_cond_broadcast(&self->changed);
    pthread_mutex_unlock(&self->lock);
    self->pending++;
    Py_RETURN_NONE;
}

static PyObject *op_thread_settle(OpThreadObject *self, PyObject *unused)
{
    (void)unused;
    if (!usable(self))
        return NULL;
    batch_t *batch = self->oldest;
    if (batch == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no batch to settle");
        return NULL;
    }
    self->settling = 1;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    while (!batch->done)
        pthread_cond_wait(&self->changed, &self->lock);
    self->oldest = batch->next;
    if (self->oldest == NULL)
        self->newest = NULL;
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    self->settling = 0;
    self->pending--;
    Py_ssize_t failed_at = batch->failed_at;
    PyObject *result = Py_None;
    Py_INCREF(result);
    if (failed_at >= 0) {
        Py_DECREF(result);
        PyObject *op = PyList_GET_ITEM(batch->list, failed_at);
        result = keep_unrun(self, batch) < 0
                     ? NULL
                     : Py_BuildValue("(niO)", failed_at, batch->error, op);
    }
    free_batch(batch);
    return result;
}

static PyObject *op_thread_stop(OpThreadObject *self, PyObject *unused)
{
    (void)unused;
    if (getpid() != self->owner) {
        PyErr_SetString(PyExc_RuntimeError, "an OpThread cannot be used after fork()");
        return NULL;
    }
    pthread_mutex_lock(&self->lock);
    self->stopped = 1;
    pthread_mutex_unlock(&self->lock);
    Py_RETURN_NONE;
}

static PyObject *op_thread_close(OpThreadObject *self, PyObject *unused)
{
    (void)unused;
    if (self->settling) {
        PyErr_SetString(PyExc_RuntimeError, "another thread waits in settle()");
        return NULL;
    }
    if (op_thread_end(self) < 0)
        return NULL;
    PyObject *unrun = self->unrun;
    self->unrun = PyList_New(0);
    if (self->unrun == NULL) {
        self->unrun = unrun;
        return NULL;
    }
    return unrun;
}

static PyObject *op_thread_pending(OpThreadObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->pending);
}

static PyGetSetDef op_thread_getset[] = {
    {"pending", (getter)op_thread_pending, NULL, "Batches not yet settled.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef op_thread_methods[] = {
    {"submit", (PyCFunction)op_thread_submit, METH_O, "Queue a batch of operations."},
    {"settle", (PyCFunction)op_thread_settle, METH_NOARGS, "The oldest batch's outcome."},
    {"stop", (PyCFunction)op_thread_stop, METH_NOARGS, "Run no batch not yet started."},
    {"close", (PyCFunction)op_thread_close, METH_NOARGS, "End the thread; what did not run."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject OpThreadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streaming_tar_compressor._native.OpThread",
    .tp_basicsize = sizeof(OpThreadObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Runs batches of file operations in order on a thread that never takes the GIL.",
    .tp_new = op_thread_new,
    .tp_dealloc = (destructor)op_thread_dealloc,
    .tp_methods = op_thread_methods,
    .tp_getset = op_thread_getset,
};

/* header_fields(block): the fields of a plain 512-byte tar header in one call, or None when
   the header needs core/tar_reader.py's own reading (which also words every error): a bad
   checksum, or a numeric field that is not octal text (GNU base-256, damage).

   Returns (size, name, linkname, mode, mtime, uid, gid, uname, gname): names as bytes up to
   their first NUL, the POSIX prefix joined to the name when the magic is "ustar\0", numbers
   read as tar_reader's _header_number reads octal: spaces and NULs around the digits are
   skipped, an empty field is 0, anything else between them is not a number. */

enum {
    F_NAME = 0, F_MODE = 100, F_UID = 108, F_GID = 116, F_SIZE = 124, F_MTIME = 136,
    F_CHKSUM = 148, F_LINKNAME = 157, F_MAGIC = 257, F_UNAME = 265, F_GNAME = 297,
    F_PREFIX = 345, HEADER = 512,
};

/* 0 and *value set, or -1 when the field is not octal text. */
static int octal(const unsigned char *field, int length, long long *value)
{
    int start = 0, end = length;
    while (start < end && (field[start] == ' ' || field[start] == 0))
        start++;
    while (end > start && (field[end - 1] == ' ' || field[end - 1] == 0))
        end--;
    long long result = 0;
    for (int i = start; i < end; i++) {
        if (field[i] < '0' || field[i] > '7')
            return -1;
        result = result * 8 + (field[i] - '0'); /* at most 12 digits: fits */
    }
    *value = result;
    return 0;
}

static Py_ssize_t text_length(const unsigned char *field, Py_ssize_t length)
{
    const unsigned char *nul = memchr(field, 0, (size_t)length);
    return nul == NULL ? length : nul - field;
}

static PyObject *text(const unsigned char *field, Py_ssize_t length)
{
    return PyBytes_FromStringAndSize((const char *)field, text_length(field, length));
}

/* As bytes.decode("utf-8", "surrogateescape"): names that are not UTF-8 keep their bytes. */
static PyObject *decoded(const unsigned char *field, Py_ssize_t length)
{
    return PyUnicode_DecodeUTF8((const char *)field, text_length(field, length), "surrogateescape");
}

typedef struct {
    long long size, mode, mtime, uid, gid;
} numbers_t;

/* 0: a checksum that matches and octal numbers; -1: the header needs Python's reading. */
static int read_numbers(const unsigned char *b, numbers_t *n)
{
    long long unsigned_sum = 8 * ' ', signed_sum = 8 * ' ', stored;
    for (int i = 0; i < HEADER; i++) {
        if (i >= F_CHKSUM && i < F_CHKSUM + 8)
            continue;
        unsigned_sum += b[i];
        signed_sum += (signed char)b[i];
    }
    if (octal(b + F_CHKSUM, 8, &stored) < 0 || (stored != unsigned_sum && stored != signed_sum)
        || octal(b + F_SIZE, 12, &n->size) < 0 || octal(b + F_MODE, 8, &n->mode) < 0
        || octal(b + F_MTIME, 12, &n->mtime) < 0 || octal(b + F_UID, 8, &n->uid) < 0
        || octal(b + F_GID, 8, &n->gid) < 0)
        return -1;
    return 0;
}

/* The name, the POSIX prefix joined to it when the magic is "ustar\0"; returns its length. */
static Py_ssize_t joined_name(const unsigned char *b, char out[256])
{
    Py_ssize_t name_length = text_length(b + F_NAME, 100);
    Py_ssize_t prefix_length = memcmp(b + F_MAGIC, "ustar\0", 6) == 0
        ? text_length(b + F_PREFIX, 155) : 0;
    Py_ssize_t at = 0;
    if (prefix_length) {
        memcpy(out, b + F_PREFIX, (size_t)prefix_length);
        out[prefix_length] = '/';
        at = prefix_length + 1;
    }
    memcpy(out + at, b + F_NAME, (size_t)name_length);
    return at + name_length;
}

/* (size, name, linkname, mode, mtime, uid, gid, uname, gname), a new reference or NULL. */
static PyObject *fields_tuple(const unsigned char *b, const numbers_t *n)
{
    char name[256];
    Py_ssize_t length = joined_name(b, name);
    return Py_BuildValue("(Ly#NLLLLNN)", n->size, name, length, text(b + F_LINKNAME, 100),
                         n->mode, n->mtime, n->uid, n->gid, text(b + F_UNAME, 32),
                         text(b + F_GNAME, 32));
}

/* For plain_members: (size, name, linkname, mode, mtime, uid, gid, uname, gname) as the tar
   reader makes a member of them: texts decoded, the permission bits of mode, mtime a float. */
static PyObject *member_tuple(const unsigned char *b, const numbers_t *n)
{
    char name[256];
    Py_ssize_t length = joined_name(b, name);
    PyObject *texts[4] = {
        PyUnicode_DecodeUTF8(name, length, "surrogateescape"),
        decoded(b + F_LINKNAME, 100),
        decoded(b + F_UNAME, 32),
        decoded(b + F_GNAME, 32),
    };
    if (texts[0] == NULL || texts[1] == NULL || texts[2] == NULL || texts[3] == NULL) {
        for (int i = 0; i < 4; i++)
            Py_XDECREF(texts[i]);
        return NULL;
    }
    return Py_BuildValue("(LNNLdLLNN)", n->size, texts[0], texts[1], n->mode & 07777,
                         (double)n->mtime, n->uid, n->gid, texts[2], texts[3]);
}

static PyObject *header_fields(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len != HEADER) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "a tar header is 512 bytes");
        return NULL;
    }
    numbers_t numbers;
    PyObject *result = read_numbers(view.buf, &numbers) < 0
        ? Py_NewRef(Py_None) : fields_tuple(view.buf, &numbers);
    PyBuffer_Release(&view);
    return result;
}

/* plain_members(buffer, start) -> (members, end): the plain members that lie whole in
   buffer[start:], one after another, read in one call; members is a list of
   (header position, typeflag, (size, name, linkname, mode, mtime, uid, gid, uname, gname)):
   header_fields' fields with the texts decoded (surrogateescape), mode's permission bits and
   mtime as a float, as the tar reader makes a member of them. It stops before the
   first header that is not plain (end of archive, extended header, device, unknown type,
   one header_fields leaves to Python) or whose data and padding do not all lie in the buffer;
   end is where it stopped. Regular files (typeflag 0, NUL, 7) carry their padded size in
   data; other kinds carry none, whatever their size field says (core/tar_reader.py). */
static PyObject *plain_members(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer view;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "y*n:plain_members", &view, &pos))
        return NULL;
    PyObject *members = PyList_New(0);
    if (members == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *buffer = view.buf;
    while (pos >= 0 && pos + HEADER <= view.len) {
        const unsigned char *b = buffer + pos;
        char flag = (char)b[156];
        int regular = flag == '0' || flag == 0 || flag == '7';
        if (!regular && flag != '1' && flag != '2' && flag != '5' && flag != '6')
            break;
        numbers_t numbers;
        if (read_numbers(b, &numbers) < 0)
            break;
        long long carried = regular ? numbers.size + (-numbers.size & (HEADER - 1)) : 0;
        if (carried > view.len - pos - HEADER)
            break;
        PyObject *fields = member_tuple(b, &numbers);
        PyObject *item = fields == NULL ? NULL : Py_BuildValue("(ny#N)", pos, &flag, (Py_ssize_t)1, fields);
        if (item == NULL || PyList_Append(members, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(members);
            PyBuffer_Release(&view);
            return NULL;
        }
        Py_DECREF(item);
        pos += HEADER + (Py_ssize_t)carried;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", members, pos);
}

/* byte_sum(data): the sum of the bytes, as Python's sum(data) gives it: the checksum of a tar
   header the pack writes (a loop of 512 Python ints cost ~3 µs a member). */
static PyObject *byte_sum(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *b = view.buf;
    unsigned long long total = 0;
    for (Py_ssize_t i = 0; i < view.len; i++)
        total += b[i];
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(total);
}

/* lstat_names(directory, names, check_access): for each name in the folder, (its lstat, whether
   it is readable) or (errno, False) when lstat failed. Readable means access(R_OK), and X_OK
   too for a folder, checked only for files and folders when check_access is true. The whole
   batch runs with the GIL released, relative to one descriptor of the folder: a pack walks
   its sources twice (the up-front check, then the tar stream), and one os.lstat and one
   os.access by full path cost ~4 µs an entry there. walk.py holds the Python twin. */
static PyTypeObject *dir_stat_type;

static PyStructSequence_Field dir_stat_fields[] = {
    {"st_mode", NULL},  {"st_ino", NULL},      {"st_dev", NULL},
    {"st_nlink", NULL}, {"st_uid", NULL},      {"st_gid", NULL},
    {"st_size", NULL},  {"st_mtime_ns", NULL}, {"st_ctime_ns", NULL},
    {NULL, NULL},
};

static PyStructSequence_Desc dir_stat_desc = {
    .name = "streaming_tar_compressor._native.dir_stat",
    .doc = "The fields of an lstat result that a pack reads, named as os.stat_result's.",
    .fields = dir_stat_fields,
    .n_in_sequence = 9,
};

/* Nanoseconds as os.stat gives them, exact for any time (beyond ±292 years too). */
static PyObject *nanoseconds(struct timespec t)
{
    long long ns;
    if (!__builtin_mul_overflow((long long)t.tv_sec, 1000000000LL, &ns) &&
        !__builtin_add_overflow(ns, (long long)t.tv_nsec, &ns))
        return PyLong_FromLongLong(ns);
    PyObject *seconds = PyLong_FromLongLong((long long)t.tv_sec);
    PyObject *billion = PyLong_FromLong(1000000000L);
    PyObject *fraction = PyLong_FromLong(t.tv_nsec);
    PyObject *scaled = seconds && billion ? PyNumber_Multiply(seconds, billion) : NULL;
    PyObject *total = scaled && fraction ? PyNumber_Add(scaled, fraction) : NULL;
    Py_XDECREF(seconds);
    Py_XDECREF(billion);
    Py_XDECREF(fraction);
    Py_XDECREF(scaled);
    return total;
}

static PyObject *dir_stat(const struct stat *st)
{
    PyObject *result = PyStructSequence_New(dir_stat_type);
    if (result == NULL)
        return NULL;
    PyObject *values[9] = {
        PyLong_FromUnsignedLong(st->st_mode),
        PyLong_FromUnsignedLongLong(st->st_ino),
        PyLong_FromUnsignedLongLong(st->st_dev),
        PyLong_FromUnsignedLongLong(st->st_nlink),
        PyLong_FromUnsignedLong(st->st_uid),
        PyLong_FromUnsignedLong(st->st_gid),
        PyLong_FromLongLong(st->st_size),
        nanoseconds(st->st_mtim),
        nanoseconds(st->st_ctim),
    };
    int failed = 0;
    for (int i = 0; i < 9; i++) {
        if (values[i] == NULL)
            failed = 1;
        PyStructSequence_SET_ITEM(result, i, values[i] ? values[i] : Py_NewRef(Py_None));
    }
    if (failed) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

typedef struct {
    struct stat st;
    int error;
    int readable;
} listed_t;

static PyObject *listed_results(const listed_t *found, Py_ssize_t count)
{
    PyObject *results = PyList_New(count);
    if (results == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *first = found[i].error ? PyLong_FromLong(found[i].error) : dir_stat(&found[i].st);
        PyObject *item = first ? Py_BuildValue("(NO)", first, found[i].readable ? Py_True : Py_False) : NULL;
        if (item == NULL) {
            Py_DECREF(results);
            return NULL;
        }
        PyList_SET_ITEM(results, i, item);
    }
    return results;
}

static PyObject *lstat_names(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *directory, *names;
    int check_access;
    if (!PyArg_ParseTuple(args, "O&O!p:lstat_names", PyUnicode_FSConverter, &directory,
                          &PyList_Type, &names, &check_access))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(names);
    PyObject **encoded = PyMem_Calloc((size_t)count + 1, sizeof(PyObject *));
    listed_t *found = PyMem_Calloc((size_t)count + 1, sizeof(listed_t));
    PyObject *results = NULL;
    if (encoded == NULL || found == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_FSConverter(PyList_GET_ITEM(names, i), &encoded[i]))
            goto done;
    }
    const char *folder = PyBytes_AS_STRING(directory);
    Py_BEGIN_ALLOW_THREADS
    int dir_fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int open_error = dir_fd < 0 ? errno : 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *name = PyBytes_AS_STRING(encoded[i]);
        listed_t *entry = &found[i];
        if (open_error) {
            entry->error = open_error;  /* as an lstat of each path would fail */
        } else if (fstatat(dir_fd, name, &entry->st, AT_SYMLINK_NOFOLLOW) < 0) {
            entry->error = errno;
        } else if (check_access && (S_ISREG(entry->st.st_mode) || S_ISDIR(entry->st.st_mode))) {
            int wanted = R_OK | (S_ISDIR(entry->st.st_mode) ? X_OK : 0);
            entry->readable = faccessat(dir_fd, name, wanted, 0) == 0;
        }
    }
    if (dir_fd >= 0)
        close(dir_fd);
    Py_END_ALLOW_THREADS
    results = listed_results(found, count);
done:
    if (encoded != NULL) {
        for (Py_ssize_t i = 0; i < count; i++)
            Py_XDECREF(encoded[i]);
    }
    PyMem_Free(encoded);
    PyMem_Free(found);
    Py_DECREF(directory);
    return results;
}

/* scan_tree(directory, prefix_length, watch) -> (files, data, bound, problem, deferred): the
   up-front scan of a pack (fs/walk.py's scan, its twin) below one source folder, walked with
   the GIL released and no Python object per entry: a pack's first ~0.3 s on a tree of
   100,000 files was this walk in Python, with the second core idle.
   Every entry below directory is counted (files, data bytes, the tar size bound of
   tar_writer.header_size_bound plus padded data) as a member named prefix_length bytes of
   prefix and its path below directory. watch is None or (st_dev, st_ino, starts): entries
   directly in that folder whose names begin with one of the bytes in starts are neither
   counted nor walked but listed in deferred (their paths), for the caller's exclude to
   judge; so are folders deeper than SCAN_DEPTH (one descriptor is held per
   level). The walk stops at the first entry that cannot be read: problem is then
   (path, errno), errno 0 when access() refuses it, else None. Names are walked in byte
   order, so with several problems the one named may differ from the twin's. */
#define SCAN_DEPTH 128

typedef struct {
    int fd;
    char **names;
    size_t count, next;
    size_t path_length;    /* of the folder's path in the scan's path buffer */
    size_t member_length;  /* of its entries' member-name prefix */
    int watched;
} scan_level_t;

typedef struct {
    long long files, data, bound;
    char *path;  /* the entry being looked at */
    size_t path_size;
    int problem;  /* -1: none; 0: access refused; else errno */
    char *problem_path;
    char **deferred;  /* paths of the entries left to the caller */
    size_t deferred_count, deferred_size;
    dev_t watch_dev;
    ino_t watch_ino;
    const char *starts[2];
    int watching, failed_memory;
} scan_t;

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* The folder's names but . and .., sorted; 0 or an errno (fd is then still open). */
static int list_folder(int fd, char ***names_out, size_t *count_out)
{
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);  /* not left to a child forked meanwhile */
    if (copy < 0)
        return errno;
    DIR *dir = fdopendir(copy);
    if (dir == NULL) {
        int error = errno;
        close(copy);
        return error;
    }
    char **names = NULL;
    size_t count = 0, size = 0;
    int error = 0;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (entry == NULL) {
            error = errno;
            break;
        }
        const char *name = entry->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
            continue;
        if (count == size) {
            size = size ? 2 * size : 64;
            char **grown = realloc(names, size * sizeof *names);
            if (grown == NULL) {
                error = ENOMEM;
                break;
            }
            names = grown;
        }
        if ((names[count] = strdup(name)) == NULL) {
            error = ENOMEM;
            break;
        }
        count++;
    }
    closedir(dir);
    if (error) {
        free_names(names, count);
        return error;
    }
    qsort(names, count, sizeof *names, compare_names);
    *names_out = names;
    *count_out = count;
    return 0;
}

static int set_path(scan_t *scan, size_t at, const char *name)
{
    size_t length = strlen(name);
    if (at + length + 2 > scan->path_size) {
        size_t size = 2 * (at + length + 2);
        char *grown = realloc(scan->path, size);
        if (grown == NULL)
            return 0;
        scan->path = grown;
        scan->path_size = size;
    }
    scan->path[at] = '/';
    memcpy(scan->path + at + 1, name, length + 1);
    return 1;
}

static int defer(scan_t *scan)
{
    if (scan->deferred_count == scan->deferred_size) {
        size_t size = scan->deferred_size ? 2 * scan->deferred_size : 16;
        char **grown = realloc(scan->deferred, size * sizeof *grown);
        if (grown == NULL)
            return 0;
        scan->deferred = grown;
        scan->deferred_size = size;
    }
    char *copy = strdup(scan->path);
    if (copy == NULL)
        return 0;
    scan->deferred[scan->deferred_count++] = copy;
    return 1;
}

static int starts_with(const char *name, const char *start)
{
    return strncmp(name, start, strlen(start)) == 0;
}

static void fail(scan_t *scan, int error)
{
    scan->problem = error;
    scan->problem_path = strdup(scan->path);
    if (scan->problem_path == NULL)
        scan->failed_memory = 1;
}

/* Walks below the folder open as root_fd whose path is scan->path[0:root_length]. */
static void scan_walk(scan_t *scan, int root_fd, size_t root_length, size_t member_length)
{
    scan_level_t levels[SCAN_DEPTH];
    int depth = 0;
    struct stat st;
    levels[0] = (scan_level_t){root_fd, NULL, 0, 0, root_length, member_length, 0};
    int error = fstat(root_fd, &st) < 0 ? errno : list_folder(root_fd, &levels[0].names,
                                                              &levels[0].count);
    if (error) {
        fail(scan, error);  /* the path buffer still holds the root as given */
        return;
    }
    levels[0].watched = scan->watching && st.st_dev == scan->watch_dev &&
                        st.st_ino == scan->watch_ino;
    while (depth >= 0 && scan->problem < 0 && !scan->failed_memory) {
        scan_level_t *level = &levels[depth];
        if (level->next == level->count) {
            free_names(level->names, level->count);
            if (depth > 0)
                close(level->fd);
            depth--;
            continue;
        }
        const char *name = level->names[level->next++];
        if (!set_path(scan, level->path_length, name)) {
            scan->failed_memory = 1;
            break;
        }
        if (level->watched && (starts_with(name, scan->starts[0]) ||
                               starts_with(name, scan->starts[1]))) {
            if (!defer(scan))
                scan->failed_memory = 1;
            continue;
        }
        if (fstatat(level->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            fail(scan, errno);
            break;
        }
        int folder = S_ISDIR(st.st_mode);
        if (folder && depth + 1 == SCAN_DEPTH) {
            if (!defer(scan))
                scan->failed_memory = 1;
            continue;
        }
        long long size = S_ISREG(st.st_mode) ? (long long)st.st_size : 0, link = 0;
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX + 1];
            ssize_t got = readlinkat(level->fd, name, target, sizeof target);
            if (got < 0) {
                fail(scan, errno);
                break;
            }
            link = got;
        }
        if ((S_ISREG(st.st_mode) || folder) &&
            faccessat(level->fd, name, R_OK | (folder ? X_OK : 0), 0) < 0) {
            fail(scan, 0);
            break;
        }
        scan_level_t *child = &levels[depth + 1];
        if (folder) {
            int fd = openat(level->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            *child = (scan_level_t){fd, NULL, 0, 0, level->path_length + 1 + strlen(name),
                                    level->member_length + strlen(name) + 1, 0};
            error = fd < 0 ? errno : list_folder(fd, &child->names, &child->count);
            if (error && fd >= 0)
                close(fd);
            if (error == EMFILE || error == ENFILE) {  /* out of descriptors: Python walks it */
                if (!defer(scan))
                    scan->failed_memory = 1;
                continue;
            }
            if (error) {
                fail(scan, error);
                break;
            }
        }
        long long name_length = (long long)(level->member_length + strlen(name));
        scan->files++;
        scan->data += size;
        scan->bound += 4 * 512 + 2 * (name_length + link) + size + (-size & 511);
        if (!folder)
            continue;
        child->watched = scan->watching && st.st_dev == scan->watch_dev &&
                         st.st_ino == scan->watch_ino;
        depth++;
    }
    for (; depth >= 0; depth--) {  /* stopped early: what is still open */
        free_names(levels[depth].names, levels[depth].count);
        if (depth > 0)
            close(levels[depth].fd);
    }
}

static PyObject *scan_tree(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *directory, *watch;
    Py_ssize_t member_length;
    if (!PyArg_ParseTuple(args, "O&nO:scan_tree", PyUnicode_FSConverter, &directory,
                          &member_length, &watch))
        return NULL;
    scan_t scan = {0};
    scan.problem = -1;
    PyObject *starts = NULL, *result = NULL;
    if (watch != Py_None) {
        unsigned long long dev, ino;
        if (!PyArg_ParseTuple(watch, "KKO!:scan_tree watch", &dev, &ino, &PyTuple_Type, &starts))
            goto done;
        if (PyTuple_GET_SIZE(starts) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(starts, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(starts, 1))) {
            PyErr_SetString(PyExc_TypeError, "watch's starts must be two bytes");
            goto done;
        }
        scan.watching = 1;
        scan.watch_dev = (dev_t)dev;
        scan.watch_ino = (ino_t)ino;
        scan.starts[0] = PyBytes_AS_STRING(PyTuple_GET_ITEM(starts, 0));
        scan.starts[1] = PyBytes_AS_STRING(PyTuple_GET_ITEM(starts, 1));
    }
    const char *root = PyBytes_AS_STRING(directory);
    size_t root_length = strlen(root);
    while (root_length > 1 && root[root_length - 1] == '/')
        root_length--;  /* "a/" walks as "a": its entries are a/x, as os.path.join makes them */
    scan.path_size = root_length + 256;
    scan.path = malloc(scan.path_size);
    if (scan.path == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(scan.path, root, root_length);
    scan.path[root_length] = 0;
    /* "/" is the one path that keeps its slash: its entries are /x, not //x. */
    size_t base_length = (root_length == 1 && root[0] == '/') ? 0 : root_length;
    Py_BEGIN_ALLOW_THREADS
    /* As given: "link/" names the folder a symlink points to, as the caller's lstat saw it. */
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        fail(&scan, errno);
    } else {
        scan_walk(&scan, fd, base_length, (size_t)member_length);
        close(fd);
    }
    Py_END_ALLOW_THREADS
    if (scan.failed_memory) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *deferred = PyList_New((Py_ssize_t)scan.deferred_count);
    if (deferred == NULL)
        goto done;
    for (size_t i = 0; i < scan.deferred_count; i++) {
        PyObject *path = PyUnicode_DecodeFSDefault(scan.deferred[i]);
        if (path == NULL) {
            Py_DECREF(deferred);
            goto done;
        }
        PyList_SET_ITEM(deferred, (Py_ssize_t)i, path);
    }
    if (scan.problem >= 0)
        result = Py_BuildValue("LLL(O&i)N", scan.files, scan.data, scan.bound,
                               PyUnicode_DecodeFSDefault, scan.problem_path, scan.problem,
                               deferred);
    else
        result = Py_BuildValue("LLLON", scan.files, scan.data, scan.bound, Py_None, deferred);
done:
    for (size_t i = 0; i < scan.deferred_count; i++)
        free(scan.deferred[i]);
    free(scan.deferred);
    free(scan.path);
    free(scan.problem_path);
    Py_DECREF(directory);
    return result;
}

/* The plain ustar header (see member_header below), as tar_writer._python_header packs it:
   none where that returns None (a text not ASCII or too long, a number its octal field
   cannot hold). Built from Python it cost ~5 µs a member, a fifth of a pack's tar thread on
   a tree of small files. */
static int put_text(unsigned char *field, Py_ssize_t width, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "header texts must be str");
        return -1;
    }
    if (!PyUnicode_IS_ASCII(text) || PyUnicode_GET_LENGTH(text) > width)
        return 0;
    memcpy(field, PyUnicode_1BYTE_DATA(text), (size_t)PyUnicode_GET_LENGTH(text));
    return 1;
}

static int put_octal(unsigned char *field, int width, long long value)
{
    /* width - 1 digits and a NUL, as b"%0*o\0" % (width - 1, value) */
    long long limit = 1LL << (3 * (width - 1));
    if (value < 0 || value >= limit)
        return 0;
    for (int i = width - 2; i >= 0; i--) {
        field[i] = (unsigned char)('0' + (value & 7));
        value >>= 3;
    }
    field[width - 1] = 0;
    return 1;
}

/* 1 and *value set, 0 when the int is beyond long long (no octal field holds it), -1 on error */
static int whole_number(PyObject *number, long long *value)
{
    int overflow;
    *value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (overflow)
        return 0;
    return *value == -1 && PyErr_Occurred() ? -1 : 1;
}

/* The plain header of texts (name, linkname, uname, gname) and numbers (mode, uid, gid,
   size, mtime) into b: 1, 0 when they need a pax header, -1 on error. */
static int plain_header(unsigned char b[HEADER], PyObject *texts[4], char typeflag,
                        const long long numbers[5])
{
    const Py_ssize_t text_at[4] = {F_NAME, F_LINKNAME, F_UNAME, F_GNAME};
    const Py_ssize_t text_width[4] = {100, 100, 32, 32};
    const Py_ssize_t number_at[5] = {F_MODE, F_UID, F_GID, F_SIZE, F_MTIME};
    const int number_width[5] = {8, 8, 8, 12, 12};
    memset(b, 0, HEADER);
    for (int i = 0; i < 4; i++) {
        int status = put_text(b + text_at[i], text_width[i], texts[i]);
        if (status <= 0)
            return status;
    }
    for (int i = 0; i < 5; i++) {
        if (!put_octal(b + number_at[i], number_width[i], numbers[i]))
            return 0;
    }
    b[F_CHKSUM + 8] = (unsigned char)typeflag;
    memcpy(b + F_MAGIC, "ustar\0" "00", 8);
    memset(b + F_CHKSUM, ' ', 8);
    unsigned long sum = 0;
    for (int i = 0; i < HEADER; i++)
        sum += b[i];
    put_octal(b + F_CHKSUM, 7, (long long)sum);  /* six digits (sum < 8**6), NUL, a space */
    b[F_CHKSUM + 7] = ' ';
    return 1;
}

/* append_members(buffer, items) -> (count, got): appends each item of the list items, a
   (header: bytes, path: str | None, size: int) tuple, to the bytearray buffer: the header,
   then for a path the first size bytes of that file and zeros up to the next 512-byte tar
   block. The files are opened, read and closed with the GIL released once for the whole
   batch (a pack's tar thread gives a tree's small files to one call, not one call each:
   taking the GIL back after each file cost it ~1/5 of its time on a busy machine).
   count is how many items were appended whole; when it is short of len(items), the file of
   item count ended after got bytes (it shrank) and buffer holds the items before it.
   OSError as open() raises it for the file that could not be read. */
struct member_item {
    const char *header;
    Py_ssize_t header_size;
    PyObject *path;  /* bytes (fs-encoded), or NULL: no data */
    Py_ssize_t size;
};

/* The folder of the batch's last file, open: the files of one folder are opened relative to
   it (one path component to look up, not the whole path: ~1/20 of a pack's tar thread on a
   tree of small files went to path lookups). */
typedef struct {
    int fd;  /* -1: none open */
    const char *path;  /* the folder's path: the first length bytes of a file's path */
    size_t length;
} batch_folder_t;

/* name opened for reading: relative to its folder, kept open in folder for the next file in
   it; by its whole path when that folder cannot be opened, so that errors read as open()'s. */
static int open_in_folder(batch_folder_t *folder, const char *name)
{
    const char *slash = strrchr(name, '/');
    if (slash == NULL || slash == name)
        return open(name, O_RDONLY | O_CLOEXEC);
    size_t length = (size_t)(slash - name);
    if (folder->fd < 0 || folder->length != length || memcmp(folder->path, name, length) != 0) {
        if (folder->fd >= 0)
            close(folder->fd);
        char *path = strndup(name, length);
        folder->fd = path ? open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        free(path);
        folder->path = name;
        folder->length = length;
        if (folder->fd < 0)
            return open(name, O_RDONLY | O_CLOEXEC);
    }
    return openat(folder->fd, slash + 1, O_RDONLY | O_CLOEXEC);
}

static Py_ssize_t read_whole(batch_folder_t *folder, const char *name, char *at,
                             Py_ssize_t size, int *error)
{
    Py_ssize_t done = 0;
    int fd = open_in_folder(folder, name);
    if (fd < 0) {
        *error = errno;
        return 0;
    }
    while (done < size) {
        ssize_t got = read(fd, at + done, (size_t)(size - done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            *error = errno;
            break;
        }
        if (got == 0)
            break;
        done += got;
    }
    close(fd);
    return done;
}

static PyObject *append_members(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *buffer, *items;
    if (!PyArg_ParseTuple(args, "O!O!:append_members", &PyByteArray_Type, &buffer,
                          &PyTuple_Type, &items))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    struct member_item *batch = PyMem_Calloc((size_t)(count ? count : 1), sizeof *batch);
    if (batch == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    Py_ssize_t start = PyByteArray_GET_SIZE(buffer), total = 0, prepared = 0;
    for (; prepared < count; prepared++) {
        PyObject *item = PyTuple_GET_ITEM(items, prepared), *header, *path;
        struct member_item *member = &batch[prepared];
        if (!PyArg_ParseTuple(item, "O!On:append_members item", &PyBytes_Type, &header,
                              &path, &member->size))
            goto done;
        if (member->size < 0 || (path == Py_None && member->size != 0)) {
            PyErr_SetString(PyExc_ValueError, "a size must be at least 0, and 0 without a path");
            goto done;
        }
        if (path != Py_None && !PyUnicode_FSConverter(path, &member->path))
            goto done;
        member->header = PyBytes_AS_STRING(header);  /* items, a tuple, holds it */
        member->header_size = PyBytes_GET_SIZE(header);
        Py_ssize_t padded = member->size + (-member->size & 511);
        if (padded < member->size || member->header_size > PY_SSIZE_T_MAX - total - start ||
            padded > PY_SSIZE_T_MAX - total - start - member->header_size) {
            PyErr_SetString(PyExc_OverflowError, "the members do not fit a bytearray");
            goto done;
        }
        total += member->header_size + padded;
    }
    if (PyByteArray_Resize(buffer, start + total) < 0)
        goto done;
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE) < 0) {  /* no resize while held */
        PyByteArray_Resize(buffer, start);
        goto done;
    }
    char *at = (char *)view.buf + start;
    Py_ssize_t whole = 0, got = 0;
    int error = 0;
    batch_folder_t folder = {-1, NULL, 0};
    Py_BEGIN_ALLOW_THREADS
    for (; whole < count; whole++) {
        struct member_item *member = &batch[whole];
        memcpy(at, member->header, (size_t)member->header_size);
        at += member->header_size;
        if (member->path != NULL) {
            got = read_whole(&folder, PyBytes_AS_STRING(member->path), at, member->size,
                             &error);
            if (error || got < member->size)
                break;
            Py_ssize_t pad = -member->size & 511;
            memset(at + member->size, 0, (size_t)pad);
            at += member->size + pad;
        }
    }
    if (folder.fd >= 0)
        close(folder.fd);
    Py_END_ALLOW_THREADS
    Py_ssize_t written = whole < count ? (at - (char *)view.buf) - batch[whole].header_size
                                       : start + total;
    PyBuffer_Release(&view);
    if (PyByteArray_Resize(buffer, written) < 0)
        goto done;
    if (error) {
        PyObject *path = PyTuple_GET_ITEM(PyTuple_GET_ITEM(items, whole), 1);
        errno = error;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        goto done;
    }
    result = Py_BuildValue("nn", whole, whole < count ? got : (Py_ssize_t)0);
done:
    for (Py_ssize_t i = 0; i < count; i++)  /* calloc'ed: NULL past a failed item */
        Py_XDECREF(batch[i].path);
    PyMem_Free(batch);
    return result;
}

/* index_page(rows, kinds, max_rows, max_text) -> (count, columns, in_order): the columns of
   the member-index page that starts with rows[0], as core/member_index.py's
   page_columns_python (its twin, which the tests compare it with) makes them. A row is
   (TarMember, header_offset, data_offset, sha256); the page takes max_rows rows, or fewer
   once their texts reach max_text bytes. From Python the columns cost ~3 µs a member in the
   pack's frame thread, which holds the GIL that the tar thread needs. */

typedef struct {
    unsigned char *data;
    size_t length, capacity;
} growing_t;

static int grow(growing_t *g, size_t more)
{
    if (g->length + more <= g->capacity)
        return 0;
    size_t capacity = g->capacity ? g->capacity : 4096;
    while (capacity < g->length + more)
        capacity *= 2;
    unsigned char *data = PyMem_Realloc(g->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    g->data = data;
    g->capacity = capacity;
    return 0;
}

static int append(growing_t *g, const void *data, size_t length)
{
    if (grow(g, length) < 0)
        return -1;
    memcpy(g->data + g->length, data, length);
    g->length += length;
    return 0;
}

/* TarMember's attribute names, interned once (PyInit__native): made from C strings at each
   use they cost more than the rest of a row. */
enum { A_KIND, A_SIZE, A_MODE, A_MTIME, A_UID, A_GID, A_MAJOR, A_MINOR, A_NAME, A_LINK,
       A_UNAME, A_GNAME, A_COUNT };
static const char *attribute_names[A_COUNT] = {"kind", "size", "mode", "mtime", "uid", "gid",
                                               "devmajor", "devminor", "name", "linkname",
                                               "uname", "gname"};
static PyObject *attributes[A_COUNT];
static PyObject *header_size;  /* 512, to add to a header's offset */

/* Where each attribute's slot lies in members of one type (TarMember: a dataclass with
   slots), found once per page: a slot read is a load where getattr is a lookup and a call. */
typedef struct {
    PyTypeObject *type;           /* a reference: released by whoever keeps the slots_t */
    Py_ssize_t offsets[A_COUNT];  /* -1: not a plain object slot, so getattr */
} slots_t;

static void find_slots(slots_t *slots, PyTypeObject *type)
{
    /* held, so that no other type can take its address while the offsets are kept */
    Py_XSETREF(slots->type, (PyTypeObject *)Py_NewRef(type));
    for (int i = 0; i < A_COUNT; i++) {
        slots->offsets[i] = -1;
        PyObject *descriptor = _PyType_Lookup(type, attributes[i]);  /* borrowed */
        if (descriptor != NULL && Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
            PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
            if (member->type == T_OBJECT_EX && !(member->flags & PY_AUDIT_READ))
                slots->offsets[i] = member->offset;
        }
    }
}

/* A new reference to the member's attribute, as getattr gives it. */
static PyObject *attribute(PyObject *member, const slots_t *slots, int name)
{
    if (Py_IS_TYPE(member, slots->type) && slots->offsets[name] >= 0) {
        PyObject *value = *(PyObject **)((char *)member + slots->offsets[name]);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(member, attributes[name]);
}

enum { C_KIND, C_HEADER, C_DELTA, C_SIZE, C_MODE, C_MTIME, C_UID, C_GID, C_MAJOR, C_MINOR,
       C_HAS_DIGEST, C_DIGEST, C_NAME, C_LINK, C_UNAME, C_GNAME, C_COUNT };

/* A text's UTF-8 bytes (surrogateescape) after a NUL unless it is the column's first. */
static int append_text(growing_t *g, PyObject *text, int first, size_t *added)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "index texts must be str");
        return -1;
    }
    PyObject *encoded = NULL;
    const char *data;
    Py_ssize_t length;
    if (PyUnicode_IS_ASCII(text)) {
        data = (const char *)PyUnicode_1BYTE_DATA(text);
        length = PyUnicode_GET_LENGTH(text);
    } else {
        encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
        if (encoded == NULL)
            return -1;
        data = PyBytes_AS_STRING(encoded);
        length = PyBytes_GET_SIZE(encoded);
    }
    int status = 0;
    if (memchr(data, 0, (size_t)length) != NULL) {
        PyErr_Format(PyExc_ValueError, "a text holds NUL: %R", text);
        status = -1;
    } else if ((!first && append(g, "", 1) < 0) || append(g, data, (size_t)length) < 0) {
        status = -1;
    }
    Py_XDECREF(encoded);
    *added = (size_t)length;
    return status;
}

/* Python's str order with "/" below every other character: the order of sort_key. Names
   are mostly ASCII, compared here byte by byte (a pack's tar thread compares each name with
   the one before, which shares most of it). */
static int key_before(PyObject *a, PyObject *b)
{
    Py_ssize_t la = PyUnicode_GET_LENGTH(a), lb = PyUnicode_GET_LENGTH(b);
    Py_ssize_t shorter = la < lb ? la : lb;
    int ka = PyUnicode_KIND(a), kb = PyUnicode_KIND(b);
    if (ka == PyUnicode_1BYTE_KIND && kb == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *da = PyUnicode_1BYTE_DATA(a), *db = PyUnicode_1BYTE_DATA(b);
        Py_ssize_t i = 0;
        for (unsigned long long wa, wb; i + 8 <= shorter; i += 8) {  /* 8 bytes at a time */
            memcpy(&wa, da + i, 8);
            memcpy(&wb, db + i, 8);
            if (wa != wb)
                break;
        }
        while (i < shorter && da[i] == db[i])
            i++;
        if (i < shorter) {
            Py_UCS1 ca = da[i] == '/' ? 0 : da[i], cb = db[i] == '/' ? 0 : db[i];
            return ca < cb;
        }
        return la < lb;
    }
    const void *da = PyUnicode_DATA(a), *db = PyUnicode_DATA(b);
    for (Py_ssize_t i = 0; i < shorter; i++) {
        Py_UCS4 ca = PyUnicode_READ(ka, da, i), cb = PyUnicode_READ(kb, db, i);
        if (ca == cb)
            continue;
        ca = ca == '/' ? 0 : ca;
        cb = cb == '/' ? 0 : cb;
        return ca < cb;
    }
    return la < lb;
}

/* An int as unsigned long long, as PyLong_AsUnsignedLongLong gives it (and its errors), by
   the faster PyLong_AsLongLongAndOverflow where the value allows: the former goes through a
   byte array for every int of two digits or more (offsets past 1 GiB, times, sizes). */
static int unsigned_number(PyObject *number, unsigned long long *value)
{
    if (PyLong_Check(number)) {
        int overflow;
        long long small = PyLong_AsLongLongAndOverflow(number, &overflow);
        if (!overflow && small >= 0) {
            *value = (unsigned long long)small;
            return 0;
        }
        if (small == -1 && PyErr_Occurred())
            return -1;
    }
    *value = PyLong_AsUnsignedLongLong(number);
    return *value == (unsigned long long)-1 && PyErr_Occurred() ? -1 : 0;
}

static int number_attribute(PyObject *member, const slots_t *slots, int name,
                            unsigned long long limit, unsigned long long *value)
{
    PyObject *number = attribute(member, slots, name);
    if (number == NULL)
        return -1;
    int status = unsigned_number(number, value);
    Py_DECREF(number);
    if (status < 0)
        return -1;
    if (*value > limit) {
        PyErr_Format(PyExc_OverflowError, "%s is too large for the index", attribute_names[name]);
        return -1;
    }
    return 0;
}

static int mtime_ns(PyObject *member, const slots_t *slots, long long *value)
{
    PyObject *mtime = attribute(member, slots, A_MTIME);
    if (mtime == NULL)
        return -1;
    int status = 0;
    if (PyLong_Check(mtime)) {
        int overflow;
        long long seconds = PyLong_AsLongLongAndOverflow(mtime, &overflow);
        if (seconds == -1 && PyErr_Occurred())
            status = -1;
        else if (overflow || seconds > LLONG_MAX / 1000000000LL ||
                 seconds < LLONG_MIN / 1000000000LL) {
            PyErr_SetString(PyExc_OverflowError, "mtime is too large for the index");
            status = -1;
        } else
            *value = seconds * 1000000000LL;
    } else {
        double seconds = PyFloat_AsDouble(mtime);
        double ns = floor(seconds * 1e9);
        if (seconds == -1.0 && PyErr_Occurred())
            status = -1;
        else if (!(ns >= -9223372036854775808.0 && ns < 9223372036854775808.0)) {
            PyErr_SetString(PyExc_OverflowError, "mtime is too large for the index");
            status = -1;
        } else
            *value = (long long)ns;
    }
    Py_DECREF(mtime);
    return status;
}

/* The width of each column of numbers, in bytes; the digests' and the texts' vary. */
static const int column_width[C_DIGEST] = {1, 8, 8, 8, 4, 8, 8, 8, 4, 4, 1};

/* Makes room in each column of numbers for one more row. */
static int room_for_a_row(growing_t *c)
{
    for (int i = 0; i < C_DIGEST; i++) {
        if (grow(&c[i], (size_t)column_width[i]) < 0)
            return -1;
    }
    return 0;
}

/* Stores value's width low bytes, little-endian, at the end of column g (room made). */
static inline void put_le(growing_t *g, unsigned long long value, int width)
{
    unsigned char *at = g->data + g->length;
    for (int i = 0; i < width; i++)
        at[i] = (unsigned char)(value >> (8 * i));
    g->length += (size_t)width;
}

/* A row's numbers, as its columns hold them. */
typedef struct {
    unsigned long long header, data, size, mode, uid, gid, major, minor;
    long long mtime_ns;
    unsigned char kind;
} row_numbers_t;

/* Appends a row to the columns c: its numbers, its content digest (32 bytes, or NULL: none)
   and its texts (name, linkname, uname, gname), whose bytes are added to *text. */
static int store_row(growing_t *c, const row_numbers_t *n, PyObject *digest,
                     PyObject *const texts[4], size_t *text)
{
    if (n->data < n->header) {
        PyErr_SetString(PyExc_OverflowError, "a member's data starts before its header");
        return -1;
    }
    if (room_for_a_row(c) < 0 ||
        (digest != NULL && append(&c[C_DIGEST], PyBytes_AS_STRING(digest), 32) < 0))
        return -1;
    put_le(&c[C_KIND], n->kind, 1);
    put_le(&c[C_HEADER], n->header, 8);
    put_le(&c[C_DELTA], n->data - n->header, 8);
    put_le(&c[C_SIZE], n->kind == 0 ? n->size : 0, 8);  /* kinds[0] is MemberKind.FILE */
    put_le(&c[C_MODE], n->mode, 4);
    put_le(&c[C_MTIME], (unsigned long long)n->mtime_ns, 8);
    put_le(&c[C_UID], n->uid, 8);
    put_le(&c[C_GID], n->gid, 8);
    put_le(&c[C_MAJOR], n->major, 4);
    put_le(&c[C_MINOR], n->minor, 4);
    put_le(&c[C_HAS_DIGEST], digest != NULL, 1);
    int first = c[C_KIND].length == 1;
    for (int i = 0; i < 4; i++) {
        size_t added = 0;
        if (append_text(&c[C_NAME + i], texts[i], first, &added) < 0)
            return -1;
        *text += added;
    }
    return 0;
}

/* The position of the member's kind in kinds, or -1 with an error. */
static int kind_code(PyObject *member, const slots_t *slots, PyObject *kinds)
{
    PyObject *kind = attribute(member, slots, A_KIND);
    if (kind == NULL)
        return -1;
    Py_ssize_t code = 0;
    while (code < PyTuple_GET_SIZE(kinds) && PyTuple_GET_ITEM(kinds, code) != kind)
        code++;
    Py_DECREF(kind);
    if (code == PyTuple_GET_SIZE(kinds) || code > 255) {
        PyErr_SetString(PyExc_ValueError, "a member of an unknown kind");
        return -1;
    }
    return (int)code;
}

/* Appends one row to the columns c: the member, where its first header and its data start,
   its content digest (32 bytes or empty). *name is set to a new reference to its name. */
static int index_fields(PyObject *member, unsigned long long header, unsigned long long data,
                        PyObject *digest, PyObject *kinds, slots_t *slots, growing_t *c,
                        size_t *text, PyObject **name)
{
    if (!PyBytes_Check(digest) || (PyBytes_GET_SIZE(digest) != 0 && PyBytes_GET_SIZE(digest) != 32)) {
        PyErr_SetString(PyExc_ValueError, "a content digest must be 32 bytes or empty");
        return -1;
    }
    if (!Py_IS_TYPE(member, slots->type))
        find_slots(slots, Py_TYPE(member));
    row_numbers_t n = {.header = header, .data = data};
    int code = kind_code(member, slots, kinds);  /* only a file's size is kept, and read */
    if (code < 0 || (code == 0 && number_attribute(member, slots, A_SIZE, ULLONG_MAX, &n.size) < 0) ||
        number_attribute(member, slots, A_MODE, 0xffffffffULL, &n.mode) < 0 ||
        number_attribute(member, slots, A_UID, ULLONG_MAX, &n.uid) < 0 ||
        number_attribute(member, slots, A_GID, ULLONG_MAX, &n.gid) < 0 ||
        number_attribute(member, slots, A_MAJOR, 0xffffffffULL, &n.major) < 0 ||
        number_attribute(member, slots, A_MINOR, 0xffffffffULL, &n.minor) < 0 ||
        mtime_ns(member, slots, &n.mtime_ns) < 0)
        return -1;
    n.kind = (unsigned char)code;
    PyObject *texts[4] = {NULL, NULL, NULL, NULL};
    int status = 0;
    for (int i = 0; i < 4 && status == 0; i++) {
        texts[i] = attribute(member, slots, A_NAME + i);
        status = texts[i] == NULL ? -1 : 0;
    }
    if (status == 0)
        status = store_row(c, &n, PyBytes_GET_SIZE(digest) ? digest : NULL, texts, text);
    if (status == 0)
        *name = Py_NewRef(texts[0]);  /* the caller's reference */
    for (int i = 0; i < 4; i++)
        Py_XDECREF(texts[i]);
    return status;
}

static int index_row(PyObject *row, PyObject *kinds, slots_t *slots, growing_t *c,
                     size_t *text, PyObject **name)
{
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 4) {
        PyErr_SetString(PyExc_TypeError, "an index row must be a 4-tuple");
        return -1;
    }
    unsigned long long header, data;
    if (unsigned_number(PyTuple_GET_ITEM(row, 1), &header) < 0 ||
        unsigned_number(PyTuple_GET_ITEM(row, 2), &data) < 0)
        return -1;
    return index_fields(PyTuple_GET_ITEM(row, 0), header, data, PyTuple_GET_ITEM(row, 3), kinds,
                        slots, c, text, name);
}

/* The length of the page of columns c, as fill_page makes it. */
static size_t page_length(const growing_t *c)
{
    size_t total = 4;
    for (int i = 0; i < C_COUNT; i++)
        total += (i >= C_NAME ? 4 : 0) + c[i].length;
    return total;
}

/* The page of columns c (count rows), page_length(c) bytes, into out: the row count, then
   each column, each column of texts after its length. */
static void fill_page(unsigned char *out, const growing_t *c, Py_ssize_t count)
{
    growing_t page = {out, 0, page_length(c)};
    put_le(&page, (unsigned long long)count, 4);
    for (int i = 0; i < C_COUNT; i++) {
        if (i >= C_NAME)
            put_le(&page, c[i].length, 4);
        if (c[i].length)
            memcpy(page.data + page.length, c[i].data, c[i].length);
        page.length += c[i].length;
    }
}

/* The page of columns c (count rows) as index_page returns it, without first and last. */
static PyObject *page_bytes(const growing_t *c, Py_ssize_t count)
{
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)page_length(c));
    if (result != NULL)
        fill_page((unsigned char *)PyBytes_AS_STRING(result), c, count);
    return result;
}

static PyObject *index_page(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *rows, *kinds;
    Py_ssize_t max_rows, max_text;
    if (!PyArg_ParseTuple(args, "O!O!nn:index_page", &PyList_Type, &rows, &PyTuple_Type, &kinds,
                          &max_rows, &max_text))
        return NULL;
    growing_t c[C_COUNT];
    memset(c, 0, sizeof(c));
    slots_t slots = {NULL, {0}};
    PyObject *result = NULL, *previous = NULL;
    Py_ssize_t count = 0;
    size_t text = 0;
    int in_order = 1;
    while (count < max_rows && count < PyList_GET_SIZE(rows) && text < (size_t)max_text) {
        PyObject *name = NULL;
        if (index_row(PyList_GET_ITEM(rows, count), kinds, &slots, c, &text, &name) < 0) {
            Py_XDECREF(name);
            goto done;
        }
        if (previous != NULL && in_order && key_before(name, previous))
            in_order = 0;
        Py_XDECREF(previous);
        previous = name;
        count++;
    }
    PyObject *columns = page_bytes(c, count);
    if (columns != NULL)
        result = Py_BuildValue("nNO", count, columns, in_order ? Py_True : Py_False);
done:
    Py_XDECREF(slots.type);
    Py_XDECREF(previous);
    for (int i = 0; i < C_COUNT; i++)
        PyMem_Free(c[i].data);
    return result;
}

/* PageBuilder(kinds, max_rows, max_text, compress): index_page one row at a time. A pack's
   tar thread adds each member as it writes its header, while the member is in the cache, and
   no member outlives its header; a page is sealed as soon as index_page would end it
   (max_rows rows, or once its texts reach max_text bytes), so the same rows give the same
   pages, and stored as compress(columns) returns it, while the columns are in the cache.
   add(member, header_offset, data_offset, digest=b"") appends a row; take() returns the
   sealed pages, each (count, stored, in_order, first name, last name), and forgets them;
   finish() seals the rows left and returns what take() would. After a failed add the
   builder refuses every call. The Python twin is member_index.py's PageBuilderPython. */

typedef struct {
    PyObject_HEAD
    PyObject *kinds;
    Py_ssize_t max_rows, max_text;
    growing_t c[C_COUNT];
    slots_t slots;
    Py_ssize_t count;
    size_t text;
    int in_order, broken;
    PyObject *first, *previous;  /* the page's first and last names so far */
    PyObject *sealed;            /* list of pages */
    PyObject *compress;          /* columns -> the bytes a sealed page holds */
} PageBuilderObject;

static PyObject *page_builder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *kinds, *compress;
    Py_ssize_t max_rows, max_text;
    static char *keywords[] = {"kinds", "max_rows", "max_text", "compress", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!nnO:PageBuilder", keywords, &PyTuple_Type,
                                     &kinds, &max_rows, &max_text, &compress))
        return NULL;
    if (max_rows < 1 || max_text < 0) {
        PyErr_SetString(PyExc_ValueError, "a page holds at least one row, and texts");
        return NULL;
    }
    if (!PyCallable_Check(compress)) {
        PyErr_SetString(PyExc_TypeError, "compress must be callable");
        return NULL;
    }
    PageBuilderObject *self = (PageBuilderObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->kinds = Py_NewRef(kinds);
    self->compress = Py_NewRef(compress);
    self->max_rows = max_rows;
    self->max_text = max_text;
    self->in_order = 1;
    self->sealed = PyList_New(0);
    if (self->sealed == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* The objects it holds, for the cycle collector: compress may be anything callable. */
static int page_builder_traverse(PageBuilderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->compress);
    Py_VISIT(self->kinds);
    Py_VISIT(self->slots.type);
    Py_VISIT(self->first);
    Py_VISIT(self->previous);
    Py_VISIT(self->sealed);
    return 0;
}

static int page_builder_clear(PageBuilderObject *self)
{
    Py_CLEAR(self->compress);
    Py_CLEAR(self->kinds);
    Py_CLEAR(self->slots.type);
    Py_CLEAR(self->first);
    Py_CLEAR(self->previous);
    Py_CLEAR(self->sealed);
    self->broken = 1;  /* what it held is gone: refuse every call */
    return 0;
}

static void page_builder_dealloc(PageBuilderObject *self)
{
    PyObject_GC_UnTrack(self);
    for (int i = 0; i < C_COUNT; i++)
        PyMem_Free(self->c[i].data);
    page_builder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The page of the rows added so far as compress stores it, called as the page is sealed:
   the columns are still in the cache, and freed at once their memory serves the next page
   (kept until another thread had stored them, each page's ~440 KB cost fresh page faults). */
static PyObject *stored_page(PageBuilderObject *self)
{
    PyObject *columns = page_bytes(self->c, self->count);
    if (columns == NULL)
        return NULL;
    PyObject *stored = PyObject_CallOneArg(self->compress, columns);
    Py_DECREF(columns);
    if (stored != NULL && !PyBytes_Check(stored)) {
        PyErr_SetString(PyExc_TypeError, "compress must return bytes");
        Py_CLEAR(stored);
    }
    return stored;
}

/* Appends the page of the rows added so far to sealed and starts the next. */
static int page_builder_seal(PageBuilderObject *self)
{
    PyObject *stored = stored_page(self);
    if (stored == NULL)
        return -1;
    PyObject *page = Py_BuildValue("nNOOO", self->count, stored,
                                   self->in_order ? Py_True : Py_False, self->first,
                                   self->previous);
    if (page == NULL || PyList_Append(self->sealed, page) < 0) {
        Py_XDECREF(page);
        return -1;
    }
    Py_DECREF(page);
    for (int i = 0; i < C_COUNT; i++)
        self->c[i].length = 0;
    self->count = 0;
    self->text = 0;
    self->in_order = 1;
    Py_CLEAR(self->first);
    Py_CLEAR(self->previous);
    return 0;
}

static int page_builder_usable(PageBuilderObject *self)
{
    if (self->broken)
        PyErr_SetString(PyExc_RuntimeError, "this PageBuilder failed and is unusable");
    return !self->broken;
}

/* Notes the name of the row just stored (a new reference, taken over) and seals the page
   when it is full; 0, or -1 with the builder broken. */
static int page_builder_added(PageBuilderObject *self, PyObject *name)
{
    if (self->previous != NULL && self->in_order && key_before(name, self->previous))
        self->in_order = 0;
    if (self->first == NULL)
        self->first = Py_NewRef(name);
    Py_XSETREF(self->previous, name);
    self->count++;
    if ((self->count >= self->max_rows || self->text >= (size_t)self->max_text) &&
        page_builder_seal(self) < 0) {
        self->broken = 1;
        return -1;
    }
    return 0;
}

/* Adds a row (digest NULL: none); 0, or -1 with the builder broken. */
static int page_builder_append(PageBuilderObject *self, PyObject *member,
                               unsigned long long header_offset,
                               unsigned long long data_offset, PyObject *digest)
{
    static PyObject *empty = NULL;
    if (empty == NULL && (empty = PyBytes_FromStringAndSize(NULL, 0)) == NULL)
        return -1;
    PyObject *name = NULL;
    if (index_fields(member, header_offset, data_offset, digest ? digest : empty, self->kinds,
                     &self->slots, self->c, &self->text, &name) < 0) {
        self->broken = 1;  /* some columns may hold part of the row */
        return -1;
    }
    return page_builder_added(self, name);
}

static PyObject *page_builder_add(PageBuilderObject *self, PyObject *const *args,
                                  Py_ssize_t nargs)
{
    if (!page_builder_usable(self))
        return NULL;
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "add(member, header_offset, data_offset, digest=b'')");
        return NULL;
    }
    unsigned long long header_offset, data_offset;
    if (unsigned_number(args[1], &header_offset) < 0 ||
        unsigned_number(args[2], &data_offset) < 0) {
        self->broken = 1;  /* as a refused row always leaves it */
        return NULL;
    }
    if (page_builder_append(self, args[0], header_offset, data_offset,
                            nargs == 4 ? args[3] : NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *page_builder_take(PageBuilderObject *self, PyObject *unused)
{
    (void)unused;
    if (!page_builder_usable(self))
        return NULL;
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    PyObject *pages = self->sealed;
    self->sealed = fresh;
    return pages;
}

static PyObject *page_builder_finish(PageBuilderObject *self, PyObject *unused)
{
    if (!page_builder_usable(self))
        return NULL;
    if (self->count && page_builder_seal(self) < 0) {
        self->broken = 1;
        return NULL;
    }
    return page_builder_take(self, unused);
}

static PyMethodDef page_builder_methods[] = {
    {"add", (PyCFunction)(void (*)(void))page_builder_add, METH_FASTCALL, "Add a row."},
    {"take", (PyCFunction)page_builder_take, METH_NOARGS, "The sealed pages, forgotten."},
    {"finish", (PyCFunction)page_builder_finish, METH_NOARGS, "Seal the rest; take()."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PageBuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streaming_tar_compressor._native.PageBuilder",
    .tp_basicsize = sizeof(PageBuilderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Builds member-index pages a row at a time.",
    .tp_new = page_builder_new,
    .tp_dealloc = (destructor)page_builder_dealloc,
    .tp_traverse = (traverseproc)page_builder_traverse,
    .tp_clear = (inquiry)page_builder_clear,
    .tp_free = PyObject_GC_Del,
    .tp_methods = page_builder_methods,
};

/* SlotMaker(cls, names): makes instances of cls, a class whose fields names are plain object
   slots (a dataclass with slots), from one value per name, by position, without calling
   __init__. A frozen dataclass's __init__ sets each field through object.__setattr__: ~1.4 µs
   for a TarMember, which pack and unpack make for every file; this ~0.1 µs. Only for classes
   whose __init__ does nothing else (no __post_init__, no checks): models.py says which. */
#define SLOT_MAKER_MAX 32

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *type;
    Py_ssize_t count;
    Py_ssize_t offsets[SLOT_MAKER_MAX];
} SlotMakerObject;

static PyObject *slot_maker_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    SlotMakerObject *self = (SlotMakerObject *)callable;
    Py_ssize_t given = PyVectorcall_NARGS(nargsf);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) || given != self->count) {
        PyErr_Format(PyExc_TypeError, "%s takes exactly %zd values by position",
                     self->type->tp_name, self->count);
        return NULL;
    }
    PyObject *made = self->type->tp_alloc(self->type, 0);
    if (made == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < given; i++)
        *(PyObject **)((char *)made + self->offsets[i]) = Py_NewRef(args[i]);
    return made;
}

static PyObject *slot_maker_new(PyTypeObject *maker_type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls, *names;
    static char *keywords[] = {"cls", "names", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!:SlotMaker", keywords, &PyType_Type,
                                     &cls, &PyTuple_Type, &names))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    if (count > SLOT_MAKER_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many slots");
        return NULL;
    }
    SlotMakerObject *self = (SlotMakerObject *)maker_type->tp_alloc(maker_type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = slot_maker_call;
    self->type = (PyTypeObject *)Py_NewRef(cls);
    self->count = count;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *descriptor = PyUnicode_Check(name) ? _PyType_Lookup(self->type, name) : NULL;
        PyMemberDef *member = descriptor != NULL && Py_IS_TYPE(descriptor, &PyMemberDescr_Type)
                                  ? ((PyMemberDescrObject *)descriptor)->d_member
                                  : NULL;
        int plain = member != NULL && member->type == T_OBJECT_EX &&
                    !(member->flags & READONLY) &&
                    PyType_IsSubtype(self->type, PyDescr_TYPE(descriptor));
        for (Py_ssize_t j = 0; plain && j < i; j++)
            plain = self->offsets[j] != member->offset;  /* each slot once */
        if (!plain) {
            PyErr_Format(PyExc_TypeError, "%R is not a plain slot of %R", name, cls);
            Py_DECREF(self);
            return NULL;
        }
        self->offsets[i] = member->offset;
    }
    return (PyObject *)self;
}

static void slot_maker_dealloc(SlotMakerObject *self)
{
    Py_XDECREF(self->type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject SlotMakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streaming_tar_compressor._native.SlotMaker",
    .tp_basicsize = sizeof(SlotMakerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Makes instances of a slotted class from its slots' values, by position.",
    .tp_new = slot_maker_new,
    .tp_dealloc = (destructor)slot_maker_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(SlotMakerObject, vectorcall),
};

/* Adds the member whose plain header member_header just made to the page builder, from
   what it read for the header (numbers: mode & 07777, uid, gid, size, whole seconds; texts:
   the header's, a folder's name with its "/"), reading only what the header lacks; 0, or -1
   with the builder broken. */
static int add_to_pages(PageBuilderObject *pages, PyObject *member, const slots_t *slots,
                        PyObject *kind, char typeflag, const long long numbers[5],
                        PyObject *const texts[4], PyObject *offset)
{
    row_numbers_t n = {.uid = (unsigned long long)numbers[1],
                       .gid = (unsigned long long)numbers[2]};
    PyObject *row_texts[4] = {NULL, texts[1], texts[2], texts[3]};
    int status = -1;
    Py_ssize_t code = 0;  /* the kind's position in the builder's kinds, as add() finds it */
    while (code < PyTuple_GET_SIZE(pages->kinds) && PyTuple_GET_ITEM(pages->kinds, code) != kind)
        code++;
    if (code == PyTuple_GET_SIZE(pages->kinds) || code > 255) {
        PyErr_SetString(PyExc_ValueError, "a member of an unknown kind");
        goto done;
    }
    n.kind = (unsigned char)code;
    if (code == 0 && typeflag == '0')  /* kinds[0] is MemberKind.FILE, whose size it read */
        n.size = (unsigned long long)numbers[3];
    else if (code == 0 && number_attribute(member, slots, A_SIZE, ULLONG_MAX, &n.size) < 0)
        goto done;
    if (unsigned_number(offset, &n.header) < 0)
        goto done;
    if (n.header > ULLONG_MAX - HEADER) {
        PyErr_SetString(PyExc_OverflowError, "a header's offset is too large");
        goto done;
    }
    n.data = n.header + HEADER;
    PyObject *mtime = attribute(member, slots, A_MTIME);
    if (mtime == NULL)
        goto done;
    int exact = PyLong_CheckExact(mtime);  /* whole seconds, as the header has them */
    Py_DECREF(mtime);
    if (exact)
        n.mtime_ns = numbers[4] * 1000000000LL;  /* < 8**11 s: no overflow */
    else if (mtime_ns(member, slots, &n.mtime_ns) < 0)
        goto done;
    if (number_attribute(member, slots, A_MODE, 0xffffffffULL, &n.mode) < 0 ||
        number_attribute(member, slots, A_MAJOR, 0xffffffffULL, &n.major) < 0 ||
        number_attribute(member, slots, A_MINOR, 0xffffffffULL, &n.minor) < 0)
        goto done;
    row_texts[0] = typeflag == '5' ? attribute(member, slots, A_NAME) : Py_NewRef(texts[0]);
    if (row_texts[0] == NULL || store_row(pages->c, &n, NULL, row_texts, &pages->text) < 0)
        goto done;
    status = page_builder_added(pages, row_texts[0]);  /* which takes the reference */
    row_texts[0] = NULL;
done:
    Py_XDECREF(row_texts[0]);
    if (status < 0)
        pages->broken = 1;
    return status;
}

/* member_header(member, kinds, typeflags, offset, builder) -> bytes | None: the plain ustar
   header of a TarMember read from its slots (kinds[i]'s typeflag is typeflags[i]): one call,
   where passing its fields from Python cost ~1 µs a member. None where plain_header gives
   none (a pax header is needed) and for devices (Python writes their numbers). A member
   with a plain header is added to builder (a PageBuilder in the same call, or any object
   with its add method; None: none), its header at offset: the index costs a pack's tar
   thread no second call for the member. */
static PyObject *member_header(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 || !PyTuple_Check(args[1]) || !PyBytes_Check(args[2]) ||
        PyBytes_GET_SIZE(args[2]) != PyTuple_GET_SIZE(args[1]) || !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "member_header(member, kinds, typeflags, offset, builder or None)");
        return NULL;
    }
    PyObject *member = args[0], *kinds = args[1], *builder = args[4];
    if (Py_IS_TYPE(builder, &PageBuilderType) &&
        !page_builder_usable((PageBuilderObject *)builder))
        return NULL;
    static slots_t slots;  /* of the last member's type, which it holds */
    static PyObject *slash = NULL;
    if (slash == NULL && (slash = PyUnicode_FromString("/")) == NULL)
        return NULL;
    if (!Py_IS_TYPE(member, slots.type))
        find_slots(&slots, Py_TYPE(member));
    PyObject *kind = attribute(member, &slots, A_KIND);
    if (kind == NULL)
        return NULL;
    Py_ssize_t code = 0;
    while (code < PyTuple_GET_SIZE(kinds) && PyTuple_GET_ITEM(kinds, code) != kind)
        code++;
    Py_DECREF(kind);
    if (code == PyTuple_GET_SIZE(kinds)) {
        PyErr_SetString(PyExc_ValueError, "a member of an unknown kind");
        return NULL;
    }
    char typeflag = PyBytes_AS_STRING(args[2])[code];
    if (typeflag == '3' || typeflag == '4')
        Py_RETURN_NONE;
    PyObject *texts[4] = {NULL, NULL, NULL, NULL}, *result = NULL, *data_offset = NULL;
    for (int i = 0; i < 4; i++) {
        if ((texts[i] = attribute(member, &slots, A_NAME + i)) == NULL)
            goto done;
    }
    if (typeflag == '5') {  /* a folder's name ends in "/" */
        Py_SETREF(texts[0], PyUnicode_Concat(texts[0], slash));
        if (texts[0] == NULL)
            goto done;
    }
    long long numbers[5] = {0, 0, 0, 0, 0};  /* mode, uid, gid, size, mtime */
    const int names[4] = {A_MODE, A_UID, A_GID, A_SIZE};
    for (int i = 0; i < 4; i++) {
        if (i == 3 && typeflag != '0')
            break;  /* only a regular file's header carries its size */
        PyObject *number = attribute(member, &slots, names[i]);
        if (number == NULL)
            goto done;
        int status = -2;
        if (PyLong_Check(number) && i == 0) {  /* mode & 0o7777, as Python's ints do it */
            numbers[0] = (long long)(PyLong_AsUnsignedLongLongMask(number) & 07777);
            status = numbers[0] == (long long)(-1 & 07777) && PyErr_Occurred() ? -1 : 1;
        } else if (PyLong_Check(number)) {
            status = whole_number(number, &numbers[i]);
        }
        Py_DECREF(number);
        if (status == -2)
            PyErr_SetString(PyExc_TypeError, "a member's numbers must be int");
        if (status < 0)
            goto done;
        if (status == 0) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    PyObject *mtime = attribute(member, &slots, A_MTIME);
    if (mtime == NULL)
        goto done;
    PyObject *seconds = PyNumber_Long(mtime);  /* int(member.mtime), as the Python header */
    Py_DECREF(mtime);
    if (seconds == NULL)
        goto done;
    int status = whole_number(seconds, &numbers[4]);
    Py_DECREF(seconds);
    if (status <= 0) {
        result = status < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    unsigned char b[HEADER];
    status = plain_header(b, texts, typeflag, numbers);
    if (status <= 0) {
        result = status < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)b, HEADER);
    if (result != NULL && Py_IS_TYPE(builder, &PageBuilderType)) {
        if (add_to_pages((PageBuilderObject *)builder, member, &slots,
                         PyTuple_GET_ITEM(kinds, code), typeflag, numbers, texts, args[3]) < 0)
            Py_CLEAR(result);
    } else if (result != NULL && builder != Py_None) {
        data_offset = PyNumber_Add(args[3], header_size);
        if (data_offset == NULL)
            Py_CLEAR(result);
        else {
            PyObject *added = PyObject_CallMethod(builder, "add", "OOO", member, args[3],
                                                  data_offset);
            if (added == NULL)
                Py_CLEAR(result);
            Py_XDECREF(added);
        }
    }
done:
    Py_XDECREF(data_offset);
    for (int i = 0; i < 4; i++)
        Py_XDECREF(texts[i]);
    return result;
}

/* untracked(row) -> row: the tuple and its items no longer tracked by the cycle collector.
   Only for what cannot be in a reference cycle: a pack's index rows (a frozen TarMember of
   atomic fields, numbers, bytes), which live while their blocks are in flight and cost a
   tree of small files 2 % of its pack in collections that find nothing. (The collector
   untracks such a tuple itself only when every item is atomic or an untracked tuple.) */
static PyObject *untracked(PyObject *module, PyObject *row)
{
    (void)module;
    if (!PyTuple_CheckExact(row)) {  /* a subclass may have a __dict__, and be in a cycle */
        PyErr_SetString(PyExc_TypeError, "untracked takes a tuple");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(row); i++) {
        PyObject *item = PyTuple_GET_ITEM(row, i);
        if (PyObject_IS_GC(item) && PyObject_GC_IsTracked(item))
            PyObject_GC_UnTrack(item);
    }
    if (PyObject_GC_IsTracked(row))
        PyObject_GC_UnTrack(row);
    return Py_NewRef(row);
}

static PyMethodDef methods[] = {
    {"append_members", append_members, METH_VARARGS, "Append members, files read, to a bytearray."},
    {"lstat_names", lstat_names, METH_VARARGS, "lstat (and access) a batch of a folder's names."},
    {"scan_tree", scan_tree, METH_VARARGS, "Count (and access-check) all below a folder."},
    {"byte_sum", byte_sum, METH_O, "The sum of a buffer's bytes."},
    {"header_fields", header_fields, METH_O, "A plain tar header's fields, or None."},
    {"plain_members", plain_members, METH_VARARGS, "The plain members lying whole in a buffer."},
    {"index_page", index_page, METH_VARARGS, "The columns of a member-index page."},
    {"untracked", untracked, METH_O, "The row, untracked by the cycle collector."},
    {"member_header", (PyCFunction)(void (*)(void))member_header, METH_FASTCALL,
     "A member's plain ustar header, or None; added to an index page builder."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "stc's compiled file operations.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    for (int i = 0; i < A_COUNT; i++) {
        attributes[i] = PyUnicode_InternFromString(attribute_names[i]);
        if (attributes[i] == NULL)
            return NULL;
    }
    if ((header_size = PyLong_FromLong(HEADER)) == NULL)
        return NULL;
    dir_stat_type = PyStructSequence_NewType(&dir_stat_desc);
    if (dir_stat_type == NULL || PyType_Ready(&OpThreadType) < 0 ||
        PyType_Ready(&PageBuilderType) < 0 || PyType_Ready(&SlotMakerType) < 0)
        return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL)
        return NULL;
    Py_INCREF(&OpThreadType);
    if (PyModule_AddObject(created, "OpThread", (PyObject *)&OpThreadType) < 0) {
        Py_DECREF(&OpThreadType);
        Py_DECREF(created);
        return NULL;
    }
    Py_INCREF(&PageBuilderType);
    if (PyModule_AddObject(created, "PageBuilder", (PyObject *)&PageBuilderType) < 0) {
        Py_DECREF(&PageBuilderType);
        Py_DECREF(created);
        return NULL;
    }
    Py_INCREF(&SlotMakerType);
    if (PyModule_AddObject(created, "SlotMaker", (PyObject *)&SlotMakerType) < 0) {
        Py_DECREF(&SlotMakerType);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
