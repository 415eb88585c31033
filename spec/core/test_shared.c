/* Core tests for braid_shared: set/get/delete, the # border, snapshots,
 * and read-modify-write under the table's RLock from many threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "values.h"
#include "clock.h"
#include "codec.h"
#include "error.h"
#include "shared.h"

static void set_ii(braid_shared_t *t, int64_t k, int64_t v, int del)
{
    braid_buf_t kb = enc_int(k), vb = enc_int(v);
    CHECK(braid_shared_set(t, &kb, del ? NULL : &vb) == 0);
    braid_buf_free(&kb);
    braid_buf_free(&vb);
}

/* value stored under integer key k, or -1 if absent */
static int64_t get_i(braid_shared_t *t, braid_buf_t *key)
{
    braid_buf_t out;
    braid_buf_init(&out);
    int rc = braid_shared_get(t, key->data, key->len, &out);
    int64_t v = -1;
    if (rc == 1) {
        braid_reader_t r;
        braid_reader_init(&r, out.data, out.len);
        braid_reader_u8(&r);
        v = braid_reader_int(&r);
    }
    braid_buf_free(&out);
    return v;
}

static int64_t get_ii(braid_shared_t *t, int64_t k)
{
    braid_buf_t kb = enc_int(k);
    int64_t v = get_i(t, &kb);
    braid_buf_free(&kb);
    return v;
}

static void test_basic(void)
{
    braid_shared_t *t;
    CHECK(braid_shared_new(&t) == 0);
    CHECK(get_ii(t, 1) == -1);
    for (int i = 1; i <= 1000; i++)
        set_ii(t, i, i * 10, 0);
    CHECK(braid_shared_count(t) == 1000);
    CHECK(braid_shared_len(t) == 1000);
    for (int i = 1; i <= 1000; i++)
        CHECK(get_ii(t, i) == i * 10);
    braid_buf_t k = enc_str("name"), v = enc_int(7);
    CHECK(braid_shared_set(t, &k, &v) == 0);
    CHECK(k.len == 0 && v.len == 0);
    braid_buf_free(&k);
    braid_buf_free(&v);
    braid_buf_t k2 = enc_str("name");
    CHECK(get_i(t, &k2) == 7);
    braid_buf_free(&k2);
    set_ii(t, 500, 0, 1);
    CHECK(get_ii(t, 500) == -1);
    CHECK(braid_shared_len(t) == 499);
    set_ii(t, 500, 1, 0);
    CHECK(braid_shared_len(t) == 1000);
    for (int i = 1000; i >= 1; i--)
        set_ii(t, i, 0, 1);
    CHECK(braid_shared_len(t) == 0);
    CHECK(braid_shared_count(t) == 1);
    /* filling a hole from below extends the border over what follows */
    set_ii(t, 2, 2, 0);
    set_ii(t, 3, 3, 0);
    CHECK(braid_shared_len(t) == 0);
    set_ii(t, 1, 1, 0);
    CHECK(braid_shared_len(t) == 3);
    braid_shared_pair_t *pairs;
    size_t n;
    CHECK(braid_shared_snapshot(t, &pairs, &n) == 0);
    CHECK(n == 4);
    set_ii(t, 4, 4, 0);
    CHECK(n == 4 && pairs != NULL);
    braid_shared_pairs_free(pairs, n);
    braid_object_release((braid_object_t *)t);
}

enum { THREADS = 4, ROUNDS = 20000 };

static void *incr(void *p)
{
    braid_shared_t *t = p;
    braid_rlock_t *l = braid_shared_rlock(t);
    for (int i = 0; i < ROUNDS; i++) {
        CHECK(braid_rlock_acquire(l, BRAID_FOREVER) == 0);
        int64_t v = get_ii(t, 0); /* reentrant: get takes the lock again */
        set_ii(t, 0, v + 1, 0);
        CHECK(braid_rlock_release(l) == 0);
    }
    return NULL;
}

static void test_locked_increments(void)
{
    braid_shared_t *t;
    CHECK(braid_shared_new(&t) == 0);
    set_ii(t, 0, 0, 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, incr, t);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(get_ii(t, 0) == (int64_t)THREADS * ROUNDS);
    braid_object_release((braid_object_t *)t);
}

/* The string stored under key k, compared with want (NULL: absent). */
static int has_str(braid_shared_t *t, const char *k, const char *want)
{
    braid_buf_t kb = enc_str(k), out, w;
    braid_buf_init(&out);
    int rc = braid_shared_get(t, kb.data, kb.len, &out);
    int ok = want ? rc == 1 : rc == 0;
    if (want && rc == 1) {
        w = enc_str(want);
        ok = out.len == w.len && memcmp(out.data, w.data, w.len) == 0;
        braid_buf_free(&w);
    }
    braid_buf_free(&kb);
    braid_buf_free(&out);
    return ok;
}

static void set_ss(braid_shared_t *t, const char *k, const char *v)
{
    braid_buf_t kb = enc_str(k), vb = enc_str(v ? v : "");
    CHECK(braid_shared_set(t, &kb, v ? &vb : NULL) == 0);
    braid_buf_free(&kb);
    braid_buf_free(&vb);
}

/* Pairs that fit in a slot (16 bytes of key and value) and pairs that do
 * not, a key's value moving between the two, deletes, and snapshots. */
static void test_inline_and_big(void)
{
    static const char *const vals[] = {
        "", "a", "abcdefghij", "abcdefghijk", "a value far too long to live in a slot"};
    braid_shared_t *t;
    CHECK(braid_shared_new(&t) == 0);
    const char *keys[] = {"k", "key-of-12345", "a key far longer than sixteen bytes"};
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++)
            for (int v = 0; v < 5; v++) {
                set_ss(t, keys[k], vals[(v + r) % 5]);
                CHECK(has_str(t, keys[k], vals[(v + r) % 5]));
            }
    CHECK(braid_shared_count(t) == 3);
    braid_shared_pair_t *pairs;
    size_t n;
    CHECK(braid_shared_snapshot(t, &pairs, &n) == 0);
    CHECK(n == 3);
    braid_shared_pairs_free(pairs, n);
    for (int k = 0; k < 3; k++) {
        set_ss(t, keys[k], NULL);
        CHECK(has_str(t, keys[k], NULL));
    }
    CHECK(braid_shared_count(t) == 0);
    /* many, then all deleted: every slot empty again */
    char kbuf[32];
    for (int i = 0; i < 500; i++) {
        snprintf(kbuf, sizeof kbuf, "k%d%s", i, i % 3 ? "" : "-with-a-long-tail");
        set_ss(t, kbuf, vals[i % 5]);
    }
    CHECK(braid_shared_count(t) == 500);
    for (int i = 0; i < 500; i++) {
        snprintf(kbuf, sizeof kbuf, "k%d%s", i, i % 3 ? "" : "-with-a-long-tail");
        CHECK(has_str(t, kbuf, vals[i % 5]));
        set_ss(t, kbuf, NULL);
    }
    CHECK(braid_shared_count(t) == 0);
    braid_object_release((braid_object_t *)t);
}

/* Integer keys 1..n live in the array part: filled in any order, with
 * holes, deleted, holding big values, alongside the same keys' hash
 * entries before the array reaches them; # and snapshots see them all. */
static void test_array_part(void)
{
    braid_shared_t *t;
    CHECK(braid_shared_new(&t) == 0);
    /* backwards: all in the hash part until key 1 comes, then moved */
    for (int i = 300; i >= 1; i--)
        set_ii(t, i, i, 0);
    CHECK(braid_shared_len(t) == 300);
    CHECK(braid_shared_count(t) == 300);
    for (int i = 1; i <= 300; i++)
        CHECK(get_ii(t, i) == i);
    for (int i = 301; i <= 2000; i++) /* appends */
        set_ii(t, i, -i, 0);
    CHECK(braid_shared_len(t) == 2000);
    /* a hole in the array part, then filled again */
    set_ii(t, 1000, 0, 1);
    CHECK(get_ii(t, 1000) == -1);
    CHECK(braid_shared_len(t) == 999);
    CHECK(braid_shared_count(t) == 1999);
    set_ii(t, 1000, 5, 1); /* deleting an absent key changes nothing */
    CHECK(braid_shared_count(t) == 1999);
    set_ii(t, 1000, 7, 0);
    CHECK(braid_shared_len(t) == 2000);
    CHECK(get_ii(t, 1000) == 7);
    /* zero, negatives and far keys stay in the hash part */
    set_ii(t, 0, 1, 0);
    set_ii(t, -5, 2, 0);
    set_ii(t, 1000000, 3, 0);
    CHECK(get_ii(t, 0) == 1 && get_ii(t, -5) == 2 && get_ii(t, 1000000) == 3);
    CHECK(braid_shared_len(t) == 2000);
    /* a value too long for a cell, replaced, then deleted */
    braid_buf_t k = enc_int(5), v = enc_str("a value far too long to live in a cell");
    CHECK(braid_shared_set(t, &k, &v) == 0);
    braid_buf_free(&k);
    braid_buf_free(&v);
    k = enc_int(5);
    braid_buf_t out;
    braid_buf_init(&out);
    CHECK(braid_shared_get(t, k.data, k.len, &out) == 1);
    CHECK(out.len == 2 + strlen("a value far too long to live in a cell"));
    braid_buf_free(&out);
    braid_buf_free(&k);
    set_ii(t, 5, 55, 0);
    CHECK(get_ii(t, 5) == 55);
    k = enc_int(6), v = enc_str("another value far too long for a cell");
    CHECK(braid_shared_set(t, &k, &v) == 0);
    braid_buf_free(&k);
    braid_buf_free(&v);
    set_ii(t, 6, 0, 1);
    CHECK(get_ii(t, 6) == -1);
    CHECK(braid_shared_len(t) == 5);
    set_ii(t, 6, 6, 0);
    /* a non-canonical encoding of 7 (a padded varint) is another key */
    braid_buf_t pad;
    braid_buf_init(&pad);
    braid_buf_put_u8(&pad, BRAID_T_INT);
    braid_buf_put_bytes(&pad, "\x8e\x00", 2);
    CHECK(get_i(t, &pad) == -1);
    braid_buf_free(&pad);
    /* a snapshot holds every pair once */
    braid_shared_pair_t *pairs;
    size_t n;
    CHECK(braid_shared_snapshot(t, &pairs, &n) == 0);
    CHECK(n == 2003 && n == braid_shared_count(t));
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        braid_reader_t r;
        braid_reader_init(&r, pairs[i].key.data, pairs[i].key.len);
        CHECK(braid_reader_u8(&r) == BRAID_T_INT);
        sum += braid_reader_int(&r);
    }
    CHECK(sum == 2000 * 2001 / 2 + 0 - 5 + 1000000);
    braid_shared_pairs_free(pairs, n);
    /* holes then the keys before them: the border jumps over both parts */
    braid_shared_t *u;
    CHECK(braid_shared_new(&u) == 0);
    for (int i = 2; i <= 40; i++)
        set_ii(u, i, i, 0);
    CHECK(braid_shared_len(u) == 0);
    set_ii(u, 1, 1, 0);
    CHECK(braid_shared_len(u) == 40);
    for (int i = 1; i <= 40; i++)
        set_ii(u, i, 0, 1);
    CHECK(braid_shared_count(u) == 0 && braid_shared_len(u) == 0);
    braid_object_release((braid_object_t *)u);
    braid_object_release((braid_object_t *)t);
}

int main(void)
{
    long before = braid_object_count();
    RUN(test_basic);
    RUN(test_locked_increments);
    CHECK(braid_object_count() == before);
    RUN(test_inline_and_big);
    RUN(test_array_part);
    return CHECK_DONE();
}
