/*
 * fuzz_envelope: protocol envelopes (proto/penlink.proto) from both sides
 * of the cable.
 *
 * Input: [mode][rest].  mode % 3 picks:
 *
 * 0 host: libpenlink talking to a pen whose every answer comes from the
 *   input.  rest is a script of records [how][len:2 LE][payload]; each time
 *   the host waits for the pen, the next record is sent: how % 5 = 0/1
 *   answers the oldest/newest request the host has outstanding with the
 *   payload (an Envelope gets that request's id; anything else is framed
 *   as is), 2 sends it unsolicited (id 0), 3 with its own id, 4 writes the
 *   payload raw, unframed.  When the script ends the pen is unplugged.  The
 *   host opens the pen (handshake), reads info and presets, writes the
 *   presets back, syncs the clock, lists sessions, downloads and archives
 *   two, subscribes to the trace, pings and polls; every frame is described
 *   for --dump-frames on the way.
 * 1 firmware: the pen's endpoint (firmware-bridge/src/fw.c, heap-free
 *   arena) fed rest[2:] as the host's byte stream, split where rest[0:2]
 *   says, over in-memory storage, then asked for a trace line and a state
 *   event.
 * 2 raw: rest is one Envelope: unpacked, packed again, described.
 *
 * Invariants: the host sends only well-formed envelopes with non-zero ids;
 * what it returns is bounded and terminated (info strings, at most 64
 * presets with names of at most 32 bytes, sessions in rising id order);
 * download sinks see every byte once, in order, within the record; frame
 * descriptions are terminated, fit their buffer and carry no control
 * bytes.  The endpoint answers only with frames that decode to envelopes
 * within its frame size, reads storage only inside a session, and stores
 * only preset sets that pass its own validation.
 */
#include "fuzz_common.h"
#include "fuzz_fakepen.h"

#include <stdbool.h>

#include "describe.h"
#include "penlink_wire.h"
#include "penlink.h"
#include "penlink_test.h"
#include "penlink.pb-c.h"
#include "pl_fw.h"

/* ------------------------------------------------------------------ describe */

static void check_text(const char *text, size_t cap)
{
	size_t n = fuzz_strnlen(text, cap);
	FUZZ_CHECK(n < cap, "description not terminated within %zu bytes", cap);
	FUZZ_CHECK(!fuzz_has_control(text), "control byte in a description: %s",
	           text);
}

static void describe_all_ways(const uint8_t *p, size_t len)
{
	static const size_t caps[] = {1, 2, 4, 5, 17, 80, 1024};
	char out[1024];

	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		size_t n;
		memset(out, 'z', sizeof out);
		n = pl__describe_envelope(p, len, out, caps[i]);
		check_text(out, caps[i]);
		FUZZ_CHECK(n == strlen(out), "returned %zu for %zu bytes of text", n,
		           strlen(out));
	}
}

/* ------------------------------------------------------------------ raw */

static void run_raw(const uint8_t *p, size_t len)
{
	Pl__Envelope *e = pl__envelope__unpack(NULL, len, p);

	describe_all_ways(p, len);
	if (!e)
		return;
	{
		/* Packing what was unpacked is canonical: a second round trip
		 * gives the same bytes. */
		size_t n1 = pl__envelope__get_packed_size(e);
		uint8_t *b1 = malloc(n1 ? n1 : 1);
		uint8_t *b2;
		Pl__Envelope *e2;
		size_t n2;

		FUZZ_CHECK(b1 != NULL, "out of memory");
		FUZZ_CHECK(pl__envelope__pack(e, b1) == n1, "packed size differs");
		e2 = pl__envelope__unpack(NULL, n1, b1);
		if (!e2) {
			/* protobuf-c keeps unknown fields as they came, even ones
			 * it refuses once re-encoded (field number 0 sent as a
			 * two-byte tag): its quirk, which libpenlink only has to
			 * survive. */
			free(b1);
			pl__envelope__free_unpacked(e, NULL);
			return;
		}
		n2 = pl__envelope__get_packed_size(e2);
		b2 = malloc(n2 ? n2 : 1);
		FUZZ_CHECK(b2 != NULL, "out of memory");
		pl__envelope__pack(e2, b2);
		FUZZ_CHECK(n1 == n2 && !memcmp(b1, b2, n1), "repacking is not stable");
		describe_all_ways(b1, n1);
		pl__envelope__free_unpacked(e2, NULL);
		free(b1);
		free(b2);
	}
	pl__envelope__free_unpacked(e, NULL);
}

/* ------------------------------------------------------------------ host */

#define MAX_PENDING 256

struct host {
	struct fuzz_in script;
	struct pl_transport *host_t, *pen_t;
	struct pl_frame_decoder dec;  /* what the host sent, on the pen's side */
	uint8_t *dec_buf;
	uint32_t pending[MAX_PENDING];
	size_t n_pending;
	uint8_t rx[16384];
	uint8_t *out;
	size_t out_cap;
	struct pl_pen *pen; /* once open */
};

static void host_sent(void *ctx, uint8_t flags, const uint8_t *p, size_t len)
{
	struct host *h = ctx;
	Pl__Envelope *e = pl__envelope__unpack(NULL, len, p);

	(void)flags;
	FUZZ_CHECK(e != NULL, "the host sent %zu bytes that are no envelope", len);
	FUZZ_CHECK(e->id != 0, "the host sent a request with id 0");
	FUZZ_CHECK(e->body_case != PL__ENVELOPE__BODY__NOT_SET,
	           "the host sent an empty envelope");
	if (h->n_pending == MAX_PENDING) {
		memmove(h->pending, h->pending + 1,
		        (MAX_PENDING - 1) * sizeof h->pending[0]);
		h->n_pending--;
	}
	h->pending[h->n_pending++] = e->id;
	pl__envelope__free_unpacked(e, NULL);
}

static void pen_write(struct host *h, const uint8_t *p, size_t len)
{
	int n = pl_transport_write(h->pen_t, p, len);
	/* The queue holds 1 MiB; a script never fills it. */
	FUZZ_CHECK(n == (int)len, "pen end took %d of %zu bytes", n, len);
}

static void pen_frame(struct host *h, const uint8_t *p, size_t len,
                      uint8_t flags)
{
	size_t need = PL_FRAME_ENCODED_MAX(len), n;
	if (h->out_cap < need) {
		h->out = realloc(h->out, need);
		FUZZ_CHECK(h->out != NULL, "out of memory");
		h->out_cap = need;
	}
	n = pl_frame_encode(p, len, flags, h->out, need);
	FUZZ_CHECK(n > 0, "cannot frame %zu bytes", len);
	pen_write(h, h->out, n);
}

/* The pen's turn: take in what the host wrote, then answer with the next
 * record of the script, or unplug when there is none. */
static void pump(void *ud)
{
	struct host *h = ud;
	uint8_t how;
	uint16_t len16;
	size_t len;
	const uint8_t *payload;
	int n;

	while ((n = pl_transport_read(h->pen_t, h->rx, sizeof h->rx)) > 0)
		pl_frame_decoder_feed(&h->dec, h->rx, (size_t)n);
	/* The host has a completion to deliver (a call that needed no
	 * request) and is not waiting for the pen: not the pen's turn. */
	if (h->pen && pl_pen_next_timeout(h->pen) == 0)
		return;
	if (!h->script.left) {
		pl_transport_memory_unplug(h->host_t);
		return;
	}
	how = fuzz_u8(&h->script);
	len16 = fuzz_u16(&h->script);
	payload = fuzz_bytes(&h->script, len16, &len);
	if (getenv("FUZZ_TRACE"))
		fprintf(stderr, "pen: record how=%u len=%zu, %zu requests pending "
		        "(oldest %u)\n", how, len, h->n_pending,
		        h->n_pending ? h->pending[0] : 0);
	if (how % 5 == 4) {
		static const uint8_t delim = 0;
		/* Always something to read, so the host never sleeps. */
		if (len)
			pen_write(h, payload, len);
		else
			pen_write(h, &delim, 1);
		return;
	}
	{
		Pl__Envelope *e = pl__envelope__unpack(NULL, len, payload);
		uint8_t flags = (how & 0x80) ? how : 0;
		if (!e) {
			pen_frame(h, payload, len, flags);
			return;
		}
		if (how % 5 == 0 || how % 5 == 1) {
			uint32_t id = 0;
			if (h->n_pending && how % 5 == 0) {
				id = h->pending[0];
				memmove(h->pending, h->pending + 1,
				        (h->n_pending - 1) * sizeof h->pending[0]);
				h->n_pending--;
			} else if (h->n_pending) {
				id = h->pending[--h->n_pending];
			}
			e->id = id;
		} else if (how % 5 == 2) {
			e->id = 0;
		}
		{
			size_t plen = pl__envelope__get_packed_size(e);
			uint8_t *b = malloc(plen ? plen : 1);
			FUZZ_CHECK(b != NULL, "out of memory");
			pl__envelope__pack(e, b);
			pen_frame(h, b, plen, flags);
			free(b);
		}
		pl__envelope__free_unpacked(e, NULL);
	}
}

static void frame_log(void *ud, enum pl_frame_dir dir, const char *text,
                      size_t raw_len)
{
	(void)ud;
	(void)dir;
	(void)raw_len;
	check_text(text, 1024);
}

/* The calls made on the pen; fuzz_gen_corpus records a real endpoint's
 * answers to the same calls as the seed script. */
static void on_event(void *ud, const struct pl_event *ev)
{
	(void)ud;
	FUZZ_CHECK(ev->text != NULL, "event without text");
	FUZZ_CHECK(ev->kind == PL_EVENT_TRACE || ev->kind == PL_EVENT_STATE,
	           "event kind %d", (int)ev->kind);
	FUZZ_CHECK((int)ev->state >= 0 && ev->state <= PL_STATE_ERROR,
	           "state %d", (int)ev->state);
	(void)strlen(ev->text);
}

struct dl_check {
	const struct pl_session_info *s;
	uint64_t next;
};

static int sink(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct dl_check *c = ud;
	FUZZ_CHECK(offset == c->next, "chunk at %llu, expected %llu",
	           (unsigned long long)offset, (unsigned long long)c->next);
	FUZZ_CHECK(len <= c->s->size - offset, "%zu bytes at %llu of %llu", len,
	           (unsigned long long)offset, (unsigned long long)c->s->size);
	if (len) {
		volatile uint8_t last = data[len - 1]; /* ASan: all len are there */
		(void)last;
	}
	c->next += len;
	return PL_OK;
}

static void check_info(const struct pl_device_info *i)
{
	FUZZ_CHECK(fuzz_strnlen(i->serial, sizeof i->serial) < sizeof i->serial &&
	               fuzz_strnlen(i->model, sizeof i->model) < sizeof i->model &&
	               fuzz_strnlen(i->hw_revision, sizeof i->hw_revision) <
	                   sizeof i->hw_revision &&
	               fuzz_strnlen(i->fw_version, sizeof i->fw_version) <
	                   sizeof i->fw_version,
	           "device info strings not terminated");
}

static void check_presets(const struct pl_preset_set *s)
{
	FUZZ_CHECK(s->count <= PL_MAX_PRESETS, "%zu presets", s->count);
	for (size_t i = 0; i < s->count; i++)
		FUZZ_CHECK(fuzz_strnlen(s->presets[i].name, sizeof s->presets[i].name) <=
		               PL_PRESET_NAME_MAX,
		           "preset name not terminated");
}

/* Stops the sequence once the pen is gone: every later call would only
 * say so again.  FUZZ_TRACE=1 in the environment shows each call's result
 * (to see how far a script gets). */
#define STEP(call)                                                         \
	do {                                                                   \
		rc = (call);                                                       \
		if (getenv("FUZZ_TRACE"))                                          \
			fprintf(stderr, "%s -> %d %s\n", #call, rc,                    \
			        rc ? pl_error_message() : "");                    \
		if (rc == PL_ERR_UNPLUGGED)                                        \
			goto done;                                                     \
	} while (0)

static void host_calls(struct pl_pen *pen)
{
	struct pl_device_info info;
	struct pl_preset_set *set = malloc(sizeof *set), *back = malloc(sizeof *back);
	struct pl_session_info *list = NULL;
	size_t n = 0;
	int rc, have_info = 0, have_set = 0;

	FUZZ_CHECK(set && back, "out of memory");
	pl_pen_set_event_handler(pen, on_event, NULL);
	FUZZ_CHECK(fuzz_strnlen(pl_pen_serial(pen), 64) < 64, "serial");

	STEP(pl_pen_get_info(pen, &info));
	if (!rc) {
		check_info(&info);
		have_info = 1;
	}
	STEP(pl_pen_get_presets(pen, set));
	if (!rc) {
		check_presets(set);
		have_set = 1;
	}
	if (have_info && have_set) {
		STEP(pl_pen_put_presets(pen, set, back));
		if (!rc)
			check_presets(back);
	}
	{
		int64_t off;
		STEP(pl_pen_clock_sync(pen, &off));
	}
	STEP(pl_pen_list_sessions(pen, &list, &n));
	if (!rc) {
		for (size_t i = 1; i < n; i++)
			FUZZ_CHECK(list[i].id > list[i - 1].id, "session ids do not rise");
		/* The last 100 bytes of two records (a resumed download). */
		for (size_t i = 0; i < n && i < 2; i++) {
			struct dl_check c = {&list[i], 0};
			struct pl_download_options d = {.sink = sink, .ud = &c};
			c.next = list[i].size > 100 ? list[i].size - 100 : 0;
			STEP(pl_pen_download_session(pen, &list[i], c.next, &d));
			if (!rc)
				FUZZ_CHECK(c.next == list[i].size,
				           "download ended at %llu of %llu",
				           (unsigned long long)c.next,
				           (unsigned long long)list[i].size);
			STEP(pl_pen_archive_session(pen, list[i].id, list[i].sha256));
		}
	}
	STEP(pl_pen_trace_subscribe(pen, true, 3));
	{
		uint32_t rtt;
		STEP(pl_pen_ping(pen, &rtt));
	}
	STEP(pl_pen_poll(pen, 0));
done:
	free(list);
	free(set);
	free(back);
}

static void run_host(const uint8_t *p, size_t len)
{
	static struct host h;
	struct pl_open_options o;
	struct pl_pen *pen = NULL;
	int rc;

	memset(&h, 0, sizeof h);
	h.script.p = p;
	h.script.left = len;
	h.dec_buf = malloc(PL_FRAME_RAW_LEN(65536));
	FUZZ_CHECK(h.dec_buf != NULL, "out of memory");
	pl_frame_decoder_init(&h.dec, h.dec_buf, PL_FRAME_RAW_LEN(65536), host_sent,
	                      NULL, &h);
	FUZZ_CHECK(pl_transport_memory_pair(&h.host_t, &h.pen_t) == PL_OK,
	           "memory pair: %s", pl_error_message());
	pl_transport_memory_set_pump(h.host_t, pump, &h);

	pl_open_options_init(&o);
	/* Only the script ends things: no retry may depend on how fast this
	 * machine runs (the handshake still re-sends Hello every 200 ms). */
	o.timeout_ms = 60000;
	o.retries = 0;
	o.handshake_ms = 600000;
	o.frame_log = frame_log;
	rc = pl_pen_open_transport(h.host_t, &o, &pen);
	if (rc)
		goto done;
	h.pen = pen;
	host_calls(pen);
done:
	if (pen) {
		struct pl_link_stats st;
		pl_pen_link_stats(pen, &st);
		pl_pen_close(pen);
	}
	pl_transport_close(h.pen_t);
	free(h.dec_buf);
	free(h.out);
}

/* ------------------------------------------------------------------ firmware */

/* The pen's side: fuzz_fakepen.h's endpoint; what it sends is checked on
 * the host's side of the cable. */
static struct fakepen fp;
static struct pl_frame_decoder fp_dec;
static uint8_t fp_dec_buf[PL_FRAME_RAW_LEN(PL_FW_MAX_FRAME) + 64];

static void pen_sent(void *ctx, uint8_t flags, const uint8_t *p, size_t len)
{
	Pl__Envelope *e;
	(void)ctx;
	(void)flags;
	FUZZ_CHECK(len <= PL_FW_MAX_FRAME, "a %zu-byte reply", len);
	e = pl__envelope__unpack(NULL, len, p);
	FUZZ_CHECK(e != NULL, "the endpoint sent %zu bytes that are no envelope",
	           len);
	FUZZ_CHECK(e->body_case != PL__ENVELOPE__BODY__NOT_SET,
	           "the endpoint sent an empty envelope");
	pl__envelope__free_unpacked(e, NULL);
	describe_all_ways(p, len);
}

static int fw_send(void *ud, const uint8_t *data, size_t len)
{
	(void)ud;
	pl_frame_decoder_feed(&fp_dec, data, len);
	return PL_FW_OK;
}

static void run_fw(const uint8_t *p, size_t len)
{
	struct fuzz_in in = {p, len};
	uint32_t seed = fuzz_u16(&in);
	size_t n;
	const uint8_t *stream = fuzz_bytes(&in, in.left, &n);

	fakepen_init(&fp, fw_send, NULL);
	pl_frame_decoder_init(&fp_dec, fp_dec_buf, sizeof fp_dec_buf, pen_sent,
	                      NULL, NULL);
	for (size_t off = 0; off < n;) {
		size_t k = 1 + fuzz_rand(&seed) % 512;
		if (k > n - off)
			k = n - off;
		pl_fw_rx(&fp.fw, stream + off, k);
		off += k;
	}
	/* Whatever state the stream left: unsolicited frames still go out
	 * whole, with text cut only between characters. */
	{
		char text[300];
		size_t t = n < sizeof text - 1 ? n : sizeof text - 1;
		memcpy(text, stream + n - t, t);
		text[t] = '\0';
		pl_fw_trace(&fp.fw, seed & 3, text);
		pl_fw_state_event(&fp.fw, seed % 8, seed, text);
	}
	{
		const struct pl_fw_stats *s = pl_fw_get_stats(&fp.fw);
		FUZZ_CHECK(s->frames.bytes == n, "endpoint counted %llu of %zu bytes",
		           (unsigned long long)s->frames.bytes, n);
	}
	pl_fw_reset(&fp.fw);
}

/* ------------------------------------------------------------------ main */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > (1u << 20))
		return 0;
	switch (data[0] % 3) {
	case 0:
		run_host(data + 1, size - 1);
		break;
	case 1:
		run_fw(data + 1, size - 1);
		break;
	default:
		run_raw(data + 1, size - 1);
		break;
	}
	return 0;
}
