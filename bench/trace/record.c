/* The recorder's own cost, without Lua or a queue around it: ns per
 * braid_trace_flow (a put->get arrow end, the event a queue stream records
 * per item) and per braid_clock_now (the timestamp its caller reads), one
 * thread, recording into a temp file. Build (from the repository root):
 *   cc -O2 -Icore bench/trace/record.c build/libbraidcore.a -lpthread -o /tmp/record
 * usage: record [events] -> RESULT trace_flow_ns, RESULT clock_now_ns */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "trace.h"

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 4000000;
    char path[] = "/tmp/braid-record-XXXXXX";
    close(mkstemp(path));
    int64_t sink = 0, t0 = braid_clock_now();
    for (long i = 0; i < n; i++)
        sink += braid_clock_now();
    int64_t clock_ns = braid_clock_now() - t0;
    braid_trace_start(path, "record");
    t0 = braid_clock_now();
    for (long i = 0; i < n; i++)
        braid_trace_flow(i & 1, i & 1 ? "put" : "get", (uint64_t)i >> 1, t0 + i);
    int64_t flow_ns = braid_clock_now() - t0;
    t0 = braid_clock_now();
    braid_trace_stop();
    int64_t stop_ns = braid_clock_now() - t0;
    unlink(path);
    printf("RESULT trace_flow_ns %.1f\n", (double)flow_ns / n);
    printf("RESULT clock_now_ns %.1f\n", (double)clock_ns / n + (double)(sink & 1) * 0);
    printf("RESULT stop_format_ns_per_event %.1f\n", (double)stop_ns / n);
    return 0;
}
