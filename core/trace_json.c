/* Records -> Chrome trace-event JSON. Recording threads only append
 * binary records (trace_record.c); the flusher (trace_flush.c), stop and
 * the crash path (trace.c) format them here. Formatting is
 * async-signal-safe (memory and write(2) only). */
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>

#include "fdio.h"
#include "trace_int.h"

/* ---- formatting ---- */

void trace__put_raw(trace_out_t *o, const char *s, size_t n)
{
    if (n > (size_t)(o->end - o->p))
        n = (size_t)(o->end - o->p);
    memcpy(o->p, s, n);
    o->p += n;
}

#define PUT_LIT(o, s) trace__put_raw((o), (s), sizeof(s) - 1)

static const char DIGITS2[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";

static void put_uint(trace_out_t *o, uint64_t v)
{
    char tmp[24];
    int n = 24;
    while (v >= 100) { /* two digits a division: numbers here are long */
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        tmp[--n] = DIGITS2[2 * r + 1];
        tmp[--n] = DIGITS2[2 * r];
    }
    if (v >= 10) {
        tmp[--n] = DIGITS2[2 * v + 1];
        tmp[--n] = DIGITS2[2 * v];
    } else {
        tmp[--n] = (char)('0' + v);
    }
    trace__put_raw(o, tmp + n, (size_t)(24 - n));
}

void trace__put_int(trace_out_t *o, int64_t v)
{
    if (v < 0 && o->p < o->end) {
        *o->p++ = '-';
        put_uint(o, (uint64_t)(-(v + 1)) + 1);
    } else {
        put_uint(o, (uint64_t)v);
    }
}

/* ns as microseconds with three decimals */
static void put_us(trace_out_t *o, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    put_uint(o, (uint64_t)ns / 1000);
    char frac[4] = {
        '.', (char)('0' + ns / 100 % 10), (char)('0' + ns / 10 % 10), (char)('0' + ns % 10)};
    trace__put_raw(o, frac, 4);
}

/* Length of a valid UTF-8 sequence at s (n bytes left), or 0. */
static int utf8_len(const unsigned char *s, size_t n)
{
    int len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (!len || (size_t)len > n)
        return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* A JSON string of at most max bytes of s (invalid UTF-8 becomes '?'). */
void trace__put_str(trace_out_t *o, const char *s, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    if (!s)
        s = "";
    size_t n = strnlen(s, max);
    const unsigned char *u = (const unsigned char *)s;
    trace__put_raw(o, "\"", 1);
    for (size_t i = 0; i < n && o->end - o->p > 8; i++) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            trace__put_raw(o, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            trace__put_raw(o, e, 6);
        } else if (c < 0x80) {
            *o->p++ = (char)c;
        } else {
            int l = utf8_len(u + i, n - i);
            if (l) {
                trace__put_raw(o, s + i, (size_t)l);
                i += (size_t)l - 1;
            } else {
                *o->p++ = '?';
            }
        }
    }
    trace__put_raw(o, "\"", 1);
}

/* The next NUL-terminated string of a record ending at end (a record
 * caught half-written by a crash gives "" rather than a read past it). */
static const char *next_str(const char **p, const char *end)
{
    const char *s = *p;
    size_t n = s < end ? strnlen(s, (size_t)(end - s)) : 0;
    if (s + n >= end) {
        *p = end;
        return "";
    }
    *p += n + 1;
    return s;
}

static void put_args(trace_out_t *o, const char **p, const char *end, int nargs)
{
    PUT_LIT(o, ",\"args\":{");
    for (int i = 0; i < nargs && i < TRACE_ARGS_MAX; i++) {
        char kind = *p < end ? *(*p)++ : 'i';
        if (i)
            trace__put_raw(o, ",", 1);
        trace__put_str(o, next_str(p, end), TRACE_KEY_MAX);
        trace__put_raw(o, ":", 1);
        if (kind == 's') {
            trace__put_str(o, next_str(p, end), TRACE_STR_MAX);
            continue;
        }
        int64_t v = 0;
        if (end - *p >= (ptrdiff_t)sizeof v)
            memcpy(&v, *p, sizeof v);
        *p += end - *p >= (ptrdiff_t)sizeof v ? (ptrdiff_t)sizeof v : end - *p;
        if (kind == 'b') {
            if (v)
                PUT_LIT(o, "true");
            else
                PUT_LIT(o, "false");
        } else {
            trace__put_int(o, v);
        }
    }
    trace__put_raw(o, "}", 1);
}

/* One record as ",\n{...}"; ids is ,"pid":P,"tid":T. */
static void put_record(trace_out_t *o, const trace_rec_t *r, const char *ids, size_t ids_len)
{
    const char *p = (const char *)(r + 1), *end = (const char *)r + r->size;
    const char *cat = r->has_cat                                             ? next_str(&p, end)
                      : r->ph == TRACE_FLOW_START || r->ph == TRACE_FLOW_END ? "flow"
                                                                             : NULL;
    const char *name = next_str(&p, end);
    char ph = r->ph == TRACE_THREAD_NAME ? 'M' : (char)r->ph;
    char head[] = ",\n{\"ph\":\"?\"";
    head[sizeof head - 3] = ph;
    trace__put_raw(o, head, sizeof head - 1);
    if (r->ph == TRACE_THREAD_NAME) {
        PUT_LIT(o, ",\"name\":\"thread_name\"");
        trace__put_raw(o, ids, ids_len);
        PUT_LIT(o, ",\"args\":{\"name\":");
        trace__put_str(o, name, TRACE_STR_MAX);
        PUT_LIT(o, "}}");
        return;
    }
    if (cat) {
        PUT_LIT(o, ",\"cat\":");
        trace__put_str(o, cat, TRACE_STR_MAX);
    }
    PUT_LIT(o, ",\"name\":");
    trace__put_str(o, name, TRACE_STR_MAX);
    trace__put_raw(o, ids, ids_len);
    if (r->ts >= 0) {
        PUT_LIT(o, ",\"ts\":");
        put_us(o, r->ts);
    }
    switch (r->ph) {
    case TRACE_SLICE:
        PUT_LIT(o, ",\"dur\":");
        put_us(o, r->x);
        break;
    case TRACE_INSTANT:
        PUT_LIT(o, ",\"s\":\"t\"");
        break;
    case TRACE_ASYNC_BEGIN:
    case TRACE_ASYNC_END:
    case TRACE_ASYNC_INSTANT:
    case TRACE_FLOW_START:
    case TRACE_FLOW_END:
        PUT_LIT(o, ",\"id\":");
        put_uint(o, (uint64_t)r->x);
        if (r->ph == TRACE_FLOW_END)
            PUT_LIT(o, ",\"bp\":\"e\"");
        break;
    default:
        break;
    }
    if (r->nargs || r->ph == TRACE_COUNTER)
        put_args(o, &p, end, r->nargs);
    trace__put_raw(o, "}", 1);
}

/* Whether this thread may write to the trace: once the crash path began
 * (trace__fatal_tid set), only the thread running it. */
static int may_write(void)
{
    int t = atomic_load(&trace__fatal_tid);
    return !t || t == (int)syscall(SYS_gettid);
}

/* Room one record can take once formatted: every byte escaped as \u00XX. */
#define JSON_REC_MAX (6 * TRACE_REC_MAX + 512)

size_t trace__write_json(int fd, const char *recs, size_t len, int pid, int tid, char *scratch)
{
    char ids[48];
    trace_out_t io = {ids, ids + sizeof ids};
    PUT_LIT(&io, ",\"pid\":");
    trace__put_int(&io, pid);
    PUT_LIT(&io, ",\"tid\":");
    trace__put_int(&io, tid);
    size_t ids_len = (size_t)(io.p - ids);
    trace_out_t o = {scratch, scratch + TRACE_JSON_SCRATCH};
    size_t off = 0;
    while (off + sizeof(trace_rec_t) <= len) {
        const trace_rec_t *r = (const trace_rec_t *)(recs + off);
        if (r->size < sizeof *r || r->size > TRACE_REC_MAX || off + r->size > len)
            break; /* not a whole record (a crash caught it half-written) */
        if (o.end - o.p < JSON_REC_MAX) {
            if (!may_write())
                return len; /* the crash path is closing the file */
            braid_write_all(fd, scratch, (size_t)(o.p - scratch));
            o.p = scratch;
        }
        put_record(&o, r, ids, ids_len);
        off += r->size;
    }
    if (o.p > scratch && may_write())
        braid_write_all(fd, scratch, (size_t)(o.p - scratch));
    return off;
}
