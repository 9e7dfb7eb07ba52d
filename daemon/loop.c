/*
 * The event loop: epoll for descriptors, a binary min-heap of one-shot
 * timers, and nothing periodic.  epoll_wait sleeps until the nearest timer
 * or forever, so an idle daemon costs no wake-ups at all.
 *
 * Callbacks may add and remove watchers and timers at will, so dispatch
 * never holds a pointer across a callback: watchers live in a table indexed
 * by fd (re-read after every call), and each registration gets a generation
 * that travels in the epoll event, so an event for an fd that was removed -
 * and perhaps reused by a new watcher - in the same batch is dropped.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <penlink.h>

#include "loop.h"

#define MAX_EVENTS 64

struct watcher {
	loop_fd_fn fn;
	void *ud;
	unsigned events;
	uint32_t gen; /* 0: free */
};

/* A timer slot is stable while the timer exists (its heap position moves),
 * so cancelling by id is O(log n): id = slot generation << 32 | slot + 1. */
struct timer {
	int64_t deadline;
	uint64_t seq;   /* creation order: ties fire first-come, first-served */
	loop_timer_fn fn;
	void *ud;
	uint32_t gen;
	size_t heap;    /* position in the heap, or SIZE_MAX when free */
	size_t next_free;
};

struct loop {
	int epfd;
	struct watcher *w;
	size_t nw;
	uint32_t next_gen;

	struct timer *t;
	size_t nt;         /* slots allocated */
	size_t free_head;  /* SIZE_MAX: none */
	size_t *heap;      /* slot indices */
	size_t nheap;
	uint64_t next_seq;

	uint64_t wakeups;
	bool stop;
};

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	l->free_head = SIZE_MAX;
	l->next_gen = 1;
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->w);
	free(l->t);
	free(l->heap);
	free(l);
}

/* ------------------------------------------------------------------ fds */

static uint32_t to_epoll(unsigned events)
{
	uint32_t e = 0;
	if (events & LOOP_IN)
		e |= EPOLLIN;
	if (events & LOOP_OUT)
		e |= EPOLLOUT;
	return e;
}

int loop_add_fd(struct loop *l, int fd, unsigned events, loop_fd_fn fn, void *ud)
{
	if (!l || fd < 0 || !fn)
		return -EINVAL;
	if ((size_t)fd >= l->nw) {
		size_t n = l->nw ? l->nw : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct watcher *w = realloc(l->w, n * sizeof *w);
		if (!w)
			return -ENOMEM;
		memset(w + l->nw, 0, (n - l->nw) * sizeof *w);
		l->w = w;
		l->nw = n;
	}
	if (l->w[fd].gen)
		return -EEXIST;
	uint32_t gen = l->next_gen++;
	if (!l->next_gen)
		l->next_gen = 1;
	struct epoll_event ev = {.events = to_epoll(events),
	                         .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	l->w[fd] = (struct watcher){.fn = fn, .ud = ud, .events = events, .gen = gen};
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, unsigned events)
{
	if (!l || fd < 0 || (size_t)fd >= l->nw || !l->w[fd].gen)
		return -ENOENT;
	struct watcher *w = &l->w[fd];
	if (w->events == events)
		return 0;
	struct epoll_event ev = {.events = to_epoll(events),
	                         .data.u64 = (uint64_t)w->gen << 32 | (uint32_t)fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

void loop_del_fd(struct loop *l, int fd)
{
	if (!l || fd < 0 || (size_t)fd >= l->nw || !l->w[fd].gen)
		return;
	/* May fail if the caller already closed fd; the kernel then dropped
	 * it from the set by itself. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&l->w[fd], 0, sizeof l->w[fd]);
}

/* ------------------------------------------------------------------ timers */

static bool earlier(const struct loop *l, size_t a, size_t b)
{
	const struct timer *x = &l->t[l->heap[a]], *y = &l->t[l->heap[b]];
	return x->deadline < y->deadline ||
	       (x->deadline == y->deadline && x->seq < y->seq);
}

static void heap_swap(struct loop *l, size_t a, size_t b)
{
	size_t s = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = s;
	l->t[l->heap[a]].heap = a;
	l->t[l->heap[b]].heap = b;
}

static void sift_up(struct loop *l, size_t i)
{
	while (i > 0 && earlier(l, i, (i - 1) / 2)) {
		heap_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void sift_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;
		if (c < l->nheap && earlier(l, c, m))
			m = c;
		if (c + 1 < l->nheap && earlier(l, c + 1, m))
			m = c + 1;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

/* Removes the timer at heap position i and frees its slot. */
static void heap_remove(struct loop *l, size_t i)
{
	size_t slot = l->heap[i];
	l->nheap--;
	if (i != l->nheap) {
		l->heap[i] = l->heap[l->nheap];
		l->t[l->heap[i]].heap = i;
		sift_down(l, i);
		sift_up(l, i);
	}
	struct timer *t = &l->t[slot];
	t->heap = SIZE_MAX;
	t->fn = NULL;
	t->ud = NULL;
	t->next_free = l->free_head;
	l->free_head = slot;
}

uint64_t loop_add_timer(struct loop *l, int64_t ms, loop_timer_fn fn, void *ud)
{
	if (!l || !fn)
		return 0;
	if (ms < 0)
		ms = 0;
	if (l->free_head == SIZE_MAX) {
		size_t n = l->nt ? l->nt * 2 : 16;
		if (n > UINT32_MAX - 1)
			return 0;
		struct timer *t = realloc(l->t, n * sizeof *t);
		if (!t)
			return 0;
		l->t = t;
		size_t *h = realloc(l->heap, n * sizeof *h);
		if (!h)
			return 0;
		l->heap = h;
		for (size_t i = n; i-- > l->nt;) {
			memset(&t[i], 0, sizeof t[i]);
			t[i].heap = SIZE_MAX;
			t[i].next_free = l->free_head;
			l->free_head = i;
		}
		l->nt = n;
	}
	size_t slot = l->free_head;
	struct timer *t = &l->t[slot];
	l->free_head = t->next_free;
	int64_t now = pl_time_monotonic_ms();
	t->deadline = ms > INT64_MAX - now ? INT64_MAX : now + ms;
	t->seq = l->next_seq++;
	t->fn = fn;
	t->ud = ud;
	t->gen++;
	if (!t->gen)
		t->gen = 1;
	t->heap = l->nheap;
	l->heap[l->nheap++] = slot;
	sift_up(l, t->heap);
	return (uint64_t)t->gen << 32 | (uint64_t)(slot + 1);
}

void loop_cancel_timer(struct loop *l, uint64_t id)
{
	if (!l || !id)
		return;
	size_t slot = (size_t)(id & 0xffffffffu) - 1;
	uint32_t gen = (uint32_t)(id >> 32);
	if (slot >= l->nt || l->t[slot].gen != gen || l->t[slot].heap == SIZE_MAX)
		return;
	heap_remove(l, l->t[slot].heap);
}

/* Fires the timers due at now that existed before this round began
 * (seq < limit), so a callback re-adding a 0 ms timer cannot starve the
 * descriptors. */
static void run_timers(struct loop *l, int64_t now, uint64_t limit)
{
	while (l->nheap && !l->stop) {
		struct timer *t = &l->t[l->heap[0]];
		if (t->deadline > now || t->seq >= limit)
			return;
		loop_timer_fn fn = t->fn;
		void *ud = t->ud;
		heap_remove(l, 0);
		fn(ud);
	}
}

/* ------------------------------------------------------------------ run */

static int wait_timeout(const struct loop *l)
{
	if (!l->nheap)
		return -1;
	int64_t d = l->t[l->heap[0]].deadline - pl_time_monotonic_ms();
	if (d <= 0)
		return 0;
	return d > INT_MAX ? INT_MAX : (int)d;
}

int loop_run(struct loop *l)
{
	if (!l)
		return -EINVAL;
	struct epoll_event evs[MAX_EVENTS];
	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, MAX_EVENTS, wait_timeout(l));
		l->wakeups++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		uint64_t limit = l->next_seq;
		for (int i = 0; i < n && !l->stop; i++) {
			int fd = (int)(uint32_t)evs[i].data.u64;
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			if ((size_t)fd >= l->nw || l->w[fd].gen != gen)
				continue; /* removed (or replaced) earlier in this batch */
			unsigned ev = 0;
			if (evs[i].events & EPOLLIN)
				ev |= LOOP_IN;
			if (evs[i].events & EPOLLOUT)
				ev |= LOOP_OUT;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				ev |= LOOP_ERR;
			l->w[fd].fn(l->w[fd].ud, fd, ev);
		}
		run_timers(l, pl_time_monotonic_ms(), limit);
	}
	/* Cleared on the way out, not on the way in, so a stop requested
	 * before the loop runs is not lost. */
	l->stop = false;
	return 0;
}

void loop_stop(struct loop *l)
{
	if (l)
		l->stop = true;
}

uint64_t loop_wakeups(const struct loop *l)
{
	return l ? l->wakeups : 0;
}
