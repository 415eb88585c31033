/* Error codes of braid's core: one X-macro table gives the codes, their
 * names (the braid.Error kind where one applies) and their messages. */
#ifndef BRAID_ERROR_H
#define BRAID_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(code name, value, kind, message) */
#define BRAID_ERRNO_MAP(X)                                                                         \
    X(NOMEM, -1, "OSError", "out of memory")                                                       \
    X(TIMEOUT, -2, "Timeout", "timed out")                                                         \
    X(CANCELLED, -3, "Cancelled", "cancelled")                                                     \
    X(EMPTY, -4, "Empty", "empty")                                                                 \
    X(FULL, -5, "Full", "full")                                                                    \
    X(SHUTDOWN, -6, "ShutDown", "shut down")                                                       \
    X(BROKEN, -7, "BrokenBarrier", "barrier is broken")                                            \
    X(INVAL, -8, "ValueError", "invalid value")                                                    \
    X(STATE, -9, "RuntimeError", "invalid state")                                                  \
    X(NOTOWNER, -10, "RuntimeError", "cannot release un-acquired lock")                            \
    X(CORRUPT, -11, "ValueError", "malformed encoded value")                                       \
    X(TOOBIG, -12, "ValueError", "encoded value too large or too deep")                            \
    X(STALE, -13, "ValueError", "reference to a braid object that no longer exists")               \
    X(OS, -14, "OSError", "operating system error")                                                \
    X(AGAIN, -15, "RuntimeError", "would block")                                                   \
    X(TYPE, -16, "TypeError", "values are not comparable")                                         \
    X(INTR, -17, "RuntimeError", "interrupted!")                                                   \
    X(SUSPEND, -18, "RuntimeError", "would block inside a task")                                   \
    X(EOF, -19, "EOFError", "end of file")

enum {
    BRAID_OK = 0,
#define BRAID_ERRNO_ENUM(name, val, kind, msg) BRAID_E##name = val,
    BRAID_ERRNO_MAP(BRAID_ERRNO_ENUM)
#undef BRAID_ERRNO_ENUM
};

/* Message for a core error code; never NULL. Thread-safe. */
const char *braid_strerror(int err);
/* The braid.Error kind a code maps to ("Timeout", "Empty", ...); never NULL. */
const char *braid_errkind(int err);

#ifdef __cplusplus
}
#endif
#endif
