/* Core tests for core/blockcache: blocks keep their contents through
 * reallocs of every size (within a class, across classes, small to large
 * and back), a freed small block is handed out again, at most
 * BRAID_BCACHE_KEEP bytes are kept, and big blocks (their pages populated
 * in bulk) keep their contents as they grow and shrink. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blockcache.h"
#include "check.h"

static unsigned next_rand(unsigned long long *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (unsigned)*x;
}

static size_t rand_size(unsigned long long *x)
{
    unsigned r = next_rand(x) % 100;
    if (r < 80)
        return 1 + next_rand(x) % 600; /* around the largest class */
    return 1 + next_rand(x) % 5000;
}

typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char tag;
} blk_t;

static int churn(unsigned long long seed, int nblocks, int steps)
{
    unsigned long long x = seed;
    braid_bcache_t *c = braid_bcache_new();
    if (!c)
        return 1;
    blk_t *b = calloc((size_t)nblocks, sizeof *b);
    int bad = 0;
    for (int it = 0; it < steps; it++) {
        blk_t *s = &b[next_rand(&x) % (unsigned)nblocks];
        if (s->p && next_rand(&x) % 3 == 0) {
            for (size_t k = 0; k < s->n; k++)
                bad += s->p[k] != s->tag;
            braid_bcache_alloc(c, s->p, s->n, 0);
            s->p = NULL;
            continue;
        }
        size_t n = rand_size(&x);
        unsigned char *p = braid_bcache_alloc(c, s->p, s->p ? s->n : 5 /* a type tag */, n);
        if (!p || ((uintptr_t)p & 7) != 0) {
            bad++;
            continue;
        }
        size_t kept = s->p ? (s->n < n ? s->n : n) : 0;
        for (size_t k = 0; k < kept; k++)
            bad += p[k] != s->tag;
        s->p = p;
        s->n = n;
        s->tag = (unsigned char)next_rand(&x);
        memset(p, s->tag, n);
    }
    for (int i = 0; i < nblocks; i++)
        if (b[i].p)
            braid_bcache_alloc(c, b[i].p, b[i].n, 0);
    braid_bcache_free(c);
    free(b);
    return bad;
}

static void test_churn(void)
{
    for (int round = 0; round < 20; round++)
        CHECK(churn(88172645463325252ULL + (unsigned)round, 500, 20000) == 0);
}

static void test_reuse_and_bound(void)
{
    braid_bcache_t *c = braid_bcache_new();
    CHECK(c != NULL);
    void *p = braid_bcache_alloc(c, NULL, 5, 40);
    braid_bcache_alloc(c, p, 40, 0);
    void *q = braid_bcache_alloc(c, NULL, 5, 33); /* the same class (33..48) */
    /* growing within the class keeps the block */
    void *r = braid_bcache_alloc(c, q, 33, 48);
    if (braid_bcache_kept(c) != (size_t)-1) { /* (ASan builds: plain malloc) */
        CHECK(q == p);
        CHECK(r == q);
    }
    braid_bcache_alloc(c, r, 48, 0);
    if (braid_bcache_kept(c) != (size_t)-1)
        CHECK(braid_bcache_kept(c) == 48);
    /* many more freed blocks than the bound: all freed cleanly (ASan/valgrind
     * check that the ones beyond it went back to free) */
    size_t n = 2 * BRAID_BCACHE_KEEP / 512;
    void **v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = braid_bcache_alloc(c, NULL, 5, 512);
    for (size_t i = 0; i < n; i++)
        braid_bcache_alloc(c, v[i], 512, 0);
    CHECK(braid_bcache_kept(c) == (size_t)-1 || braid_bcache_kept(c) <= BRAID_BCACHE_KEEP);
    free(v);
    braid_bcache_free(c);
}

/* Blocks well above the populating threshold, at unaligned sizes: every
 * byte written survives each grow and shrink. */
static void test_big_blocks(void)
{
    braid_bcache_t *c = braid_bcache_new();
    CHECK(c != NULL);
    size_t sizes[] = {300001, 1 << 20, 70000, 3 << 20, 100, 250000};
    unsigned char *p = NULL;
    size_t n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t m = sizes[i];
        unsigned char *q = braid_bcache_alloc(c, p, p ? n : 5, m);
        CHECK(q != NULL);
        size_t keep = n < m ? n : m;
        for (size_t j = 0; j < keep; j += 997)
            CHECK(q[j] == (unsigned char)(j * 7 + 1));
        for (size_t j = 0; j < m; j += 997)
            q[j] = (unsigned char)(j * 7 + 1);
        braid_heap_warm();
        p = q;
        n = m;
    }
    braid_bcache_alloc(c, p, n, 0);
    braid_bcache_free(c);
}

int main(void)
{
    RUN(test_churn);
    RUN(test_reuse_and_bound);
    RUN(test_big_blocks);
    return CHECK_DONE();
}
