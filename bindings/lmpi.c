/* braid.mpi's C half, built as the plugin braid_mpi.so (lmpi_load.c loads
 * it; braid's functions come through lmpi_api.h's table): MPI start-up (with the codec key
 * broadcast from rank 0), COMM_WORLD's point-to-point and collective calls, and the executor's two
 * ends: rank 0's dispatcher thread and the worker ranks' serve loop. Built only when CMake finds
 * MPI. Every MPI call goes through mpi_mu (MPI_THREAD_SERIALIZED); nothing blocks inside MPI:
 * requests are polled, so every wait has a deadline and can be cancelled. */

#include <dlfcn.h>
#include <errno.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "future.h"
#include "lmpi_api.h"

#define TAG_TASK 1
#define TAG_RESULT 2
#define TAG_STOP 3
#ifndef SPIN
#define SPIN 8
#endif
#ifndef YIELDS
#define YIELDS 64
#endif
#ifndef STEP_NS
#define STEP_NS 10000
#endif
#define PIPELINE 8 /* tasks in flight per worker rank */

static pthread_mutex_t mpi_mu = PTHREAD_MUTEX_INITIALIZER;
static int mpi_rank, mpi_size, mpi_inited;
static MPI_Comm exec_comm = MPI_COMM_NULL; /* the executor's traffic, apart from users' tags */

/* Where each rank runs (rank 0 only): a dead worker on this host is seen
 * by its pid; OpenMPI 4 reports no peer's death through MPI itself. */
typedef struct where {
    int32_t pid;
    char host[60];
} where_t;
static where_t *ranks_at;
static int lost_any; /* a worker died: MPI_Finalize would wait for it forever */

#define LOCKED(stmt)                                                                               \
    do {                                                                                           \
        pthread_mutex_lock(&mpi_mu);                                                               \
        stmt;                                                                                      \
        pthread_mutex_unlock(&mpi_mu);                                                             \
    } while (0)

static int workers_stopped; /* rank 0 told every worker to stop */

/* At exit: MPI_Finalize, or, when this rank ends with an error while the
 * others may still wait for it, MPI_Abort (as `python -m mpi4py` does),
 * so the job ends instead of hanging in recv or in MPI_Finalize. */
static void mpi_end_at_exit(int status, void *arg)
{
    (void)arg;
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin)
        return;
    if (lost_any) /* MPI_Finalize would wait for the dead rank: end the job */
        MPI_Abort(MPI_COMM_WORLD, status);
    if (status != 0 && !workers_stopped)
        MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
}

/* The pause after `idle` empty polls: none at first (spinning), then the
 * core is yielded to whoever else wants it (here, returning 0), then sleeps
 * growing to 1 ms, so a waiting rank does not hold a core. */
static int64_t backoff_ns(int idle)
{
    if (idle < SPIN)
        return 0;
    if (idle < SPIN + YIELDS) {
        sched_yield();
        return 0;
    }
    int64_t ns = (int64_t)(idle - SPIN - YIELDS + 1) * STEP_NS;
    return ns > 1000000 ? 1000000 : ns;
}

/* One idle pause in a Lua-facing wait: 0, BRAID_ETIMEOUT or
 * BRAID_ECANCELLED/EINTR. */
static int pause_for(lua_State *L, int idle, int64_t deadline)
{
    int64_t now = braid_clock_now();
    if (now >= deadline)
        return BRAID_ETIMEOUT;
    int64_t ns = backoff_ns(idle);
    braid_waiter_t *w = lbraid_ctx(L)->waiter;
    if (!w)
        w = braid_waiter_current();
    int64_t until = now + ns < deadline ? now + ns : deadline;
    if (!w) {
        braid_clock_sleep_until(until);
        return 0;
    }
    braid_waiter_prepare(w);
    int rc = ns ? braid_waiter_park(w, until) : 0;
    if (rc == BRAID_ECANCELLED || rc == BRAID_EINTR)
        return rc;
    if (!ns && braid_waiter_take_cancel(w))
        return BRAID_ECANCELLED;
    return 0;
}

static int mpi_fail(lua_State *L, int err, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(err, s, &n);
    return lbraid_error(L, "OSError", "%s: %s", what, s);
}

/* Polls req until it completes, the deadline passes or the call is
 * cancelled (the request is then cancelled too). */
static void wait_request(lua_State *L, MPI_Request *req, int64_t deadline, const char *what)
{
    for (int idle = 0;; idle++) {
        int done = 0, err;
        LOCKED(err = MPI_Test(req, &done, MPI_STATUS_IGNORE));
        if (err != MPI_SUCCESS)
            mpi_fail(L, err, what);
        if (done)
            return;
        int rc = pause_for(L, idle, deadline);
        if (rc) {
            LOCKED(MPI_Cancel(req); MPI_Request_free(req));
            if (rc == BRAID_ETIMEOUT)
                lbraid_error(L, "Timeout", "%s timed out", what);
            lbraid_core_error(L, rc, what);
        }
    }
}

static void check_inited(lua_State *L)
{
    if (!mpi_inited)
        luaL_error(L, "braid.mpi is not initialised");
}

/* Encodes the value at idx for another rank: braid objects are names
 * valid in one process only, so they cannot cross. */
static braid_buf_t *encode_for_rank(lua_State *L, int idx, const char *root)
{
    braid_buf_t *b = lbraid_take_scratch(L);
    lbraid_encode(L, idx, b, root);
    if (b->nobjs)
        lbraid_error(L,
                     "TypeError",
                     "%s: braid objects (queues, locks, futures...) cannot cross MPI ranks",
                     root);
    return b;
}

/* _init() -> rank, size: MPI_Init_thread (once), errors returned instead
 * of aborting, and rank 0's codec key given to every rank. */
static int lmpi_init(lua_State *L)
{
    if (!mpi_inited) {
        int flag = 0, provided;
        MPI_Initialized(&flag);
        if (!flag) {
            if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
                return lbraid_error(L, "OSError", "MPI_Init_thread failed");
            if (provided < MPI_THREAD_SERIALIZED) {
                MPI_Abort(MPI_COMM_WORLD, 1);
                return 0;
            }
            /* the exit handler lives in this code: when it is braid.so,
             * stock lua5.4 unloads it at lua_close, before exit runs it */
            Dl_info info;
            if (dladdr((void *)mpi_end_at_exit, &info) && info.dli_fname)
                dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
            on_exit(mpi_end_at_exit, NULL);
        }
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
        MPI_Comm_dup(MPI_COMM_WORLD, &exec_comm);
        MPI_Comm_set_errhandler(exec_comm, MPI_ERRORS_RETURN);
        uint8_t key[16];
        braid_codec_get_key(key); /* draws it on rank 0 */
        MPI_Bcast(key, 16, MPI_BYTE, 0, exec_comm);
        braid_codec_set_key(key);
        where_t me = {.pid = (int32_t)getpid()};
        gethostname(me.host, sizeof me.host - 1);
        if (mpi_rank == 0)
            ranks_at = calloc((size_t)mpi_size, sizeof *ranks_at);
        MPI_Gather(&me, sizeof me, MPI_BYTE, ranks_at, sizeof me, MPI_BYTE, 0, exec_comm);
        mpi_inited = 1;
    }
    lua_pushinteger(L, mpi_rank);
    lua_pushinteger(L, mpi_size);
    return 2;
}

static int check_rank(lua_State *L, int idx, int any)
{
    lua_Integer r = luaL_checkinteger(L, idx);
    if ((any && r == MPI_ANY_SOURCE) || (r >= 0 && r < mpi_size))
        return (int)r;
    return luaL_argerror(L, idx, lua_pushfstring(L, "rank out of range (0..%d)", mpi_size - 1));
}

static int check_tag(lua_State *L, int idx, int any)
{
    lua_Integer t = luaL_optinteger(L, idx, any ? MPI_ANY_TAG : 0);
    if ((any && t == MPI_ANY_TAG) || (t >= 0 && t <= 32767))
        return (int)t;
    return luaL_argerror(L, idx, "tag must be in 0..32767");
}

/* _send(value, dest, tag, timeout) */
static int lmpi_send(lua_State *L)
{
    check_inited(L);
    int dest = check_rank(L, 2, 0);
    int tag = check_tag(L, 3, 0);
    int64_t deadline = lbraid_opt_deadline(L, 4);
    braid_buf_t *b = encode_for_rank(L, 1, "value");
    if (b->len > INT32_MAX)
        return lbraid_error(L, "ValueError", "value too large for one MPI message");
    MPI_Request req;
    int err;
    LOCKED(err = MPI_Isend(b->data, (int)b->len, MPI_BYTE, dest, tag, MPI_COMM_WORLD, &req));
    if (err != MPI_SUCCESS)
        return mpi_fail(L, err, "send");
    wait_request(L, &req, deadline, "send");
    return 0;
}

/* Waits for a matching message on comm; returns its handle and size. */
static void probe(lua_State *L, MPI_Comm comm, int source, int tag, int64_t deadline,
                  MPI_Message *msg, MPI_Status *st, int *count)
{
    for (int idle = 0;; idle++) {
        int found = 0, err;
        LOCKED(err = MPI_Improbe(source, tag, comm, &found, msg, st));
        if (err != MPI_SUCCESS)
            mpi_fail(L, err, "recv");
        if (found)
            break;
        int rc = pause_for(L, idle, deadline);
        if (rc == BRAID_ETIMEOUT)
            lbraid_error(L, "Timeout", "recv timed out");
        if (rc)
            lbraid_core_error(L, rc, "recv");
    }
    MPI_Get_count(st, MPI_BYTE, count);
}

/* Receives the probed message into a new Lua string-sized buffer. */
static braid_buf_t *recv_probed(lua_State *L, MPI_Message *msg, int count)
{
    braid_buf_t *b = lbraid_push_buf(L);
    if (count > 0) {
        b->data = malloc((size_t)count);
        if (!b->data)
            lbraid_core_error(L, BRAID_ENOMEM, "recv");
        b->cap = b->len = (size_t)count;
    }
    int err;
    LOCKED(err = MPI_Mrecv(b->data, count, MPI_BYTE, msg, MPI_STATUS_IGNORE));
    if (err != MPI_SUCCESS)
        mpi_fail(L, err, "recv");
    return b;
}

/* _recv(source, tag, timeout) -> value, source, tag */
static int lmpi_recv(lua_State *L)
{
    check_inited(L);
    int source = check_rank(L, 1, 1);
    int tag = check_tag(L, 2, 1);
    int64_t deadline = lbraid_opt_deadline(L, 3);
    MPI_Message msg;
    MPI_Status st;
    int count;
    probe(L, MPI_COMM_WORLD, source, tag, deadline, &msg, &st, &count);
    braid_buf_t *b = recv_probed(L, &msg, count);
    lbraid_decode(L, b->data, b->len);
    lua_pushinteger(L, st.MPI_SOURCE);
    lua_pushinteger(L, st.MPI_TAG);
    return 3;
}

/* _bcast(value, root, timeout) -> value (root's) */
static int lmpi_bcast(lua_State *L)
{
    check_inited(L);
    int root = check_rank(L, 2, 0);
    int64_t deadline = lbraid_opt_deadline(L, 3);
    braid_buf_t *b;
    if (mpi_rank == root) {
        b = encode_for_rank(L, 1, "value");
        if (b->len > INT32_MAX)
            return lbraid_error(L, "ValueError", "value too large for one MPI message");
    } else {
        b = lbraid_push_buf(L);
    }
    int64_t len = (int64_t)b->len;
    MPI_Request req;
    LOCKED(MPI_Ibcast(&len, 1, MPI_INT64_T, root, MPI_COMM_WORLD, &req));
    wait_request(L, &req, deadline, "bcast");
    if (mpi_rank != root) {
        b->data = malloc(len > 0 ? (size_t)len : 1);
        if (!b->data)
            lbraid_core_error(L, BRAID_ENOMEM, "bcast");
        b->cap = b->len = (size_t)len;
    }
    LOCKED(MPI_Ibcast(b->data, (int)len, MPI_BYTE, root, MPI_COMM_WORLD, &req));
    wait_request(L, &req, deadline, "bcast");
    lbraid_decode(L, b->data, b->len);
    return 1;
}

/* _barrier(timeout) */
static int lmpi_barrier(lua_State *L)
{
    check_inited(L);
    int64_t deadline = lbraid_opt_deadline(L, 1);
    MPI_Request req;
    LOCKED(MPI_Ibarrier(MPI_COMM_WORLD, &req));
    wait_request(L, &req, deadline, "barrier");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Worker ranks: receive a task, run it, send the outcome back          */
/* ------------------------------------------------------------------ */

/* Puts "[MPI rank N] " before the traceback of a failed outcome. */
static int mark_failure(lua_State *L)
{
    braid_buf_t *out = lua_touserdata(L, 1);
    lua_settop(L, 0);
    int n = lbraid_decode_seq(L, out->data, out->len);
    if (n < 2)
        lua_settop(L, 2);
    lua_pushfstring(L,
                    "[MPI rank %d] %s",
                    mpi_rank,
                    lua_isstring(L, 2) ? lua_tostring(L, 2) : "(no traceback)");
    lua_replace(L, 2);
    braid_buf_t tmp = {0};
    lbraid_encode_seq(L, 1, 2, &tmp, "error");
    if (tmp.err) {
        braid_buf_free(&tmp);
        return 0;
    }
    braid_buf_free(out);
    braid_buf_move(out, &tmp);
    return 0;
}

/* _serve(): runs tasks from rank 0 until it says stop. */
static int lmpi_serve(lua_State *L)
{
    check_inited(L);
    braid_buf_t *out = lbraid_push_buf(L);
    int idle = 0;
    prctl(PR_SET_TIMERSLACK, 1000UL); /* its short sleeps: 1 us slack, not 50 */
    for (;;) {
        MPI_Message msg;
        MPI_Status st;
        int found = 0, err;
        LOCKED(err = MPI_Improbe(0, MPI_ANY_TAG, exec_comm, &found, &msg, &st));
        if (err != MPI_SUCCESS)
            return mpi_fail(L, err, "worker");
        if (!found) {
            int rc = pause_for(L, idle++, BRAID_FOREVER);
            if (rc)
                return lbraid_core_error(L, rc, "worker");
            continue;
        }
        idle = 0;
        int count;
        MPI_Get_count(&st, MPI_BYTE, &count);
        braid_buf_t *in = recv_probed(L, &msg, count);
        if (st.MPI_TAG == TAG_STOP)
            return 0;
        if (in->len < 8) {
            lua_pop(L, 1);
            continue;
        }
        braid_buf_t call = {.data = in->data + 8, .len = in->len - 8};
        braid_buf_reset(out);
        braid_buf_put_bytes(out, in->data, 8); /* the task id */
        braid_buf_put_u8(out, 0);
        braid_buf_t res = {0};
        int failed = lbraid_run_call(L, &call, &res);
        if (failed) {
            if (!out->err)
                out->data[8] = 1;
            lua_pushcfunction(L, mark_failure);
            lua_pushlightuserdata(L, &res);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK)
                lua_pop(L, 1);
        }
        braid_buf_put_bytes(out, res.data, res.len);
        braid_buf_free(&res);
        lua_pop(L, 1); /* in */
        if (out->err)
            return lbraid_core_error(L, out->err, "worker");
        MPI_Request req;
        LOCKED(err = MPI_Isend(out->data, (int)out->len, MPI_BYTE, 0, TAG_RESULT, exec_comm, &req));
        if (err != MPI_SUCCESS)
            return mpi_fail(L, err, "worker");
        wait_request(L, &req, BRAID_FOREVER, "worker");
    }
}

/* ------------------------------------------------------------------ */
/* Rank 0: the dispatcher thread, the only one to call MPI while an      */
/* executor is running                                                  */
/* ------------------------------------------------------------------ */

typedef struct task {
    struct task *next;
    braid_future_t *f;
    uint8_t *msg; /* 8-byte id, then the encoded call */
    size_t len;
    uint64_t id;
    int limit; /* highest worker rank it may run on */
    int sending;
    MPI_Request req;
} task_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    task_t *head, *tail; /* submitted, not yet taken by the thread */
    int started, stop;
    uint64_t next_id;
    pthread_t th;
} disp = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 1, 0};

static void task_free(task_t *t)
{
    braid_future_release(t->f);
    free(t->msg);
    free(t);
}

static void task_fail(task_t *t, const char *msg)
{
    braid_future_set_error(t->f, BRAID_EBROKEN, msg);
    task_free(t);
}

typedef struct wstate {
    task_t *flight[PIPELINE];
    int n, dead;
} wstate_t;

/* Fails every task in flight on worker r (it died or cannot be reached). */
static void worker_lost(wstate_t *ws, int r, int err)
{
    char s[MPI_MAX_ERROR_STRING], msg[MPI_MAX_ERROR_STRING + 80];
    int n = 0;
    MPI_Error_string(err, s, &n);
    if (err == MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI worker rank %d (pid %d) died", r, (int)ranks_at[r].pid);
    else
        snprintf(msg, sizeof msg, "MPI worker rank %d is lost (%s)", r, s);
    lost_any = 1;
    ws[r].dead = 1;
    for (int i = 0; i < ws[r].n; i++)
        task_fail(ws[r].flight[i], msg);
    ws[r].n = 0;
}

/* Whether worker r is known to be dead: it ran on this host and its
 * process is gone. */
static int worker_gone(int r)
{
    if (!ranks_at || strcmp(ranks_at[r].host, ranks_at[0].host) != 0)
        return 0;
    return kill((pid_t)ranks_at[r].pid, 0) != 0 && errno == ESRCH;
}

/* The least busy live worker a task with this limit may go to, or 0. */
static int pick_worker(wstate_t *ws, int limit)
{
    int best = 0;
    for (int r = 1; r <= limit && r < mpi_size; r++)
        if (!ws[r].dead && ws[r].n < PIPELINE && (!best || ws[r].n < ws[best].n))
            best = r;
    return best;
}

/* Finishes the task with id in worker r's flight from a result message. */
static void deliver(wstate_t *ws, int r, const uint8_t *data, size_t len)
{
    if (len < 9)
        return;
    uint64_t id;
    memcpy(&id, data, 8);
    for (int i = 0; i < ws[r].n; i++) {
        task_t *t = ws[r].flight[i];
        if (t->id != id)
            continue;
        if (t->sending) /* the reply came back: the send is complete */
            LOCKED(MPI_Wait(&t->req, MPI_STATUS_IGNORE));
        braid_buf_t out = {0};
        braid_buf_put_bytes(&out, data + 9, len - 9);
        if (out.err)
            braid_future_set_error(t->f, BRAID_ENOMEM, NULL);
        else
            braid_future_set_outcome(t->f, &out, data[8]);
        braid_buf_free(&out);
        ws[r].flight[i] = ws[r].flight[--ws[r].n];
        ws[r].flight[ws[r].n] = NULL;
        task_free(t);
        return;
    }
}

static void *dispatch_main(void *arg)
{
    wstate_t *ws = arg;
    prctl(PR_SET_TIMERSLACK, 1000UL);    /* its short sleeps: 1 us slack, not 50 */
    task_t *phead = NULL, *ptail = NULL; /* taken, not yet sent */
    int idle = 0;
    unsigned checks = 0;
    for (;;) {
        int stop;
        pthread_mutex_lock(&disp.mu);
        if (disp.head) {
            if (ptail)
                ptail->next = disp.head;
            else
                phead = disp.head;
            ptail = disp.tail;
            disp.head = disp.tail = NULL;
        }
        stop = disp.stop;
        pthread_mutex_unlock(&disp.mu);
        int progress = 0, inflight = 0, alive = 0;
        /* send what can go */
        while (phead) {
            task_t *t = phead;
            int r = pick_worker(ws, t->limit);
            if (!r)
                break;
            phead = t->next;
            if (!phead)
                ptail = NULL;
            progress = 1;
            if (!braid_future_set_running(t->f)) { /* cancelled */
                task_free(t);
                continue;
            }
            int err;
            LOCKED(err = MPI_Isend(t->msg, (int)t->len, MPI_BYTE, r, TAG_TASK, exec_comm, &t->req));
            ws[r].flight[ws[r].n++] = t;
            t->sending = err == MPI_SUCCESS;
            if (err != MPI_SUCCESS)
                worker_lost(ws, r, err);
        }
        /* complete sends (so their buffers could be reused) */
        for (int r = 1; r < mpi_size; r++) {
            for (int i = 0; i < ws[r].n; i++) {
                task_t *t = ws[r].flight[i];
                if (!t->sending)
                    continue;
                int done = 0, err;
                LOCKED(err = MPI_Test(&t->req, &done, MPI_STATUS_IGNORE));
                if (err != MPI_SUCCESS) {
                    worker_lost(ws, r, err);
                    break;
                }
                if (done)
                    t->sending = 0;
            }
        }
        /* take results */
        for (;;) {
            MPI_Message msg;
            MPI_Status st;
            int found = 0, err, count = 0;
            LOCKED(err = MPI_Improbe(MPI_ANY_SOURCE, TAG_RESULT, exec_comm, &found, &msg, &st));
            if (err != MPI_SUCCESS || !found)
                break;
            MPI_Get_count(&st, MPI_BYTE, &count);
            uint8_t *data = malloc(count > 0 ? (size_t)count : 1);
            if (!data)
                break; /* try again later */
            LOCKED(err = MPI_Mrecv(data, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE));
            if (err == MPI_SUCCESS)
                deliver(ws, st.MPI_SOURCE, data, (size_t)count);
            free(data);
            progress = 1;
        }
        if (++checks % 64 == 0) /* now and then, look for dead workers */
            for (int r = 1; r < mpi_size; r++)
                if (!ws[r].dead && worker_gone(r))
                    worker_lost(ws, r, MPI_SUCCESS);
        for (int r = 1; r < mpi_size; r++) {
            inflight += ws[r].n;
            alive += !ws[r].dead;
        }
        if (!alive) { /* every worker is gone: nothing can run */
            while (phead) {
                task_t *t = phead;
                phead = t->next;
                task_fail(t, "every MPI worker rank is lost");
            }
            ptail = NULL;
        }
        if (stop && !phead && !inflight)
            break;
        if (progress) {
            idle = 0;
            continue;
        }
        /* nothing moved: sleep until a submit, or a while if waiting on ranks */
        int64_t ns = inflight || phead ? backoff_ns(idle++) : 0;
        pthread_mutex_lock(&disp.mu);
        if (!disp.head && !disp.stop) {
            if (!inflight && !phead) {
                pthread_cond_wait(&disp.cv, &disp.mu);
            } else if (ns) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += ns;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&disp.cv, &disp.mu, &ts);
            }
        }
        pthread_mutex_unlock(&disp.mu);
    }
    for (int r = 1; r < mpi_size; r++)
        if (!ws[r].dead)
            LOCKED(MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, exec_comm));
    free(ws);
    return NULL;
}

/* _submit(limit, fn, ...) -> Future */
static int lmpi_submit(lua_State *L)
{
    check_inited(L);
    int limit = (int)luaL_checkinteger(L, 1);
    if (!lua_isfunction(L, 2) && !luaL_getmetafield(L, 2, "__call"))
        luaL_typeerror(L, 2, "function");
    lbraid_poll(L);
    int n = lua_gettop(L);
    braid_buf_t *b = lbraid_take_scratch(L);
    uint64_t zero = 0;
    braid_buf_put_bytes(b, &zero, 8);
    lbraid_encode_seq(L, 2, n - 1, b, "call");
    if (b->nobjs)
        return lbraid_error(
            L, "TypeError", "braid objects (queues, locks, futures...) cannot cross MPI ranks");
    if (b->err || b->len > INT32_MAX)
        return lbraid_error(L, "ValueError", "call too large for one MPI message");
    task_t *t = calloc(1, sizeof *t);
    if (!t || braid_future_new(&t->f)) {
        free(t);
        return lbraid_core_error(L, BRAID_ENOMEM, "submit");
    }
    t->msg = b->data;
    t->len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    t->limit = limit;
    pthread_mutex_lock(&disp.mu);
    if (disp.stop || !disp.started) {
        pthread_mutex_unlock(&disp.mu);
        task_free(t);
        return lbraid_error(L, "RuntimeError", "the MPI workers are not serving");
    }
    t->id = disp.next_id++;
    memcpy(t->msg, &t->id, 8);
    braid_future_retain(t->f);
    braid_future_t *f = t->f;
    if (disp.tail)
        disp.tail->next = t;
    else
        disp.head = t;
    disp.tail = t;
    pthread_cond_signal(&disp.cv);
    pthread_mutex_unlock(&disp.mu);
    lbraid_push_object(L, (braid_object_t *)f);
    braid_future_release(f);
    return 1;
}

/* _start(): rank 0 of `braid -m braid.mpi` starts the dispatcher. */
static int lmpi_start(lua_State *L)
{
    check_inited(L);
    pthread_mutex_lock(&disp.mu);
    int rc = 0;
    if (!disp.started && mpi_size > 1) {
        wstate_t *ws = calloc((size_t)mpi_size, sizeof *ws);
        rc = ws ? pthread_create(&disp.th, NULL, dispatch_main, ws) : BRAID_ENOMEM;
        if (rc)
            free(ws);
        else
            disp.started = 1;
    }
    pthread_mutex_unlock(&disp.mu);
    if (rc)
        return lbraid_error(L, "OSError", "cannot start the MPI dispatcher");
    return 0;
}

/* _stop(): tasks already submitted finish, then the workers are told to
 * stop and the dispatcher ends. */
static int lmpi_stop(lua_State *L)
{
    (void)L;
    pthread_mutex_lock(&disp.mu);
    int started = disp.started && !disp.stop;
    disp.stop = 1;
    pthread_cond_signal(&disp.cv);
    pthread_mutex_unlock(&disp.mu);
    if (started)
        pthread_join(disp.th, NULL);
    workers_stopped = 1;
    return 0;
}

static const luaL_Reg mpi_funcs[] = {{"_init", lmpi_init},
                                     {"_send", lmpi_send},
                                     {"_recv", lmpi_recv},
                                     {"_bcast", lmpi_bcast},
                                     {"_barrier", lmpi_barrier},
                                     {"_serve", lmpi_serve},
                                     {"_submit", lmpi_submit},
                                     {"_start", lmpi_start},
                                     {"_stop", lmpi_stop},
                                     {NULL, NULL}};

const lbraid_mpi_api_t *lbraid_mpi_api;

__attribute__((visibility("default"))) int lbraid_mpi_plugin_open(lua_State *L,
                                                                  const lbraid_mpi_api_t *api)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    if (api->size != sizeof *api || api->ctx_size != sizeof(lbraid_ctx_t) ||
        strcmp(api->version, BRAID_VERSION) != 0)
        return luaL_error(
            L, "braid.mpi: braid_mpi.so was built for another braid (%s)", BRAID_VERSION);
    pthread_mutex_lock(&mu); /* every state's require passes here before using the table */
    lbraid_mpi_api = api;
    pthread_mutex_unlock(&mu);
    luaL_newlib(L, mpi_funcs);
    lua_pushinteger(L, MPI_ANY_SOURCE);
    lua_setfield(L, -2, "ANY_SOURCE");
    lua_pushinteger(L, MPI_ANY_TAG);
    lua_setfield(L, -2, "ANY_TAG");
    return 1;
}
