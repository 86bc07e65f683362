/* The fan-out's per-viewer, per-frame loop in C (relay/media/udplink.py is its caller).
 *
 * One call sends one frame of one rung to one viewer: for each packet it writes the 12-byte RTP
 * header and the viewer's header-extension block in front of the shared payload, SRTP-protects
 * it with libsrtp, and then sends the frame as its GSO runs (one sendmsg with UDP_SEGMENT per
 * run). No Python object is made per packet. The Python loop in relay/media/fanout.py
 * (send_frame) is the reference: for the same keys and input both put the same bytes on the
 * wire (tests/unit/test_sendloop.py).
 *
 * libsrtp is not linked here: the caller passes the address of srtp_protect from the library
 * aiortc already loaded (pylibsrtp's binding, libsrtp 2.x: srtp_protect(ctx, buffer, &len)) and
 * the session's srtp_t, so both paths protect through the very same code and session state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define MAX_PACKET (1500 - 16 - 128) /* as udplink.MAX_PACKET: pylibsrtp's buffer less trailers */
#define SCRATCH 2048                 /* one packet plus libsrtp's largest trailer, aligned */

typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

/* Protected packets of the frame being sent, back to back; offsets[i] is where packet i starts.
 * Grown as needed and kept between calls (the GIL is held throughout). */
static unsigned char *frame_buf = NULL;
static size_t frame_cap = 0;
static size_t *offsets = NULL;
static size_t offsets_cap = 0;

static int reserve(size_t bytes, size_t packets) {
    if (bytes > frame_cap) {
        size_t cap = bytes < 65536 ? 65536 : bytes * 2;
        unsigned char *grown = PyMem_RawRealloc(frame_buf, cap);
        if (grown == NULL) return -1;
        frame_buf = grown;
        frame_cap = cap;
    }
    if (packets + 1 > offsets_cap) {
        size_t cap = packets + 1 < 256 ? 256 : (packets + 1) * 2;
        size_t *grown = PyMem_RawRealloc(offsets, cap * sizeof(size_t));
        if (grown == NULL) return -1;
        offsets = grown;
        offsets_cap = cap;
    }
    return 0;
}

static int is_gso_refusal(int err) {
    return err == EIO || err == EINVAL || err == EMSGSIZE || err == EOPNOTSUPP || err == EAFNOSUPPORT;
}

static unsigned long as_ulong(PyObject *value, int *failed) {
    unsigned long out = PyLong_AsUnsignedLongMask(value);
    if (out == (unsigned long)-1 && PyErr_Occurred()) *failed = 1;
    return out;
}

/* send_frame(fd, sockaddr, protect, ctx, gso, b0, pt, seq, ts, ssrc, ext, tcc_pad, tseq,
 *            payloads, runs) -> (status, sent, refused_errno)
 *
 * sockaddr: bytes from sockaddr(); protect, ctx: addresses of srtp_protect and the srtp_t;
 * ext: the extension block (with transport-cc: up to and including that element's id byte);
 * tcc_pad: -1 without transport-cc, else the zero bytes after the 2-byte number tseq (+i per
 * packet); payloads: list of bytes; runs: list of (start, end) GSO runs. status: 0, a libsrtp
 * error code (nothing was sent), or -1 for a packet over MAX_PACKET (nothing was sent).
 * refused_errno: nonzero when the kernel refused GSO (the runs were then sent packet by packet).
 */
static PyObject *send_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 15) {
        PyErr_SetString(PyExc_TypeError, "send_frame takes 15 arguments");
        return NULL;
    }
    int failed = 0;
    int fd = (int)PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    char *addr;
    Py_ssize_t addr_len;
    if (PyBytes_AsStringAndSize(args[1], &addr, &addr_len) < 0) return NULL;
    srtp_protect_fn protect = (srtp_protect_fn)PyLong_AsVoidPtr(args[2]);
    void *ctx = PyLong_AsVoidPtr(args[3]);
    if (PyErr_Occurred()) return NULL;
    int gso = PyObject_IsTrue(args[4]);
    unsigned long b0 = as_ulong(args[5], &failed);
    unsigned long pt = as_ulong(args[6], &failed);
    unsigned long seq = as_ulong(args[7], &failed);
    unsigned long ts = as_ulong(args[8], &failed);
    unsigned long ssrc = as_ulong(args[9], &failed);
    if (failed || gso < 0) return NULL;
    char *ext;
    Py_ssize_t ext_len;
    if (PyBytes_AsStringAndSize(args[10], &ext, &ext_len) < 0) return NULL;
    long tcc_pad = PyLong_AsLong(args[11]);
    if (tcc_pad == -1 && PyErr_Occurred()) return NULL;
    unsigned long tseq = as_ulong(args[12], &failed);
    if (failed) return NULL;
    PyObject *payloads = args[13];
    PyObject *runs = args[14];
    if (!PyList_Check(payloads) || !PyList_Check(runs)) {
        PyErr_SetString(PyExc_TypeError, "payloads and runs must be lists");
        return NULL;
    }
    if (tcc_pad > 3) {
        PyErr_SetString(PyExc_ValueError, "tcc_pad is at most 3");
        return NULL;
    }

    Py_ssize_t count = PyList_GET_SIZE(payloads);
    size_t head_len = 12 + (size_t)ext_len + (tcc_pad >= 0 ? 2 + (size_t)tcc_pad : 0);
    size_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *payload = PyList_GET_ITEM(payloads, i);
        if (!PyBytes_Check(payload)) {
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
            return NULL;
        }
        size_t size = head_len + (size_t)PyBytes_GET_SIZE(payload);
        if (size > MAX_PACKET) return Py_BuildValue("(iii)", -1, 0, 0);
        total += size + 16 + 128;
    }
    if (reserve(total, (size_t)count) < 0) return PyErr_NoMemory();

    /* Protect every packet first: a libsrtp refusal then sends nothing, as in the Python path. */
    _Alignas(16) unsigned char scratch[SCRATCH];
    size_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *payload = PyList_GET_ITEM(payloads, i);
        Py_ssize_t payload_len = PyBytes_GET_SIZE(payload);
        unsigned long s = (seq + (unsigned long)i) & 0xFFFF;
        unsigned char *p = scratch;
        p[0] = (unsigned char)b0;
        p[1] = (unsigned char)((pt | (i == count - 1 ? 0x80 : 0)) & 0xFF);
        p[2] = (unsigned char)(s >> 8);
        p[3] = (unsigned char)s;
        p[4] = (unsigned char)(ts >> 24);
        p[5] = (unsigned char)(ts >> 16);
        p[6] = (unsigned char)(ts >> 8);
        p[7] = (unsigned char)ts;
        p[8] = (unsigned char)(ssrc >> 24);
        p[9] = (unsigned char)(ssrc >> 16);
        p[10] = (unsigned char)(ssrc >> 8);
        p[11] = (unsigned char)ssrc;
        p += 12;
        memcpy(p, ext, (size_t)ext_len);
        p += ext_len;
        if (tcc_pad >= 0) {
            unsigned long t = (tseq + (unsigned long)i) & 0xFFFF;
            *p++ = (unsigned char)(t >> 8);
            *p++ = (unsigned char)t;
            for (long k = 0; k < tcc_pad; k++) *p++ = 0;
        }
        memcpy(p, PyBytes_AS_STRING(payload), (size_t)payload_len);
        int len = (int)(head_len + (size_t)payload_len);
        int status = protect(ctx, scratch, &len);
        if (status != 0) return Py_BuildValue("(iii)", status, 0, 0);
        offsets[i] = at;
        memcpy(frame_buf + at, scratch, (size_t)len);
        at += (size_t)len;
    }
    offsets[count] = at;

    /* Then one sendmsg per GSO run (plain sendto for a run of one or where GSO is refused). */
    int sent = 0;
    int refused = 0;
    Py_ssize_t nruns = PyList_GET_SIZE(runs);
    for (Py_ssize_t r = 0; r < nruns; r++) {
        PyObject *run = PyList_GET_ITEM(runs, r);
        if (!PyTuple_Check(run) || PyTuple_GET_SIZE(run) != 2) {
            PyErr_SetString(PyExc_TypeError, "runs must be (start, end) tuples");
            return NULL;
        }
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(run, 0));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(run, 1));
        if (PyErr_Occurred()) return NULL;
        if (start < 0 || end > count || start >= end) {
            PyErr_SetString(PyExc_ValueError, "a run is outside the frame");
            return NULL;
        }
        if (gso && end - start > 1) {
            uint16_t segment = (uint16_t)(offsets[start + 1] - offsets[start]);
            struct iovec iov = {frame_buf + offsets[start], offsets[end] - offsets[start]};
            union {
                char buf[CMSG_SPACE(sizeof(uint16_t))];
                struct cmsghdr align;
            } control;
            memset(&control, 0, sizeof(control));
            struct msghdr msg = {0};
            msg.msg_name = addr;
            msg.msg_namelen = (socklen_t)addr_len;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof(control.buf);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            memcpy(CMSG_DATA(cm), &segment, sizeof(segment));
            if (sendmsg(fd, &msg, 0) >= 0) {
                sent += (int)(end - start);
                continue;
            }
            if (!is_gso_refusal(errno)) continue; /* a full buffer (EAGAIN) or a dead socket: dropped */
            refused = errno;
            gso = 0; /* and this run goes packet by packet below */
        }
        for (Py_ssize_t i = start; i < end; i++) {
            if (sendto(fd, frame_buf + offsets[i], offsets[i + 1] - offsets[i], 0, (struct sockaddr *)addr,
                       (socklen_t)addr_len) >= 0)
                sent++;
        }
    }
    return Py_BuildValue("(iii)", 0, sent, refused);
}

/* sockaddr(host, port) -> bytes: the struct sockaddr of a numeric address, for send_frame. */
static PyObject *make_sockaddr(PyObject *self, PyObject *args) {
    (void)self;
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "si", &host, &port)) return NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    struct addrinfo *found = NULL;
    int err = getaddrinfo(host, service, &hints, &found);
    if (err != 0 || found == NULL) {
        PyErr_Format(PyExc_ValueError, "not a numeric address: %s (%s)", host, gai_strerror(err));
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)found->ai_addr, (Py_ssize_t)found->ai_addrlen);
    freeaddrinfo(found);
    return out;
}

static PyMethodDef methods[] = {
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL,
     "Header, SRTP and batched send of one frame to one viewer."},
    {"sockaddr", make_sockaddr, METH_VARARGS, "The struct sockaddr bytes of a numeric (host, port)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sendloop", "The fan-out's per-viewer send loop in C.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__sendloop(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "MAX_PACKET", MAX_PACKET) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
