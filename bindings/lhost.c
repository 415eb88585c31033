/* The host-thread half of braid.h: handles on queues, futures and events,
 * and the scalar and encoded values a C thread puts, gets and completes. */
#include <stdlib.h>
#include <string.h>

#include "lbraid.h"

#include "braid.h"
#include "future.h"
#include "queue.h"
#include "sync.h"

/* ---- handles ---- */

static void *to_handle(lua_State *L, int idx, int (*is)(const braid_object_t *))
{
    braid_object_t *obj = lbraid_to_object(L, idx);
    if (!obj || !is(obj))
        return NULL;
    braid_object_retain(obj);
    return obj;
}

static int is_queue(const braid_object_t *o)
{
    return braid_queue_kind_of(o) >= 0;
}

static int is_future(const braid_object_t *o)
{
    return o->type == &braid_future_type;
}

static int is_event(const braid_object_t *o)
{
    return o->type == &braid_event_type;
}

braid_queue_t *braid_host_toqueue(lua_State *L, int idx)
{
    return to_handle(L, idx, is_queue);
}

braid_future_t *braid_host_tofuture(lua_State *L, int idx)
{
    return to_handle(L, idx, is_future);
}

braid_event_t *braid_host_toevent(lua_State *L, int idx)
{
    return to_handle(L, idx, is_event);
}

void braid_host_push(lua_State *L, void *handle)
{
    lbraid_push_object(L, handle);
}

void braid_host_release(void *handle)
{
    braid_object_release(handle);
}

braid_queue_t *braid_host_queue_new(long maxsize)
{
    braid_queue_t *q = NULL;
    return braid_queue_new(BRAID_QUEUE_FIFO, maxsize, &q) == 0 ? q : NULL;
}

/* ---- scalars in the codec's format (core/codec.h) ---- */

void braid_scalar_free(braid_scalar_t *s)
{
    if (s && s->type == BRAID_STRING) {
        free((void *)s->v.string.ptr);
        s->v.string.ptr = NULL;
        s->v.string.len = 0;
    }
}

/* Appends v to buf. Returns 0 or BRAID_EINVAL / BRAID_ENOMEM. */
static int put_scalar(braid_buf_t *buf, const braid_scalar_t *v)
{
    if (!v)
        return BRAID_EINVAL;
    switch (v->type) {
    case BRAID_NIL:
        braid_buf_put_u8(buf, BRAID_T_NIL);
        break;
    case BRAID_BOOLEAN:
        braid_buf_put_u8(buf, v->v.boolean ? BRAID_T_TRUE : BRAID_T_FALSE);
        break;
    case BRAID_INTEGER:
        braid_buf_put_u8(buf, BRAID_T_INT);
        braid_buf_put_int(buf, (int64_t)v->v.integer);
        break;
    case BRAID_NUMBER:
        braid_buf_put_u8(buf, BRAID_T_FLOAT);
        braid_buf_put_f64(buf, v->v.number);
        break;
    case BRAID_STRING:
        if (!v->v.string.ptr && v->v.string.len)
            return BRAID_EINVAL;
        braid_buf_put_u8(buf, BRAID_T_STR);
        braid_buf_put_str(buf, v->v.string.ptr ? v->v.string.ptr : "", v->v.string.len);
        break;
    default:
        return BRAID_EINVAL;
    }
    return buf->err;
}

/* Reads exactly one scalar from data into *out. BRAID_ETYPE if it is some
 * other value, BRAID_ENOMEM for a string that cannot be copied. */
static int get_scalar(const void *data, size_t len, braid_scalar_t *out)
{
    braid_reader_t r;
    braid_reader_init(&r, data, len);
    memset(out, 0, sizeof *out);
    uint8_t tag = braid_reader_u8(&r);
    switch (tag) {
    case BRAID_T_NIL:
        out->type = BRAID_NIL;
        break;
    case BRAID_T_FALSE:
    case BRAID_T_TRUE:
        out->type = BRAID_BOOLEAN;
        out->v.boolean = tag == BRAID_T_TRUE;
        break;
    case BRAID_T_INT:
        out->type = BRAID_INTEGER;
        out->v.integer = (long long)braid_reader_int(&r);
        break;
    case BRAID_T_FLOAT:
        out->type = BRAID_NUMBER;
        out->v.number = braid_reader_f64(&r);
        break;
    case BRAID_T_STR:
    case BRAID_T_SSTR: {
        size_t n = 0;
        const uint8_t *p = braid_reader_str(&r, &n);
        if (r.err || braid_reader_left(&r) != 0)
            return BRAID_ETYPE;
        char *s = malloc(n + 1);
        if (!s)
            return BRAID_ENOMEM;
        memcpy(s, p, n);
        s[n] = '\0';
        out->type = BRAID_STRING;
        out->v.string.ptr = s;
        out->v.string.len = n;
        return 0;
    }
    default:
        return BRAID_ETYPE;
    }
    if (r.err || braid_reader_left(&r) != 0) {
        memset(out, 0, sizeof *out);
        return BRAID_ETYPE;
    }
    return 0;
}

/* ---- queues ---- */

static int queue_put_buf(braid_queue_t *q, braid_buf_t *buf, double timeout)
{
    int rc = buf->err ? buf->err : braid_queue_put(q, buf, braid_clock_deadline(timeout));
    braid_buf_free(buf);
    return rc;
}

int braid_host_queue_put(braid_queue_t *q, const braid_scalar_t *v, double timeout)
{
    braid_buf_t buf;
    braid_buf_init(&buf);
    int rc = put_scalar(&buf, v);
    if (rc) {
        braid_buf_free(&buf);
        return rc;
    }
    return queue_put_buf(q, &buf, timeout);
}

int braid_host_queue_put_encoded(braid_queue_t *q, const void *data, size_t len, double timeout)
{
    int rc = braid_codec_validate(data, len);
    if (rc)
        return rc;
    braid_buf_t buf;
    braid_buf_init(&buf);
    braid_buf_put_bytes(&buf, data, len);
    return queue_put_buf(q, &buf, timeout);
}

int braid_host_queue_get(braid_queue_t *q, braid_scalar_t *out, double timeout)
{
    braid_buf_t buf;
    braid_buf_init(&buf);
    memset(out, 0, sizeof *out);
    int rc = braid_queue_get(q, &buf, braid_clock_deadline(timeout));
    if (rc == 0)
        rc = get_scalar(buf.data, buf.len, out);
    braid_buf_free(&buf);
    return rc;
}

int braid_host_queue_get_encoded(braid_queue_t *q, void **data, size_t *len, double timeout)
{
    braid_buf_t buf;
    braid_buf_init(&buf);
    *data = NULL;
    *len = 0;
    int rc = braid_queue_get(q, &buf, braid_clock_deadline(timeout));
    if (rc == 0) {
        *data = malloc(buf.len ? buf.len : 1);
        if (!*data)
            rc = BRAID_ENOMEM;
        else {
            memcpy(*data, buf.data, buf.len);
            *len = buf.len;
        }
    }
    braid_buf_free(&buf);
    return rc;
}

void braid_host_queue_shutdown(braid_queue_t *q, int immediate)
{
    braid_queue_shutdown(q, immediate);
}

/* ---- futures: an outcome is a sequence (count, values...) ---- */

static int future_finish(braid_future_t *f, braid_buf_t *buf, int failed)
{
    int rc = buf->err ? buf->err : braid_future_set_outcome(f, buf, failed);
    braid_buf_free(buf);
    return rc;
}

int braid_host_future_set_result(braid_future_t *f, const braid_scalar_t *v)
{
    braid_buf_t buf;
    braid_buf_init(&buf);
    braid_buf_put_varint(&buf, 1);
    int rc = put_scalar(&buf, v);
    if (rc) {
        braid_buf_free(&buf);
        return rc;
    }
    return future_finish(f, &buf, 0);
}

int braid_host_future_set_result_encoded(braid_future_t *f, const void *data, size_t len)
{
    int rc = braid_codec_validate(data, len);
    if (rc)
        return rc;
    braid_buf_t buf;
    braid_buf_init(&buf);
    braid_buf_put_varint(&buf, 1);
    braid_buf_put_bytes(&buf, data, len);
    return future_finish(f, &buf, 0);
}

int braid_host_future_set_exception(braid_future_t *f, const char *message)
{
    braid_buf_t buf;
    braid_buf_init(&buf);
    if (!message)
        message = "exception set by the host";
    braid_buf_put_varint(&buf, 2); /* the error value, no traceback */
    braid_buf_put_u8(&buf, BRAID_T_STR);
    braid_buf_put_str(&buf, message, strlen(message));
    braid_buf_put_u8(&buf, BRAID_T_NIL);
    return future_finish(f, &buf, 1);
}

/* ---- events ---- */

void braid_host_event_set(braid_event_t *e)
{
    braid_event_set(e);
}

void braid_host_event_clear(braid_event_t *e)
{
    braid_event_clear(e);
}

int braid_host_event_is_set(braid_event_t *e)
{
    return braid_event_is_set(e);
}

const char *braid_host_strerror(int code)
{
    return braid_strerror(code);
}
