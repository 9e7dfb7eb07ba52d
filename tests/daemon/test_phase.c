/*
 * A pen's phases in penlinkd (daemon/phase.c) and their one writer,
 * pen_enter(): the moves a pen makes in its life are allowed, the ones it
 * must not make (a failed pen downloading again without a new listing, a
 * dropped pen talking again before it is unplugged, anything once it is
 * leaving) are refused and leave the phase alone, and what clients see as
 * PenState follows from the phase.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "device.h"

struct fixture {
	struct daemon d; /* no control socket: nothing is broadcast */
	struct pen p;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->p.d = &f->d;
	snprintf(f->p.port, sizeof f->p.port, "/dev/test");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* Moves p along path, each move allowed. */
static void walk(struct pen *p, const enum pen_phase *path, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert_true(pen_enter(p, path[i], "test"));
		assert_int_equal(p->phase, path[i]);
	}
}

/* A zeroed pen is in the handshake, as pens_attach() makes it. */
static void test_starts_in_handshake(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(f->p.phase, PHASE_HANDSHAKE);
	assert_int_equal(phase_pen_state(f->p.phase), PLCTL__PEN_STATE__PEN_STATE_CONNECTING);
}

/* The moves of a pen's ordinary life, in the order the daemon makes them. */
static void test_life(void **state)
{
	struct fixture *f = *state;
	static const enum pen_phase life[] = {
	    PHASE_INFO, PHASE_CLOCK, PHASE_LIST,
	    PHASE_LIST,          /* listed again: it recorded a session meanwhile */
	    PHASE_DOWNLOAD,
	    PHASE_STORE_FAILED,  /* the archive refused the bytes */
	    PHASE_DOWNLOAD,      /* the next session */
	    PHASE_DOWNLOAD,      /* the next one again (or a retry) */
	    PHASE_COMMIT, PHASE_COMMIT, PHASE_DOWNLOAD, PHASE_COMMIT,
	    PHASE_IDLE,
	    PHASE_LIST,          /* it recorded a session */
	    PHASE_FAILED,        /* the listing failed */
	    PHASE_LIST,          /* it recorded another: a new round */
	    PHASE_DOWNLOAD, PHASE_FAILED,
	    PHASE_DETACHING, PHASE_GONE,
	};
	walk(&f->p, life, sizeof life / sizeof *life);
}

/* A USB pen that fails its handshake, or misbehaves, is dropped; only
 * the unplug moves it on. */
static void test_dropped(void **state)
{
	struct fixture *f = *state;
	assert_true(pen_enter(&f->p, PHASE_DROPPED, "handshake failed"));
	assert_false(pen_enter(&f->p, PHASE_INFO, "test"));
	assert_false(pen_enter(&f->p, PHASE_LIST, "test"));
	assert_int_equal(f->p.phase, PHASE_DROPPED);
	assert_int_equal(phase_pen_state(f->p.phase), PLCTL__PEN_STATE__PEN_STATE_FAILED);
	static const enum pen_phase unplug[] = {PHASE_DETACHING, PHASE_GONE};
	walk(&f->p, unplug, 2);

	for (enum pen_phase ph = PHASE_INFO; ph <= PHASE_FAILED; ph++)
		assert_true(phase_may_enter(ph, PHASE_DROPPED));
}

/* Moves the daemon never makes, refused with the phase left alone. */
static void test_forbidden(void **state)
{
	struct fixture *f = *state;
	struct pen *p = &f->p;

	/* Nothing but the handshake's end starts the work. */
	assert_false(pen_enter(p, PHASE_LIST, "test"));
	assert_false(pen_enter(p, PHASE_DOWNLOAD, "test"));
	assert_false(pen_enter(p, PHASE_IDLE, "test"));
	assert_int_equal(p->phase, PHASE_HANDSHAKE);

	static const enum pen_phase to_failed[] = {PHASE_INFO, PHASE_FAILED};
	walk(p, to_failed, 2);
	/* A failed pen does not download again on its own: a new round
	 * starts with a listing (a session it recorded). */
	assert_false(pen_enter(p, PHASE_DOWNLOAD, "test"));
	assert_false(pen_enter(p, PHASE_COMMIT, "test"));
	assert_false(pen_enter(p, PHASE_INFO, "test"));
	assert_false(pen_enter(p, PHASE_HANDSHAKE, "test"));
	assert_false(pen_enter(p, PHASE_GONE, "test"));
	assert_int_equal(p->phase, PHASE_FAILED);
	assert_int_equal(phase_pen_state(p->phase), PLCTL__PEN_STATE__PEN_STATE_FAILED);

	/* Neither does an idle one. */
	assert_false(phase_may_enter(PHASE_IDLE, PHASE_DOWNLOAD));
	/* The clock is not worth failing a round for. */
	assert_false(phase_may_enter(PHASE_CLOCK, PHASE_FAILED));
	/* Sessions held before the round's first download are reclaimed
	 * while listing. */
	assert_false(phase_may_enter(PHASE_LIST, PHASE_COMMIT));
	/* One refusal per download. */
	assert_false(phase_may_enter(PHASE_STORE_FAILED, PHASE_STORE_FAILED));
	assert_false(phase_may_enter(PHASE_COMMIT, PHASE_STORE_FAILED));
	/* Phases outside the enum. */
	assert_false(phase_may_enter(PHASE_COUNT, PHASE_INFO));
	assert_false(phase_may_enter(PHASE_INFO, PHASE_COUNT));
	assert_string_equal(phase_name(PHASE_COUNT), "?");
}

/* A pen that is leaving starts nothing: detaching goes only to gone, and
 * gone goes nowhere. */
static void test_leaving(void **state)
{
	struct fixture *f = *state;
	static const enum pen_phase path[] = {PHASE_INFO, PHASE_CLOCK, PHASE_LIST,
	                                      PHASE_DOWNLOAD, PHASE_DETACHING};
	walk(&f->p, path, sizeof path / sizeof *path);
	for (enum pen_phase ph = 0; ph < PHASE_COUNT; ph++) {
		if (ph != PHASE_GONE)
			assert_false(pen_enter(&f->p, ph, "test"));
		assert_false(phase_may_enter(PHASE_GONE, ph));
	}
	assert_int_equal(f->p.phase, PHASE_DETACHING);
	assert_true(pen_enter(&f->p, PHASE_GONE, "test"));
}

/* Every phase but the way out can be detached from (an unplug, penctl
 * detach, a stop), gone is reached only through detaching, and every
 * phase is reachable from the handshake. */
static void test_table_shape(void **state)
{
	(void)state;
	for (enum pen_phase ph = 0; ph < PHASE_COUNT; ph++) {
		bool out = ph == PHASE_DETACHING || ph == PHASE_GONE;
		assert_int_equal(phase_may_enter(ph, PHASE_DETACHING), !out);
		assert_int_equal(phase_may_enter(ph, PHASE_GONE), ph == PHASE_DETACHING);
		assert_string_not_equal(phase_name(ph), "?");
	}
	bool seen[PHASE_COUNT] = {[PHASE_HANDSHAKE] = true};
	for (bool more = true; more;) {
		more = false;
		for (enum pen_phase a = 0; a < PHASE_COUNT; a++)
			for (enum pen_phase b = 0; b < PHASE_COUNT; b++)
				if (seen[a] && !seen[b] && phase_may_enter(a, b))
					seen[b] = more = true;
	}
	for (enum pen_phase ph = 0; ph < PHASE_COUNT; ph++)
		assert_true(seen[ph]);
}

/* The one mapping to the control protocol's PenState, and the daemon's
 * own questions about a phase, which must agree with it. */
static void test_pen_state(void **state)
{
	(void)state;
	static const Plctl__PenState want[PHASE_COUNT] = {
	    [PHASE_HANDSHAKE] = PLCTL__PEN_STATE__PEN_STATE_CONNECTING,
	    [PHASE_INFO] = PLCTL__PEN_STATE__PEN_STATE_SYNCING,
	    [PHASE_CLOCK] = PLCTL__PEN_STATE__PEN_STATE_SYNCING,
	    [PHASE_LIST] = PLCTL__PEN_STATE__PEN_STATE_SYNCING,
	    [PHASE_DOWNLOAD] = PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING,
	    [PHASE_STORE_FAILED] = PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING,
	    [PHASE_COMMIT] = PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING,
	    [PHASE_IDLE] = PLCTL__PEN_STATE__PEN_STATE_IDLE,
	    [PHASE_FAILED] = PLCTL__PEN_STATE__PEN_STATE_FAILED,
	    [PHASE_DROPPED] = PLCTL__PEN_STATE__PEN_STATE_FAILED,
	    [PHASE_DETACHING] = PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED,
	    [PHASE_GONE] = PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED,
	};
	for (enum pen_phase ph = 0; ph < PHASE_COUNT; ph++) {
		Plctl__PenState st = phase_pen_state(ph);
		assert_int_equal(st, want[ph]);
		/* The round runs exactly while clients see it syncing or
		 * downloading. */
		assert_int_equal(phase_working(ph),
		                 st == PLCTL__PEN_STATE__PEN_STATE_SYNCING ||
		                     st == PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING);
		/* A pen takes client requests once past the handshake, until it
		 * is dropped or leaves. */
		assert_int_equal(phase_usable(ph),
		                 ph != PHASE_HANDSHAKE && !phase_leaving(ph));
		if (phase_closing(ph))
			assert_true(phase_leaving(ph));
	}
	assert_int_equal(phase_pen_state(PHASE_COUNT), PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_starts_in_handshake, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_life, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forbidden, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leaving, setup, teardown),
	    cmocka_unit_test(test_table_shape),
	    cmocka_unit_test(test_pen_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
