/*
 * A fake pen for unit tests: the real firmware endpoint (struct pl_fw) over
 * storage kept in memory, so a test controls every preset, session and
 * clock value exactly and can assert on what the endpoint did to them.
 *
 * Use:
 *   struct fake_pen p;            (embed it; it is large, so not on the stack)
 *   fake_pen_init(&p);            defaults below; endpoint initialised
 *   ... adjust fields, add sessions ...
 *   fake_pen_connect(&p, &host, true);   or set p.ops.send yourself
 *   ...
 *   fake_pen_free(&p);
 *
 * Every callback gets the struct fake_pen as ctx; fields may be changed at
 * any time, the callbacks read them on each call.
 */
#ifndef PL_TEST_FAKE_PEN_H
#define PL_TEST_FAKE_PEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "penlink.h"
#include "penlink_test.h"
#include "pl_fw.h"

#define FAKE_PEN_MAX_SESSIONS 400

struct fake_session {
	struct pl_session_info meta;
	uint8_t *data; /* meta.size bytes, owned by the fake */
};

struct fake_pen {
	struct pl_fw fw;
	struct pl_fw_ops ops; /* all set by fake_pen_init except send */
	void *user;           /* free for the test's own callbacks */

	/* Behaviour. */
	struct pl_fw_device_info info; /* what get_info answers */
	uint64_t uptime_ms;            /* what uptime_ms answers */
	/* A storage call the endpoint must never make (more presets than it
	 * asked for, an unknown session to read or archive, a read past the
	 * end) fails the test when set; otherwise it returns an error as real
	 * storage would, and the test sees the endpoint's answer. */
	bool strict;
	/* The endpoint's log lines are always kept in last_log; when set they
	 * are also sent to the host as trace lines at level 2. */
	bool log_to_trace;

	/* Storage. */
	struct pl_fw_preset presets[PL_FW_MAX_PRESETS];
	size_t npresets;
	uint32_t revision;
	struct fake_session sessions[FAKE_PEN_MAX_SESSIONS]; /* ordered by id */
	size_t nsessions;
	int64_t rtc;
	bool rtc_set;

	/* Observations. */
	unsigned stores;   /* successful presets_store calls */
	unsigned archives; /* successful session_archive calls */
	char last_log[512];

	/* The link (fake_pen_connect). */
	struct pl_transport *pen_end;
	/* While set, bytes the host writes are lost (counted in bytes_lost),
	 * as on a port that enumerates before its protocol task runs. */
	bool fw_down;
	size_t bytes_lost;
	uint32_t max_requests_per_pump; /* most requests one pump handled */
	uint8_t rx_chunk[65536];
};

/* The two presets every fake starts with (revision 1). */
extern const struct pl_fw_preset fake_pen_default_presets[2];

/* Device info with the limits the tests use (depth 250..2500 step 250, six
 * speed levels 50..150 Hz, slow lock at 2000 um, 16 presets) and the
 * identity "PEN-LINK", caps RTC|TRACE|TELEMETRY, 987654 strokes, 3600 motor
 * seconds, battery 64 % / 3850 mV. */
void fake_pen_default_info(struct pl_fw_device_info *out);

/* Zeroes p, sets the default info, the default presets, uptime 99000 ms,
 * no sessions, not strict, no trace, and initialises p->fw. */
void fake_pen_init(struct fake_pen *p);

/* Adds a session with patterned content (byte i = i*31 + id) and made-up
 * metadata: seq id+100, uuid[i] = id*7+i, sha256[i] = id*13+i (not the
 * digest of the content), start 1700000000000+id, 30 min long. */
struct fake_session *fake_pen_add_session(struct fake_pen *p, uint32_t id,
                                          size_t size);

/* Adds a session with pseudo-random content from seed and its real
 * SHA-256: seq id, uuid[i] = seed+i, start 1780000000000 + id days,
 * 40 min long. */
struct fake_session *fake_pen_add_random_session(struct fake_pen *p,
                                                 uint32_t id, size_t size,
                                                 uint32_t seed);

/* Frees every session's content and forgets the sessions. */
void fake_pen_clear_sessions(struct fake_pen *p);

/* Wires the endpoint to one end of a new pl_transport_memory_pair and
 * returns the other, for the host, in *host.  With auto_pump the host's
 * end runs fake_pen_pump whenever the host waits for input (for the
 * blocking API); without it the test calls fake_pen_pump itself. */
void fake_pen_connect(struct fake_pen *p, struct pl_transport **host,
                      bool auto_pump);

/* The pen's side of the link: everything the host wrote reaches the
 * endpoint (unless fw_down), whose replies go straight back. */
void fake_pen_pump(struct fake_pen *p);

/* Unplugs: closes the pen's end and resets the endpoint, so a following
 * fake_pen_connect starts a fresh link.  The host's end is the caller's. */
void fake_pen_disconnect(struct fake_pen *p);

/* Frees the sessions and closes the pen's end if still open. */
void fake_pen_free(struct fake_pen *p);

#endif
