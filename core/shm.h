/* Objects that several processes share: anonymous shared memory (memfd +
 * mmap, mode 0600) or a socket, one id in every process, and the messages
 * that carry encoded values with these objects' descriptors between them. */
#ifndef BRAID_SHM_H
#define BRAID_SHM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "object.h"
#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    BRAID_SHM_LOCK,  /* braid_plock_t */
    BRAID_SHM_RLOCK, /* braid_plock_t */
    BRAID_SHM_SEM,   /* braid_psem_t */
    BRAID_SHM_EVENT, /* braid_pevent_t */
    BRAID_SHM_VALUE, /* braid_plock_t, then 48 bytes of header, then data */
    BRAID_SHM_CONN,  /* a socket, no memory */
    BRAID_SHM_NKINDS
};

#define MAX_FDS 250 /* descriptors per message, under the kernel's SCM_MAX_FD */

/* A connection's read-ahead: bytes and received descriptors not yet used. */
typedef struct braid_rbuf {
    uint8_t *data;
    size_t pos, len, cap;
    int fds[MAX_FDS];
    size_t nfds;
} braid_rbuf_t;

typedef struct braid_shm {
    braid_object_t base;
    int kind;
    int fd; /* memfd or socket; owned */
    size_t size;
    void *mem;           /* the mapping (NULL for CONN) */
    int flags;           /* owner's use (CONN: readable 1, writable 2) */
    pthread_mutex_t rmu; /* CONN: one reader at a time in this process */
    braid_rbuf_t *rb;    /* CONN: read-ahead, made on first recv */
} braid_shm_t;

/* One object type per kind (metatable names "braid.mp.<Kind>", module
 * "braid.multiprocessing"). */
extern const braid_object_type_t braid_shm_types[BRAID_SHM_NKINDS];

/* A new zeroed segment of size bytes, or a socket object taking fd (size
 * 0). One reference for the caller. 0, BRAID_ENOMEM or BRAID_EOS. */
int braid_shm_new(int kind, size_t size, braid_shm_t **out);
int braid_shm_new_conn(int fd, int flags, braid_shm_t **out);
/* A second object of another kind over the same memory (dup'ed fd, own
 * mapping, own id): a Value's lock. */
int braid_shm_view(braid_shm_t *s, int kind, braid_shm_t **out);
/* The object for a descriptor received from another process: the live one
 * with that id (fd is closed), or a new one taking fd. */
int braid_shm_import(int kind, uint64_t id, size_t size, int flags, int fd, braid_shm_t **out);
/* obj as a shared object, or NULL if it is a process-local one. */
braid_shm_t *braid_shm_of(braid_object_t *obj);

/* Sends buf's bytes as one message on a stream socket, with the
 * descriptors of the shared objects it names (SCM_RIGHTS). BRAID_ETYPE if
 * it names a process-local object (*bad is set to it), BRAID_EOS (errno;
 * EPIPE when the peer is gone), BRAID_ETOOBIG. Not thread-safe per socket. */
int braid_msg_send(int sock, const braid_buf_t *buf, braid_object_t **bad);
/* Receives one message into out (reset first): its bytes, and a reference
 * in out->objs to each shared object it names (imported as needed). 0,
 * BRAID_EEOF (peer closed), BRAID_ETIMEOUT, BRAID_ECANCELLED/BRAID_EINTR,
 * BRAID_ECORRUPT, BRAID_EOS. */
int braid_msg_recv(int sock, braid_buf_t *out, int64_t deadline, braid_waiter_t *w);
/* The same through a read-ahead buffer (braid_msg_recv reads no byte
 * beyond its message, for channels handed over to other readers). */
int braid_msg_recv_rb(int sock, braid_rbuf_t *rb, braid_buf_t *out, int64_t deadline,
                      braid_waiter_t *w);
/* A connection's recv (read ahead, serialised per process) and poll. */
int braid_conn_recv(braid_shm_t *c, braid_buf_t *out, int64_t deadline, braid_waiter_t *w);
int braid_conn_poll(braid_shm_t *c, int64_t deadline, braid_waiter_t *w);
/* Writes all n bytes to the stream socket sock (no SIGPIPE): 0 or
 * BRAID_EOS (errno). Blocks while the socket is full. */
int braid_fd_send_all(int sock, const void *p, size_t n);
/* Waits until fd is readable (POLLIN/POLLHUP): 1 ready, 0 timeout, or
 * BRAID_ECANCELLED/BRAID_EINTR. */
int braid_fd_wait(int fd, int64_t deadline, braid_waiter_t *w);

#ifdef __cplusplus
}
#endif
#endif
