/* Objects that several processes share: anonymous shared memory (memfd +
 * mmap, mode 0600) or a socket, one id in every process, and the messages
 * that carry encoded values with these objects' descriptors between them. */
#ifndef BRAID_SHM_H
#define BRAID_SHM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
    BRAID_SHM_RING,  /* braid_ring_t: a Queue's byte ring (mpring.c) */
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
    void *mem;                             /* the mapping (NULL for CONN) */
    int flags;                             /* owner's use (CONN: readable 1, writable 2) */
    pthread_mutex_t rmu;                   /* CONN: one reader at a time in this process */
    braid_rbuf_t *rb;                      /* CONN: read-ahead, made on first recv */
    pthread_mutex_t wmu;                   /* CONN: guards the feeder's list below */
    struct braid_feed_item *whead, *wtail; /* CONN: messages the feeder still sends */
    int wbusy;                             /* CONN: a feeder thread is running */
    int wnojoin;                           /* CONN: exit does not wait for its feeder */
    pid_t wpid; /* CONN: the process the feeder fields above belong to (fork) */
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
/* Internal (shm.c, feed.c): every message on a connection is at least
 * BRAID_MSG_MIN bytes (zeros pad its header: after the descriptor records,
 * before the data), so a receiver takes a small message whole with one
 * read of BRAID_MSG_MIN bytes, never reading into the next one. The
 * padding of a message with dlen bytes of header (8 + records) and len
 * bytes of data: */
#define BRAID_MSG_MIN 128
static inline size_t braid__msg_pad(size_t dlen, size_t len)
{
    return dlen + len < BRAID_MSG_MIN ? BRAID_MSG_MIN - dlen - len : 0;
}
/* Internal (shm.c, feed.c): a message's header for buf (length, count,
 * one descriptor record per shared object; malloc'ed, *hlen bytes) and in
 * fds the objects' descriptors; and one sendmsg of a then b with the fds
 * (flags added to MSG_NOSIGNAL), returning sendmsg's result. The header
 * includes the padding. */
int braid__msg_head(const braid_buf_t *buf, braid_object_t **bad, uint8_t **head, size_t *hlen,
                    int *fds);
ssize_t braid__msg_sendmsg(int sock, const void *a, size_t alen, const void *b, size_t blen,
                           const int *fds, size_t nfds, int flags);

/* Queue-style send that never waits for the reader: sends buf as one
 * message holding lock (a process-shared Lock over the writing end) if it
 * can at once; otherwise (the socket full, the lock or the feeder busy) a
 * copy goes to the connection's feeder thread, which sends messages in
 * order, each under lock. 0, BRAID_ETYPE (*bad set), BRAID_ETOOBIG,
 * BRAID_ENOMEM, BRAID_EOS (errno). Thread-safe. */
int braid_conn_put(braid_shm_t *c, braid_shm_t *lock, const braid_buf_t *buf, braid_object_t **bad);
/* The same for a Queue with a ring (a BRAID_SHM_RING segment; NULL: as
 * braid_conn_put): a message without objects goes into the ring when it
 * fits and nothing of the queue is on the socket, with no system call
 * unless a reader sleeps; otherwise onto the socket as above. */
int braid_conn_put_ring(braid_shm_t *c, braid_shm_t *lock, braid_shm_t *ring,
                        const braid_buf_t *buf, braid_object_t **bad);
/* A Queue's receive (the caller holds the queue's read lock): the next
 * message from ring or socket, in the order they were put; sleeps on the
 * socket (a writer wakes it) when both are empty. Results as
 * braid_conn_recv. */
int braid_ring_get(braid_shm_t *c, braid_shm_t *ring, braid_buf_t *out, int64_t deadline,
                   braid_waiter_t *w);
/* The size of a new ring segment, and its set-up (once, by its creator). */
size_t braid_ring_size(void);
void braid_ring_init(braid_shm_t *ring);
/* Waits until c's feeder has sent everything (or deadline): 0 or
 * BRAID_ETIMEOUT. */
int braid_conn_flush(braid_shm_t *c, int64_t deadline);
/* The process's exit (braid_feed_flush_all) does not wait for c's feeder
 * (Python's cancel_join_thread). */
void braid_conn_nojoin(braid_shm_t *c);
/* Waits until every feeder of this process has finished, except those
 * marked wnojoin (process exit, as Python joins its queues' feeders). */
void braid_feed_flush_all(int64_t deadline);
/* Waits until fd is readable (POLLIN/POLLHUP): 1 ready, 0 timeout, or
 * BRAID_ECANCELLED/BRAID_EINTR. */
int braid_fd_wait(int fd, int64_t deadline, braid_waiter_t *w);

#ifdef __cplusplus
}
#endif
#endif
