/* Core tests for core/slab: slots are s->size bytes apart and never
 * overlap, fresh slots are zero, given-back slots are handed out again
 * before new memory, slots cross chunks (more than one chunk's worth in
 * use at once), and threads take and give concurrently. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "slab.h"

#define MANY 40000 /* 200 B slots: about four 2 MB chunks */

static braid_slab_t slab = BRAID_SLAB_INIT(200);

static void test_take_give(void)
{
    CHECK(slab.size == 256);
    void **v = malloc(MANY * sizeof *v);
    int fresh;
    for (int i = 0; i < MANY; i++) {
        v[i] = braid_slab_take(&slab, &fresh);
        CHECK(v[i] != NULL);
        if (!v[i])
            return;
        if (fresh) {
            unsigned char z[256] = {0};
            CHECK(memcmp(v[i], z, sizeof z) == 0);
        }
        memset(v[i], i & 0xff, slab.size); /* overlapping slots would clobber */
    }
    for (int i = 0; i < MANY; i++)
        CHECK(((unsigned char *)v[i])[slab.size - 1] == (i & 0xff));
    /* a given-back slot comes back before new memory */
    void *p = v[123];
    braid_slab_give(&slab, p);
    v[123] = braid_slab_take(&slab, &fresh);
    CHECK(v[123] != NULL);
    if (braid_slab_reuses()) /* (ASan builds: calloc and free) */
        CHECK(v[123] == p && !fresh);
    for (int i = 0; i < MANY; i++)
        braid_slab_give(&slab, v[i]);
    /* and again, after every chunk emptied (all but one unmapped) */
    for (int i = 0; i < MANY; i++) {
        v[i] = braid_slab_take(&slab, &fresh);
        CHECK(v[i] != NULL);
        if (v[i])
            memset(v[i], 1, slab.size);
    }
    for (int i = 0; i < MANY; i++)
        braid_slab_give(&slab, v[i]);
    free(v);
}

static void *churn(void *arg)
{
    (void)arg;
    void *v[512];
    int fresh;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 512; i++) {
            v[i] = braid_slab_take(&slab, &fresh);
            if (v[i])
                memset(v[i], round, 64);
        }
        for (int i = 0; i < 512; i++)
            if (v[i])
                braid_slab_give(&slab, v[i]);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

int main(void)
{
    RUN(test_take_give);
    RUN(test_threads);
    return CHECK_DONE();
}
