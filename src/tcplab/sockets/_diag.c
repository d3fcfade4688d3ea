/* tcplab sockets: the three per-socket loops of ``tcplab sockets``, in C.
 *
 * Theory of operation.  A 20,000-socket table costs ``tcplab sockets`` a
 * Python turn per socket in three places, and those turns were most of the
 * command's time against ``ss -tanp`` (issue 15):
 *
 *   parse_dump     the sock_diag dump (``inet_diag_msg`` + netlink attributes,
 *                  include/uapi/linux/inet_diag.h) into SockInfo tuples;
 *   socket_owners  the /proc/PID/fd scan for socket inodes (what ss -p does:
 *                  misc/ss.c user_ent_hash_build), into inode -> [SocketOwner];
 *   attach_rows,   the rows (socket + owners) and their grouping by process,
 *   group_rows,    sorted (view.py's attach_owners and group_by_process);
 *   sort_rows
 *   rows_json      the rows of ``tcplab sockets --json`` as JSON text.
 *
 * Each one mirrors a Python function line for line, and that Python stays the
 * readable reference: sockets/diag.py ``parse_dump``, sockets/procs.py
 * ``socket_owners_reference`` and sockets/view.py ``attach_owners_reference``,
 * ``group_by_process_reference`` and ``rows_json_text_reference``.
 * tests/test_sockets_c.py requires equal results on synthetic input and on a
 * live dump of this host.  Types and constants (SockInfo, the state table,
 * TcplabError...) are handed over once by ``configure`` from diag.py, so the
 * layouts are declared in one place (diag.py's struct formats).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Netlink and sock_diag numbers (diag.py declares the same). */
#define NLMSG_HDR 16
#define INET_DIAG_MSG_SIZE 72
#define FULL (NLMSG_HDR + INET_DIAG_MSG_SIZE)
#define T_ERROR 2
#define T_DONE 3
#define T_SOCK_DIAG_BY_FAMILY 20
#define A_INFO 2
#define A_SHUTDOWN 8
#define TCP_INFO_SIZE 84 /* diag.TCP_INFO.size: 8 u8 + 19 u32 */

/* SockInfo's fields, in order (diag.py). */
enum { F_STATE, F_LINUX_STATE, F_FAMILY, F_SRC, F_SPORT, F_DST, F_DPORT, F_RQUEUE, F_WQUEUE,
       F_TIMER, F_EXPIRES, F_RETRANS, F_UID, F_INODE, F_COOKIE, F_INTERFACE, F_SHUTDOWN,
       F_TCP_INFO, N_FIELDS };

/* Handed over by configure(). */
static PyTypeObject *sockinfo_type;
static PyObject *state_table;   /* tuple: linux state number -> State or None */
static PyObject *timer_names;   /* tuple of str, idiag_timer 0..4 */
static PyObject *error_class;   /* TcplabError */
static PyObject *netlink_error; /* diag._raise_netlink_error(data, pos, length) */
static PyObject *listen_state;  /* State.LISTEN */

/* Attribute names, interned once (a name built per lookup is hashed per lookup). */
static PyObject *s_value, *s_process, *s_pid, *s_fd, *s_counts, *s_rows, *s_listeners;

static int configured(void) {
    if (sockinfo_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tcplab.sockets._diag: configure() was not called");
        return 0;
    }
    return 1;
}

static PyObject *py_configure(PyObject *self, PyObject *args) {
    PyObject *si, *table, *timers, *err, *nlerr, *listen;
    if (!PyArg_ParseTuple(args, "O!O!O!OOO", &PyType_Type, &si, &PyTuple_Type, &table,
                          &PyTuple_Type, &timers, &err, &nlerr, &listen))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)si, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure: SockInfo must be a tuple type");
        return NULL;
    }
    Py_INCREF(si); Py_INCREF(table); Py_INCREF(timers);
    Py_INCREF(err); Py_INCREF(nlerr); Py_INCREF(listen);
    Py_XSETREF(sockinfo_type, (PyTypeObject *)si);
    Py_XSETREF(state_table, table);
    Py_XSETREF(timer_names, timers);
    Py_XSETREF(error_class, err);
    Py_XSETREF(netlink_error, nlerr);
    Py_XSETREF(listen_state, listen);
    Py_RETURN_NONE;
}

/* An instance of a tuple subclass (a NamedTuple) with n items, all NULL:
 * what tuple.__new__(cls, items) builds, without the items tuple. */
static PyObject *new_tuple_of(PyTypeObject *type, Py_ssize_t n) {
    return type->tp_alloc(type, n);
}

static uint32_t u32_at(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t u16_at(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* ------------------------------------------------------------------ */
/* parse_dump                                                          */

/* Address text by packed address (diag.py's _V4_TEXT/_V6_TEXT): a table has
 * few distinct addresses.  Direct-mapped; a miss formats with inet_ntop, as
 * socket.inet_ntop does. */
#define ADDR_CACHE 256
static struct { int family; unsigned char packed[16]; PyObject *text; } addr_cache[ADDR_CACHE];

static PyObject *addr_text(int family, const unsigned char *packed) {
    uint32_t h = 2166136261u ^ (uint32_t)family;
    for (int i = 0; i < 16; i++) h = (h ^ packed[i]) * 16777619u;
    h = (h ^ (h >> 16)) % ADDR_CACHE;
    if (addr_cache[h].text != NULL && addr_cache[h].family == family
        && memcmp(addr_cache[h].packed, packed, 16) == 0) {
        Py_INCREF(addr_cache[h].text);
        return addr_cache[h].text;
    }
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(family, packed, buf, sizeof buf) == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *text = PyUnicode_DecodeASCII(buf, (Py_ssize_t)strlen(buf), NULL);
    if (text == NULL) return NULL;
    Py_XSETREF(addr_cache[h].text, text);
    Py_INCREF(text);
    addr_cache[h].family = family;
    memcpy(addr_cache[h].packed, packed, 16);
    return text;
}

static PyObject *fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (msg != NULL) {
        PyErr_SetObject(error_class, msg);
        Py_DECREF(msg);
    }
    return NULL;
}

/* One SockInfo from the message at pos (header checked, length >= FULL). */
static PyObject *sockinfo_at(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end) {
    const unsigned char *m = d + pos + NLMSG_HDR;
    int family = m[0], linux_state = m[1], timer = m[2], retrans = m[3];
    if (family != AF_INET && family != AF_INET6)
        return fail("sock_diag: message at offset %zd has address family %d", pos + 16, family);
    PyObject *state = NULL;
    if (linux_state < PyTuple_GET_SIZE(state_table))
        state = PyTuple_GET_ITEM(state_table, linux_state);
    if (state == NULL || state == Py_None)
        return fail("sock_diag: message at offset %zd has unknown state %d", pos + 16, linux_state);
    PyObject *info = NULL;
    int shutdown = -1;
    Py_ssize_t attr = pos + FULL;
    while (attr + 4 <= end) {
        Py_ssize_t alen = u16_at(d + attr), atype = u16_at(d + attr + 2);
        if (alen < 4 || attr + alen > end) {
            Py_XDECREF(info);
            return fail("sock_diag: attribute at offset %zd has length %zd", attr, alen);
        }
        if (atype == A_INFO) {
            Py_XSETREF(info, PyBytes_FromStringAndSize((const char *)d + attr + 4, alen - 4));
            if (info == NULL) return NULL;
        } else if (atype == A_SHUTDOWN) {
            /* data[attr + 4]: the byte after the header, as the Python reads it */
            if (alen == 4) {
                Py_XDECREF(info);
                return fail("sock_diag: shutdown attribute at offset %zd is empty", attr);
            }
            shutdown = d[attr + 4];
        }
        attr = (attr + alen + 3) & ~(Py_ssize_t)3;
    }
    PyObject *o = new_tuple_of(sockinfo_type, N_FIELDS);
    if (o == NULL) { Py_XDECREF(info); return NULL; }
    PyObject **it = ((PyTupleObject *)o)->ob_item;
    Py_INCREF(state);
    it[F_STATE] = state;
    it[F_LINUX_STATE] = PyLong_FromLong(linux_state);
    it[F_FAMILY] = PyLong_FromLong(family);
    it[F_SRC] = addr_text(family, m + 8);
    it[F_SPORT] = PyLong_FromLong(m[4] << 8 | m[5]);
    it[F_DST] = addr_text(family, m + 24);
    it[F_DPORT] = PyLong_FromLong(m[6] << 8 | m[7]);
    /* the sockid's tail (if, cookie[2]) at m + 40, then expires, rqueue,
     * wqueue, uid, inode at m + 52 */
    const unsigned char *t = m + 40;
    uint64_t cookie = (uint64_t)u32_at(t + 8) << 32 | u32_at(t + 4);
    it[F_RQUEUE] = PyLong_FromUnsignedLong(u32_at(t + 16));
    it[F_WQUEUE] = PyLong_FromUnsignedLong(u32_at(t + 20));
    if (timer < PyTuple_GET_SIZE(timer_names)) {
        it[F_TIMER] = PyTuple_GET_ITEM(timer_names, timer);
        Py_INCREF(it[F_TIMER]);
    } else {
        it[F_TIMER] = PyUnicode_FromFormat("unknown(%d)", timer);
    }
    it[F_EXPIRES] = PyLong_FromUnsignedLong(u32_at(t + 12));
    it[F_RETRANS] = PyLong_FromLong(retrans);
    it[F_UID] = PyLong_FromUnsignedLong(u32_at(t + 24));
    it[F_INODE] = PyLong_FromUnsignedLong(u32_at(t + 28));
    it[F_COOKIE] = PyLong_FromUnsignedLongLong(cookie);
    it[F_INTERFACE] = PyLong_FromUnsignedLong(u32_at(t));
    if (shutdown < 0) { Py_INCREF(Py_None); it[F_SHUTDOWN] = Py_None; }
    else it[F_SHUTDOWN] = PyLong_FromLong(shutdown);
    if (info == NULL) { Py_INCREF(Py_None); info = Py_None; }
    it[F_TCP_INFO] = info;
    for (int i = 0; i < N_FIELDS; i++)
        if (it[i] == NULL) { Py_DECREF(o); return NULL; }
    return o;
}

/* parse_dump(data, seq) -> (list[SockInfo], done): diag.parse_dump exactly. */
static PyObject *py_parse_dump(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *seq_obj = Py_None;
    if (!PyArg_ParseTuple(args, "y*|O", &view, &seq_obj)) return NULL;
    if (!configured()) { PyBuffer_Release(&view); return NULL; }
    int check_seq = seq_obj != Py_None;
    unsigned long want = 0;
    if (check_seq) {
        want = PyLong_AsUnsignedLong(seq_obj);
        if (PyErr_Occurred()) { PyBuffer_Release(&view); return NULL; }
    }
    const unsigned char *d = view.buf;
    Py_ssize_t size = view.len, pos = 0;
    PyObject *out = PyList_New(0);
    int done = 0;
    if (out == NULL) goto error;
    while (pos + 16 <= size) {
        Py_ssize_t length = u32_at(d + pos), kind = u16_at(d + pos + 4);
        uint32_t msg_seq = u32_at(d + pos + 8);
        Py_ssize_t end = pos + length;
        if (length < 16 || end > size) {
            fail("sock_diag: netlink message at offset %zd has length %zd", pos, length);
            goto error;
        }
        if (check_seq && msg_seq != want) { pos = (end + 3) & ~(Py_ssize_t)3; continue; }
        if (kind != T_SOCK_DIAG_BY_FAMILY) {
            if (kind == T_DONE) { done = 1; break; }
            if (kind == T_ERROR) {
                PyObject *data = PyBytes_FromStringAndSize((const char *)d, size);
                if (data == NULL) goto error;
                PyObject *r = PyObject_CallFunction(netlink_error, "Onn", data, pos, length);
                Py_DECREF(data);
                if (r == NULL) goto error;
                Py_DECREF(r);
            }
            pos = (end + 3) & ~(Py_ssize_t)3;
            continue;
        }
        if (length < FULL) {
            fail("sock_diag: inet_diag_msg at offset %zd is %zd bytes, need %d",
                 pos + 16, length - 16, FULL - 16);
            goto error;
        }
        PyObject *s = sockinfo_at(d, pos, end);
        if (s == NULL) goto error;
        int bad = PyList_Append(out, s);
        Py_DECREF(s);
        if (bad) goto error;
        pos = (end + 3) & ~(Py_ssize_t)3;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(NO)", out, done ? Py_True : Py_False);
error:
    PyBuffer_Release(&view);
    Py_XDECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* socket_owners                                                       */

/* "socket:[12345]" -> 12345; 0 for any other link target. */
static unsigned long socket_inode(const char *target, ssize_t n) {
    if (n < 10 || memcmp(target, "socket:[", 8) != 0 || target[n - 1] != ']') return 0;
    unsigned long v = 0;
    for (ssize_t i = 8; i < n - 1; i++) {
        if (target[i] < '0' || target[i] > '9') return 0;
        v = v * 10 + (unsigned long)(target[i] - '0');
    }
    return v;
}

static int all_digits(const char *s) {
    if (*s == '\0') return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Add owner_type(process, fd) to owners[inode] (a list). */
static int add_owner(PyObject *owners, PyTypeObject *owner_type, unsigned long inode,
                     PyObject *process, long fd) {
    PyObject *key = PyLong_FromUnsignedLong(inode);
    if (key == NULL) return -1;
    PyObject *owner = new_tuple_of(owner_type, 2);
    if (owner == NULL) { Py_DECREF(key); return -1; }
    Py_INCREF(process);
    PyTuple_SET_ITEM(owner, 0, process);
    PyObject *fd_obj = PyLong_FromLong(fd);
    if (fd_obj == NULL) { Py_DECREF(owner); Py_DECREF(key); return -1; }
    PyTuple_SET_ITEM(owner, 1, fd_obj);
    PyObject *list = PyDict_GetItemWithError(owners, key);
    int rc;
    if (list != NULL) {
        rc = PyList_Append(list, owner);
    } else if (PyErr_Occurred()) {
        rc = -1;
    } else {
        list = PyList_New(1);
        if (list == NULL) { rc = -1; }
        else {
            Py_INCREF(owner);
            PyList_SET_ITEM(list, 0, owner);
            rc = PyDict_SetItem(owners, key, list);
            Py_DECREF(list);
        }
    }
    Py_DECREF(owner);
    Py_DECREF(key);
    return rc;
}

/* socket_owners(proc, process_of, owner_type) -> dict[int, list[owner]]:
 * procs.socket_owners exactly.  ``process_of(pid)`` is called once per process
 * that holds a socket, at its first socket fd (None: it went away, skip it). */
static PyObject *py_socket_owners(PyObject *self, PyObject *args) {
    const char *proc;
    PyObject *process_of;
    PyTypeObject *owner_type;
    if (!PyArg_ParseTuple(args, "sOO!", &proc, &process_of, &PyType_Type, &owner_type))
        return NULL;
    if (!PyType_IsSubtype(owner_type, &PyTuple_Type) || !PyCallable_Check(process_of)) {
        PyErr_SetString(PyExc_TypeError, "socket_owners: a callable and a tuple type");
        return NULL;
    }
    PyObject *owners = PyDict_New();
    if (owners == NULL) return NULL;
    int proc_fd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc_fd < 0) {
        Py_DECREF(owners);
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, proc);
    }
    DIR *top = fdopendir(proc_fd);
    if (top == NULL) {
        close(proc_fd);
        Py_DECREF(owners);
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, proc);
    }
    /* The pids first, as the Python lists them before it looks at any. */
    size_t npids = 0, cap = 1024;
    long *pids = PyMem_Malloc(cap * sizeof *pids);
    if (pids == NULL) { closedir(top); Py_DECREF(owners); return PyErr_NoMemory(); }
    struct dirent *e;
    while ((e = readdir(top)) != NULL) {
        if (!all_digits(e->d_name)) continue;
        if (npids == cap) {
            long *more = PyMem_Realloc(pids, 2 * cap * sizeof *pids);
            if (more == NULL) { PyMem_Free(pids); closedir(top); Py_DECREF(owners);
                                return PyErr_NoMemory(); }
            pids = more;
            cap *= 2;
        }
        pids[npids++] = strtol(e->d_name, NULL, 10);
    }
    char path[64], target[64];
    for (size_t i = 0; i < npids; i++) {
        snprintf(path, sizeof path, "%ld/fd", pids[i]);
        /* readlink relative to the open fd directory (the Python does the same) */
        int dir_fd = openat(proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) continue;
        DIR *fds = fdopendir(dir_fd);
        if (fds == NULL) { close(dir_fd); continue; }
        PyObject *process = NULL;
        while ((e = readdir(fds)) != NULL) {
            if (e->d_name[0] == '.') continue;
            ssize_t n = readlinkat(dir_fd, e->d_name, target, sizeof target);
            if (n <= 0 || n >= (ssize_t)sizeof target) continue;
            unsigned long inode = socket_inode(target, n);
            if (inode == 0) continue;
            if (process == NULL) {
                process = PyObject_CallFunction(process_of, "l", pids[i]);
                if (process == NULL) goto error;
                if (process == Py_None) break;
            }
            if (add_owner(owners, owner_type, inode, process, strtol(e->d_name, NULL, 10)))
                goto error;
            continue;
        error:
            Py_XDECREF(process);
            closedir(fds);
            PyMem_Free(pids);
            closedir(top);
            Py_DECREF(owners);
            return NULL;
        }
        Py_XDECREF(process);
        closedir(fds);
    }
    PyMem_Free(pids);
    closedir(top);
    return owners;
}

/* ------------------------------------------------------------------ */
/* rows_json                                                           */

typedef struct { char *p; size_t len, cap; } Buf;

static int grow(Buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more) cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (p == NULL) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(Buf *b, const char *s, size_t n) {
    if (grow(b, n)) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}
#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

static int put_u64(Buf *b, unsigned long long v) {
    char tmp[24], *end = tmp + sizeof tmp, *p = end;
    do { *--p = (char)('0' + v % 10); v /= 10; } while (v);
    return put(b, p, (size_t)(end - p));
}

/* str(obj), as an f-string writes it: plain ints fast, anything else by str(). */
static int put_str_of(Buf *b, PyObject *obj) {
    if (PyLong_CheckExact(obj)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (!overflow && v >= 0) return put_u64(b, (unsigned long long)v);
        if (!overflow && v != -1) {
            char tmp[24];
            int n = snprintf(tmp, sizeof tmp, "%lld", v);
            return put(b, tmp, (size_t)n);
        }
        if (PyErr_Occurred()) return -1;
    }
    PyObject *text = PyObject_Str(obj);
    if (text == NULL) return -1;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = u == NULL ? -1 : put(b, u, (size_t)n);
    Py_DECREF(text);
    return rc;
}

/* The inside of json.dumps(text, ensure_ascii=False), without the quotes:
 * '"' and '\\' escaped, \b \f \n \r \t by name, other controls as \u00xx. */
static int put_escaped(Buf *b, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "rows_json: a string field is not a str");
        return -1;
    }
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(text, &n);
    if (u == NULL) return -1;
    if (grow(b, (size_t)n * 6)) return -1;
    char *o = b->p + b->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: o += sprintf(o, "u%04x", c);
        }
    }
    b->len = (size_t)(o - b->p);
    return 0;
}

static int put_quoted(Buf *b, PyObject *text) {
    if (PUTS(b, "\"") || put_escaped(b, text) || PUTS(b, "\"")) return -1;
    return 0;
}

/* "<addr>:<port or *>" or "[<addr>]:<port or *>": SockInfo.local/.peer, escaped. */
static int put_endpoint(Buf *b, int inet6, PyObject *addr, PyObject *port) {
    if (PUTS(b, "\"")) return -1;
    if (inet6 && PUTS(b, "[")) return -1;
    if (put_escaped(b, addr)) return -1;
    if (inet6 ? PUTS(b, "]:") : PUTS(b, ":")) return -1;
    int truth = PyObject_IsTrue(port);
    if (truth < 0) return -1;
    if (truth ? put_str_of(b, port) : PUTS(b, "*")) return -1;
    return PUTS(b, "\"");
}

/* The state's JSON text (json.dumps(state.value)), by state object: a table
 * has a handful of states and Enum.value is a Python-level property. */
#define STATE_CACHE 32
static struct { PyObject *state; char text[32]; size_t len; } state_cache[STATE_CACHE];

static int put_state(Buf *b, PyObject *state) {
    for (int i = 0; i < STATE_CACHE; i++) {
        if (state_cache[i].state == state) return put(b, state_cache[i].text, state_cache[i].len);
        if (state_cache[i].state == NULL) break;
    }
    PyObject *value = PyObject_GetAttr(state, s_value);
    if (value == NULL) return -1;
    size_t start = b->len;
    int rc = put_quoted(b, value);
    Py_DECREF(value);
    if (rc) return -1;
    size_t len = b->len - start;
    for (int i = 0; i < STATE_CACHE && len < sizeof state_cache[0].text; i++) {
        if (state_cache[i].state == NULL) {
            Py_INCREF(state);
            state_cache[i].state = state;
            memcpy(state_cache[i].text, b->p + start, len);
            state_cache[i].len = len;
            break;
        }
    }
    return 0;
}

static int put_field(Buf *b, const char *name, unsigned long long v) {
    if (put(b, name, strlen(name))) return -1;
    return put_u64(b, v);
}

/* view._tcp_info_text: the struct tcp_info fields --json shows. */
static int put_tcp_info(Buf *b, PyObject *raw) {
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "rows_json: tcp_info is not bytes");
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    if (n < TCP_INFO_SIZE) {
        fail("sock_diag: tcp_info is %zd bytes, need at least %d", n, TCP_INFO_SIZE);
        return -1;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(raw);
#define U32F(i) u32_at(p + 8 + 4 * ((i) - 8))
    if (put_field(b, ", \"tcp_info\": {\"rto_us\": ", U32F(8))
        || put_field(b, ", \"rtt_us\": ", U32F(23))
        || put_field(b, ", \"rttvar_us\": ", U32F(24))
        || put_field(b, ", \"snd_mss\": ", U32F(10))
        || put_field(b, ", \"rcv_mss\": ", U32F(11))
        || put_field(b, ", \"snd_cwnd\": ", U32F(26))
        || put_field(b, ", \"unacked\": ", U32F(12))
        || put_field(b, ", \"retransmits\": ", p[2])
        || put_field(b, ", \"probes\": ", p[3])
        || put_field(b, ", \"backoff\": ", p[4])
        || put_field(b, ", \"last_data_sent_ms\": ", U32F(17))
        || put_field(b, ", \"last_data_recv_ms\": ", U32F(19))
        || put_field(b, ", \"last_ack_recv_ms\": ", U32F(20))
        || PUTS(b, "}"))
        return -1;
#undef U32F
    return 0;
}

static int put_named(Buf *b, const char *name, PyObject *value) {
    if (put(b, name, strlen(name))) return -1;
    return put_str_of(b, value);
}

static int put_owners(Buf *b, PyObject *owners) {
    PyObject *seq = PySequence_Fast(owners, "rows_json: owners is not a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int rc = PUTS(b, ", \"owners\": [");
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *process = PyObject_GetAttr(o, s_process);
        PyObject *pid = process ? PyObject_GetAttr(process, s_pid) : NULL;
        PyObject *fd = PyObject_GetAttr(o, s_fd);
        rc = (pid == NULL || fd == NULL
              || (i && PUTS(b, ", "))
              || put_named(b, "{\"pid\": ", pid)
              || put_named(b, ", \"fd\": ", fd)
              || PUTS(b, "}")) ? -1 : 0;
        Py_XDECREF(process);
        Py_XDECREF(pid);
        Py_XDECREF(fd);
    }
    Py_DECREF(seq);
    if (rc) return -1;
    return PUTS(b, "]");
}

static PyObject *tuple_item(PyObject *t, Py_ssize_t i, Py_ssize_t need) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < need) {
        PyErr_SetString(PyExc_TypeError, "rows_json: a row or a socket is not a tuple of its fields");
        return NULL;
    }
    return PyTuple_GET_ITEM(t, i);
}

/* One row as view.rows_json_text writes it. */
static int put_row(Buf *b, PyObject *row) {
    PyObject *s = tuple_item(row, 0, 3);
    if (s == NULL) return -1;
    PyObject *owners = PyTuple_GET_ITEM(row, 1), *queued_on = PyTuple_GET_ITEM(row, 2);
    if (tuple_item(s, 0, N_FIELDS) == NULL) return -1;
    PyObject **f = ((PyTupleObject *)s)->ob_item;
    long family = PyLong_AsLong(f[F_FAMILY]);
    if (family == -1 && PyErr_Occurred()) return -1;
    int inet6 = family == AF_INET6;
    if (PUTS(b, "{\"state\": ") || put_state(b, f[F_STATE])
        || put_named(b, ", \"linux_state\": ", f[F_LINUX_STATE])
        || (inet6 ? PUTS(b, ", \"family\": \"ipv6\"") : PUTS(b, ", \"family\": \"ipv4\""))
        || PUTS(b, ", \"local\": ") || put_endpoint(b, inet6, f[F_SRC], f[F_SPORT])
        || PUTS(b, ", \"peer\": ") || put_endpoint(b, inet6, f[F_DST], f[F_DPORT])
        || PUTS(b, ", \"src\": ") || put_quoted(b, f[F_SRC])
        || put_named(b, ", \"sport\": ", f[F_SPORT])
        || PUTS(b, ", \"dst\": ") || put_quoted(b, f[F_DST])
        || put_named(b, ", \"dport\": ", f[F_DPORT])
        || put_named(b, ", \"recv_q\": ", f[F_RQUEUE])
        || put_named(b, ", \"send_q\": ", f[F_WQUEUE])
        || PUTS(b, ", \"timer\": ") || put_quoted(b, f[F_TIMER])
        || put_named(b, ", \"timer_expires_ms\": ", f[F_EXPIRES])
        || put_named(b, ", \"retrans\": ", f[F_RETRANS])
        || put_named(b, ", \"uid\": ", f[F_UID])
        || put_named(b, ", \"inode\": ", f[F_INODE])
        || put_named(b, ", \"cookie\": ", f[F_COOKIE]))
        return -1;
    if (f[F_SHUTDOWN] == Py_None ? PUTS(b, ", \"shutdown\": null")
                                 : put_named(b, ", \"shutdown\": ", f[F_SHUTDOWN]))
        return -1;
    if (put_owners(b, owners)) return -1;
    if (queued_on != Py_None) {
        if (tuple_item(queued_on, 0, N_FIELDS) == NULL) return -1;
        PyObject **q = ((PyTupleObject *)queued_on)->ob_item;
        long qfamily = PyLong_AsLong(q[F_FAMILY]);
        if (qfamily == -1 && PyErr_Occurred()) return -1;
        if (PUTS(b, ", \"queued_on\": ")
            || put_endpoint(b, qfamily == AF_INET6, q[F_SRC], q[F_SPORT]))
            return -1;
    }
    if (f[F_STATE] == listen_state
        && (put_named(b, ", \"accept_queue\": ", f[F_RQUEUE])
            || put_named(b, ", \"backlog\": ", f[F_WQUEUE])))
        return -1;
    if (f[F_TCP_INFO] != Py_None && put_tcp_info(b, f[F_TCP_INFO])) return -1;
    return PUTS(b, "}");
}

/* rows_json(rows) -> str: the rows as JSON objects joined by ", ". */
/* Rows come sorted (by state, ports), not in the order their objects were
 * made (the dump's): each row's objects are a few cache misses apart.  The
 * rows a little ahead are fetched while this one is written. */
static void prefetch_row(PyObject **items, Py_ssize_t n, Py_ssize_t i) {
    if (i + 8 < n) __builtin_prefetch(items[i + 8]);
    if (i + 4 < n && PyTuple_Check(items[i + 4]) && PyTuple_GET_SIZE(items[i + 4]) >= 1)
        __builtin_prefetch(PyTuple_GET_ITEM(items[i + 4], 0));
    if (i + 2 < n && PyTuple_Check(items[i + 2]) && PyTuple_GET_SIZE(items[i + 2]) >= 1) {
        PyObject *s = PyTuple_GET_ITEM(items[i + 2], 0);
        if (PyTuple_Check(s) && PyTuple_GET_SIZE(s) == N_FIELDS)
            for (int f = F_LINUX_STATE; f < N_FIELDS; f++)
                __builtin_prefetch(PyTuple_GET_ITEM(s, f));
    }
}

/* One buffer for every call, kept: a --json run makes 20 calls of ~600 KB,
 * and a fresh buffer each time was paid again in page faults. */
static Buf rows_buf;
static int rows_buf_busy;  /* (Enum.value runs Python: another thread may call in meanwhile) */

static PyObject *py_rows_json(PyObject *self, PyObject *rows) {
    if (!configured()) return NULL;
    PyObject *seq = PySequence_Fast(rows, "rows_json: rows is not a sequence");
    if (seq == NULL) return NULL;
    Buf own = {NULL, 0, 0};
    Buf *b = rows_buf_busy ? &own : &rows_buf;
    rows_buf_busy += b == &rows_buf;
    b->len = 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = NULL;
    if (grow(b, (size_t)n * 700)) goto done;  /* about a row with tcp_info */
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        prefetch_row(items, n, i);
        if ((i && PUTS(b, ", ")) || put_row(b, items[i])) goto done;
    }
    out = PyUnicode_DecodeUTF8(b->p ? b->p : "", (Py_ssize_t)b->len, NULL);
done:
    if (b == &rows_buf)
        rows_buf_busy = 0;
    if (b == &own || b->cap > (1u << 24)) {  /* (a caller's huge batch is not kept) */
        PyMem_Free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    Py_DECREF(seq);
    return out;
}


/* ------------------------------------------------------------------ */
/* attach_rows, group_rows, sort_rows                                  */

/* attach_rows(sockets, owner_map, Row, queue_states) -> (rows, pending):
 * view.attach_owners_reference's loop.  Row(s, tuple(owner_map[s.inode]),
 * None) for a socket with an inode, Row(s, (), None) for one without; the
 * indices of those without an inode whose state is in ``queue_states`` are
 * ``pending``: Python looks for the listener they are queued on. */
static PyObject *py_attach_rows(PyObject *self, PyObject *args) {
    PyObject *sockets, *owner_map, *queue_states;
    PyTypeObject *row_type;
    if (!PyArg_ParseTuple(args, "OO!O!O", &sockets, &PyDict_Type, &owner_map, &PyType_Type,
                          &row_type, &queue_states))
        return NULL;
    if (!PyType_IsSubtype(row_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "attach_rows: Row must be a tuple type");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(sockets, "attach_rows: sockets is not a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *rows = PyList_New(n), *pending = PyList_New(0), *empty = PyTuple_New(0);
    if (rows == NULL || pending == NULL || empty == NULL) goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PySequence_Fast_GET_ITEM(seq, i);
        if (tuple_item(s, 0, N_FIELDS) == NULL) goto error;
        PyObject *inode = PyTuple_GET_ITEM(s, F_INODE);
        int has_inode = PyObject_IsTrue(inode);
        if (has_inode < 0) goto error;
        PyObject *owners = empty;
        Py_INCREF(owners);
        if (has_inode) {
            PyObject *found = PyDict_GetItemWithError(owner_map, inode);
            if (found == NULL && PyErr_Occurred()) { Py_DECREF(owners); goto error; }
            if (found != NULL && PyObject_IsTrue(found)) {
                Py_SETREF(owners, PySequence_Tuple(found));
                if (owners == NULL) goto error;
            }
        } else {
            int queued = PySequence_Contains(queue_states, PyTuple_GET_ITEM(s, F_STATE));
            if (queued < 0) { Py_DECREF(owners); goto error; }
            if (queued) {
                PyObject *index = PyLong_FromSsize_t(i);
                int bad = index == NULL || PyList_Append(pending, index);
                Py_XDECREF(index);
                if (bad) { Py_DECREF(owners); goto error; }
            }
        }
        PyObject *row = new_tuple_of(row_type, 3);
        if (row == NULL) { Py_DECREF(owners); goto error; }
        Py_INCREF(s);
        PyTuple_SET_ITEM(row, 0, s);
        PyTuple_SET_ITEM(row, 1, owners);
        Py_INCREF(Py_None);
        PyTuple_SET_ITEM(row, 2, Py_None);
        PyList_SET_ITEM(rows, i, row);
    }
    Py_DECREF(seq);
    Py_DECREF(empty);
    return Py_BuildValue("(NN)", rows, pending);
error:
    Py_DECREF(seq);
    Py_XDECREF(rows);
    Py_XDECREF(pending);
    Py_XDECREF(empty);
    return NULL;
}

/* The process a row is listed under: its owner with the lowest pid (the first
 * of them, as min() picks), or NULL with *key = KERNEL (0) / UNKNOWN (-1). */
static int row_owner(PyObject *row, PyObject **process, PyObject **key) {
    PyObject *s = PyTuple_GET_ITEM(row, 0), *owners = PyTuple_GET_ITEM(row, 1);
    *process = NULL;
    *key = NULL;
    PyObject *seq = PySequence_Fast(owners, "group_rows: owners is not a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyObject_GetAttr(PySequence_Fast_GET_ITEM(seq, i), s_process);
        PyObject *pid = p ? PyObject_GetAttr(p, s_pid) : NULL;
        if (pid == NULL) { Py_XDECREF(p); goto error; }
        int lower = 1;
        if (*key != NULL) {
            lower = PyObject_RichCompareBool(pid, *key, Py_LT);
            if (lower < 0) { Py_DECREF(p); Py_DECREF(pid); goto error; }
        }
        if (lower) {
            Py_XSETREF(*process, p);
            Py_XSETREF(*key, pid);
        } else {
            Py_DECREF(p);
            Py_DECREF(pid);
        }
    }
    Py_DECREF(seq);
    if (*key == NULL) {
        int has_inode = PyObject_IsTrue(PyTuple_GET_ITEM(s, F_INODE));
        if (has_inode < 0) return -1;
        *key = PyLong_FromLong(has_inode ? -1 : 0);
        if (*key == NULL) return -1;
    }
    return 0;
error:
    Py_DECREF(seq);
    Py_CLEAR(*process);
    Py_CLEAR(*key);
    return -1;
}

/* group_rows(rows, kept_states, in_scope, ProcessGroup) -> [ProcessGroup]:
 * view.group_by_process_reference's loop, the groups in the order first seen
 * (the caller drops the empty ones and sorts).  ``in_scope``: None, or the
 * filter's port/host/pid test, called per row in a kept state. */
static PyObject *py_group_rows(PyObject *self, PyObject *args) {
    PyObject *rows, *kept, *in_scope, *factory;
    if (!PyArg_ParseTuple(args, "OOOO", &rows, &kept, &in_scope, &factory)) return NULL;
    if (!configured()) return NULL;
    PyObject *seq = PySequence_Fast(rows, "group_rows: rows is not a sequence");
    if (seq == NULL) return NULL;
    /* key -> (group, counts, rows, listeners) */
    PyObject *groups = PyDict_New(), *order = PyList_New(0), *one = PyLong_FromLong(1);
    if (groups == NULL || order == NULL || one == NULL) goto error;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
        if (tuple_item(row, 0, 3) == NULL || tuple_item(PyTuple_GET_ITEM(row, 0), 0, N_FIELDS) == NULL)
            goto error;
        PyObject *s = PyTuple_GET_ITEM(row, 0), *state = PyTuple_GET_ITEM(s, F_STATE);
        PyObject *process, *key;
        if (row_owner(row, &process, &key)) goto error;
        PyObject *entry = PyDict_GetItemWithError(groups, key);
        if (entry == NULL) {
            if (PyErr_Occurred()) { Py_XDECREF(process); Py_DECREF(key); goto error; }
            PyObject *group = PyObject_CallFunctionObjArgs(factory, process ? process : Py_None,
                                                           key, NULL);
            if (group == NULL) { Py_XDECREF(process); Py_DECREF(key); goto error; }
            entry = Py_BuildValue("(NNNN)", group, PyObject_GetAttr(group, s_counts),
                                  PyObject_GetAttr(group, s_rows),
                                  PyObject_GetAttr(group, s_listeners));
            int bad = entry == NULL || PyDict_SetItem(groups, key, entry) || PyList_Append(order, PyTuple_GET_ITEM(entry, 0));
            Py_XDECREF(entry);  /* the dict holds it */
            if (bad) { Py_XDECREF(process); Py_DECREF(key); goto error; }
        }
        Py_XDECREF(process);
        Py_DECREF(key);
        PyObject *counts = PyTuple_GET_ITEM(entry, 1);
        PyObject *count = PyDict_GetItemWithError(counts, state);
        if (count == NULL && PyErr_Occurred()) goto error;
        PyObject *more = count ? PyNumber_Add(count, one) : (Py_INCREF(one), one);
        if (more == NULL) goto error;
        int bad = PyDict_SetItem(counts, state, more);
        Py_DECREF(more);
        if (bad) goto error;
        if (state == listen_state && PyList_Append(PyTuple_GET_ITEM(entry, 3), s)) goto error;
        int keep = PySet_Contains(kept, state);
        if (keep < 0) goto error;
        if (keep && in_scope != Py_None) {
            PyObject *r = PyObject_CallOneArg(in_scope, row);
            if (r == NULL) goto error;
            keep = PyObject_IsTrue(r);
            Py_DECREF(r);
            if (keep < 0) goto error;
        }
        if (keep && PyList_Append(PyTuple_GET_ITEM(entry, 2), row)) goto error;
    }
    Py_DECREF(seq);
    Py_DECREF(groups);
    Py_DECREF(one);
    return order;
error:
    Py_DECREF(seq);
    Py_XDECREF(groups);
    Py_XDECREF(order);
    Py_XDECREF(one);
    return NULL;
}

typedef struct { uint64_t key; Py_ssize_t index; PyObject *row; } Keyed;

static int by_key(const void *a, const void *b) {
    const Keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;  /* stable, as list.sort */
}

static int port_of(PyObject *obj, uint64_t *out) {
    if (!PyLong_CheckExact(obj)) return 0;
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    if (v < 0 || v > 65535) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* sort_rows(rows, order) -> bool: rows.sort(key=(order[state], sport, dport))
 * in place (view._row_order), the key packed into one integer.  False, rows
 * untouched, when a port is not a 16-bit int (the caller sorts in Python). */
static PyObject *py_sort_rows(PyObject *self, PyObject *args) {
    PyObject *rows, *order;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &rows, &PyDict_Type, &order)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    Keyed *keyed = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *keyed);
    if (keyed == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (tuple_item(row, 0, 3) == NULL || tuple_item(PyTuple_GET_ITEM(row, 0), 0, N_FIELDS) == NULL) {
            PyMem_Free(keyed);
            return NULL;
        }
        PyObject **f = ((PyTupleObject *)PyTuple_GET_ITEM(row, 0))->ob_item;
        PyObject *rank = PyDict_GetItemWithError(order, f[F_STATE]);
        uint64_t r, sport, dport;
        if (rank == NULL) {
            PyMem_Free(keyed);
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, f[F_STATE]);
            return NULL;
        }
        if (!port_of(rank, &r) || !port_of(f[F_SPORT], &sport) || !port_of(f[F_DPORT], &dport)) {
            PyMem_Free(keyed);
            Py_RETURN_FALSE;
        }
        keyed[i].key = r << 32 | sport << 16 | dport;
        keyed[i].index = i;
        keyed[i].row = row;
    }
    qsort(keyed, (size_t)n, sizeof *keyed, by_key);
    /* The list keeps the same references, in the new order. */
    for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(rows, i, keyed[i].row);
    PyMem_Free(keyed);
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"configure", py_configure, METH_VARARGS,
     "configure(SockInfo, states, timers, TcplabError, raise_netlink_error, LISTEN)"},
    {"parse_dump", py_parse_dump, METH_VARARGS,
     "parse_dump(data, seq=None) -> (sockets, done): diag.parse_dump in C"},
    {"socket_owners", py_socket_owners, METH_VARARGS,
     "socket_owners(proc, process_of, SocketOwner) -> {inode: [owner]}: procs.socket_owners in C"},
    {"rows_json", py_rows_json, METH_O, "rows_json(rows) -> str: view.rows_json_text in C"},
    {"attach_rows", py_attach_rows, METH_VARARGS,
     "attach_rows(sockets, owner_map, Row, queue_states) -> (rows, pending)"},
    {"group_rows", py_group_rows, METH_VARARGS,
     "group_rows(rows, kept_states, in_scope, ProcessGroup) -> [ProcessGroup]"},
    {"sort_rows", py_sort_rows, METH_VARARGS, "sort_rows(rows, order) -> bool, in place"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_diag",
                                       "tcplab sockets' per-socket loops in C", -1, methods};

PyMODINIT_FUNC PyInit__diag(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_value, "value"}, {&s_process, "process"}, {&s_pid, "pid"}, {&s_fd, "fd"},
        {&s_counts, "counts"}, {&s_rows, "rows"}, {&s_listeners, "listeners"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    return PyModule_Create(&moduledef);
}
