/* Error code names and messages, generated from the one table in error.h. */
#include "error.h"

const char *braid_strerror(int err)
{
    switch (err) {
    case BRAID_OK:
        return "success";
#define BRAID_ERRNO_MSG(name, val, kind, msg)                                                      \
    case BRAID_E##name:                                                                            \
        return msg;
        BRAID_ERRNO_MAP(BRAID_ERRNO_MSG)
#undef BRAID_ERRNO_MSG
    }
    return "unknown error";
}

const char *braid_errkind(int err)
{
    switch (err) {
#define BRAID_ERRNO_KIND(name, val, kind, msg)                                                     \
    case BRAID_E##name:                                                                            \
        return kind;
        BRAID_ERRNO_MAP(BRAID_ERRNO_KIND)
#undef BRAID_ERRNO_KIND
    }
    return "RuntimeError";
}
