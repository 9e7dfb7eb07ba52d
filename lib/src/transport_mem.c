/*
 * In-memory transport pair for unit tests: two ends, two bounded byte
 * queues.  End i reads queue i and writes queue 1-i.
 *
 * Not thread-safe: both ends, and the pump, must run in one thread.  Tests
 * drive the peer (e.g. the firmware endpoint) from the pump instead of from
 * a second thread, which keeps them deterministic.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "penlink_test.h"
#include "transport.h"

/* Bounded so a runaway writer in a test fails visibly instead of eating memory. */
#define MEM_QUEUE_CAP ((size_t)1 << 20)

struct mem_queue {
	uint8_t *buf; /* ring of MEM_QUEUE_CAP bytes */
	size_t head;  /* index of the oldest byte */
	size_t len;
};

struct mem_shared {
	struct mem_queue q[2];
	bool closed[2];
	int open_ends;
};

struct mem_end {
	struct mem_shared *sh;
	int side;
	bool unplugged; /* pl_transport_memory_unplug() */
	void (*pump)(void *ud);
	void *pump_ud;
	char name[16];
};

static size_t queue_put(struct mem_queue *q, const uint8_t *src, size_t len)
{
	size_t room = MEM_QUEUE_CAP - q->len;
	if (len > room)
		len = room;
	size_t tail = (q->head + q->len) % MEM_QUEUE_CAP;
	size_t first = MEM_QUEUE_CAP - tail;
	if (first > len)
		first = len;
	memcpy(q->buf + tail, src, first);
	memcpy(q->buf, src + first, len - first);
	q->len += len;
	return len;
}

static size_t queue_get(struct mem_queue *q, uint8_t *dst, size_t len)
{
	if (len > q->len)
		len = q->len;
	size_t first = MEM_QUEUE_CAP - q->head;
	if (first > len)
		first = len;
	memcpy(dst, q->buf + q->head, first);
	memcpy(dst + first, q->buf, len - first);
	q->head = (q->head + len) % MEM_QUEUE_CAP;
	q->len -= len;
	return len;
}

static struct mem_queue *in_queue(struct mem_end *e)
{
	return &e->sh->q[e->side];
}

static struct mem_queue *out_queue(struct mem_end *e)
{
	return &e->sh->q[1 - e->side];
}

static bool peer_closed(const struct mem_end *e)
{
	return e->sh->closed[1 - e->side];
}

static int mem_read(void *ctx, void *buf, size_t len)
{
	struct mem_end *e = ctx;
	if (e->unplugged)
		return pl__fail_unplugged(e->name);
	size_t n = queue_get(in_queue(e), buf, len);
	/* Bytes the peer sent before closing are still delivered. */
	if (n == 0 && peer_closed(e))
		return pl__fail_unplugged(e->name);
	return (int)n;
}

static int mem_write(void *ctx, const void *buf, size_t len)
{
	struct mem_end *e = ctx;
	if (e->unplugged || peer_closed(e))
		return pl__fail_unplugged(e->name);
	return (int)queue_put(out_queue(e), buf, len);
}

static int mem_ready(struct mem_end *e, bool want_write)
{
	if (e->unplugged || (peer_closed(e) && in_queue(e)->len == 0))
		return pl__fail_unplugged(e->name);
	int mask = 0;
	if (in_queue(e)->len > 0)
		mask |= PL_WAIT_READABLE;
	if (want_write && out_queue(e)->len < MEM_QUEUE_CAP)
		mask |= PL_WAIT_WRITABLE;
	return mask;
}

/*
 * Never blocks: nothing else in this thread could make data arrive, so the
 * pump gets one chance, then a token sleep stands in for the timeout (also
 * for timeout_ms < 0, so a test without a pump cannot hang).
 */
static int mem_wait(void *ctx, bool want_write, int timeout_ms)
{
	struct mem_end *e = ctx;
	int mask = mem_ready(e, want_write);
	if (mask != 0)
		return mask;
	if (e->pump) {
		e->pump(e->pump_ud);
		mask = mem_ready(e, want_write);
		if (mask != 0)
			return mask;
	}
	if (timeout_ms != 0) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int mem_fd(void *ctx)
{
	(void)ctx;
	return -1;
}

static void mem_close(void *ctx)
{
	struct mem_end *e = ctx;
	struct mem_shared *sh = e->sh;
	sh->closed[e->side] = true;
	if (--sh->open_ends == 0) {
		free(sh->q[0].buf);
		free(sh->q[1].buf);
		free(sh);
	}
	free(e);
}

static const struct pl_transport_ops mem_ops = {
	.read = mem_read, .write = mem_write, .wait = mem_wait, .fd = mem_fd,
	.close = mem_close};

int pl_transport_memory_pair(struct pl_transport **a, struct pl_transport **b)
{
	if (!a || !b)
		return pl__fail(PL_ERR_ARG, "pl_transport_memory_pair: NULL argument");
	*a = *b = NULL;

	struct mem_shared *sh = calloc(1, sizeof *sh);
	struct mem_end *ea = calloc(1, sizeof *ea);
	struct mem_end *eb = calloc(1, sizeof *eb);
	if (sh) {
		sh->q[0].buf = malloc(MEM_QUEUE_CAP);
		sh->q[1].buf = malloc(MEM_QUEUE_CAP);
	}
	if (!sh || !ea || !eb || !sh->q[0].buf || !sh->q[1].buf) {
		if (sh) {
			free(sh->q[0].buf);
			free(sh->q[1].buf);
		}
		free(sh);
		free(ea);
		free(eb);
		return pl__fail(PL_ERR_MEM, "out of memory creating a memory transport");
	}
	sh->open_ends = 2;
	ea->sh = eb->sh = sh;
	ea->side = 0;
	eb->side = 1;
	memcpy(ea->name, "memory:a", sizeof "memory:a");
	memcpy(eb->name, "memory:b", sizeof "memory:b");

	int rc = pl_transport_new(&mem_ops, ea, ea->name, a);
	if (rc != PL_OK) {
		mem_close(ea);
		mem_close(eb);
		return rc;
	}
	rc = pl_transport_new(&mem_ops, eb, eb->name, b);
	if (rc != PL_OK) {
		pl_transport_close(*a);
		*a = NULL;
		mem_close(eb);
		return rc;
	}
	return PL_OK;
}

static struct mem_end *mem_end_of(struct pl_transport *t)
{
	return pl__transport_ctx(t, mem_read);
}

void pl_transport_memory_set_pump(struct pl_transport *t,
                                  void (*pump)(void *ud), void *ud)
{
	struct mem_end *e = mem_end_of(t);
	if (!e)
		return;
	e->pump = pump;
	e->pump_ud = ud;
}

void pl_transport_memory_unplug(struct pl_transport *t)
{
	struct mem_end *e = mem_end_of(t);
	if (e)
		e->unplugged = true;
}
