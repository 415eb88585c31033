/* Tiny assertion helper for the core C tests: CHECK(cond) records a failure
 * with file:line and keeps going; RUN(fn) runs a test; main returns failures. */
#ifndef BRAID_CHECK_H
#define BRAID_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int before_ = check_failures;                                                              \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #fn);              \
    } while (0)

#define CHECK_DONE() (check_failures ? 1 : 0)

#endif
