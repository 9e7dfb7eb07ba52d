/*
 * Fault injection on what the pen sends, for tests of the host's recovery:
 * garbage, corrupted frames, lost replies, silence, a slow boot, a pen
 * pulled out mid-transfer, slow replies.  Counting is per outgoing frame
 * (replies and unsolicited frames alike) and the random parts come from
 * --seed, so a failing test can be replayed exactly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "penemu.h"

struct faults {
	struct fault_opts o;
	struct emu_rng rng;
	uint64_t frames;     /* outgoing frames so far */
	uint64_t sent;       /* bytes written to the port so far */
	uint8_t *scratch;    /* a frame copy to corrupt */
	size_t scratch_cap;
};

struct faults *faults_new(const struct fault_opts *o, uint64_t seed)
{
	struct faults *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	f->o = *o;
	/* A stream of its own, so faults do not shift the session data. */
	emu_rng_seed(&f->rng, seed ^ 0x5eedfa017ull);
	return f;
}

void faults_free(struct faults *f)
{
	if (f) {
		free(f->scratch);
		free(f);
	}
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

/* Writes bytes, honouring --fault-disconnect-after: the byte budget ends
 * mid-frame exactly like a cable pulled mid-transfer. */
static int put(struct faults *f, int fd, const uint8_t *p, size_t len)
{
	if (f->o.disconnect_after && f->sent + len >= f->o.disconnect_after) {
		size_t keep = (size_t)(f->o.disconnect_after - f->sent);
		if (keep)
			(void)emu_write_all(fd, p, keep);
		fprintf(stderr,
		        "penemu: fault: disconnecting after %llu bytes sent\n",
		        (unsigned long long)f->o.disconnect_after);
		fflush(stderr);
		/* No cleanup on purpose: the pen lost power.  The flash
		 * holds only committed writes. */
		_exit(3);
	}
	f->sent += len;
	return emu_write_all(fd, p, len);
}

int faults_send(struct faults *f, int fd, const uint8_t *frame, size_t len)
{
	uint64_t n = ++f->frames;

	if (f->o.mute)
		return 0;
	if (f->o.delay_ms)
		sleep_ms(f->o.delay_ms);
	if (f->o.drop && n % f->o.drop == 0)
		return 0;
	if (f->o.garbage && n % 10 == 0) {
		uint8_t junk[256];
		uint32_t left = f->o.garbage;

		while (left) {
			size_t k = left < sizeof junk ? left : sizeof junk;
			for (size_t i = 0; i < k; i++) {
				uint64_t x = emu_rng_next(&f->rng);
				/* About one byte in sixteen is a delimiter, so
				 * the host sees both runt frames and long junk. */
				junk[i] = (x & 0xf00u) == 0 ? 0 : (uint8_t)x;
			}
			left -= (uint32_t)k;
			/* End on a delimiter so the frame behind the junk
			 * survives: this fault tests resynchronisation; lost
			 * frames are --fault-corrupt's and --fault-drop's. */
			if (left == 0)
				junk[k - 1] = 0;
			if (put(f, fd, junk, k) != 0)
				return -1;
		}
	}
	if (f->o.corrupt && n % f->o.corrupt == 0 && len > 1) {
		size_t at = (size_t)(emu_rng_next(&f->rng) % (len - 1)); /* not the delimiter */
		if (len > f->scratch_cap) {
			uint8_t *p = realloc(f->scratch, len);
			if (!p)
				return -1;
			f->scratch = p;
			f->scratch_cap = len;
		}
		memcpy(f->scratch, frame, len);
		f->scratch[at] ^= (uint8_t)(1u << (emu_rng_next(&f->rng) % 8u));
		return put(f, fd, f->scratch, len);
	}
	return put(f, fd, frame, len);
}
