/* braid.asyncio files, C half: boxes for core/afile.h files and
 * operations, and the wait on an operation as an lbraid_wait op (a task
 * suspends, the libuv fs callback wakes it). The Lua half is
 * scripts/braid/asyncio_files.lua. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "afile.h"
#include "lbraid.h"
#include "loop.h"

#define FILE_META "braid.asyncio.afile"
#define FSOP_META "braid.asyncio.fsop"

typedef struct lafile {
    braid_afile_t *f;
} lafile_t;

typedef struct lfsop {
    braid_fsop_t *op;
} lfsop_t;

static braid_afile_t *check_file(lua_State *L, int idx)
{
    lafile_t *b = luaL_checkudata(L, idx, FILE_META);
    if (!b->f)
        lbraid_error(L, "ValueError", "I/O operation on closed file");
    return b->f;
}

static int lafile_gc(lua_State *L)
{
    lafile_t *b = luaL_checkudata(L, 1, FILE_META);
    braid_afile_release(b->f);
    b->f = NULL;
    return 0;
}

static int lfsop_gc(lua_State *L)
{
    lfsop_t *b = luaL_checkudata(L, 1, FSOP_META);
    braid_fsop_release(b->op);
    b->op = NULL;
    return 0;
}

/* Raises an OSError for libuv code rc with .errno, .code and .filename. */
static int raise_fs(lua_State *L, int rc, const char *what, const char *path)
{
    if (rc == UV_EBUSY)
        return lbraid_error(L,
                            "RuntimeError",
                            "%s: another task is already waiting on this file, or the call "
                            "was made outside an asyncio task",
                            what);
    if (path)
        lbraid_push_error(
            L, "OSError", lua_pushfstring(L, "%s: %s: %s", what, path, uv_strerror(rc)));
    else
        lbraid_push_error(L, "OSError", lua_pushfstring(L, "%s: %s", what, uv_strerror(rc)));
    lua_remove(L, -2);
    lua_pushstring(L, uv_err_name(rc));
    lua_setfield(L, -2, "errno");
    lua_pushinteger(L, -rc);
    lua_setfield(L, -2, "code");
    if (path) {
        lua_pushstring(L, path);
        lua_setfield(L, -2, "filename");
    }
    return lua_error(L);
}

static lfsop_t *new_op_box(lua_State *L)
{
    lfsop_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->op = NULL;
    luaL_setmetatable(L, FSOP_META);
    return b;
}

/* _fs_open(loop, path, mode) -> op, append, readable, writable */
static int lfiles_open(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    const char *path = luaL_checkstring(L, 2);
    const char *mode = luaL_optstring(L, 3, "r");
    int flags, rd = 0, wr = 0, append = 0;
    switch (mode[0]) {
    case 'r':
        flags = 0, rd = 1;
        break;
    case 'w':
        flags = O_CREAT | O_TRUNC, wr = 1;
        break;
    case 'a':
        flags = O_CREAT | O_APPEND, wr = 1, append = 1;
        break;
    case 'x':
        flags = O_CREAT | O_EXCL, wr = 1;
        break;
    default:
        return luaL_argerror(L, 3, lua_pushfstring(L, "invalid mode '%s'", mode));
    }
    for (const char *p = mode + 1; *p; p++) {
        if (*p == '+')
            rd = wr = 1;
        else if (*p != 'b' && *p != 't')
            return luaL_argerror(L, 3, lua_pushfstring(L, "invalid mode '%s'", mode));
    }
    flags |= rd && wr ? O_RDWR : wr ? O_WRONLY : O_RDONLY;
    flags |= O_CLOEXEC;
    lfsop_t *b = new_op_box(L);
    int rc = braid_fsop_open(uv, path, flags, 0666, &b->op);
    if (rc)
        return raise_fs(L, rc, "open", path);
    lua_pushboolean(L, append);
    lua_pushboolean(L, rd);
    lua_pushboolean(L, wr);
    return 4;
}

static int64_t opt_offset(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? -1 : (int64_t)luaL_checkinteger(L, idx);
}

/* _fs_read(loop, file, n, offset or nil) -> op */
static int lfiles_read(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    braid_afile_t *f = check_file(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0 && n <= 0x40000000, 3, "size out of range");
    lfsop_t *b = new_op_box(L);
    int rc = braid_fsop_read(uv, f, (size_t)n, opt_offset(L, 4), &b->op);
    if (rc)
        return raise_fs(L, rc, "read", NULL);
    return 1;
}

/* _fs_write(loop, file, data, offset or nil) -> op */
static int lfiles_write(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    braid_afile_t *f = check_file(L, 2);
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    luaL_argcheck(L, len <= 0x40000000, 3, "data too long for one write");
    lfsop_t *b = new_op_box(L);
    int rc = braid_fsop_write(uv, f, data, len, opt_offset(L, 4), &b->op);
    if (rc)
        return raise_fs(L, rc, "write", NULL);
    return 1;
}

/* _fs_size(loop, file) -> op */
static int lfiles_size(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    braid_afile_t *f = check_file(L, 2);
    lfsop_t *b = new_op_box(L);
    int rc = braid_fsop_size(uv, f, &b->op);
    if (rc)
        return raise_fs(L, rc, "seek", NULL);
    return 1;
}

/* _fs_close(loop, file) -> op (the file box is emptied) */
static int lfiles_close(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    lafile_t *fb = luaL_checkudata(L, 2, FILE_META);
    if (!fb->f)
        return 0;
    lfsop_t *b = new_op_box(L);
    int rc = braid_fsop_close(uv, fb->f, &b->op);
    braid_afile_release(fb->f);
    fb->f = NULL;
    if (rc)
        return raise_fs(L, rc, "close", NULL);
    return 1;
}

static int wait_op(lua_State *L)
{
    lfsop_t *b = luaL_checkudata(L, 1, FSOP_META);
    if (!b->op)
        return UV_EBUSY;
    return braid_fsop_wait(b->op, braid_waiter_peek_current());
}

/* -> open: file box, seekable; read: string; write/size: integer; close: true */
static int wait_done(lua_State *L, int rc)
{
    lfsop_t *b = luaL_checkudata(L, 1, FSOP_META);
    const char *what = luaL_optstring(L, 2, "I/O");
    const char *path = luaL_optstring(L, 3, NULL);
    if (rc)
        return raise_fs(L, rc, what, path);
    const char *data = NULL;
    size_t len = 0;
    braid_afile_t *f = NULL;
    int64_t r = braid_fsop_result(b->op, &data, &len, &f);
    if (r < 0)
        return raise_fs(L, (int)r, what, path);
    if (f) {
        lafile_t *fb = lua_newuserdatauv(L, sizeof *fb, 0);
        fb->f = f;
        luaL_setmetatable(L, FILE_META);
        /* pipes, FIFOs, ttys and sockets read and write at their own
         * position (pread would fail with ESPIPE) */
        struct stat st;
        int seekable =
            fstat(braid_afile_fd(f), &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
        braid_fsop_release(b->op);
        b->op = NULL;
        lua_pushboolean(L, seekable);
        return 2;
    } else if (data) {
        lua_pushlstring(L, data, len);
    } else {
        lua_pushinteger(L, (lua_Integer)r);
    }
    braid_fsop_release(b->op);
    b->op = NULL;
    return 1;
}

static const lbraid_waitop_t FSOP_WAIT = {wait_op, wait_done};

/* _fs_wait(op, what, path) -> the operation's result (see wait_done) */
static int lfiles_wait(lua_State *L)
{
    lua_settop(L, 3);
    return lbraid_wait(L, &FSOP_WAIT);
}

/* _request_count(loop) -> libuv requests in flight on the loop */
static int lfiles_request_count(lua_State *L)
{
    uv_loop_t *uv = braid_loop_uv(lasyncio_check_loop(L, 1));
    lua_pushinteger(L, (lua_Integer)uv->active_reqs.count);
    return 1;
}

static const luaL_Reg lfiles_funcs[] = {
    {"_fs_open", lfiles_open},
    {"_fs_read", lfiles_read},
    {"_fs_write", lfiles_write},
    {"_fs_size", lfiles_size},
    {"_fs_close", lfiles_close},
    {"_fs_wait", lfiles_wait},
    {"_fs_release", lfsop_gc},
    {"_fs_file_release", lafile_gc},
    {"_request_count", lfiles_request_count},
    {NULL, NULL},
};

void lfiles_register(lua_State *L)
{
    if (luaL_newmetatable(L, FILE_META)) {
        lua_pushcfunction(L, lafile_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, FSOP_META)) {
        lua_pushcfunction(L, lfsop_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, lfiles_funcs, 0);
}
