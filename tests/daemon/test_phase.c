/*
 * A pen's phases in penlinkd (daemon/phase.c) and their one writer,
 * pen_enter(): the moves a pen makes in its life are allowed, the ones it
 * must not make (a failed pen downloading again without a new listing, a
 * dropped pen talking again before it is unplugged, anything once it is
 * leaving) are refused and leave the phase alone, and what clients see as
 * PenState follows from the phase.  Then a USB pen whose handshake fails,
 * on a real pty, through the daemon's own code: dropped, listed as failed,
 * gone once unplugged.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ------------------------------------------------------------------ in the daemon */

struct watch {
	struct daemon *d;
	Plctl__PenState state; /* of the only pen listed; UNSPECIFIED if none */
	char last_error[256];
	bool usb;
	int info_status;       /* 1 until pen_get_info() answered */
};

static void look(struct watch *w)
{
	Plctl__PenList list;
	assert_int_equal(pens_list(w->d->pens, &list), PL_OK);
	w->state = PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED;
	if (list.n_pens == 1) {
		w->state = list.pens[0]->state;
		w->usb = list.pens[0]->usb;
		snprintf(w->last_error, sizeof w->last_error, "%s", list.pens[0]->last_error);
	}
	assert_true(list.n_pens <= 1);
	pens_list_free(&list);
}

static void until_failed(void *ud)
{
	struct watch *w = ud;
	look(w);
	if (w->state == PLCTL__PEN_STATE__PEN_STATE_FAILED)
		loop_stop(w->d->loop);
	else
		assert_true(loop_add_timer(w->d->loop, 10, until_failed, w));
}

static void stop_loop(void *ud)
{
	loop_stop(ud);
}

static void info_done(void *ud, int status, const struct pl_device_info *info)
{
	struct watch *w = ud;
	w->info_status = status;
	assert_null(info);
	loop_stop(w->d->loop);
}

/*
 * A USB pen that never answers its handshake is dropped: its port let go
 * (so it is not retried in a loop), listed as failed with the reason,
 * refusing requests, until it is unplugged.
 */
static void test_usb_handshake_fails(void **state)
{
	(void)state;
	struct daemon d = {0};
	d.cfg.timeout_ms = 50;
	d.cfg.handshake_ms = 200;
	d.loop = loop_new();
	assert_non_null(d.loop);
	d.pens = pens_new(&d);
	assert_non_null(d.pens);

	/* The pen's end stays open and says nothing. */
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	char port[256];
	snprintf(port, sizeof port, "%s", ptsname(master));

	struct watch w = {.d = &d, .info_status = 1};
	assert_int_equal(pens_attach(d.pens, port, true, "PEN-USB"), PL_OK);
	look(&w);
	assert_int_equal(w.state, PLCTL__PEN_STATE__PEN_STATE_CONNECTING);
	assert_true(loop_add_timer(d.loop, 10, until_failed, &w));
	uint64_t overdue = loop_add_timer(d.loop, 10000, stop_loop, d.loop);
	assert_int_equal(loop_run(d.loop), 0);
	loop_cancel_timer(d.loop, overdue);
	assert_int_equal(w.state, PLCTL__PEN_STATE__PEN_STATE_FAILED);
	assert_true(w.usb);
	assert_non_null(strstr(w.last_error, "handshake failed"));

	char err[256];
	struct pen *p = pens_lookup(d.pens, "PEN-USB", err, sizeof err);
	assert_non_null(p);
	assert_int_equal(p->phase, PHASE_DROPPED);
	assert_null(p->pp);
	assert_int_equal(pen_get_info(p, info_done, &w), PL_OK);
	assert_int_equal(loop_run(d.loop), 0);
	assert_int_equal(w.info_status, PL_ERR_UNPLUGGED);

	assert_int_equal(pens_detach(d.pens, port, NULL, "unplugged"), PL_OK);
	look(&w);
	assert_int_equal(w.state, PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED);

	close(master);
	pens_free(d.pens);
	loop_free(d.loop);
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
	    cmocka_unit_test(test_usb_handshake_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
