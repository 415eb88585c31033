/* braid.mpi's two halves (lmpi_load.c, lmpi.c): the C half is a plugin,
 * braid_mpi.so, loaded at `require "braid.mpi"`, so that only a process
 * using MPI maps libmpi (linking OpenMPI costs a process start ~3 M
 * instructions). The plugin reaches braid through this table of functions
 * (not through exported symbols: braid's are hidden, and the image holding
 * them may be the braid executable, braid.so opened RTLD_LOCAL by lua5.4,
 * libbraid.so or a host linked with libbraid.a). Not installed. */
#ifndef BRAID_LMPI_API_H
#define BRAID_LMPI_API_H

#include "future.h"
#include "lbraid.h"

/* X(name, return type, (parameters)) for each braid function lmpi.c uses */
#define LBRAID_MPI_API(X)                                                                          \
    X(braid_buf_free, void, (braid_buf_t * b))                                                     \
    X(braid_buf_move, void, (braid_buf_t * dst, braid_buf_t * src))                                \
    X(braid_buf_put_bytes, void, (braid_buf_t * b, const void *p, size_t n))                       \
    X(braid_buf_put_u8, void, (braid_buf_t * b, uint8_t v))                                        \
    X(braid_buf_reset, void, (braid_buf_t * b))                                                    \
    X(braid_clock_now, int64_t, (void))                                                            \
    X(braid_clock_sleep_until, void, (int64_t deadline))                                           \
    X(braid_codec_get_key, void, (uint8_t key[16]))                                                \
    X(braid_codec_set_key, void, (const uint8_t key[16]))                                          \
    X(braid_future_new, int, (braid_future_t * *out))                                              \
    X(braid_future_release, void, (braid_future_t * f))                                            \
    X(braid_future_retain, void, (braid_future_t * f))                                             \
    X(braid_future_set_error, int, (braid_future_t * f, int code, const char *msg))                \
    X(braid_future_set_outcome, int, (braid_future_t * f, braid_buf_t * out, int failed))          \
    X(braid_future_set_running, int, (braid_future_t * f))                                         \
    X(braid_waiter_current, braid_waiter_t *, (void))                                              \
    X(braid_waiter_park, int, (braid_waiter_t * w, int64_t deadline))                              \
    X(braid_waiter_prepare, void, (braid_waiter_t * w))                                            \
    X(braid_waiter_take_cancel, int, (braid_waiter_t * w))                                         \
    X(lbraid_core_error, int, (lua_State * L, int code, const char *what))                         \
    X(lbraid_ctx, lbraid_ctx_t *, (lua_State * L))                                                 \
    X(lbraid_decode, void, (lua_State * L, const void *data, size_t len))                          \
    X(lbraid_decode_seq, int, (lua_State * L, const void *data, size_t len))                       \
    X(lbraid_encode, void, (lua_State * L, int idx, braid_buf_t *buf, const char *root))           \
    X(lbraid_encode_seq,                                                                           \
      void,                                                                                        \
      (lua_State * L, int idx, int n, braid_buf_t *buf, const char *root))                         \
    X(lbraid_error, int, (lua_State * L, const char *kind, const char *fmt, ...))                  \
    X(lbraid_opt_deadline, int64_t, (lua_State * L, int idx))                                      \
    X(lbraid_poll, void, (lua_State * L))                                                          \
    X(lbraid_push_buf, braid_buf_t *, (lua_State * L))                                             \
    X(lbraid_push_object, void, (lua_State * L, braid_object_t * obj))                             \
    X(lbraid_run_call, int, (lua_State * L, const braid_buf_t *call, braid_buf_t *out))            \
    X(lbraid_take_scratch, braid_buf_t *, (lua_State * L))

typedef struct lbraid_mpi_api {
    size_t size, ctx_size; /* sizeof this table, of lbraid_ctx_t */
    const char *version;   /* BRAID_VERSION */
#define LBRAID_MPI_FIELD(name, ret, params) ret(*name) params;
    LBRAID_MPI_API(LBRAID_MPI_FIELD)
#undef LBRAID_MPI_FIELD
} lbraid_mpi_api_t;

/* The plugin's one exported function: checks that api is its build's,
 * then does what luaopen would (pushes the C half's table). */
#define LBRAID_MPI_ENTRY "lbraid_mpi_plugin_open"
typedef int (*lbraid_mpi_open_fn)(lua_State *L, const lbraid_mpi_api_t *api);

#ifdef BRAID_MPI_PLUGIN /* lmpi.c, built as the plugin: calls go through the table */
extern const lbraid_mpi_api_t *lbraid_mpi_api;
#define braid_buf_free (lbraid_mpi_api->braid_buf_free)
#define braid_buf_move (lbraid_mpi_api->braid_buf_move)
#define braid_buf_put_bytes (lbraid_mpi_api->braid_buf_put_bytes)
#define braid_buf_put_u8 (lbraid_mpi_api->braid_buf_put_u8)
#define braid_buf_reset (lbraid_mpi_api->braid_buf_reset)
#define braid_clock_now (lbraid_mpi_api->braid_clock_now)
#define braid_clock_sleep_until (lbraid_mpi_api->braid_clock_sleep_until)
#define braid_codec_get_key (lbraid_mpi_api->braid_codec_get_key)
#define braid_codec_set_key (lbraid_mpi_api->braid_codec_set_key)
#define braid_future_new (lbraid_mpi_api->braid_future_new)
#define braid_future_release (lbraid_mpi_api->braid_future_release)
#define braid_future_retain (lbraid_mpi_api->braid_future_retain)
#define braid_future_set_error (lbraid_mpi_api->braid_future_set_error)
#define braid_future_set_outcome (lbraid_mpi_api->braid_future_set_outcome)
#define braid_future_set_running (lbraid_mpi_api->braid_future_set_running)
#define braid_waiter_current (lbraid_mpi_api->braid_waiter_current)
#define braid_waiter_park (lbraid_mpi_api->braid_waiter_park)
#define braid_waiter_prepare (lbraid_mpi_api->braid_waiter_prepare)
#define braid_waiter_take_cancel (lbraid_mpi_api->braid_waiter_take_cancel)
#define lbraid_core_error (lbraid_mpi_api->lbraid_core_error)
#define lbraid_ctx (lbraid_mpi_api->lbraid_ctx)
#define lbraid_decode (lbraid_mpi_api->lbraid_decode)
#define lbraid_decode_seq (lbraid_mpi_api->lbraid_decode_seq)
#define lbraid_encode (lbraid_mpi_api->lbraid_encode)
#define lbraid_encode_seq (lbraid_mpi_api->lbraid_encode_seq)
#define lbraid_error (lbraid_mpi_api->lbraid_error)
#define lbraid_opt_deadline (lbraid_mpi_api->lbraid_opt_deadline)
#define lbraid_poll (lbraid_mpi_api->lbraid_poll)
#define lbraid_push_buf (lbraid_mpi_api->lbraid_push_buf)
#define lbraid_push_object (lbraid_mpi_api->lbraid_push_object)
#define lbraid_run_call (lbraid_mpi_api->lbraid_run_call)
#define lbraid_take_scratch (lbraid_mpi_api->lbraid_take_scratch)
#endif

#endif
