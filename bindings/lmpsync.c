/* braid.multiprocessing, shared objects: process-shared Lock, RLock,
 * Semaphore, Event and Value/Array in memfd memory (Pipe: lmpconn.c). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lbraid.h"
#include "lprocess.h"
#include "psync.h"
#include "shm.h"

#define T(k) (&braid_shm_types[BRAID_SHM_##k])

static const char LOCKS_KEY = 'v'; /* registry: weak Value box -> its Lock box */

static braid_shm_t *check(lua_State *L, int idx, int kind)
{
    return (braid_shm_t *)lbraid_check_object(L, idx, &braid_shm_types[kind]);
}

/* Pushes a box for a new segment of kind (one reference moves to the box). */
static braid_shm_t *push_new(lua_State *L, int kind, size_t size)
{
    braid_shm_t *s;
    int rc = braid_shm_new(kind, size, &s);
    if (rc == BRAID_EOS)
        lbraid_error(L, "OSError", "shared memory: %s", strerror(errno));
    if (rc)
        lbraid_core_error(L, rc, NULL);
    lbraid_push_object(L, &s->base);
    braid_object_release(&s->base);
    return s;
}

/* Lock-style arguments (blocking=true, timeout=-1 or nil) → deadline. */
static int64_t acquire_deadline(lua_State *L, int idx)
{
    int blocking = lua_isnoneornil(L, idx) ? 1 : lua_toboolean(L, idx);
    if (!blocking)
        return braid_clock_now();
    if (lua_isnoneornil(L, idx + 1))
        return BRAID_FOREVER;
    lua_Number t = luaL_checknumber(L, idx + 1);
    if (t != t)
        luaL_argerror(L, idx + 1, "timeout is NaN");
    return t < 0 ? BRAID_FOREVER : braid_clock_deadline((double)t);
}

static int push_wait_result(lua_State *L, int rc)
{
    if (rc == 0 || rc == BRAID_ETIMEOUT) {
        lua_pushboolean(L, rc == 0);
        return 1;
    }
    if (rc == BRAID_PLOCK_OWNER_DIED) {
        lua_pushboolean(L, 1);
        lua_pushliteral(L, "owner died");
        return 2;
    }
    return lbraid_core_error(L, rc, NULL);
}

/* A blocking wait of the calling thread on s (op), with its wait record
 * set between wait_begin and wait_end so that the trace and the live dump
 * show the object's label; a call that must not block records nothing. */
static braid_waiter_t *wait_begin(lua_State *L, braid_shm_t *s, const char *op, int blocking,
                                  int64_t deadline)
{
    braid_waiter_t *w = blocking ? lbraid_ctx(L)->waiter : NULL;
    if (w)
        braid_waiter_begin(w, &s->base, op, deadline);
    return w;
}

static int wait_end(braid_waiter_t *w, int rc)
{
    if (w)
        braid_waiter_end(w, rc == BRAID_PLOCK_OWNER_DIED ? 0 : rc);
    return rc;
}

/* Whether argument idx (blocking=true) allows the call to block. */
static int blocking_arg(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) || lua_toboolean(L, idx);
}

/* ---- Lock / RLock ---- */

/* Lock{name=}, RLock{name=}, Event{name=}: no other option. */
static int lnamed_new(lua_State *L, int kind)
{
    lbraid_unpack_opts(L, NULL, 0);
    braid_shm_t *s = push_new(L, kind, 4096);
    lbraid_apply_name(L, 1, &s->base);
    return 1;
}

static int llock_new(lua_State *L)
{
    return lnamed_new(L, BRAID_SHM_LOCK);
}

static int lrlock_new(lua_State *L)
{
    return lnamed_new(L, BRAID_SHM_RLOCK);
}

/* A Lock, an RLock, or a Value's lock (the plock at its start). */
static braid_shm_t *check_lockish(lua_State *L, int idx, int *recursive)
{
    braid_shm_t *s = braid_shm_of(lbraid_to_object(L, idx));
    if (!s ||
        (s->kind != BRAID_SHM_LOCK && s->kind != BRAID_SHM_RLOCK && s->kind != BRAID_SHM_VALUE))
        luaL_typeerror(L, idx, "braid.mp.Lock");
    *recursive = s->kind == BRAID_SHM_RLOCK;
    return s;
}

/* acquire() and release() of a Lock or an RLock: first the uncontended
 * fast path for our box (its metatable is upvalue 1; Value's methods have
 * no upvalue and take the checked path): one CAS, no clock, no poll. */
static braid_shm_t *fast_box(lua_State *L)
{
    if (!lua_getmetatable(L, 1)) /* left on the stack: callers return or reset */
        return NULL;
    if (lua_topointer(L, -1) != lua_topointer(L, lua_upvalueindex(1)))
        return NULL;
    return (braid_shm_t *)((lbraid_box_t *)lua_touserdata(L, 1))->obj;
}

static int llock_acquire(lua_State *L)
{
    if (lua_gettop(L) == 1) {
        braid_shm_t *f = fast_box(L);
        if (f && braid_plock_try(f->mem, f->kind == BRAID_SHM_RLOCK) == 0) {
            lua_pushboolean(L, 1);
            return 1;
        }
        lua_settop(L, 1);
    }
    int rec;
    braid_shm_t *s = check_lockish(L, 1, &rec);
    int64_t deadline = acquire_deadline(L, 2);
    braid_plock_t *l = s->mem;
    if (braid_plock_try(l, rec) == 0) { /* uncontended: no poll, no waiter */
        lua_pushboolean(L, 1);
        return 1;
    }
    lbraid_poll(L);
    braid_waiter_t *w = wait_begin(L, s, "acquire", blocking_arg(L, 2), deadline);
    return push_wait_result(
        L, wait_end(w, braid_plock_acquire(l, rec, deadline, lbraid_ctx(L)->waiter)));
}

static int llock_release(lua_State *L)
{
    braid_shm_t *f = fast_box(L);
    if (f && braid_plock_release(f->mem, f->kind == BRAID_SHM_RLOCK) == 0)
        return 0;
    int rec;
    braid_shm_t *s = check_lockish(L, 1, &rec);
    if (braid_plock_release(s->mem, rec) != 0)
        return lbraid_error(L,
                            rec ? "RuntimeError" : "ValueError",
                            rec ? "cannot release un-acquired lock"
                                : "semaphore or lock released too many times");
    return 0;
}

static int llock_locked(lua_State *L)
{
    int rec;
    braid_shm_t *s = check_lockish(L, 1, &rec);
    lua_pushboolean(L, braid_plock_locked(s->mem));
    return 1;
}

static int llock_is_owned(lua_State *L)
{
    int rec;
    braid_shm_t *s = check_lockish(L, 1, &rec);
    lua_pushboolean(L, braid_plock_is_mine(s->mem));
    return 1;
}

/* ---- Semaphore ---- */

/* Semaphore(value) or Semaphore{value=, name=} */
static int lsem_make(lua_State *L, int bounded)
{
    static const char *const keys[] = {"value"};
    int opts = lua_type(L, 1) == LUA_TTABLE;
    lbraid_unpack_opts(L, keys, 1);
    lua_Integer v = luaL_optinteger(L, 1, 1);
    if (v < 0)
        return lbraid_error(L, "ValueError", "semaphore initial value must be >= 0");
    if (v > INT_MAX)
        return luaL_argerror(L, 1, "value too large");
    braid_shm_t *s = push_new(L, BRAID_SHM_SEM, 4096);
    braid_psem_init(s->mem, (unsigned)v, bounded ? (unsigned)(v ? v : 0) : 0);
    if (bounded && v == 0)
        ((braid_psem_t *)s->mem)->max = UINT32_MAX; /* bounded at 0: nothing to release */
    if (opts)
        lbraid_apply_name(L, 2, &s->base);
    return 1;
}

static int lsem_new(lua_State *L)
{
    return lsem_make(L, 0);
}

static int lsem_new_bounded(lua_State *L)
{
    return lsem_make(L, 1);
}

static int lsem_acquire(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_SEM);
    int64_t deadline = acquire_deadline(L, 2);
    if (braid_psem_acquire(s->mem, 0, NULL) == 0) { /* a permit free: no poll, no record */
        lua_pushboolean(L, 1);
        return 1;
    }
    lbraid_poll(L);
    braid_waiter_t *w = wait_begin(L, s, "acquire", blocking_arg(L, 2), deadline);
    return push_wait_result(
        L, wait_end(w, braid_psem_acquire(s->mem, deadline, lbraid_ctx(L)->waiter)));
}

static int lsem_release(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_SEM);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    if (n < 1)
        return lbraid_error(L, "ValueError", "n must be one or more");
    if (braid_psem_release(s->mem, (unsigned)n) != 0)
        return lbraid_error(L, "ValueError", "semaphore or lock released too many times");
    return 0;
}

static int lsem_get_value(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_SEM);
    lua_pushinteger(L, atomic_load(&((braid_psem_t *)s->mem)->value));
    return 1;
}

/* ---- Event ---- */

static int levent_new(lua_State *L)
{
    return lnamed_new(L, BRAID_SHM_EVENT);
}

static int levent_set(lua_State *L)
{
    braid_pevent_set(check(L, 1, BRAID_SHM_EVENT)->mem);
    return 0;
}

static int levent_clear(lua_State *L)
{
    braid_pevent_clear(check(L, 1, BRAID_SHM_EVENT)->mem);
    return 0;
}

static int levent_is_set(lua_State *L)
{
    braid_pevent_t *e = check(L, 1, BRAID_SHM_EVENT)->mem;
    lua_pushboolean(L, atomic_load(&e->flag) != 0);
    return 1;
}

static int levent_wait(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_EVENT);
    int64_t deadline = lbraid_opt_deadline(L, 2);
    lbraid_poll(L);
    braid_waiter_t *w = NULL;
    if (!atomic_load(&((braid_pevent_t *)s->mem)->flag))
        w = wait_begin(L, s, "wait", 1, deadline);
    int rc = wait_end(w, braid_pevent_wait(s->mem, deadline, lbraid_ctx(L)->waiter));
    if (rc < 0)
        return lbraid_core_error(L, rc, NULL);
    lua_pushboolean(L, rc);
    return 1;
}

/* ---- Value / Array ---- */

/* Segment: plock (16 bytes), then this header, data at offset 64. */
typedef struct vhdr {
    char typecode;
    uint8_t is_array, size;
    uint8_t pad;
    uint32_t count;
} vhdr_t;
#define VDATA 64

static int type_size(char tc)
{
    switch (tc) {
    case 'b':
    case 'B':
    case 'c':
        return 1;
    case 'h':
    case 'H':
        return 2;
    case 'i':
    case 'I':
    case 'f':
        return 4;
    case 'l':
    case 'L':
    case 'q':
    case 'Q':
    case 'd':
        return 8;
    default:
        return 0;
    }
}

static vhdr_t *vhdr(braid_shm_t *s)
{
    return (vhdr_t *)((char *)s->mem + sizeof(braid_plock_t));
}

static void *velem(braid_shm_t *s, uint32_t i)
{
    return (char *)s->mem + VDATA + (size_t)i * vhdr(s)->size;
}

/* An element's bits, read and written whole with relaxed atomics: a thread
 * or process reading while another writes (no lock held, as Python allows)
 * sees the old or the new value, never a torn one, and it is no data race.
 * Elements are aligned to their size. */
static uint64_t elem_load(const void *p, int size)
{
    switch (size) {
    case 1:
        return atomic_load_explicit((_Atomic uint8_t *)p, memory_order_relaxed);
    case 2:
        return atomic_load_explicit((_Atomic uint16_t *)p, memory_order_relaxed);
    case 4:
        return atomic_load_explicit((_Atomic uint32_t *)p, memory_order_relaxed);
    default:
        return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
    }
}

static void elem_store(void *p, int size, uint64_t bits)
{
    switch (size) {
    case 1:
        atomic_store_explicit((_Atomic uint8_t *)p, (uint8_t)bits, memory_order_relaxed);
        break;
    case 2:
        atomic_store_explicit((_Atomic uint16_t *)p, (uint16_t)bits, memory_order_relaxed);
        break;
    case 4:
        atomic_store_explicit((_Atomic uint32_t *)p, (uint32_t)bits, memory_order_relaxed);
        break;
    default:
        atomic_store_explicit((_Atomic uint64_t *)p, bits, memory_order_relaxed);
        break;
    }
}

static void push_elem(lua_State *L, braid_shm_t *s, uint32_t i)
{
    char tc = vhdr(s)->typecode;
    uint64_t bits = elem_load(velem(s, i), type_size(tc));
    switch (tc) {
    case 'b':
        lua_pushinteger(L, (int8_t)bits);
        break;
    case 'B':
        lua_pushinteger(L, (uint8_t)bits);
        break;
    case 'c': {
        char c = (char)bits;
        lua_pushlstring(L, &c, 1);
        break;
    }
    case 'h':
        lua_pushinteger(L, (int16_t)bits);
        break;
    case 'H':
        lua_pushinteger(L, (uint16_t)bits);
        break;
    case 'i':
        lua_pushinteger(L, (int32_t)bits);
        break;
    case 'I':
        lua_pushinteger(L, (uint32_t)bits);
        break;
    case 'f': {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        lua_pushnumber(L, f);
        break;
    }
    case 'd': {
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, d);
        break;
    }
    case 'L':
    case 'Q':
        lua_pushinteger(L, (lua_Integer)bits);
        break;
    default:
        lua_pushinteger(L, (lua_Integer)(int64_t)bits);
        break;
    }
}

/* Stores the value at idx into element i; raises TypeError/overflow. */
static void set_elem(lua_State *L, braid_shm_t *s, uint32_t i, int idx)
{
    void *p = velem(s, i);
    char tc = vhdr(s)->typecode;
    if (tc == 'c') {
        size_t n;
        const char *c = lua_tolstring(L, idx, &n);
        if (!c || n != 1 || lua_type(L, idx) != LUA_TSTRING)
            lbraid_error(L, "TypeError", "one-character string expected");
        elem_store(p, 1, (uint8_t)c[0]);
        return;
    }
    if (tc == 'f' || tc == 'd') {
        if (!lua_isnumber(L, idx) || lua_type(L, idx) != LUA_TNUMBER)
            lbraid_error(L, "TypeError", "must be a number, not %s", luaL_typename(L, idx));
        lua_Number v = lua_tonumber(L, idx);
        if (tc == 'f') {
            float f = (float)v;
            uint32_t b32;
            memcpy(&b32, &f, sizeof b32);
            elem_store(p, 4, b32);
        } else {
            double d = v;
            uint64_t b64;
            memcpy(&b64, &d, sizeof b64);
            elem_store(p, 8, b64);
        }
        return;
    }
    if (!lua_isinteger(L, idx))
        lbraid_error(L, "TypeError", "an integer is required (got %s)", luaL_typename(L, idx));
    lua_Integer v = lua_tointeger(L, idx);
    static const struct {
        char tc;
        lua_Integer lo, hi;
    } range[] = {{'b', INT8_MIN, INT8_MAX},
                 {'B', 0, UINT8_MAX},
                 {'h', INT16_MIN, INT16_MAX},
                 {'H', 0, UINT16_MAX},
                 {'i', INT32_MIN, INT32_MAX},
                 {'I', 0, UINT32_MAX}};
    for (size_t k = 0; k < sizeof range / sizeof range[0]; k++)
        if (range[k].tc == tc && (v < range[k].lo || v > range[k].hi))
            lbraid_error(L, "ValueError", "%I out of range for typecode '%c'", (LUAI_UACINT)v, tc);
    elem_store(p, type_size(tc), (uint64_t)v); /* the low bytes: two's complement */
}

static braid_shm_t *value_new(lua_State *L, char tc, uint32_t count, int is_array)
{
    int sz = type_size(tc);
    if (!sz)
        lbraid_error(L,
                     "TypeError",
                     "bad typecode '%c' (must be b, B, c, h, H, i, I, l, L, q, Q, f or d)",
                     tc);
    braid_shm_t *s = push_new(L, BRAID_SHM_VALUE, VDATA + (size_t)count * (size_t)sz);
    vhdr_t *h = vhdr(s);
    h->typecode = tc;
    h->size = (uint8_t)sz;
    h->count = count;
    h->is_array = (uint8_t)is_array;
    return s;
}

static char check_typecode(lua_State *L, int idx)
{
    size_t n;
    const char *tc = luaL_checklstring(L, idx, &n);
    if (n != 1)
        lbraid_error(L, "TypeError", "typecode must be one character, got '%s'", tc);
    return tc[0];
}

/* Value(typecode, init) */
static int lvalue_new(lua_State *L)
{
    lua_settop(L, 2);
    char tc = check_typecode(L, 1);
    braid_shm_t *s = value_new(L, tc, 1, 0);
    if (!lua_isnoneornil(L, 2))
        set_elem(L, s, 0, 2);
    return 1;
}

/* Array(typecode, size_or_sequence) */
static int larray_new(lua_State *L)
{
    char tc = check_typecode(L, 1);
    lua_Integer n;
    int seq = lua_type(L, 2) == LUA_TTABLE || lua_type(L, 2) == LUA_TSTRING;
    if (lua_type(L, 2) == LUA_TTABLE)
        n = luaL_len(L, 2);
    else if (lua_type(L, 2) == LUA_TSTRING)
        n = (lua_Integer)lua_rawlen(L, 2);
    else
        n = luaL_checkinteger(L, 2);
    if (n < 0 || n > (1 << 28))
        return lbraid_error(L, "ValueError", "bad array size %I", (LUAI_UACINT)n);
    braid_shm_t *s = value_new(L, tc, (uint32_t)n, 1);
    if (seq && lua_type(L, 2) == LUA_TSTRING) {
        if (tc != 'c' && tc != 'b' && tc != 'B')
            return lbraid_error(
                L, "TypeError", "a string initialises only a 'c', 'b' or 'B' array");
        memcpy(velem(s, 0), lua_tostring(L, 2), (size_t)n);
    } else if (seq) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 2, i);
            set_elem(L, s, (uint32_t)(i - 1), -1);
            lua_pop(L, 1);
        }
    }
    return 1;
}

/* Element index from the key at idx (1-based), or -1 if it is not one. */
static long elem_index(lua_State *L, braid_shm_t *s, int idx)
{
    if (!vhdr(s)->is_array || !lua_isinteger(L, idx))
        return -1;
    lua_Integer i = lua_tointeger(L, idx);
    if (i < 1 || i > (lua_Integer)vhdr(s)->count)
        lbraid_error(L, "IndexError", "array index %I out of range", (LUAI_UACINT)i);
    return (long)(i - 1);
}

static int lvalue_index(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_VALUE);
    long i = elem_index(L, s, 2);
    if (i >= 0) {
        push_elem(L, s, (uint32_t)i);
        return 1;
    }
    const char *k = lua_tostring(L, 2);
    if (k && !vhdr(s)->is_array && strcmp(k, "value") == 0) {
        push_elem(L, s, 0);
        return 1;
    }
    if (k && strcmp(k, "typecode") == 0) {
        lua_pushlstring(L, &vhdr(s)->typecode, 1);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_gettable(L, lua_upvalueindex(1)); /* methods */
    return 1;
}

static int lvalue_newindex(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_VALUE);
    long i = elem_index(L, s, 2);
    if (i >= 0) {
        set_elem(L, s, (uint32_t)i, 3);
        return 0;
    }
    const char *k = lua_tostring(L, 2);
    if (k && !vhdr(s)->is_array && strcmp(k, "value") == 0) {
        set_elem(L, s, 0, 3);
        return 0;
    }
    return lbraid_error(L,
                        "TypeError",
                        "cannot set field '%s' of a shared %s",
                        k ? k : "?",
                        vhdr(s)->is_array ? "Array" : "Value");
}

static int lvalue_len(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_VALUE);
    lua_pushinteger(L, vhdr(s)->is_array ? vhdr(s)->count : 1);
    return 1;
}

/* v:get_lock() -> the Lock guarding it (the same object each time here). */
static int lvalue_get_lock(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_VALUE);
    lbraid_push_weak_table(L, &LOCKS_KEY, "k");
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    braid_shm_t *v;
    int rc = braid_shm_view(s, BRAID_SHM_LOCK, &v);
    if (rc)
        return lbraid_error(L, "OSError", "shared memory: %s", strerror(errno));
    lbraid_push_object(L, &v->base);
    braid_object_release(&v->base);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
    return 1;
}

/* v:_add(delta) -> new value: atomic add on a 'q' Value (queue counters). */
static int lvalue_add(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_VALUE);
    lua_Integer d = luaL_checkinteger(L, 2);
    if (vhdr(s)->typecode != 'q' || vhdr(s)->is_array)
        return luaL_argerror(L, 1, "a 'q' Value expected");
    _Atomic int64_t *p = velem(s, 0);
    lua_pushinteger(L, (lua_Integer)(atomic_fetch_add(p, (int64_t)d) + (int64_t)d));
    return 1;
}

/* a:totable() -> a Lua sequence of the elements (Python's a[:]). */
static int lvalue_totable(lua_State *L)
{
    braid_shm_t *s = check(L, 1, BRAID_SHM_VALUE);
    uint32_t n = vhdr(s)->count;
    lua_createtable(L, (int)n, 0);
    for (uint32_t i = 0; i < n; i++) {
        push_elem(L, s, i);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* ---- registration ---- */

/* _count() -> the holder's recursion depth (0 when unlocked). */
static int llock_count(lua_State *L)
{
    int rec;
    braid_shm_t *s = check_lockish(L, 1, &rec);
    braid_plock_t *l = s->mem;
    lua_pushinteger(L, braid_plock_locked(l) ? atomic_load(&l->count) : 0);
    return 1;
}

static const luaL_Reg llock_methods[] = {
    {"acquire", llock_acquire},
    {"release", llock_release},
    {"locked", llock_locked},
    {"_is_owned", llock_is_owned},
    {"_count", llock_count},
    {NULL, NULL},
};

static const luaL_Reg lsem_methods[] = {
    {"acquire", lsem_acquire},
    {"release", lsem_release},
    {"get_value", lsem_get_value},
    {NULL, NULL},
};

static const luaL_Reg levent_methods[] = {
    {"set", levent_set},
    {"clear", levent_clear},
    {"is_set", levent_is_set},
    {"wait", levent_wait},
    {NULL, NULL},
};

static const luaL_Reg lvalue_methods[] = {
    {"get_lock", lvalue_get_lock},
    {"acquire", llock_acquire},
    {"release", llock_release},
    {"totable", lvalue_totable},
    {"_add", lvalue_add},
    {NULL, NULL},
};

static const luaL_Reg lmpsync_funcs[] = {
    {"Lock", llock_new},
    {"RLock", lrlock_new},
    {"Semaphore", lsem_new},
    {"BoundedSemaphore", lsem_new_bounded},
    {"Event", levent_new},
    {"Value", lvalue_new},
    {"Array", larray_new},
    {NULL, NULL},
};

void lbraid_mp_open_sync(lua_State *L, int mod)
{
    lua_newtable(L);
    int methods = lua_gettop(L);
    struct {
        int kind;
        const char *key;
        const luaL_Reg *fns;
    } metas[] = {{BRAID_SHM_LOCK, "Lock", llock_methods},
                 {BRAID_SHM_RLOCK, "RLock", llock_methods},
                 {BRAID_SHM_SEM, "Semaphore", lsem_methods},
                 {BRAID_SHM_EVENT, "Event", levent_methods}};
    for (size_t i = 0; i < sizeof metas / sizeof metas[0]; i++) {
        lbraid_newmeta(L, &braid_shm_types[metas[i].kind], metas[i].fns);
        lua_getfield(L, -1, "__index");
        lua_pushvalue(L, -2); /* the metatable: the fast paths' upvalue */
        luaL_setfuncs(L, metas[i].fns, 1);
        lua_setfield(L, methods, metas[i].key);
        lua_pop(L, 1);
    }
    lbraid_newmeta(L, T(VALUE), lvalue_methods);
    lua_getfield(L, -1, "__index");
    lua_pushvalue(L, -1);
    lua_setfield(L, methods, "Value");
    lua_pushcclosure(L, lvalue_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lvalue_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, lvalue_len);
    lua_setfield(L, -2, "__len");
    lua_pop(L, 1);
    lbraid_mp_open_conn(L, mod, methods);
    lua_setfield(L, mod, "__methods");
    luaL_setfuncs(L, lmpsync_funcs, 0);
}
