/* Core tests for core/arena: blocks never overlap and keep their contents
 * through reallocs of every size (in the region, past it, out of it), and
 * arenas taken and given back by many threads at once stay apart. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "check.h"

typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char tag;
} blk_t;

static unsigned next_rand(unsigned long long *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (unsigned)*x;
}

/* Mostly small blocks, some of a few KB, a few larger than the region's
 * largest class. */
static size_t rand_size(unsigned long long *x)
{
    unsigned r = next_rand(x) % 100;
    if (r < 70)
        return 1 + next_rand(x) % 100;
    if (r < 90)
        return 1 + next_rand(x) % 1000;
    if (r < 98)
        return 1 + next_rand(x) % 5000;
    return 1 + next_rand(x) % 20000;
}

static int intact(const blk_t *b)
{
    for (size_t k = 0; k < b->n; k++)
        if (b->p[k] != b->tag)
            return 0;
    return 1;
}

/* Random allocs, reallocs and frees of nblocks slots in one arena, each
 * block filled with its own byte; returns the number of damaged blocks. */
static int churn(unsigned long long seed, int nblocks, int steps)
{
    unsigned long long x = seed;
    braid_arena_t *a = braid_arena_new();
    if (!a)
        return 1;
    blk_t *b = calloc((size_t)nblocks, sizeof *b);
    int bad = 0;
    for (int it = 0; it < steps; it++) {
        blk_t *s = &b[next_rand(&x) % (unsigned)nblocks];
        if (s->p && !intact(s))
            bad++;
        if (s->p && next_rand(&x) % 3 == 0) {
            braid_arena_alloc(a, s->p, s->n, 0);
            s->p = NULL;
            continue;
        }
        size_t n = rand_size(&x);
        unsigned char *p = braid_arena_alloc(a, s->p, s->p ? s->n : 5 /* a type tag */, n);
        if (!p || ((uintptr_t)p & 7) != 0) {
            bad++;
            continue;
        }
        size_t kept = s->p ? (s->n < n ? s->n : n) : 0;
        for (size_t k = 0; k < kept; k++)
            if (p[k] != s->tag) {
                bad++;
                break;
            }
        s->p = p;
        s->n = n;
        s->tag = (unsigned char)next_rand(&x);
        memset(p, s->tag, n);
    }
    for (int i = 0; i < nblocks; i++)
        if (b[i].p) {
            if (!intact(&b[i]))
                bad++;
            braid_arena_alloc(a, b[i].p, b[i].n, 0);
        }
    braid_arena_free(a);
    free(b);
    return bad;
}

static void test_churn(void)
{
    /* few blocks: all in the region; many: past its end, into malloc */
    for (int round = 0; round < 20; round++) {
        CHECK(churn(88172645463325252ULL + (unsigned)round, 50, 5000) == 0);
        CHECK(churn(1234567ULL + (unsigned)round, 2000, 20000) == 0);
    }
}

static void test_used(void)
{
    braid_arena_t *a = braid_arena_new();
    CHECK(a != NULL);
    size_t u0 = braid_arena_used(a);
    void *p = braid_arena_alloc(a, NULL, 0, 24);
    if (braid_arena_used(a) == u0) { /* ASan builds: every block is malloc's */
        braid_arena_alloc(a, p, 24, 0);
        braid_arena_free(a);
        return;
    }
    CHECK(braid_arena_used(a) == u0 + 24); /* no header, no rounding past 8 */
    void *q = braid_arena_alloc(a, NULL, 0, 20);
    CHECK((char *)q == (char *)p + 24);
    braid_arena_alloc(a, q, 20, 0);
    void *r = braid_arena_alloc(a, NULL, 0, 17); /* reuses q's block */
    CHECK(r == q && braid_arena_used(a) == u0 + 48);
    /* a grown vector's old block is cut up for later small blocks */
    char *v = braid_arena_alloc(a, NULL, 0, 1024);
    char *v2 = braid_arena_alloc(a, v, 1024, 2048);
    size_t u1 = braid_arena_used(a);
    char *s = braid_arena_alloc(a, NULL, 0, 40);
    CHECK(s == v && braid_arena_used(a) == u1);
    braid_arena_alloc(a, s, 40, 0);
    braid_arena_alloc(a, v2, 2048, 0);
    braid_arena_alloc(a, p, 24, 0);
    braid_arena_alloc(a, r, 17, 0);
    braid_arena_free(a);
}

/* The start of a's region: its first block (8 bytes, given back at once;
 * nothing is written to the region). */
static char *region_of(braid_arena_t *a)
{
    char *p = braid_arena_alloc(a, NULL, 0, 8);
    braid_arena_alloc(a, p, 8, 0);
    return p;
}

/* Whether the page at p is resident. */
static int resident(void *p)
{
    unsigned char v = 0;
    return mincore(p, 1, &v) == 0 && (v & 1);
}

/* Once an arena has told its touched prefix, a clean region (never used)
 * comes with that many pages present, and no more. */
static void test_learn(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    if (ps != 4096)
        return; /* the sizes below count 4 KB pages */
    braid_arena_t *a = braid_arena_new();
    CHECK(a != NULL);
    void *b[5];
    for (int i = 0; i < 5; i++) /* 10 KB: three pages */
        CHECK((b[i] = braid_arena_alloc(a, NULL, 0, 2048)) != NULL);
    if (braid_arena_used(a) == 0) { /* ASan builds: every block is malloc's */
        for (int i = 0; i < 5; i++)
            braid_arena_alloc(a, b[i], 2048, 0);
        braid_arena_free(a);
        return;
    }
    braid_arena_learn(a); /* three pages */
    /* more arenas than the pool keeps with pages: the last one is clean */
    enum { K = 40 };
    braid_arena_t *as[K];
    for (int i = 0; i < K; i++) {
        as[i] = braid_arena_new();
        CHECK(as[i] != NULL);
    }
    char *r = region_of(as[K - 1]);
    /* a kernel before 5.14 cannot populate: its pages fault in later */
    char *probe =
        mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(probe != MAP_FAILED);
    int can = madvise(probe, (size_t)ps, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(probe, (size_t)ps);
    for (int i = 0; i < 3; i++)
        CHECK(resident(r + i * ps) == can);
    CHECK(!resident(r + 3 * ps));
    for (int i = 0; i < K; i++)
        braid_arena_free(as[i]);
    /* a state that filled 40 KB teaches 32 KB (a quarter of a region) */
    void *c[20];
    for (int i = 0; i < 20; i++)
        CHECK((c[i] = braid_arena_alloc(a, NULL, 0, 2048)) != NULL);
    braid_arena_learn(a);
    for (int i = 0; i < K; i++) {
        as[i] = braid_arena_new();
        CHECK(as[i] != NULL);
    }
    r = region_of(as[K - 1]);
    CHECK(resident(r + 7 * ps) == can); /* mincore takes page addresses */
    CHECK(!resident(r + 8 * ps));
    for (int i = 0; i < K; i++)
        braid_arena_free(as[i]);
    for (int i = 0; i < 20; i++)
        braid_arena_alloc(a, c[i], 2048, 0);
    for (int i = 0; i < 5; i++)
        braid_arena_alloc(a, b[i], 2048, 0);
    braid_arena_free(a);
}

/* Each thread keeps several arenas alive at once (more in all than the
 * pool keeps with their pages), so regions go back to the kernel and come
 * out again while others are in use. */
static void *pool_worker(void *arg)
{
    unsigned long long x = (uintptr_t)arg * 2654435761ULL + 1;
    long bad = 0;
    for (int round = 0; round < 30; round++) {
        enum { K = 12 };
        braid_arena_t *as[K];
        unsigned char *ps[K];
        for (int i = 0; i < K; i++) {
            as[i] = braid_arena_new();
            ps[i] = as[i] ? braid_arena_alloc(as[i], NULL, 0, 3000) : NULL;
            if (ps[i])
                memset(ps[i], i + 1, 3000);
            else
                bad++;
        }
        bad += churn(next_rand(&x), 100, 500);
        for (int i = 0; i < K; i++) {
            if (ps[i])
                for (int k = 0; k < 3000; k++)
                    if (ps[i][k] != i + 1) {
                        bad++;
                        break;
                    }
            if (ps[i])
                braid_arena_alloc(as[i], ps[i], 3000, 0);
            if (as[i])
                braid_arena_free(as[i]);
        }
    }
    return (void *)bad;
}

static void test_pool_threads(void)
{
    enum { NT = 8 };
    pthread_t ts[NT];
    for (int i = 0; i < NT; i++)
        pthread_create(&ts[i], NULL, pool_worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < NT; i++) {
        void *bad;
        pthread_join(ts[i], &bad);
        CHECK(bad == NULL);
    }
}

int main(void)
{
    RUN(test_churn);
    RUN(test_used);
    RUN(test_learn);
    RUN(test_pool_threads);
    return CHECK_DONE();
}
