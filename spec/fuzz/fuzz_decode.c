/* libFuzzer target for the decoder: any input must give a value or a clean
 * error, never a crash, a leak or an unbounded allocation. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lbraid.h"
#include "lpreload.h"

static int decode_body(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    lbraid_decode(L, s, n);
    lbraid_encode(L, -1, lbraid_push_buf(L), "value"); /* what decodes re-encodes */
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seeds are written by this process (before libFuzzer reads the corpus),
 * so function chunks carry this process's MAC and the function decoder is
 * reached too: BRAID_FUZZ_SEEDS=DIR runs spec/fuzz/make_corpus.lua DIR. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("BRAID_FUZZ_SEEDS");
    if (!dir)
        return 0;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lbraid_preload(L);
    lua_createtable(L, 1, 0);
    lua_pushstring(L, dir);
    lua_rawseti(L, -2, 1);
    lua_setglobal(L, "arg");
    if (luaL_dofile(L, "spec/fuzz/make_corpus.lua") != LUA_OK) {
        fprintf(stderr, "fuzz_decode: seeds: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_close(L);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        luaL_requiref(L, "_G", luaopen_base, 1);
        luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);
        luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
        luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
        luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
        lua_settop(L, 0);
        /* decoded names may only reach modules already loaded */
        lua_getglobal(L, "package");
        lua_newtable(L);
        lua_setfield(L, -2, "searchers");
        lua_pop(L, 1);
    }
    braid_codec_validate(data, size);
    lua_pushcfunction(L, decode_body);
    lua_pushlstring(L, (const char *)data, size);
    lua_pcall(L, 1, 0, 0);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
