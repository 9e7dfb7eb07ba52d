/*
 * penemu --treat: the virtual pen runs a treatment in real time, sending
 * each thing that happens as a state event and a trace line, and records
 * the session in its flash when the treatment stops (treat.c); and the part
 * of the session generator (gen.c) it shares: a record built from the
 * events and telemetry that really happened.
 */
#ifndef PENEMU_TREAT_H
#define PENEMU_TREAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "penemu.h"

/* ------------------------------------------------------------------ gen.c */

/* One telemetry sample, as gen.c's generated sessions take them. */
struct gen_sample {
	uint32_t depth_um, current_ma, battery_mv;
};

/* The telemetry of a session: n samples in the three series a record
 * carries, with room for cap. */
struct gen_samples {
	uint32_t *depth_um, *current_ma, *battery_mv;
	size_t n, cap;
};

/* Room for n samples in every series.  Returns 0, or -1 out of memory
 * (what the series held is kept). */
int gen_samples_reserve(struct gen_samples *s, size_t n);
/* Stores g as sample i (< cap). */
void gen_samples_put(struct gen_samples *s, size_t i, const struct gen_sample *g);
void gen_samples_free(struct gen_samples *s);

/* The sample of a pen running (or not) at depth_um and speed level speed
 * with the cell at battery_mv; noise is one draw of a generator. */
void gen_sample(bool running, uint32_t depth_um, uint32_t speed,
                uint32_t battery_mv, uint64_t noise, struct gen_sample *out);

/* An event of a record (kind: pl.EventKind, Pl__EventKind). */
struct gen_event {
	uint32_t offset_ms;
	uint32_t kind;
	int32_t value;
};

/* A treatment that happened: what the record says, no more, no less. */
struct gen_live {
	const struct pl_fw_preset *preset; /* in force at the start */
	uint32_t preset_revision;
	uint32_t needles;         /* the cartridge in at the start */
	int64_t start_ms;         /* UTC ms, or uptime ms without a set clock */
	bool rtc;                 /* start_ms is UTC */
	uint32_t dur_ms;
	const struct gen_event *ev; /* in order, offsets within dur_ms */
	size_t nev;
	uint32_t interval_us;     /* telemetry */
	const struct gen_samples *samples;
};

/* Builds the record of `in` (summary computed from its events, UUID from
 * gp's seed, serial or uuid_serial and the next sequence number; count,
 * now_ms and target_bytes are not used), stores it in f and fills *meta
 * (meta->id is the new session's id).  Returns 0 or -1. */
int gen_record_events(struct flash *f, const struct gen_params *gp,
                      const struct gen_live *in, struct pl_session_info *meta);

/* ------------------------------------------------------------------ treat.c */

#define TREAT_DEFAULT_S 20u
#define TREAT_MIN_S 5u
#define TREAT_MAX_S 3600u
#define TREAT_DEFAULT_AFTER_S 2u

struct treat_opts {
	uint32_t duration_s;  /* of each treatment */
	uint32_t after_s;     /* from the first host's handshake to the start */
	uint32_t every_s;     /* 0: once; else again this long after one stopped */
	uint64_t seed;
	const char *uuid_serial; /* NULL: the pen's own serial */
	const char *fw_version;
};

struct treat;

struct treat *treat_new(const struct treat_opts *o);
void treat_free(struct treat *t);

/* Called from the poll loop: starts, advances or ends the treatment, sending
 * through fw and storing the record in f.  Returns the ms until it wants to
 * run again, or -1 when only a host's handshake can start it (or it is
 * over).  t may be NULL (no --treat): returns -1. */
int treat_tick(struct treat *t, struct pl_fw *fw, struct flash *f);

#endif
