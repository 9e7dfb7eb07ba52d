/* Progress of a pull, for people: one line on stderr, redrawn in place,
 * only when stderr is a terminal (the caller decides; see
 * progress_init). */
#include <string.h>

#include "penctl.h"

void progress_init(struct progress *p, bool enabled, size_t count,
                   uint64_t total_bytes)
{
	memset(p, 0, sizeof *p);
	p->enabled = enabled;
	p->count = count;
	p->total = total_bytes;
	p->start_ms = pl_time_monotonic_ms();
}

/* Redraws; force: whatever the time since the last drawing. */
static void draw(struct progress *p, bool force)
{
	if (!p->enabled)
		return;
	int64_t now = pl_time_monotonic_ms();
	/* At most 10 redraws a second: a terminal is slower than a pty. */
	if (!force && p->drawn && now - p->last_ms < 100)
		return;
	p->last_ms = now;
	p->drawn = true;

	uint64_t done = p->before + p->current, total = p->total;
	if (done > total)
		total = done;
	enum { W = 20 };
	char bar[W + 1];
	size_t fill = total ? (size_t)(done * W / total) : 0;
	for (size_t i = 0; i < W; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[W] = '\0';
	unsigned pct = total ? (unsigned)(done * 100 / total) : 0;
	char d[FMT_BUF], t[FMT_BUF], r[FMT_BUF], e[FMT_BUF];
	int64_t elapsed = now - p->start_ms;
	/* The rate counts bytes that crossed the link in this run, not the
	 * ones a resumed file or an earlier pull already held. */
	uint64_t moved = p->moved_before + (p->current > p->resumed
	                                        ? p->current - p->resumed
	                                        : 0);
	uint64_t rate = elapsed > 0 ? moved * 1000 / (uint64_t)elapsed : 0;
	if (rate > 0) {
		fmt_bytes(r, rate);
		fmt_duration(e, (int64_t)((total - done) * 1000 / rate));
	} else {
		snprintf(r, sizeof r, "--- kB");
		snprintf(e, sizeof e, "?");
	}
	fprintf(stderr, "\rsession %zu/%zu [%s] %3u%%  %s/%s  %s/s  ETA %s\033[K",
	        p->index, p->count, bar, pct, fmt_bytes(d, done),
	        fmt_bytes(t, total), r, e);
	fflush(stderr);
}

void progress_session(struct progress *p, size_t index, uint64_t resumed)
{
	p->index = index;
	p->current = resumed;
	p->resumed = resumed;
	draw(p, true);
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	(void)total; /* the session's size, already in p->total */
	p->current = done;
	draw(p, false);
}

void progress_session_done(struct progress *p, uint64_t size, bool copied)
{
	if (copied)
		p->moved_before += p->current > p->resumed ? p->current - p->resumed
		                                           : 0;
	p->before += size;
	p->current = p->resumed = 0;
}

void progress_clear(struct progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
	}
}
