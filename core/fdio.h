/* Whole writes to file descriptors: the REPL's terminal, the live dump's
 * stderr and the trace file all need every byte out despite EINTR and short
 * writes. Async-signal-safe (only write(2)). */
#ifndef BRAID_FDIO_H
#define BRAID_FDIO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes all n bytes of p to fd. Returns 0, or -1 on an error (errno set). */
int braid_write_all(int fd, const void *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
