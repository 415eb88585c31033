/* braid.mpi's C half as seen from braid: at `require "braid.mpi"`, opens
 * the plugin braid_mpi.so (lmpi.c, linked with libmpi; lmpi_api.h) and
 * hands it braid's functions. A process that never requires braid.mpi
 * never maps libmpi. Built only when CMake finds MPI. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lmpi_api.h"

#define PLUGIN "braid_mpi.so"

static const lbraid_mpi_api_t api = {.size = sizeof(lbraid_mpi_api_t),
                                     .ctx_size = sizeof(lbraid_ctx_t),
                                     .version = BRAID_VERSION,
#define LBRAID_MPI_INIT(name, ret, params) .name = name,
                                     LBRAID_MPI_API(LBRAID_MPI_INIT)
#undef LBRAID_MPI_INIT
};

/* Opens the plugin: next to the image holding this code (the build tree,
 * braid.so's directory), where the install puts it relative to the braid
 * executable or libbraid.so, then at its installed path (a host linked
 * with libbraid.a). RTLD_GLOBAL: OpenMPI's components need libmpi's
 * symbols; RTLD_NODELETE: the plugin's exit handler outlives lua_close. */
static void *open_plugin(char *err, size_t errlen)
{
    char dir[PATH_MAX] = ".";
    Dl_info info;
    if (dladdr((void *)open_plugin, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash)
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - info.dli_fname), info.dli_fname);
    }
    const char *rel[] = {"", BRAID_MPI_FROM_BINDIR "/", BRAID_MPI_FROM_LIBDIR "/"};
    err[0] = 0;
    for (size_t i = 0; i <= sizeof rel / sizeof *rel; i++) {
        char path[PATH_MAX + 64];
        if (i < sizeof rel / sizeof *rel)
            snprintf(path, sizeof path, "%s/%s" PLUGIN, dir, rel[i]);
        else
            snprintf(path, sizeof path, "%s", BRAID_MPI_INSTALLED);
        void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
        if (h)
            return h;
        const char *e = dlerror();
        if (e && (!err[0] || !strstr(e, "No such file"))) /* keep the most telling */
            snprintf(err, errlen, "%s", e);
    }
    return NULL;
}

int lbraid_open_mpi(lua_State *L)
{
    char err[512];
    void *h = open_plugin(err, sizeof err);
    lbraid_mpi_open_fn open = h ? (lbraid_mpi_open_fn)dlsym(h, LBRAID_MPI_ENTRY) : NULL;
    if (!open)
        return luaL_error(
            L, "braid.mpi: cannot load its MPI half (" PLUGIN "): %s", h ? "no entry point" : err);
    return open(L, &api);
}
