/* The daemon's event loop: descriptors, one-shot timers, changes made from
 * inside callbacks, and the promise that an idle loop does not wake up. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stop_cb(void *ud)
{
	loop_stop(ud);
}

/* ------------------------------------------------------------------ fds */

struct fdrec {
	struct loop *l;
	int calls;
	unsigned events;
	char got;
	bool stop;
};

static void read_one(void *ud, int fd, unsigned events)
{
	struct fdrec *r = ud;
	r->calls++;
	r->events = events;
	if (events & LOOP_IN)
		assert_int_equal(read(fd, &r->got, 1), 1);
	if (r->stop)
		loop_stop(r->l);
}

static void test_fd_readable(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	assert_non_null(l);
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct fdrec r = {.l = l, .stop = true};
	assert_int_equal(loop_add_fd(l, p[0], LOOP_IN, read_one, &r), 0);
	assert_int_equal(loop_add_fd(l, p[0], LOOP_IN, read_one, &r), -EEXIST);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.got, 'x');
	assert_int_equal(r.events, LOOP_IN);
	assert_int_equal(loop_wakeups(l), 1);
	loop_del_fd(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

static void test_fd_errors(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct fdrec r = {.l = l};
	assert_true(loop_add_fd(l, -1, LOOP_IN, read_one, &r) < 0);
	assert_int_equal(loop_add_fd(l, 1000, LOOP_IN, read_one, &r), -EBADF);
	assert_int_equal(loop_mod_fd(l, 1000, LOOP_OUT), -ENOENT);
	loop_del_fd(l, 1000); /* unknown: no-op */
	loop_free(l);
}

/* A closed writer shows as a hang-up (LOOP_ERR), always reported. */
static void test_fd_hangup(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct fdrec r = {.l = l, .stop = true};
	assert_int_equal(loop_add_fd(l, p[0], LOOP_IN, read_one, &r), 0);
	close(p[1]);
	uint64_t t = loop_add_timer(l, 2000, stop_cb, l); /* safety net */
	assert_int_equal(loop_run(l), 0);
	loop_cancel_timer(l, t);
	assert_int_equal(r.calls, 1);
	assert_true(r.events & LOOP_ERR);
	close(p[0]);
	loop_free(l);
}

struct writable {
	struct loop *l;
	int calls;
};

static void on_writable(void *ud, int fd, unsigned events)
{
	struct writable *w = ud;
	w->calls++;
	assert_true(events & LOOP_OUT);
	/* Stop asking for output: the loop must not report it again. */
	assert_int_equal(loop_mod_fd(w->l, fd, LOOP_IN), 0);
}

static void test_fd_mod(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct writable w = {.l = l};
	assert_int_equal(loop_add_fd(l, p[1], LOOP_OUT, on_writable, &w), 0);
	loop_add_timer(l, 100, stop_cb, l);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(w.calls, 1);
	/* One wake-up for the output, one for the timer. */
	assert_int_equal(loop_wakeups(l), 2);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

/* ------------------------------------------------------------------ deleting inside callbacks */

struct pair {
	struct loop *l;
	int fds[2];      /* read ends of two pipes, both readable */
	int wfds[2];
	int calls[2];
	int replaced_calls;
	int newp[2];
};

static void replaced_cb(void *ud, int fd, unsigned events)
{
	(void)fd;
	(void)events;
	struct pair *pr = ud;
	pr->replaced_calls++;
}

/* Whichever fires first removes and closes the other, then puts a fresh,
 * empty pipe in the loop (the kernel reuses the lowest free number, so
 * most likely the very fd just closed): the other's pending event must be
 * dropped, not delivered to the newcomer. */
static void pair_cb(void *ud, int fd, unsigned events)
{
	(void)events;
	struct pair *pr = ud;
	int me = fd == pr->fds[0] ? 0 : 1;
	pr->calls[me]++;
	int other = pr->fds[1 - me];
	loop_del_fd(pr->l, other);
	close(other);
	assert_int_equal(pipe(pr->newp), 0);
	assert_int_equal(loop_add_fd(pr->l, pr->newp[0], LOOP_IN, replaced_cb, pr), 0);
	/* And itself, from inside its own callback. */
	loop_del_fd(pr->l, fd);
	loop_add_timer(pr->l, 50, stop_cb, pr->l);
}

static void test_delete_inside_callback(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct pair pr = {.l = l};
	for (int i = 0; i < 2; i++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pr.fds[i] = p[0];
		pr.wfds[i] = p[1];
		assert_int_equal(write(p[1], "x", 1), 1);
		assert_int_equal(loop_add_fd(l, p[0], LOOP_IN, pair_cb, &pr), 0);
	}
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(pr.calls[0] + pr.calls[1], 1);
	assert_int_equal(pr.replaced_calls, 0);
	int me = pr.calls[0] ? 0 : 1;
	close(pr.fds[me]);
	close(pr.wfds[0]);
	close(pr.wfds[1]);
	loop_del_fd(l, pr.newp[0]);
	close(pr.newp[0]);
	close(pr.newp[1]);
	loop_free(l);
}

/* ------------------------------------------------------------------ timers */

struct order {
	struct loop *l;
	int seen[16];
	int n;
	uint64_t victim;
};

struct tick {
	struct order *o;
	int id;
	bool stop;
};

static void tick_cb(void *ud)
{
	struct tick *t = ud;
	t->o->seen[t->o->n++] = t->id;
	if (t->stop)
		loop_stop(t->o->l);
}

static void test_timer_order_and_cancel(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct order o = {.l = l};
	struct tick t30 = {&o, 30, true}, t10 = {&o, 10, false}, t20 = {&o, 20, false},
	            t0a = {&o, 1, false}, t0b = {&o, 2, false}, t15 = {&o, 15, false};
	int64_t t0 = mono_ms();
	assert_true(loop_add_timer(l, 30, tick_cb, &t30));
	assert_true(loop_add_timer(l, 10, tick_cb, &t10));
	assert_true(loop_add_timer(l, 20, tick_cb, &t20));
	assert_true(loop_add_timer(l, 0, tick_cb, &t0a));
	assert_true(loop_add_timer(l, 0, tick_cb, &t0b));
	uint64_t c = loop_add_timer(l, 15, tick_cb, &t15);
	assert_true(c);
	loop_cancel_timer(l, c);
	loop_cancel_timer(l, c); /* twice: no-op */
	loop_cancel_timer(l, 0);
	assert_int_equal(loop_run(l), 0);
	int64_t took = mono_ms() - t0;
	assert_int_equal(o.n, 5);
	int want[] = {1, 2, 10, 20, 30}; /* equal deadlines: first come, first served */
	for (int i = 0; i < 5; i++)
		assert_int_equal(o.seen[i], want[i]);
	assert_true(took >= 30);
	assert_true(took < 1000);
	/* One wake-up per distinct deadline, none in between. */
	assert_true(loop_wakeups(l) <= 4);
	loop_free(l);
}

static void cancel_victim(void *ud)
{
	struct order *o = ud;
	o->seen[o->n++] = 100;
	loop_cancel_timer(o->l, o->victim);
}

static void victim_cb(void *ud)
{
	struct order *o = ud;
	o->seen[o->n++] = 200;
}

/* A callback cancels a timer that is due in the same round. */
static void test_cancel_due_timer_from_callback(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct order o = {.l = l};
	loop_add_timer(l, 0, cancel_victim, &o);
	o.victim = loop_add_timer(l, 0, victim_cb, &o);
	loop_add_timer(l, 20, stop_cb, l);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seen[0], 100);
	/* The fired id is stale now: cancelling it does nothing, even after
	 * its slot is reused. */
	uint64_t again = loop_add_timer(l, 10, victim_cb, &o);
	loop_cancel_timer(l, o.victim);
	loop_add_timer(l, 30, stop_cb, l);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.seen[1], 200);
	(void)again;
	loop_free(l);
}

struct spinner {
	struct loop *l;
	int timer_runs;
	int fd_at;   /* timer_runs when the descriptor got its turn */
};

static void spin_timer(void *ud)
{
	struct spinner *s = ud;
	s->timer_runs++;
	if (s->timer_runs < 1000)
		loop_add_timer(s->l, 0, spin_timer, s);
}

static void spin_fd(void *ud, int fd, unsigned events)
{
	(void)events;
	struct spinner *s = ud;
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
	s->fd_at = s->timer_runs;
	loop_stop(s->l);
}

/* A timer that re-adds itself at 0 ms runs once per round: descriptors
 * still get their turn. */
static void test_zero_timer_does_not_starve(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct spinner s = {.l = l, .fd_at = -1};
	loop_add_timer(l, 0, spin_timer, &s);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_add_fd(l, p[0], LOOP_IN, spin_fd, &s), 0);
	assert_int_equal(loop_run(l), 0);
	assert_true(s.fd_at >= 0 && s.fd_at <= 2);
	loop_del_fd(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

/* Many timers (the heap grows and shrinks), fired in deadline order. */
static int many_seen[300];
static int many_n;

static void many_cb(void *ud)
{
	many_seen[many_n++] = (int)(intptr_t)ud;
}

static void test_many_timers(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	uint64_t ids[300];
	many_n = 0;
	for (int i = 0; i < 300; i++) {
		/* Shuffled deadlines 10 ms apart, so the clock ticking while
		 * they are added (slow under a sanitizer or a loaded machine)
		 * cannot reorder two of them. */
		int ms = ((i * 7) % 40) * 10;
		ids[i] = loop_add_timer(l, ms, many_cb, (void *)(intptr_t)(ms * 1000 + i));
		assert_true(ids[i]);
	}
	for (int i = 0; i < 300; i += 3)
		loop_cancel_timer(l, ids[i]);
	loop_add_timer(l, 450, stop_cb, l);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(many_n, 200);
	for (int i = 1; i < many_n; i++)
		assert_true(many_seen[i - 1] / 1000 <= many_seen[i] / 1000);
	for (int i = 0; i < many_n; i++)
		assert_int_not_equal((many_seen[i] % 1000) % 3, 0);
	loop_free(l);
}

/* ------------------------------------------------------------------ idle */

struct idle {
	struct loop *l;
	int wfd;
};

static void *poke_later(void *ud)
{
	struct idle *i = ud;
	struct timespec ts = {0, 400 * 1000 * 1000};
	nanosleep(&ts, NULL);
	if (write(i->wfd, "x", 1) != 1)
		return (void *)1;
	return NULL;
}

/*
 * Nothing to do for 400 ms but an fd that stays quiet: the loop must sleep
 * the whole time in one epoll_wait (exactly one wake-up, for the byte that
 * ends it).  A periodic tick would show here.
 */
static void test_no_wakeups_when_idle(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	int p[2], q[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	struct fdrec quiet = {.l = l}, poke = {.l = l, .stop = true};
	assert_int_equal(loop_add_fd(l, q[0], LOOP_IN, read_one, &quiet), 0);
	assert_int_equal(loop_add_fd(l, p[0], LOOP_IN, read_one, &poke), 0);
	/* A timer armed and cancelled leaves nothing behind. */
	loop_cancel_timer(l, loop_add_timer(l, 50, stop_cb, l));
	struct idle i = {.l = l, .wfd = p[1]};
	pthread_t th;
	int64_t t0 = mono_ms();
	assert_int_equal(pthread_create(&th, NULL, poke_later, &i), 0);
	assert_int_equal(loop_run(l), 0);
	void *res;
	pthread_join(th, &res);
	assert_null(res);
	assert_true(mono_ms() - t0 >= 350);
	assert_int_equal(poke.calls, 1);
	assert_int_equal(quiet.calls, 0);
	assert_int_equal(loop_wakeups(l), 1);
	for (int k = 0; k < 2; k++) {
		close(p[k]);
		close(q[k]);
	}
	loop_free(l);
}

/* A stop requested before the loop runs is kept. */
static void test_stop_before_run(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	loop_add_timer(l, 5000, stop_cb, l);
	loop_stop(l);
	int64_t t0 = mono_ms();
	assert_int_equal(loop_run(l), 0);
	assert_true(mono_ms() - t0 < 1000);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fd_readable),
	    cmocka_unit_test(test_fd_errors),
	    cmocka_unit_test(test_fd_hangup),
	    cmocka_unit_test(test_fd_mod),
	    cmocka_unit_test(test_delete_inside_callback),
	    cmocka_unit_test(test_timer_order_and_cancel),
	    cmocka_unit_test(test_cancel_due_timer_from_callback),
	    cmocka_unit_test(test_zero_timer_does_not_starve),
	    cmocka_unit_test(test_many_timers),
	    cmocka_unit_test(test_no_wakeups_when_idle),
	    cmocka_unit_test(test_stop_before_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
