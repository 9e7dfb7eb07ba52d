/*
 * Fault injection on what the pen sends, for tests of the host's recovery:
 * garbage, corrupted, shortened, duplicated and lost frames, silence, a
 * slow boot, stalls, replies that come after the host gave up on them, a
 * pen pulled out or rebooted mid-transfer.  Counting is per outgoing frame
 * (replies and unsolicited frames alike) and the random parts come from
 * --fault-seed, so a failing test can be replayed exactly: the same host
 * requests meet the same faults at the same frames and bytes.
 *
 * Each kind of fault is noted on stderr the first time it fires (which
 * frame, what was done to it); later ones are only counted, and the counts
 * are printed when penemu stops, so a long run does not flood the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "penemu.h"

/* Late replies held at once.  More than a host keeps in flight (the pen
 * allows 8), so in practice every late frame is held; past it a frame goes
 * out on time rather than growing the queue without bound. */
#define LATE_MAX 64

enum fault_kind {
	F_GARBAGE, F_CORRUPT, F_DROP, F_DROP_BYTES, F_DUP, F_STALL, F_DELAY,
	F_LATE, F_REBOOT, F_MUTE, F_KINDS
};

static const char *const kind_name[F_KINDS] = {
	[F_GARBAGE] = "garbage", [F_CORRUPT] = "corrupt", [F_DROP] = "drop",
	[F_DROP_BYTES] = "drop-bytes", [F_DUP] = "dup", [F_STALL] = "stall",
	[F_DELAY] = "delay", [F_LATE] = "late", [F_REBOOT] = "reboot",
	[F_MUTE] = "mute",
};

struct late_frame {
	uint8_t *data;
	size_t len;
	uint64_t due_ms;  /* monotonic ms (not the pen's uptime, which a reboot resets) */
	uint64_t frame;   /* its number, for the log */
};

struct faults {
	struct fault_opts o;
	struct emu_rng rng;
	uint64_t frames;     /* outgoing frames so far */
	uint64_t sent;       /* bytes written to the port so far, over reboots */
	uint64_t reboot_at;  /* reboot when sent reaches this (0: never) */
	bool down;           /* "power lost": send nothing until rebooted */
	uint8_t *scratch;    /* a frame copy to damage */
	size_t scratch_cap;
	struct late_frame late[LATE_MAX];
	unsigned n_late;
	uint64_t count[F_KINDS];
};

struct faults *faults_new(const struct fault_opts *o, uint64_t seed)
{
	struct faults *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	f->o = *o;
	/* A stream of its own, so faults do not shift the session data. */
	emu_rng_seed(&f->rng, seed ^ 0x5eedfa017ull);
	if (o->reboot_every)
		f->reboot_at = o->reboot_every;
	else if (o->reboot_after)
		f->reboot_at = o->reboot_after;
	return f;
}

static void drop_late(struct faults *f)
{
	for (unsigned i = 0; i < f->n_late; i++)
		free(f->late[i].data);
	f->n_late = 0;
}

void faults_summary(const struct faults *f)
{
	char line[512];
	size_t n = 0;

	for (int k = 0; k < F_KINDS; k++) {
		if (!f->count[k])
			continue;
		n += (size_t)snprintf(line + n, sizeof line - n, " %s=%" PRIu64,
		                      kind_name[k], f->count[k]);
		if (n >= sizeof line)
			break;
	}
	if (n)
		fprintf(stderr, "penemu: faults injected:%s (%" PRIu64
		        " frames, %" PRIu64 " bytes sent)\n",
		        line, f->frames, f->sent);
}

void faults_free(struct faults *f)
{
	if (f) {
		faults_summary(f);
		drop_late(f);
		free(f->scratch);
		free(f);
	}
}

/* Counts a fault, and describes it on stderr the first time its kind
 * fires. */
static void note(struct faults *f, enum fault_kind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(struct faults *f, enum fault_kind k, const char *fmt, ...)
{
	va_list ap;

	if (f->count[k]++)
		return;
	fprintf(stderr, "penemu: fault: %s: ", kind_name[k]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (first time; later ones are only counted)\n");
	fflush(stderr);
}

bool faults_ignore_input(const struct faults *f, uint64_t uptime_ms)
{
	return uptime_ms < f->o.boot_delay_ms;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Writes bytes, honouring --fault-disconnect-after and --fault-reboot-*:
 * the byte budget ends mid-frame exactly like power lost mid-transfer. */
static int put(struct faults *f, int fd, const uint8_t *p, size_t len)
{
	if (f->down)
		return 0; /* the rest of what the dead pen "sends" is lost */
	if (f->o.disconnect_after && f->sent + len >= f->o.disconnect_after) {
		size_t keep = (size_t)(f->o.disconnect_after - f->sent);
		if (keep)
			(void)emu_write_all(fd, p, keep);
		fprintf(stderr,
		        "penemu: fault: disconnecting after %llu bytes sent\n",
		        (unsigned long long)f->o.disconnect_after);
		faults_summary(f);
		fflush(stderr);
		/* No cleanup on purpose: the pen lost power.  The flash
		 * holds only committed writes. */
		_exit(3);
	}
	if (f->reboot_at && f->sent + len >= f->reboot_at) {
		size_t keep = (size_t)(f->reboot_at - f->sent);
		if (keep && emu_write_all(fd, p, keep) != 0)
			return -1;
		f->sent += keep;
		f->down = true;
		note(f, F_REBOOT, "power lost after %" PRIu64 " bytes sent, in frame %"
		     PRIu64 " (%zu of its %zu bytes went out); rebooting",
		     f->sent, f->frames, keep, len);
		return 0;
	}
	f->sent += len;
	return emu_write_all(fd, p, len);
}

bool faults_reboot_due(const struct faults *f)
{
	return f->down;
}

void faults_rebooted(struct faults *f)
{
	f->down = false;
	/* Replies held for later were in the dead pen's RAM. */
	drop_late(f);
	f->reboot_at = f->o.reboot_every ? f->sent + f->o.reboot_every : 0;
}

/* A private copy of the frame to damage. */
static uint8_t *copy(struct faults *f, const uint8_t *frame, size_t len)
{
	if (emu_grow((void **)&f->scratch, &f->scratch_cap, len, 1) != 0)
		return NULL;
	memcpy(f->scratch, frame, len);
	return f->scratch;
}

static int send_garbage(struct faults *f, int fd)
{
	uint8_t junk[256];
	uint32_t left = f->o.garbage;

	note(f, F_GARBAGE, "%" PRIu32 " bytes of garbage before frame %" PRIu64,
	     f->o.garbage, f->frames);
	while (left) {
		size_t k = left < sizeof junk ? left : sizeof junk;
		for (size_t i = 0; i < k; i++) {
			uint64_t x = emu_rng_next(&f->rng);
			/* About one byte in sixteen is a delimiter, so the
			 * host sees both runt frames and long junk. */
			junk[i] = (x & 0xf00u) == 0 ? 0 : (uint8_t)x;
		}
		left -= (uint32_t)k;
		/* End on a delimiter so the frame behind the junk survives:
		 * this fault tests resynchronisation; lost frames are
		 * --fault-corrupt's and --fault-drop's. */
		if (left == 0)
			junk[k - 1] = 0;
		if (put(f, fd, junk, k) != 0)
			return -1;
	}
	return 0;
}

int faults_send(struct faults *f, int fd, const uint8_t *frame, size_t len)
{
	uint64_t n = ++f->frames;
	const uint8_t *out = frame;

	if (f->down)
		return 0;
	if (f->o.mute) {
		note(f, F_MUTE, "frame %" PRIu64 " (%zu bytes) not sent", n, len);
		return 0;
	}
	if (f->o.late && n % f->o.late == 0 && f->n_late < LATE_MAX) {
		struct late_frame *l = &f->late[f->n_late];
		l->data = malloc(len);
		if (l->data) {
			memcpy(l->data, frame, len);
			l->len = len;
			l->due_ms = (uint64_t)pl_time_monotonic_ms() + f->o.late_ms;
			l->frame = n;
			f->n_late++;
			note(f, F_LATE, "frame %" PRIu64 " (%zu bytes) held back %" PRIu32
			     " ms", n, len, f->o.late_ms);
			return 0;
		}
		/* No memory to hold it: it goes out on time. */
	}
	if (f->o.stall_every && n % f->o.stall_every == 0) {
		note(f, F_STALL, "%" PRIu32 " ms of silence before frame %" PRIu64,
		     f->o.stall_ms, n);
		sleep_ms(f->o.stall_ms);
	}
	if (f->o.delay_ms) {
		note(f, F_DELAY, "%" PRIu32 " ms before frame %" PRIu64 " and every "
		     "frame after it", f->o.delay_ms, n);
		sleep_ms(f->o.delay_ms);
	}
	if (f->o.drop && n % f->o.drop == 0) {
		note(f, F_DROP, "frame %" PRIu64 " (%zu bytes) not sent", n, len);
		return 0;
	}
	if (f->o.garbage && n % 10 == 0 && send_garbage(f, fd) != 0)
		return -1;
	if (f->o.corrupt && n % f->o.corrupt == 0 && len > 1) {
		/* Not the delimiter: the frame is damaged, not merged with
		 * the next one. */
		size_t at = (size_t)(emu_rng_next(&f->rng) % (len - 1));
		unsigned bit = (unsigned)(emu_rng_next(&f->rng) % 8u);
		uint8_t *c = copy(f, out, len);
		if (!c)
			return -1;
		c[at] ^= (uint8_t)(1u << bit);
		out = c;
		note(f, F_CORRUPT, "bit %u of byte %zu flipped in frame %" PRIu64
		     " (%zu bytes)", bit, at, n, len);
	}
	if (f->o.drop_bytes && n % f->o.drop_bytes == 0 && len > 1) {
		/* As for corrupt: never the delimiter. */
		size_t at = (size_t)(emu_rng_next(&f->rng) % (len - 1));
		uint8_t *c = out == f->scratch ? f->scratch : copy(f, out, len);
		if (!c)
			return -1;
		memmove(c + at, c + at + 1, len - at - 1);
		len--;
		out = c;
		note(f, F_DROP_BYTES, "byte %zu deleted from frame %" PRIu64
		     " (now %zu bytes)", at, n, len);
	}
	if (put(f, fd, out, len) != 0)
		return -1;
	if (f->o.dup && n % f->o.dup == 0) {
		note(f, F_DUP, "frame %" PRIu64 " (%zu bytes) sent twice", n, len);
		return put(f, fd, out, len);
	}
	return 0;
}

int faults_next_due(const struct faults *f)
{
	uint64_t now = (uint64_t)pl_time_monotonic_ms(), best = UINT64_MAX;

	for (unsigned i = 0; i < f->n_late; i++)
		if (f->late[i].due_ms < best)
			best = f->late[i].due_ms;
	if (best == UINT64_MAX)
		return -1;
	return best <= now ? 0 : (int)(best - now);
}

int faults_release(struct faults *f, int fd)
{
	uint64_t now = (uint64_t)pl_time_monotonic_ms();
	unsigned i = 0;

	/* In the order they were held: their due times are in that order,
	 * since every late frame waits the same --fault-late-ms. */
	while (i < f->n_late && !f->down) {
		struct late_frame l = f->late[i];
		if (l.due_ms > now) {
			i++;
			continue;
		}
		memmove(&f->late[i], &f->late[i + 1],
		        (f->n_late - i - 1) * sizeof f->late[0]);
		f->n_late--;
		int rc = put(f, fd, l.data, l.len);
		free(l.data);
		if (rc != 0)
			return -1;
	}
	return 0;
}
