/*
 * A hostile pen (--hostile MODE): the firmware endpoint still answers, but
 * what leaves the port is an attack on the host.  Every mode lets the
 * handshake through untouched (the first HelloReply), so the host takes it
 * for a working pen and the attack reaches the code that runs after the
 * handshake - the deeper target: frame limits are negotiated by then, the
 * daemon's download and archive code is engaged, and a host that only
 * guarded its handshake would not notice.  (A pen hostile from the first
 * byte is a pen that never answers the handshake, which the host's
 * handshake timeout already covers.)
 *
 * Output goes through a bounded buffer written without blocking, so an
 * attack never hangs penemu when the host stops reading (after it detached
 * the pen): what does not fit is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "penemu.h"
#include "penlink.pb-c.h"

/* What may wait for the port.  A megabyte keeps a fast attack fed between
 * the loop's turns and bounds penemu's memory when nobody reads. */
#define OUT_MAX (1u << 20)
/* Attack rates (see usage in main.c). */
#define OVERSIZE_EVERY_MS 10   /* 100 oversized frames per second */
#define NODELIM_EVERY_MS 16    /* 64 KiB each time: about 4 MB/s */
#define NODELIM_CHUNK (64u * 1024u)
#define BADPROTO_EVERY_MS 50   /* 20 broken frames per second */
#define FLOOD_EVERY_MS 10
#define FLOOD_BURST 200        /* 20000 unsolicited frames per second */
#define SLOW_EVERY_MS 1000     /* one byte per second */
/* Added to a reply's id by wrongid: an id the host has not used yet
 * unless it sent a billion requests. */
#define WRONGID_OFFSET 0x40000000u
/* sessions: how many sessions the pen invents (listed after its own), and
 * the first id of them (above any id a flash hands out).  A million is
 * more than a pen could record in its life; the host must not hold them
 * all at once, nor spend itself on sessions that do not exist. */
#define SESSIONS_LISTED 1000000u
#define SESSIONS_FAKE_BASE 0x10000000u
#define SESSIONS_FAKE_BYTES 4096u

struct hostile {
	enum hostile_mode mode;
	struct emu_rng rng;
	bool active;             /* the handshake was answered */
	uint64_t next_ms;        /* when tick acts next */
	uint8_t *out;
	size_t len;
	/* our own outgoing frames, decoded to see what they are */
	struct pl_frame_decoder dec;
	uint8_t dec_buf[PL_FRAME_RAW_LEN(PL_FW_MAX_FRAME)];
	Pl__Envelope *seen;      /* the last frame decoded, or NULL */
	uint8_t *pack;           /* scratch for packing envelopes */
	size_t pack_cap;
	uint64_t attacks;        /* frames (or chunks) of attack sent */
	bool noted;
};

static const char *const names[] = {
	[HOSTILE_NONE] = "none",         [HOSTILE_OVERSIZE] = "oversize",
	[HOSTILE_NODELIM] = "nodelim",   [HOSTILE_BADPROTO] = "badproto",
	[HOSTILE_WRONGID] = "wrongid",   [HOSTILE_FLOOD] = "flood",
	[HOSTILE_SLOW] = "slow",         [HOSTILE_SESSIONS] = "sessions",
};

enum hostile_mode hostile_parse(const char *name)
{
	for (size_t i = 1; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(name, names[i]))
			return (enum hostile_mode)i;
	return HOSTILE_NONE;
}

const char *hostile_name(enum hostile_mode m)
{
	return (size_t)m < sizeof names / sizeof names[0] ? names[m] : "?";
}

static void on_own_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                         size_t len)
{
	struct hostile *h = ctx;
	(void)flags;
	if (h->seen)
		pl__envelope__free_unpacked(h->seen, NULL);
	h->seen = pl__envelope__unpack(NULL, len, payload);
}

struct hostile *hostile_new(enum hostile_mode m, uint64_t seed)
{
	struct hostile *h = calloc(1, sizeof *h);

	if (!h)
		return NULL;
	h->out = malloc(OUT_MAX);
	if (!h->out) {
		free(h);
		return NULL;
	}
	h->mode = m;
	emu_rng_seed(&h->rng, seed ^ 0x4057113ull);
	pl_frame_decoder_init(&h->dec, h->dec_buf, sizeof h->dec_buf,
	                      on_own_frame, NULL, h);
	return h;
}

void hostile_free(struct hostile *h)
{
	if (!h)
		return;
	if (h->seen)
		pl__envelope__free_unpacked(h->seen, NULL);
	fprintf(stderr, "penemu: hostile (%s): %llu attack %s sent\n",
	        names[h->mode], (unsigned long long)h->attacks,
	        h->mode == HOSTILE_NODELIM ? "chunks" :
	        h->mode == HOSTILE_SLOW ? "bytes" :
	        h->mode == HOSTILE_SESSIONS ? "invented sessions listed" : "frames");
	free(h->pack);
	free(h->out);
	free(h);
}

bool hostile_want_write(const struct hostile *h)
{
	/* The slow pen waits for its clock, not for the port. */
	return h->len > 0 && !(h->active && h->mode == HOSTILE_SLOW);
}

/* Writes what the port takes now, up to max bytes. */
static int flush(struct hostile *h, int fd, size_t max)
{
	size_t want = h->len < max ? h->len : max;
	size_t done = 0;

	while (done < want) {
		ssize_t n = write(fd, h->out + done, want - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	memmove(h->out, h->out + done, h->len - done);
	h->len -= done;
	return 0;
}

/* Queues bytes if they fit; an attack that outruns the host loses the
 * excess. */
static bool queue(struct hostile *h, const uint8_t *p, size_t n)
{
	if (n > OUT_MAX - h->len)
		return false;
	memcpy(h->out + h->len, p, n);
	h->len += n;
	return true;
}

static uint8_t *scratch(struct hostile *h, size_t n)
{
	return emu_grow((void **)&h->pack, &h->pack_cap, n, 1) == 0 ? h->pack : NULL;
}

/* Frames payload (any bytes) and queues it. */
static bool queue_payload(struct hostile *h, const uint8_t *payload, size_t n)
{
	size_t cap = PL_FRAME_ENCODED_MAX(n);
	size_t f;

	if (cap > OUT_MAX - h->len)
		return false;
	f = pl_frame_encode(payload, n, 0, h->out + h->len, cap);
	if (!f)
		return false;
	h->len += f;
	return true;
}

static bool queue_envelope(struct hostile *h, const Pl__Envelope *env)
{
	size_t n = pl__envelope__get_packed_size(env);
	uint8_t *p = scratch(h, n ? n : 1);

	if (!p)
		return false;
	pl__envelope__pack(env, p);
	return queue_payload(h, p, n);
}

/* An intact frame twice what the host said it takes: a Pong, so a host
 * that buffered it anyway would even find it well-formed. */
static bool queue_oversize(struct hostile *h, uint32_t id, uint32_t host_max)
{
	size_t big = 2u * (host_max ? host_max : PL_FW_MAX_FRAME);
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Pong pong = PL__PONG__INIT;
	uint8_t *fill = malloc(big);
	bool ok;

	if (!fill)
		return false;
	for (size_t i = 0; i < big; i++)
		fill[i] = (uint8_t)emu_rng_next(&h->rng);
	pong.payload.data = fill;
	pong.payload.len = big;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_PONG;
	env.pong = &pong;
	ok = queue_envelope(h, &env);
	free(fill);
	return ok;
}

/* An intact frame whose payload no protobuf parser accepts: field 1 as
 * a varint of twelve continuation bytes (at most ten are allowed). */
static bool queue_badproto(struct hostile *h)
{
	uint8_t p[40];

	p[0] = 0x08;
	for (int i = 1; i <= 12; i++)
		p[i] = 0xff;
	for (size_t i = 13; i < sizeof p; i++)
		p[i] = (uint8_t)emu_rng_next(&h->rng);
	return queue_payload(h, p, sizeof p);
}

static bool queue_flood(struct hostile *h, unsigned n)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__TraceLine tl = PL__TRACE_LINE__INIT;
	Pl__StateEvent se = PL__STATE_EVENT__INIT;

	tl.level = 0;
	tl.text = (char *)"flood";
	se.kind = PL__STATE_KIND__STATE_KIND_TREATING;
	se.detail = (char *)"flood";
	for (unsigned i = 0; i < n; i++) {
		env.id = 0;
		if (i % 2) {
			tl.uptime_ms = emu_uptime_ms();
			env.body_case = PL__ENVELOPE__BODY_TRACE_LINE;
			env.trace_line = &tl;
		} else {
			se.uptime_ms = emu_uptime_ms();
			se.value = (uint32_t)i;
			env.body_case = PL__ENVELOPE__BODY_STATE_EVENT;
			env.state_event = &se;
		}
		if (!queue_envelope(h, &env))
			return i > 0;
		h->attacks++;
	}
	return true;
}

static void note_start(struct hostile *h)
{
	if (h->noted)
		return;
	h->noted = true;
	fprintf(stderr, "penemu: hostile (%s): handshake answered; attacking\n",
	        names[h->mode]);
	fflush(stderr);
}

int hostile_send(struct hostile *h, int fd, const uint8_t *frame, size_t len,
                 uint32_t host_max)
{
	uint32_t id = 0;

	if (!h->active) {
		pl_frame_decoder_reset(&h->dec);
		pl_frame_decoder_feed(&h->dec, frame, len);
		(void)queue(h, frame, len);
		if (h->seen && h->seen->body_case == PL__ENVELOPE__BODY_HELLO_REPLY) {
			/* Everything so far leaves at full speed, even for
			 * the slow pen: the handshake must succeed. */
			if (flush(h, fd, h->len) != 0)
				return -1;
			h->active = true;
			h->next_ms = (uint64_t)pl_time_monotonic_ms();
			note_start(h);
		}
		return flush(h, fd, h->len);
	}
	switch (h->mode) {
	case HOSTILE_OVERSIZE:
	case HOSTILE_WRONGID:
		pl_frame_decoder_reset(&h->dec);
		pl_frame_decoder_feed(&h->dec, frame, len);
		if (!h->seen)
			return 0;
		id = h->seen->id;
		if (h->mode == HOSTILE_OVERSIZE) {
			h->attacks += queue_oversize(h, id, host_max);
		} else {
			/* Unsolicited frames keep id 0: only replies lie. */
			if (id != 0) {
				h->seen->id = id + WRONGID_OFFSET;
				h->attacks++;
			}
			(void)queue_envelope(h, h->seen);
		}
		break;
	case HOSTILE_NODELIM:
		return 0; /* the replies are lost in the stream */
	case HOSTILE_BADPROTO:
		h->attacks += queue_badproto(h);
		break;
	case HOSTILE_FLOOD:
	case HOSTILE_SESSIONS:
		(void)queue(h, frame, len);
		break;
	case HOSTILE_SLOW:
		(void)queue(h, frame, len);
		return 0; /* hostile_tick lets it out */
	case HOSTILE_NONE:
		break;
	}
	return flush(h, fd, h->len);
}

int hostile_tick(struct hostile *h, int fd, uint32_t host_max)
{
	uint64_t now = (uint64_t)pl_time_monotonic_ms();
	unsigned every;

	if (!h->active) {
		if (h->len)
			(void)flush(h, fd, h->len);
		return -1;
	}
	if (now >= h->next_ms) {
		every = 0;
		switch (h->mode) {
		case HOSTILE_OVERSIZE:
			every = OVERSIZE_EVERY_MS;
			if (h->len < OUT_MAX / 2)
				h->attacks += queue_oversize(h, 0, host_max);
			break;
		case HOSTILE_NODELIM: {
			every = NODELIM_EVERY_MS;
			if (OUT_MAX - h->len >= NODELIM_CHUNK) {
				for (size_t i = 0; i < NODELIM_CHUNK; i += 8) {
					uint64_t x = emu_rng_next(&h->rng);
					for (size_t k = 0; k < 8; k++, x >>= 8)
						h->out[h->len + i + k] = (uint8_t)x ? (uint8_t)x : 0x5a;
				}
				h->len += NODELIM_CHUNK;
				h->attacks++;
			}
			break;
		}
		case HOSTILE_BADPROTO:
			every = BADPROTO_EVERY_MS;
			h->attacks += queue_badproto(h);
			break;
		case HOSTILE_FLOOD:
			every = FLOOD_EVERY_MS;
			if (h->len < OUT_MAX / 2)
				(void)queue_flood(h, FLOOD_BURST);
			break;
		case HOSTILE_SLOW:
			every = SLOW_EVERY_MS;
			if (h->len) {
				if (flush(h, fd, 1) != 0)
					return -1;
				h->attacks++;
			}
			break;
		case HOSTILE_WRONGID:
		case HOSTILE_SESSIONS:
		case HOSTILE_NONE:
			break;
		}
		/* From now, not from the missed slot: a loop that fell
		 * behind does not catch up in a burst. */
		h->next_ms = now + every;
	}
	if (h->mode != HOSTILE_SLOW && h->len)
		(void)flush(h, fd, h->len);
	if (h->mode == HOSTILE_WRONGID || h->mode == HOSTILE_SESSIONS)
		return -1; /* it only lies in its replies */
	return (int)(h->next_ms > now ? h->next_ms - now : 0);
}

/*
 * sessions: after the flash's own records, SESSIONS_LISTED invented ones,
 * each well-formed (16-byte uuid, 32-byte digest,
 * a small size) so the host takes the list for true; reading or archiving
 * them finds nothing, since they are not on the flash.
 */
int hostile_session_next(struct hostile *h, uint32_t after, int real_rc,
                         struct pl_session_info *out)
{
	uint32_t id;

	if (!h || h->mode != HOSTILE_SESSIONS || !h->active ||
	    real_rc != PL_FW_NOT_FOUND)
		return real_rc;
	id = after < SESSIONS_FAKE_BASE ? SESSIONS_FAKE_BASE : after + 1;
	if (id - SESSIONS_FAKE_BASE >= SESSIONS_LISTED)
		return PL_FW_NOT_FOUND;
	memset(out, 0, sizeof *out);
	out->id = id;
	out->seq = id;
	out->size = SESSIONS_FAKE_BYTES;
	for (int i = 0; i < 16; i++)
		out->uuid[i] = (uint8_t)(0xa5u ^ (id >> (8 * (i % 4))) ^ (uint32_t)i);
	for (int i = 0; i < 32; i++)
		out->sha256[i] = (uint8_t)(0x5au ^ (id >> (8 * (i % 4))) ^ (uint32_t)i);
	out->start_ms = 1700000000000ll + (int64_t)(id - SESSIONS_FAKE_BASE) * 1000;
	out->end_ms = out->start_ms + 600000;
	out->rtc_time = true;
	h->attacks++;
	return PL_FW_OK;
}
