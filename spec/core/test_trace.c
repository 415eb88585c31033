/* The recorder: threads append records with small buffers (so halves go to
 * the flusher and to the spill file), stop formats everything into one
 * JSON file with every event once, strings escaped, the spill file gone;
 * a second session works the same. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/clock.h"
#include "../../core/error.h"
#include "../../core/trace.h"
#include "check.h"

#define THREADS 4
#define FLOWS 6000

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    *n = fread(s, 1, (size_t)len, f);
    s[*n] = 0;
    fclose(f);
    return s;
}

/* Occurrences of what in s (no strstr: a sanitizer's strstr measures the
 * whole 2 MB text at every call). */
static size_t count(const char *s, const char *what)
{
    size_t n = 0, w = strlen(what), len = strlen(s);
    for (size_t i = 0; i + w <= len; i++)
        if (s[i] == what[0] && memcmp(s + i, what, w) == 0)
            n++;
    return n;
}

static void *recorder(void *arg)
{
    long k = (long)arg;
    char name[32];
    snprintf(name, sizeof name, "rec-%ld", k);
    braid_trace_thread_name(name);
    for (int i = 0; i < FLOWS; i++)
        braid_trace_flow(
            i % 2 == 0, i % 2 == 0 ? "put" : "get", (uint64_t)(k << 20 | i / 2), braid_clock_now());
    braid_trace_arg_t a[3] = {{"object", 's', "a\"b\\c\001\xc3\xa9", 0},
                              {"timeout", 'b', NULL, 1},
                              {"n", 'i', NULL, -42}};
    int64_t t0 = braid_clock_now();
    braid_trace_slice("wait", "Lock acquire", t0, t0 + 1500, a, 3);
    braid_trace_instant("error", "boom\nline", NULL, 0);
    braid_trace_counter("queue q", -1, a + 2, 1);
    return NULL;
}

static char path[] = "/tmp/braid-test-trace-XXXXXX";

static void session(void)
{
    CHECK(braid_trace_start(path, "test") == 0);
    CHECK(braid_trace_enabled());
    CHECK(braid_trace_start(path, "test") == BRAID_EINVAL);
    pthread_t t[THREADS];
    for (long k = 0; k < THREADS; k++)
        pthread_create(&t[k], NULL, recorder, (void *)k);
    for (int k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
    CHECK(braid_trace_stop() == 0);
    CHECK(!braid_trace_enabled());
    CHECK(braid_trace_stop() == BRAID_EINVAL);

    size_t n = 0;
    char *s = slurp(path, &n);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(strncmp(s, "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\"", 48) == 0);
    const char *end = "{\"tool\":\"braid\"}}\n";
    CHECK(n > strlen(end) && strcmp(s + n - strlen(end), end) == 0);
    CHECK(count(s, "\"ph\":\"s\"") == THREADS * FLOWS / 2);
    CHECK(count(s, "\"ph\":\"f\"") == THREADS * FLOWS / 2);
    CHECK(count(s, ",\"bp\":\"e\"}") == THREADS * FLOWS / 2);
    CHECK(count(s, "\"cat\":\"flow\",\"name\":\"put\"") == THREADS * FLOWS / 2);
    CHECK(count(s, "\"name\":\"thread_name\"") >= THREADS);
    CHECK(count(s, "\"args\":{\"name\":\"rec-3\"}") == 1);
    CHECK(count(s, "\"object\":\"a\\\"b\\\\c\\u0001\xc3\xa9\",\"timeout\":true,\"n\":-42") ==
          THREADS);
    CHECK(count(s, "\"dur\":1.500") == THREADS);
    CHECK(count(s, "\"name\":\"boom\\u000aline\"") == THREADS);
    CHECK(count(s, "\"ph\":\"C\",\"name\":\"queue q\"") == THREADS);
    /* one event a line: the events above, names, the process and main thread */
    CHECK(count(s, "\n{") == THREADS * (FLOWS + 4) + 1 + 2);
    free(s);

    char spill[4200];
    snprintf(spill, sizeof spill, "%s.%d.spill", path, (int)getpid());
    CHECK(access(spill, F_OK) != 0);
}

int main(void)
{
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    setenv("BRAID_TRACE_BUFFER", "16384", 1);
    RUN(session);
    RUN(session); /* a second session: a new flusher, the same buffers */
    unlink(path);
    return CHECK_DONE();
}
