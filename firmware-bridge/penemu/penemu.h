/*
 * penemu, the virtual pen: shared declarations of its parts.
 *
 *   main.c    arguments, the port (pty or tty), the poll loop, the glue
 *             between the firmware endpoint and everything below
 *   flash.c   the pen's storage in SQLite (presets, sessions, clock, counters)
 *   gen.c     realistic session records (events, telemetry, summary)
 *   faults.c  deterministic fault injection on the outgoing byte stream
 */
#ifndef PENEMU_H
#define PENEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_fw.h"

/* ------------------------------------------------------------------ PRNG */

/* xoshiro256** seeded through splitmix64: small, fast, and the same
 * sequence on every platform, so --seed reproduces sessions and faults. */
struct emu_rng {
	uint64_t s[4];
};

static inline uint64_t emu_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void emu_rng_seed(struct emu_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = emu_splitmix(&seed);
}

static inline uint64_t emu_rng_next(struct emu_rng *r)
{
	uint64_t *s = r->s;
	uint64_t x = s[1] * 5;
	uint64_t result = ((x << 7) | (x >> 57)) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = (s[3] << 45) | (s[3] >> 19);
	return result;
}

/* Uniform in [lo, hi] (inclusive); the tiny modulo bias does not matter
 * for simulated data. */
static inline uint32_t emu_rng_range(struct emu_rng *r, uint32_t lo, uint32_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (uint32_t)(emu_rng_next(r) % ((uint64_t)hi - lo + 1));
}

/* ------------------------------------------------------------------ flash */

struct flash;

struct flash_meta {
	char serial[64];
	uint32_t preset_revision;
	uint32_t next_seq;
	bool rtc_set;
	int64_t rtc_offset_ms;  /* pen UTC minus host real time */
	uint64_t total_strokes;
	uint64_t motor_seconds;
};

/* path NULL: an in-memory flash.  *created tells whether the flash was new
 * (its tables were made now, with serial and the default presets).
 * Returns 0, or -1 after printing why. */
int flash_open(const char *path, const char *serial, struct flash **out,
               bool *created);
void flash_close(struct flash *f);

int flash_meta(struct flash *f, struct flash_meta *out);
int flash_rtc_set(struct flash *f, int64_t offset_ms);

/* pl_fw_ops-shaped: return PL_FW_OK / PL_FW_NOT_FOUND / PL_FW_INTERNAL. */
int flash_presets_load(struct flash *f, struct pl_fw_preset *out, size_t max,
                       size_t *count, uint32_t *revision);
int flash_presets_store(struct flash *f, const struct pl_fw_preset *p,
                        size_t count, uint32_t revision);
int flash_session_next(struct flash *f, uint32_t after_id,
                       struct pl_fw_session *out);
int flash_session_get(struct flash *f, uint32_t id, struct pl_fw_session *out);
int flash_session_read(struct flash *f, uint32_t id, uint64_t offset,
                       uint8_t *buf, size_t len);
int flash_session_archive(struct flash *f, uint32_t id);

int flash_session_count(struct flash *f, size_t *count);
/* Stores a new record; meta->id is assigned (and written back), next_seq
 * moves past meta->seq, and the counters grow by strokes / run time. */
int flash_session_add(struct flash *f, struct pl_fw_session *meta,
                      const uint8_t *record, size_t len, uint64_t strokes,
                      uint64_t run_seconds);

/* ------------------------------------------------------------------ sessions */

struct gen_params {
	uint64_t seed;
	int64_t now_ms;           /* "today", for placing sessions in the past */
	uint64_t target_bytes;    /* wanted size of each packed record */
	unsigned count;           /* how many records */
	const char *serial;
	const char *fw_version;
	const struct pl_fw_device_info *info; /* limits and stroke rates */
};

/* Generates params->count records and stores them in f.  Returns 0 or -1. */
int gen_sessions(struct flash *f, const struct gen_params *params);

/* ------------------------------------------------------------------ faults */

struct fault_opts {
	uint32_t garbage;          /* bytes of garbage before every 10th frame */
	uint32_t corrupt;          /* flip a bit in every Nth frame */
	uint32_t drop;             /* drop every Nth frame */
	bool mute;                 /* send nothing at all */
	uint32_t boot_delay_ms;    /* ignore input this long after start */
	uint64_t disconnect_after; /* exit(3) after this many bytes sent (0: never) */
	uint32_t delay_ms;         /* delay before every frame */
};

struct faults;

struct faults *faults_new(const struct fault_opts *o, uint64_t seed);
void faults_free(struct faults *f);
/* True while input is still to be ignored (the pen is "booting"). */
bool faults_ignore_input(const struct faults *f, uint64_t uptime_ms);
/* Sends one outgoing frame through the faults; fd is the port.  Returns 0,
 * or -1 if the port could not take the bytes.  May exit(3). */
int faults_send(struct faults *f, int fd, const uint8_t *frame, size_t len);

/* ------------------------------------------------------------------ main.c */

/* Writes all of data to the non-blocking fd, waiting for room; gives up
 * (-1) when nobody reads for several seconds or on a stop signal. */
int emu_write_all(int fd, const uint8_t *data, size_t len);
/* Milliseconds since penemu started (the pen's uptime). */
uint64_t emu_uptime_ms(void);

#endif
