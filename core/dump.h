/* Live dumps: every OS thread that runs a Lua state holds a slot; a dump asks
 * each slot's owner to report about itself and collects the reports. */
#ifndef BRAID_DUMP_H
#define BRAID_DUMP_H

#include <stdatomic.h>
#include <stdint.h>

#include "thread.h"
#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct braid_dump_slot braid_dump_slot_t;

/* Called by a dumper (any thread) with the registry lock held: ask the
 * owner to report soon (the binding sets a Lua count hook). Must not block
 * or take braid locks. */
typedef void (*braid_dump_request_fn)(braid_dump_slot_t *s);
/* Called by the owner itself, parked in braid_waiter_park with no lock
 * held, when a report is wanted: it posts one with braid_dump_post. */
typedef void (*braid_dump_serve_fn)(braid_dump_slot_t *s);

/* The protocol.
 * - A dumper takes the registry lock, bumps the generation, stores it in
 *   every slot's `want` and calls its request function, then signals the
 *   slot's waiter under the waiter's mutex; it then waits (registry lock
 *   released) until every slot has posted or the bound has passed.
 * - A running owner reports at its next instruction check (the hook).
 * - A parked owner (braid_waiter_park) checks braid__dump_wanted under its
 *   waiter's mutex before every condvar wait, so a request stored before
 *   the signal is never missed; it drops the mutex, serves, retakes it and
 *   loops: `signaled` (set by a waker under the same mutex) is checked
 *   again before it waits, so a wake-up that came meanwhile is not lost,
 *   and the wait goes on to the same deadline. Serving always marks the
 *   request done (posting nothing if it must), so it is served once.
 * - A report posted after the dumper stopped waiting is dropped. */
struct braid_dump_slot {
    void *data;                    /* the owner's (the binding's state) */
    braid_dump_request_fn request; /* may be NULL */
    braid_waiter_t *waiter;        /* the owner's waiter, or NULL */
    braid_thread_t *thread;        /* retained: the owner's thread object */
    /* private to dump.c */
    braid_dump_slot_t *next, *prev, *tls_prev;
    atomic_uint want, done;
    char *report;
};

/* One report of a collected dump. */
typedef struct braid_dump_entry {
    braid_thread_t *thread; /* retained */
    char *report;           /* malloc'd, or NULL: no report in time */
} braid_dump_entry_t;

/* Registers the calling OS thread's slot (it becomes the thread's current
 * one until detached). waiter may be NULL. Returns NULL on OOM. */
braid_dump_slot_t *braid_dump_attach(void *data, braid_dump_request_fn request,
                                     braid_waiter_t *waiter);
/* Unregisters and frees a slot; by its owner, before data goes away. */
void braid_dump_detach(braid_dump_slot_t *s);
/* The calling OS thread's current slot, or NULL. */
braid_dump_slot_t *braid_dump_current(void);
/* Installs the function parked owners serve requests with (once). */
void braid_dump_set_serve(braid_dump_serve_fn fn);

/* Whether a report is wanted from s now. Any thread; lock-free. */
int braid_dump_wanted(braid_dump_slot_t *s);
/* Posts the owner's report (copied) for the pending request; NULL marks it
 * done with no report. Ignored when none is pending. */
void braid_dump_post(braid_dump_slot_t *s, const char *text);
/* For an owner waiting outside braid_waiter_park (in slices): serves a
 * pending request of the calling thread's slot, if any. */
void braid_dump_serve_pending(void);

/* For braid_waiter_park, called with w->mu held: whether the calling
 * thread's slot, parked on w, has a request pending. */
int braid__dump_wanted(braid_waiter_t *w);
/* For braid_waiter_park, with no lock held: serves it. */
void braid__dump_serve_parked(void);

/* Runs one dump's collection (one at a time per process): asks every
 * slot but self to report, waits until all did or wait_ns passed, and
 * returns the entries in registration order; self's entry (if self is
 * not NULL) carries self_report. Returns 0 or BRAID_ENOMEM. */
int braid_dump_collect(braid_dump_slot_t *self, const char *self_report, int64_t wait_ns,
                       braid_dump_entry_t **out, size_t *n);
void braid_dump_entries_free(braid_dump_entry_t *e, size_t n);

#ifdef __cplusplus
}
#endif
#endif
