/* Core tests for SHA-256 and HMAC-SHA256: the FIPS 180-4 examples, a
 * million 'a's fed in uneven pieces, and RFC 4231's HMAC test cases. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "sha256.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static int digest_is(const char *msg, size_t len, const char *want)
{
    uint8_t d[32];
    char h[65];
    braid_sha256(msg, len, d);
    hex(d, 32, h);
    return strcmp(h, want) == 0;
}

static void test_sha256(void)
{
    CHECK(digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(digest_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(digest_is(
        two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    static char a[1000];
    memset(a, 'a', sizeof a);
    braid_sha256_t c;
    braid_sha256_init(&c);
    size_t done = 0, step = 1;
    while (done < 1000000) {
        size_t k = step < 1000000 - done ? step : 1000000 - done;
        k = k < sizeof a ? k : sizeof a;
        braid_sha256_update(&c, a, k);
        done += k;
        step = step * 7 % 997 + 1;
    }
    uint8_t d[32];
    char h[65];
    braid_sha256_final(&c, d);
    hex(d, 32, h);
    CHECK(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
}

static int hmac_is(const void *key, size_t klen, const void *msg, size_t mlen, const char *want)
{
    uint8_t d[32];
    char h[65];
    braid_hmac_sha256(key, klen, msg, mlen, d);
    hex(d, 32, h);
    return strcmp(h, want) == 0;
}

static void test_hmac(void)
{
    uint8_t k1[20], k3[20], d3[50], k6[131];
    memset(k1, 0x0b, sizeof k1);
    memset(k3, 0xaa, sizeof k3);
    memset(d3, 0xdd, sizeof d3);
    memset(k6, 0xaa, sizeof k6);
    CHECK(hmac_is(
        k1, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
    CHECK(hmac_is("Jefe",
                  4,
                  "what do ya want for nothing?",
                  28,
                  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    CHECK(hmac_is(
        k3, 20, d3, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"));
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    CHECK(hmac_is(k6,
                  131,
                  m6,
                  strlen(m6),
                  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
}

static void test_equal(void)
{
    CHECK(braid_digest_equal("abcd", "abcd", 4));
    CHECK(!braid_digest_equal("abcd", "abce", 4));
    CHECK(!braid_digest_equal("xbcd", "abcd", 4));
    CHECK(braid_digest_equal("", "", 0));
}

int main(void)
{
    RUN(test_sha256);
    RUN(test_hmac);
    RUN(test_equal);
    return CHECK_DONE();
}
