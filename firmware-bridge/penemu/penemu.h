/*
 * penemu, the virtual pen: shared declarations of its parts.
 *
 *   main.c    arguments, the port (pty or tty), the poll loop, the glue
 *             between the firmware endpoint and everything below
 *   flash.c   the pen's storage in SQLite (presets, sessions, clock, counters)
 *   gen.c     realistic session records (events, telemetry, summary)
 *   faults.c  deterministic fault injection on the outgoing byte stream
 *   hostile.c a pen that attacks the host (--hostile MODE)
 */
#ifndef PENEMU_H
#define PENEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <penlink.h> /* time and text helpers: penemu is a host program */

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
                       struct pl_session_info *out);
int flash_session_get(struct flash *f, uint32_t id, struct pl_session_info *out);
int flash_session_read(struct flash *f, uint32_t id, uint64_t offset,
                       uint8_t *buf, size_t len);
int flash_session_archive(struct flash *f, uint32_t id);

int flash_session_count(struct flash *f, size_t *count);
/* Stores a new record; meta->id is assigned (and written back), next_seq
 * moves past meta->seq, and the counters grow by strokes / run time. */
int flash_session_add(struct flash *f, struct pl_session_info *meta,
                      const uint8_t *record, size_t len, uint64_t strokes,
                      uint64_t run_seconds);

/* ------------------------------------------------------------------ sessions */

struct gen_params {
	uint64_t seed;
	int64_t now_ms;           /* "today", for placing sessions in the past */
	uint64_t target_bytes;    /* wanted size of each packed record */
	unsigned count;           /* how many records */
	const char *serial;
	const char *uuid_serial;  /* derive UUIDs as this pen's (NULL: serial) */
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
	uint32_t boot_delay_ms;    /* ignore input this long after (re)boot */
	uint64_t disconnect_after; /* exit(3) after this many bytes sent (0: never) */
	uint32_t delay_ms;         /* delay before every frame */
	uint32_t drop_bytes;       /* delete one byte of every Nth frame */
	uint32_t dup;              /* send every Nth frame twice */
	uint32_t stall_every;      /* before every Nth frame ... */
	uint32_t stall_ms;         /* ... send nothing for this long */
	uint32_t late;             /* hold every Nth frame back ... */
	uint32_t late_ms;          /* ... this long */
	uint64_t reboot_after;     /* reboot once after this many bytes sent */
	uint64_t reboot_every;     /* reboot after every this many bytes sent */
};

struct faults;

struct faults *faults_new(const struct fault_opts *o, uint64_t seed);
/* Prints the summary of injected faults (if any) and frees. */
void faults_free(struct faults *f);
void faults_summary(const struct faults *f);
/* True while input is still to be ignored (the pen is "booting"). */
bool faults_ignore_input(const struct faults *f, uint64_t uptime_ms);
/* Sends one outgoing frame through the faults; fd is the port.  Returns 0,
 * or -1 if the port could not take the bytes.  May exit(3). */
int faults_send(struct faults *f, int fd, const uint8_t *frame, size_t len);
/* A reboot fault fired: the pen sends nothing more until main.c rebooted
 * it and called faults_rebooted(). */
bool faults_reboot_due(const struct faults *f);
void faults_rebooted(struct faults *f);
/* Late frames: ms until the next is due (-1: none held); sending those
 * due (0, or -1 if the port failed). */
int faults_next_due(const struct faults *f);
int faults_release(struct faults *f, int fd);

/* ------------------------------------------------------------------ hostile */

/* A pen that attacks the host instead of serving it (--hostile MODE). */
enum hostile_mode {
	HOSTILE_NONE = 0,
	HOSTILE_OVERSIZE,  /* frames over the host's negotiated maximum */
	HOSTILE_NODELIM,   /* bytes without any frame delimiter, forever */
	HOSTILE_BADPROTO,  /* intact frames that are not protobuf */
	HOSTILE_WRONGID,   /* replies carrying request ids never sent */
	HOSTILE_FLOOD,     /* a flood of unsolicited frames */
	HOSTILE_SLOW,      /* one byte per second */
	HOSTILE_SESSIONS,  /* lists a million sessions it cannot serve */
};

struct hostile;

/* HOSTILE_NONE for an unknown name. */
enum hostile_mode hostile_parse(const char *name);
const char *hostile_name(enum hostile_mode m);
struct hostile *hostile_new(enum hostile_mode m, uint64_t seed);
void hostile_free(struct hostile *h);
/* The endpoint's outgoing frame; host_max_frame is what the host's Hello
 * asked for (0 before it).  Returns 0, or -1 on a dead port. */
int hostile_send(struct hostile *h, int fd, const uint8_t *frame, size_t len,
                 uint32_t host_max_frame);
/* Called from the poll loop: sends what the attack sends on its own.
 * Returns the ms until it wants to run again (-1: only when writable). */
int hostile_tick(struct hostile *h, int fd, uint32_t host_max_frame);
/* True if it has bytes waiting for the port to take them. */
bool hostile_want_write(const struct hostile *h);
/* The session listed after `after` (pl_fw_ops.session_next) when the
 * attack is in what the pen lists: PL_FW_OK or PL_FW_NOT_FOUND, with
 * real (the flash's own answer for `after`) taken first.  Any other mode
 * returns real_rc untouched. */
int hostile_session_next(struct hostile *h, uint32_t after, int real_rc,
                         struct pl_session_info *out);

/* ------------------------------------------------------------------ main.c */

/* Writes all of data to the non-blocking fd, waiting for room; gives up
 * (-1) when nobody reads for several seconds or on a stop signal. */
int emu_write_all(int fd, const uint8_t *data, size_t len);
/* Room for need elements of size elem in *buf, whose capacity *cap (in
 * elements) starts at 64 and doubles.  Returns 0, or -1 out of memory
 * (*buf and *cap unchanged). */
int emu_grow(void **buf, size_t *cap, size_t need, size_t elem);
/* Milliseconds since penemu started (the pen's uptime). */
uint64_t emu_uptime_ms(void);

#endif
