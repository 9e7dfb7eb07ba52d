/*
 * The pens: a registry of attached ports, each driven from the loop through
 * libpenlink's asynchronous API (its descriptor, and one timer at the
 * library's next deadline - nothing else), plus the operations clients
 * forward to a pen.  What the daemon does with a pen on its own (sync,
 * download, archive) is in device_work.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "log.h"
#include "service.h"
#include "pen_budget.h"

/* Requests that time out in a row before a pen counts as gone (each one
 * was already retried by the library). */
#define MAX_TIMEOUTS 2
/* Hang-ups reported by epoll while the library reads nothing wrong; more
 * means the port is dead in a way read() does not show, and polling it
 * again would spin. */
#define MAX_HUP_SPINS 8

/*
 * Defences against a hostile pen (broken or malicious firmware, or a device
 * posing as a pen).  Only what the pen itself must have done is held
 * against it: CRC, COBS and truncation drops are what a noisy line does,
 * and a pen on a noisy line that still answers is kept (the fault tests
 * and the fault campaign run such pens).  Each rule below is a budget; a
 * pen over one is detached with the reason (see health_check).
 *
 * Frames over the limit the daemon gave in its Hello: a pen that honours
 * the handshake never sends one, and a line makes one only by losing the
 * delimiter between two large frames, so a burst of 8 (draining one a
 * second) is a pattern, not an accident.
 */
#define OVERSIZE_CAP 8
#define OVERSIZE_DRAIN 1.0
/* Intact frames (CRC right) that are no protobuf Envelope, or carry an
 * unknown frame version: CRC-32 lets a damaged frame through once in 4e9,
 * so these are the pen's own doing.  4, draining one per 10 s. */
#define MALFORMED_CAP 4
#define MALFORMED_DRAIN 0.1
/* Replies to request ids the daemon never issued, with no reply to its
 * own requests in between.  Ids it did issue (late or repeated replies,
 * normal after timeouts) do not count, and nothing counts before the
 * handshake is done, when replies to a previous host's requests may still
 * sit in the port.  But a pen holding replies back (late) can still send
 * some of a killed daemon's after a new one's handshake: up to its window
 * (PEN_WINDOW_MAX, 8) times three attempts each, so more than 32 is no
 * accident.  A pen that answers only under wrong ids sends fewer than
 * that before its requests time out; the "not answering" detach then
 * names the ids. */
#define UNKNOWN_ID_CAP 32
/* State events passed on to monitoring and tracing clients: a treating pen
 * sends a few a second; past a burst of 50, draining 20 a second, the rest
 * of a flood is only counted against the pen (below). */
#define PEN_EVENT_CAP 50
#define PEN_EVENT_DRAIN 20.0
/* Unsolicited (id 0) frames.  On its own a pen sends a state event per
 * session recorded or archived, battery and cartridge changes: far under
 * 1000 a second even archiving thousands of tiny sessions.  With a trace
 * subscription it adds about a line per request it handles, a few thousand
 * a second at full download speed. */
#define UNSOLICITED_CAP 2000
#define UNSOLICITED_DRAIN 1000.0
#define UNSOLICITED_TRACE_CAP 20000
#define UNSOLICITED_TRACE_DRAIN 10000.0
/* Input without one valid frame.  The longest frame the daemon accepts is
 * PEN_MAX_FRAME and penemu's worst line-noise fault puts 1 MiB of garbage
 * between two frames, so 4 MiB without a good frame is not a pen. */
#define NOFRAME_BYTES (4ull << 20)
/* A frame still arriving after 3 s at under 1 KiB/s with requests waiting:
 * CDC-ACM moves at least 1 MB/s, and at 1 KiB/s a full-size reply (32 KiB)
 * could never beat the request timeout (1 s by default).  The rate keeps
 * a reply merely queued behind a partial frame (a pen that rebooted
 * mid-frame) from counting, and 3 reads at least keep one burst split over
 * two reads from looking like a trickle.  3 s also comes before the
 * "not answering" detach (two requests of three 1 s attempts), so the
 * reason names what the pen did. */
#define SLOW_MS 3000
#define SLOW_RATE 1024
#define SLOW_READS 3

/*
 * Fair reading: pens downloading at once share the daemon's reading by
 * bytes (deficit round robin), not by events.  Each round a downloading
 * pen may be read RR_QUANTUM bytes (what one read turn overdraws comes off
 * its next rounds); a pen that used its share has its input parked until
 * every downloading pen has used its own, or is not answering (its oldest
 * request is RR_ROUND_MS old), or the round is RR_ROUND_MS old.  Pens get
 * windows of different sizes (a pen that starts alone gets a large one,
 * device_work.c), and reading everything each one has ready would hand
 * the large windows most of the bandwidth: with 127 pens the first ones
 * finished in a fifth of the last ones' time.  The quantum is the
 * smallest share pace() gives, so every pen can fill it each round.
 * Measured with 127 pens (bench_daemon_scale.sh): every pen's progress
 * runs level with the others' from start to end.
 */
#define RR_QUANTUM (16 * 1024)
#define RR_ROUND_MS 200
#define RR_LOOK_MS 5

static void ops_start(struct pen *p);
static void ops_fail_all(struct pen *p, int status, const char *msg);

/* ------------------------------------------------------------------ events */

void pen_broadcast(struct pen *p, Plctl__Event *ev)
{
	ev->port = p->port;
	if (p->d->ctl)
		ctl_broadcast(p->d->ctl, ev);
}

bool pen_enter(struct pen *p, enum pen_phase to, const char *why)
{
	enum pen_phase from = p->phase;
	const char *who = *p->serial ? p->serial : "?";
	if (!phase_may_enter(from, to)) {
		if (phase_leaving(from))
			log_debug("pen %s on %s is %s: not entering %s (%s)", who, p->port,
			          phase_name(from), phase_name(to), why);
		else
			log_err("pen %s on %s: %s -> %s is not a move a pen makes (%s); "
			        "staying %s (a bug in penlinkd)", who, p->port,
			        phase_name(from), phase_name(to), why, phase_name(from));
		return false;
	}
	p->phase = to;
	log_debug("pen %s on %s: %s -> %s (%s)", who, p->port, phase_name(from),
	          phase_name(to), why);
	Plctl__PenState st = phase_pen_state(to);
	/* Nobody has heard of the pen before PEN_ATTACHED, and a pen on its
	 * way out is announced by PEN_DETACHED. */
	if (!p->announced || st == phase_pen_state(from) ||
	    st == PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED)
		return true;
	Plctl__Event ev;
	event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_PEN_STATE, p->serial);
	ev.state = st;
	pen_broadcast(p, &ev);
	return true;
}

void pen_report(struct pen *p, int level, const char *fmt, ...)
{
	char msg[sizeof p->last_error];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_msg((enum log_level)level, "pen %s on %s: %s",
	        *p->serial ? p->serial : "?", p->port, msg);
	memcpy(p->last_error, msg, sizeof msg);
	Plctl__Event ev;
	event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_ERROR, p->serial);
	ev.message = msg;
	pen_broadcast(p, &ev);
}

/* ------------------------------------------------------------------ loop glue */

static void on_timer(void *ud);
static void pen_rearm(struct pen *p);

/* ------------------------------------------------------------------ fair reading */

/* Rationed: downloading while another pen downloads too. */
static bool rr_applies(const struct pen *p)
{
	return p->pp && p->phase == PHASE_DOWNLOAD && p->ps->downloading > 1;
}

static uint64_t rr_bytes_in(const struct pen *p)
{
	struct pl_link_stats st;
	pl_pen_link_stats(p->pp, &st);
	return st.bytes_in;
}

/* Brings the pen into the current round: a new round adds a quantum, and
 * credit never builds up beyond one. */
static void rr_sync(struct pen *p)
{
	if (p->rr_round == p->ps->rr_round)
		return;
	p->rr_round = p->ps->rr_round;
	p->rr_credit = p->rr_credit < 0 ? p->rr_credit + RR_QUANTUM : RR_QUANTUM;
}

static void rr_new_round(struct pens *ps)
{
	loop_cancel_timer(ps->d->loop, ps->rr_timer);
	ps->rr_timer = 0;
	ps->rr_round++;
	ps->rr_round_at = pl_time_monotonic_ms();
	for (struct pen *q = ps->head; q; q = q->next) {
		if (!q->rr_parked)
			continue;
		q->rr_parked = false;
		pen_rearm(q);
	}
}

/* Whether the round should wait for q: it downloads, still has credit,
 * and its oldest request went out less than RR_ROUND_MS ago (its pen is
 * answering, if slowly).  A pen whose requests are older is stalled or
 * dead (the library's retries and timeouts deal with it) and holds
 * nobody up. */
static bool rr_waits_for(const struct pen *q)
{
	if (!rr_applies(q) || q->rr_parked)
		return false;
	int next = pl_pen_next_timeout(q->pp);
	if (next < 0)
		return false; /* nothing asked: nothing coming */
	return q->d->cfg.timeout_ms - next < RR_ROUND_MS;
}

static void rr_check(struct pens *ps);

static void rr_round_timer(void *ud)
{
	struct pens *ps = ud;
	ps->rr_timer = 0;
	rr_check(ps);
}

/* Ends the round if nobody is left to wait for, or it is RR_ROUND_MS old;
 * else looks again shortly. */
static void rr_check(struct pens *ps)
{
	int64_t now = pl_time_monotonic_ms();
	bool wait = false;
	if (now - ps->rr_round_at < RR_ROUND_MS)
		for (struct pen *q = ps->head; q && !wait; q = q->next)
			wait = rr_waits_for(q);
	if (!wait) {
		rr_new_round(ps);
		return;
	}
	if (!ps->rr_timer) {
		int64_t left = ps->rr_round_at + RR_ROUND_MS - now;
		ps->rr_timer = loop_add_timer(ps->d->loop, left < RR_LOOK_MS ? left : RR_LOOK_MS,
		                              rr_round_timer, ps);
		if (!ps->rr_timer) /* no memory for a timer: no rationing */
			rr_new_round(ps);
	}
}

/* The pen used its share: its input is parked until the round ends. */
static void rr_park(struct pen *p)
{
	p->rr_parked = true;
	pen_rearm(p);
	rr_check(p->ps);
}

static void pen_rearm(struct pen *p)
{
	if (!p->pp || phase_closing(p->phase))
		return;
	if (p->rr_parked && !rr_applies(p))
		p->rr_parked = false;
	unsigned want = (p->rr_parked ? 0 : LOOP_IN) |
	                (pl_pen_want_write(p->pp) ? LOOP_OUT : 0);
	if (want != p->fd_events) {
		int rc = loop_mod_fd(p->d->loop, p->fd, want);
		if (rc < 0)
			log_err("pen on %s: cannot watch its port: %s", p->port, strerror(-rc));
		else
			p->fd_events = want;
	}
	int t = pl_pen_next_timeout(p->pp);
	if (t < 0) {
		loop_cancel_timer(p->d->loop, p->timer);
		p->timer = 0;
		return;
	}
	int64_t at = pl_time_monotonic_ms() + t;
	if (p->timer && at == p->timer_at)
		return;
	loop_cancel_timer(p->d->loop, p->timer);
	p->timer = loop_add_timer(p->d->loop, t, on_timer, p);
	p->timer_at = at;
	if (!p->timer)
		log_err("pen on %s: out of memory for a timer", p->port);
}

void pen_kick(struct pen *p)
{
	if (!p->in_events)
		pen_rearm(p);
}

static void pen_destroy(struct pen *p, const char *why);
static void pen_close_link(struct pen *p);
static void health_check(struct pen *p);

static void pen_pump(struct pen *p, int mask)
{
	bool charge = p->rr_charge;
	p->rr_charge = false;
	if (!p->pp || phase_closing(p->phase))
		return;
	p->in_events++;
	int rc = pl_pen_handle_events(p->pp, mask);
	p->in_events--;
	if (charge)
		p->rr_credit -= (int64_t)(rr_bytes_in(p) - p->rr_seen);
	if (rc != PL_OK)
		pen_request_detach(p, pl_error_message());
	else if (!phase_leaving(p->phase))
		health_check(p);
	if (p->phase == PHASE_DETACHING) {
		pen_destroy(p, p->detach_why);
		return;
	}
	if (p->phase == PHASE_DROPPED) {
		pen_close_link(p);
		return;
	}
	pen_rearm(p);
}

static void on_timer(void *ud)
{
	struct pen *p = ud;
	p->timer = 0;
	pen_pump(p, 0);
}

static void on_fd(void *ud, int fd, unsigned events)
{
	(void)fd;
	struct pen *p = ud;
	int mask = 0;
	/* A hang-up is seen by reading: the library turns EIO / end of file
	 * into PL_ERR_UNPLUGGED. */
	if (events & (LOOP_IN | LOOP_ERR))
		mask |= PL_WAIT_READABLE;
	if (events & LOOP_OUT)
		mask |= PL_WAIT_WRITABLE;
	if (events & LOOP_ERR) {
		if (++p->hup_spins > MAX_HUP_SPINS) {
			pen_request_detach(p, "the port hung up");
			if (!p->in_events)
				pen_destroy(p, p->detach_why);
			return;
		}
	} else {
		p->hup_spins = 0;
	}
	/* A hang-up or error is always read: the unplug shows there. */
	bool ration = (mask & PL_WAIT_READABLE) && !(events & LOOP_ERR) && rr_applies(p);
	if (ration) {
		rr_sync(p);
		if (p->rr_credit <= 0) {
			rr_park(p);
			mask &= ~PL_WAIT_READABLE;
			if (!mask)
				return;
			ration = false;
		}
		p->rr_seen = rr_bytes_in(p);
		p->rr_charge = true; /* pen_pump charges what it reads */
	}
	pen_pump(p, mask);
}

/* ------------------------------------------------------------------ link health */

/* Adds n to a budget after draining it for the time since the last look;
 * true if it is over cap. */
static bool budget_add(struct budget *b, uint64_t n, double drain, double cap,
                       int64_t now)
{
	if (b->last) {
		b->level -= (double)(now - b->last) / 1000.0 * drain;
		if (b->level < 0)
			b->level = 0;
	}
	b->last = now;
	if (!n)
		return false;
	if (b->level <= 0) {
		b->since = now;
		b->n = 0;
	}
	b->level += (double)n;
	b->n += n;
	return b->level > cap;
}

static double secs_since(int64_t since, int64_t now)
{
	return (double)(now - since) / 1000.0;
}

/*
 * Gives up on a pen that attacks: a port named by hand is detached (it is
 * its user's to attach again); a USB pen stays listed as failed, with the
 * reason, until it is unplugged - so a pen that keeps attacking is never
 * re-attached in a loop, only when someone plugs it in again.
 */
static void pen_hostile(struct pen *p, const char *why)
{
	if (!p->usb) {
		pen_request_detach(p, why);
		return;
	}
	pen_report(p, LOG_WARN, "detached: %s; it stays failed until it is unplugged", why);
	pen_enter(p, PHASE_DROPPED, why);
	ops_fail_all(p, PL_ERR_PROTOCOL, why);
}

/* Looks at what the pen sent since the last turn (the engine's counters)
 * against the budgets above. */
static void health_check(struct pen *p)
{
	struct pen_health *h = &p->health;
	struct pl_link_stats ls;
	int64_t now = pl_time_monotonic_ms();
	char why[256];

	pl_pen_link_stats(p->pp, &ls);
	uint64_t oversize = ls.dropped_oversize - h->link.dropped_oversize;
	uint64_t malformed = (ls.bad_envelopes - h->link.bad_envelopes) +
	                     (ls.dropped_version - h->link.dropped_version);
	uint64_t unknown = ls.unknown_ids - h->link.unknown_ids;
	uint64_t seen_replies = h->link.replies;
	uint64_t unsolicited = ls.unsolicited - h->link.unsolicited;
	uint64_t bytes = ls.bytes_in - h->link.bytes_in;
	bool ended = ls.frames_ended != h->link.frames_ended;
	bool traced = p->trace_refs > 0;
	h->link = ls;

	if (budget_add(&h->oversize, oversize, OVERSIZE_DRAIN, OVERSIZE_CAP, now)) {
		snprintf(why, sizeof why, "%llu oversized frames (over the %u bytes "
		         "agreed in the handshake) in %.1f s",
		         (unsigned long long)h->oversize.n, PEN_MAX_FRAME,
		         secs_since(h->oversize.since, now));
		goto hostile;
	}
	if (budget_add(&h->malformed, malformed, MALFORMED_DRAIN, MALFORMED_CAP, now)) {
		snprintf(why, sizeof why, "%llu intact frames that were not valid "
		         "messages (CRC right, content not protobuf) in %.1f s",
		         (unsigned long long)h->malformed.n,
		         secs_since(h->malformed.since, now));
		goto hostile;
	}
	if (ls.replies != seen_replies)
		h->unknown_ids = 0;
	if (p->phase != PHASE_HANDSHAKE && unknown) {
		if (!h->unknown_ids)
			h->unknown_since = now;
		h->unknown_ids += unknown;
		if (h->unknown_ids > UNKNOWN_ID_CAP) {
			snprintf(why, sizeof why, "answered with unknown request ids: %llu "
			         "replies to ids it was never sent in %.1f s, none to the "
			         "requests it was sent", (unsigned long long)h->unknown_ids,
			         secs_since(h->unknown_since, now));
			goto hostile;
		}
	}
	if (budget_add(&h->unsolicited, unsolicited,
	               traced ? UNSOLICITED_TRACE_DRAIN : UNSOLICITED_DRAIN,
	               traced ? UNSOLICITED_TRACE_CAP : UNSOLICITED_CAP, now)) {
		snprintf(why, sizeof why, "unsolicited frame flood: %llu frames in "
		         "%.1f s%s", (unsigned long long)h->unsolicited.n,
		         secs_since(h->unsolicited.since, now),
		         traced ? " (more than even a trace subscription explains)" : "");
		goto hostile;
	}
	if (ls.bytes_in - ls.bytes_at_frame >= NOFRAME_BYTES) {
		snprintf(why, sizeof why, "no valid frame in %llu bytes of input",
		         (unsigned long long)(ls.bytes_in - ls.bytes_at_frame));
		goto hostile;
	}
	if (ended || !ls.outstanding) {
		h->trickle_since = 0;
	} else if (bytes) {
		if (!h->trickle_since) {
			h->trickle_since = now;
			h->trickle_bytes = 0;
			h->trickle_reads = 0;
		}
		h->trickle_last = now;
		h->trickle_bytes += bytes;
		h->trickle_reads++;
		int64_t span = now - h->trickle_since;
		if (span >= SLOW_MS && h->trickle_reads >= SLOW_READS &&
		    h->trickle_bytes * 1000u < (uint64_t)SLOW_RATE * (uint64_t)span) {
			snprintf(why, sizeof why, "too slow: %.1f bytes/s (%llu bytes in "
			         "%.1f s without completing a frame)",
			         (double)h->trickle_bytes * 1000.0 / (double)span,
			         (unsigned long long)h->trickle_bytes, span / 1000.0);
			goto hostile;
		}
	}
	return;
hostile:
	pen_hostile(p, why);
}

void pen_request_detach(struct pen *p, const char *why)
{
	if (p->phase == PHASE_DETACHING || p->phase == PHASE_GONE)
		return;
	snprintf(p->detach_why, sizeof p->detach_why, "%s", why && *why ? why : "detached");
	pen_enter(p, PHASE_DETACHING, p->detach_why);
}

bool pen_link_failed(struct pen *p, int status)
{
	if (phase_leaving(p->phase))
		return true;
	switch (status) {
	case PL_OK:
		p->timeouts = 0;
		return false;
	case PL_ERR_UNPLUGGED:
	case PL_ERR_IO:
		pen_request_detach(p, pl_error_message());
		return true;
	case PL_ERR_TIMEOUT:
		if (++p->timeouts >= MAX_TIMEOUTS) {
			char why[300];
			const struct pen_health *h = &p->health;
			if (h->unknown_ids)
				snprintf(why, sizeof why, "answered with unknown request ids: "
				         "%llu replies to ids it was never sent in %.1f s, "
				         "none to the requests it was sent (%s)",
				         (unsigned long long)h->unknown_ids,
				         secs_since(h->unknown_since, pl_time_monotonic_ms()),
				         pl_error_message());
			else if (h->trickle_since)
				snprintf(why, sizeof why, "not answering (%s; %llu bytes "
				         "arrived in %.1f s without completing a frame)",
				         pl_error_message(),
				         (unsigned long long)h->trickle_bytes,
				         secs_since(h->trickle_since, h->trickle_last));
			else
				snprintf(why, sizeof why, "not answering (%s)",
				         pl_error_message());
			pen_request_detach(p, why);
			return true;
		}
		return false;
	default:
		return false;
	}
}

/* ------------------------------------------------------------------ pen events */

/* A pen's state event, to the clients monitoring or tracing it. */
static void pass_on(struct pen *p, const struct pl_event *ev)
{
	Plctl__Event out;

	if (!p->d->ctl || budget_add(&p->health.pen_events, 1, PEN_EVENT_DRAIN,
	                             PEN_EVENT_CAP, pl_time_monotonic_ms()))
		return;
	event_init(&out, PLCTL__EVENT_KIND__EVENT_KIND_PEN_EVENT, p->serial);
	out.port = p->port;
	out.pen_event = (Pl__StateKind)ev->state;
	out.value = ev->value;
	out.pen_uptime_ms = ev->uptime_ms;
	out.message = (char *)(ev->text ? ev->text : "");
	ctl_pen_event(p->d->ctl, &out);
}

static void on_pen_event(void *ud, const struct pl_event *ev)
{
	struct pen *p = ud;
	if (!p->announced || phase_closing(p->phase))
		return;
	if (ev->kind == PL_EVENT_TRACE) {
		if (p->d->ctl)
			ctl_trace_line(p->d->ctl, p->serial, ev->level, ev->text);
		return;
	}
	pass_on(p, ev);
	switch (ev->state) {
	case PL_STATE_SESSION_RECORDED:
		log_info("pen %s on %s recorded a session", p->serial, p->port);
		work_session_recorded(p);
		break;
	case PL_STATE_ERROR:
		log_warn("pen %s on %s reports an error %u: %s", p->serial, p->port,
		         ev->value, ev->text);
		break;
	case PL_STATE_BATTERY_LOW:
		log_notice("pen %s on %s: battery low", p->serial, p->port);
		break;
	default:
		log_debug("pen %s on %s: state %d (%u) %s", p->serial, p->port,
		          (int)ev->state, ev->value, ev->text);
		break;
	}
}

static void trace_done(void *ud, int status)
{
	struct pen *p = ud;
	if (pen_link_failed(p, status) || !status)
		return;
	log_warn("pen %s on %s: cannot change its trace subscription: %s", p->serial,
	         p->port, pl_error_message());
}

static void trace_apply(struct pen *p, bool enable)
{
	int rc = pl_pen_trace_subscribe_async(p->pp, enable, p->trace_level, trace_done, p);
	if (rc)
		log_warn("pen %s on %s: cannot change its trace subscription: %s",
		         p->serial, p->port, pl_error_message());
	pen_kick(p);
}

static void on_open(void *ud, int status)
{
	struct pen *p = ud;
	if (phase_closing(p->phase))
		return;
	if (status) {
		char why[300];
		snprintf(why, sizeof why, "handshake failed: %s", pl_error_message());
		if (status == PL_ERR_UNPLUGGED || status == PL_ERR_IO || !p->usb) {
			/* A port named by hand is the user's to attach again. */
			pen_request_detach(p, why);
			return;
		}
		/* A USB pen stays listed as failed until it is unplugged (and
		 * plugged in again, which retries). */
		pen_report(p, LOG_WARN, "%s", why);
		pen_enter(p, PHASE_DROPPED, why);
		ops_fail_all(p, status, why);
		return;
	}
	const char *serial = pl_pen_serial(p->pp);
	for (struct pen *o = p->ps->head; o; o = o->next) {
		if (o != p && o->announced && !strcmp(o->serial, serial)) {
			char why[400];
			snprintf(why, sizeof why,
			         "pen %s is already attached on %s; two pens with one "
			         "serial number cannot share an archive",
			         serial, o->port);
			pen_request_detach(p, why);
			return;
		}
	}
	snprintf(p->serial, sizeof p->serial, "%s", serial);
	if (*p->usb_serial && strcmp(p->usb_serial, p->serial))
		log_warn("pen on %s answers as %s but its USB serial number is %s",
		         p->port, p->serial, p->usb_serial);
	p->announced = true;
	p->timeouts = 0;
	log_notice("pen %s attached on %s", p->serial, p->port);
	Plctl__Event ev;
	event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_PEN_ATTACHED, p->serial);
	ev.state = phase_pen_state(p->phase);
	pen_broadcast(p, &ev);
	ops_start(p);
	if (p->trace_refs)
		trace_apply(p, true);
	work_start(p);
}

/* ------------------------------------------------------------------ registry */

struct pens *pens_new(struct daemon *d)
{
	struct pens *ps = calloc(1, sizeof *ps);
	if (ps) {
		ps->d = d;
		/* Sample rows left pending by a stop or a crash. */
		work_decode_kick(ps, false);
	}
	return ps;
}

static struct pen *find(struct pens *ps, const char *path, const char *serial)
{
	for (struct pen *p = ps->head; p; p = p->next) {
		if (path && *path && !strcmp(p->port, path))
			return p;
		if (serial && *serial && (!strcmp(p->serial, serial) ||
		                          (!*p->serial && !strcmp(p->usb_serial, serial))))
			return p;
	}
	return NULL;
}

/* Lets go of the port of a pen dropped (the entry stays, listed as
 * failed) or gone. */
static void pen_close_link(struct pen *p)
{
	if (!p->pp)
		return;
	work_stop(p);
	loop_cancel_timer(p->d->loop, p->timer);
	p->timer = 0;
	loop_del_fd(p->d->loop, p->fd);
	pl_pen_close(p->pp);
	p->pp = NULL;
	p->fd = -1;
}

/* Frees a detaching pen. */
static void pen_destroy(struct pen *p, const char *why)
{
	struct pens *ps = p->ps;
	pen_enter(p, PHASE_GONE, why);
	pen_close_link(p);
	ops_fail_all(p, PL_ERR_UNPLUGGED, why);
	if (p->announced)
		log_notice("pen %s on %s detached: %s", p->serial, p->port, why);
	else
		log_warn("port %s detached: %s", p->port, why);
	Plctl__Event ev;
	event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_PEN_DETACHED, p->serial);
	ev.message = (char *)why;
	pen_broadcast(p, &ev);
	for (struct pen **pp = &ps->head; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	ps->count--;
	service_pens(ps->count);
	free(p->sessions);
	free(p->sstate);
	free(p->stries);
	free(p->list_tmp);
	free(p->buf);
	free(p);
}

int pens_attach(struct pens *ps, const char *path, bool usb, const char *usb_serial)
{
	if (!ps || !path || !*path)
		return pl_error_set(PL_ERR_ARG, "no port given");
	if (strlen(path) >= sizeof ((struct pen *)0)->port)
		return pl_error_set(PL_ERR_ARG, "port path too long");
	struct pen *o = find(ps, path, NULL);
	if (o)
		return pl_error_set(PL_ERR_CONFLICT, "%s is already attached%s%s", path,
		                *o->serial ? " as " : "", o->serial);
	struct daemon *d = ps->d;
	struct pen *p = calloc(1, sizeof *p);
	if (!p)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	p->ps = ps;
	p->d = d;
	p->fd = -1;
	p->usb = usb;
	snprintf(p->port, sizeof p->port, "%s", path);
	if (usb_serial)
		snprintf(p->usb_serial, sizeof p->usb_serial, "%s", usb_serial);

	struct pl_transport *t = NULL;
	int rc = pl_transport_open(path, &t);
	if (rc) {
		free(p);
		return rc;
	}
	struct pl_open_options o_;
	pl_open_options_init(&o_);
	o_.timeout_ms = d->cfg.timeout_ms;
	o_.handshake_ms = d->cfg.handshake_ms;
	/* The library holds a decoder buffer of this size per pen: with a
	 * hundred pens, 64 KiB frames cost several MB while 32 KiB chunks
	 * still keep a pty or USB link busy. */
	o_.max_frame = PEN_MAX_FRAME;
	o_.max_in_flight = PEN_WINDOW_MAX;
	rc = pl_pen_open_async(t, &o_, on_open, p, &p->pp);
	if (rc) {
		if (p->pp)
			pl_pen_close(p->pp);
		free(p);
		return rc;
	}
	pl_pen_set_event_handler(p->pp, on_pen_event, p);
	p->fd = pl_pen_fd(p->pp);
	p->fd_events = LOOP_IN;
	int lr = p->fd >= 0 ? loop_add_fd(d->loop, p->fd, LOOP_IN, on_fd, p) : -22;
	if (lr < 0) {
		pl_pen_close(p->pp);
		free(p);
		return pl_error_set(PL_ERR_IO, "cannot watch %s: %s", path, strerror(-lr));
	}
	p->next = ps->head;
	ps->head = p;
	ps->count++;
	service_pens(ps->count);
	log_info("attaching %s%s", path, usb ? " (USB)" : "");
	pen_rearm(p);
	return PL_OK;
}

int pens_detach(struct pens *ps, const char *path, const char *serial, const char *why)
{
	if (!ps)
		return pl_error_set(PL_ERR_ARG, "no pens");
	if ((!path || !*path) && (!serial || !*serial))
		return pl_error_set(PL_ERR_ARG, "name a port or a serial number to detach");
	struct pen *p = find(ps, path, serial);
	if (!p)
		return pl_error_set(PL_ERR_NOT_FOUND, "no pen is attached %s %s",
		                path && *path ? "on" : "as",
		                path && *path ? path : serial);
	pen_request_detach(p, why ? why : "detached");
	if (!p->in_events && p->phase == PHASE_DETACHING)
		pen_destroy(p, p->detach_why);
	return PL_OK;
}

void pens_free(struct pens *ps)
{
	if (!ps)
		return;
	while (ps->head) {
		pen_request_detach(ps->head, "penlinkd is stopping");
		pen_destroy(ps->head, ps->head->detach_why);
	}
	/* What is left is picked up by the next start. */
	work_decode_stop(ps);
	if (ps->rr_timer)
		loop_cancel_timer(ps->d->loop, ps->rr_timer);
	free(ps);
}

struct pen *pens_lookup(struct pens *ps, const char *serial, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!ps)
		return NULL;
	if (serial && *serial) {
		struct pen *p = find(ps, NULL, serial);
		if (!p && err)
			snprintf(err, errlen, "no pen %s is attached", serial);
		return p;
	}
	if (ps->count == 1)
		return ps->head;
	if (!err)
		return NULL;
	if (!ps->count) {
		snprintf(err, errlen, "no pen is attached");
		return NULL;
	}
	size_t n = (size_t)snprintf(err, errlen, "%u pens are attached:", ps->count);
	bool first = true;
	for (struct pen *p = ps->head; p && n < errlen; p = p->next) {
		n += (size_t)snprintf(err + n, errlen - n, "%s %s", first ? "" : ",",
		                      *p->serial ? p->serial : p->port);
		first = false;
	}
	if (n < errlen)
		snprintf(err + n, errlen - n, "; name one with -s");
	return NULL;
}

/* One allocation per entry: the strings live next to the message, so
 * the list stays valid even if the pen goes away before it is sent. */
struct pen_entry {
	Plctl__Pen m;
	char serial[64], port[256], model[64], fw[32], err[256];
};

/* s copied into the entry's dst, for its message to point at. */
static char *keep(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s);
	return dst;
}

size_t pens_count(const struct pens *ps)
{
	return ps ? ps->count : 0;
}

int pens_list(struct pens *ps, Plctl__PenList *list)
{
	plctl__pen_list__init(list);
	if (!ps || !ps->count)
		return PL_OK;
	list->pens = calloc(ps->count, sizeof *list->pens);
	if (!list->pens)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	for (struct pen *p = ps->head; p; p = p->next) {
		struct pen_entry *e = calloc(1, sizeof *e);
		if (!e) {
			pens_list_free(list);
			return pl_error_set(PL_ERR_MEM, "out of memory");
		}
		plctl__pen__init(&e->m);
		e->m.serial = keep(e->serial, sizeof e->serial,
		                   *p->serial ? p->serial : p->usb_serial);
		e->m.port = keep(e->port, sizeof e->port, p->port);
		e->m.model = keep(e->model, sizeof e->model,
		                  p->have_info ? p->info.model : "");
		e->m.fw_version = keep(e->fw, sizeof e->fw,
		                       p->have_info ? p->info.fw_version : "");
		e->m.last_error = keep(e->err, sizeof e->err, p->last_error);
		e->m.usb = p->usb;
		e->m.state = phase_pen_state(p->phase);
		size_t listed = work_listed(p);
		e->m.sessions_on_pen = listed > UINT32_MAX ? UINT32_MAX : (uint32_t)listed;
		e->m.sessions_pending = work_pending(p);
		if (p->phase == PHASE_DOWNLOAD || p->phase == PHASE_STORE_FAILED) {
			e->m.download_done = p->dl_done;
			e->m.download_total = p->dl_s.size;
		}
		list->pens[list->n_pens++] = &e->m;
	}
	return PL_OK;
}

void pens_list_free(Plctl__PenList *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->n_pens; i++)
		free(list->pens[i]); /* &entry->m == entry */
	free(list->pens);
	list->pens = NULL;
	list->n_pens = 0;
}

const char *pen_serial(const struct pen *p)
{
	return p ? p->serial : "";
}

const struct pl_device_info *pen_info(const struct pen *p)
{
	return p && p->have_info ? &p->info : NULL;
}

/* ------------------------------------------------------------------ client operations */

enum op_kind { OP_INFO, OP_GET_PRESETS, OP_PUT_PRESETS, OP_CLOCK };

union op_fn {
	pen_info_fn info;
	pen_presets_fn presets;
	pen_clock_fn clock;
};

struct op {
	struct op *next;
	struct pen *pen;     /* NULL once delivered late (pen gone, immediate failure) */
	struct daemon *d;
	enum op_kind kind;
	union op_fn fn;
	void *ud;
	bool started;
	int status;
	char msg[1024];
	struct pl_device_info info;
	struct pl_preset_set in, out;
	int64_t offset;
	bool rtc_was_set;
};

static void op_unlink(struct op *op)
{
	struct pen *p = op->pen;
	if (!p)
		return;
	for (struct op **o = &p->ops; *o; o = &(*o)->next)
		if (*o == op) {
			*o = op->next;
			break;
		}
	op->pen = NULL;
}

static void op_deliver(struct op *op)
{
	bool ok = op->status == PL_OK;
	switch (op->kind) {
	case OP_INFO:
		op->fn.info(op->ud, op->status, ok ? &op->info : NULL);
		break;
	case OP_GET_PRESETS:
		op->fn.presets(op->ud, op->status, ok ? op->out.revision : 0,
		               ok ? &op->out : NULL);
		break;
	case OP_PUT_PRESETS:
		op->fn.presets(op->ud, op->status, op->in.revision, ok ? &op->out : NULL);
		break;
	case OP_CLOCK:
		op->fn.clock(op->ud, op->status, op->rtc_was_set, op->offset);
		break;
	}
	free(op);
}

static void op_late(void *ud)
{
	struct op *op = ud;
	pl_error_set(op->status, "%s", op->msg);
	op_deliver(op);
}

/* Completes op from the loop, never from inside the caller's call. */
static void op_defer(struct op *op, int status, const char *msg)
{
	op_unlink(op);
	op->status = status;
	snprintf(op->msg, sizeof op->msg, "%s", msg);
	if (!loop_add_timer(op->d->loop, 0, op_late, op)) {
		/* Out of memory for a timer: late is better than never. */
		log_err("out of memory: completing a request at once");
		op_late(op);
	}
}

static void op_done(void *ud, int status)
{
	struct op *op = ud;
	struct pen *p = op->pen;
	if (!p || phase_closing(p->phase))
		return; /* pen_destroy delivers it */
	pen_link_failed(p, status);
	op_unlink(op);
	op->status = status;
	if (status == PL_OK) {
		switch (op->kind) {
		case OP_INFO:
			p->info = op->info;
			p->have_info = true;
			break;
		case OP_PUT_PRESETS: {
			log_notice("pen %s on %s: presets replaced (revision %u -> %u)",
			           p->serial, p->port, op->in.revision, op->out.revision);
			Plctl__Event ev;
			event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_PRESETS_CHANGED, p->serial);
			char m[64];
			snprintf(m, sizeof m, "revision %u", op->out.revision);
			ev.message = m;
			pen_broadcast(p, &ev);
			break;
		}
		case OP_CLOCK:
			/* The library reports offset 0 for a pen that had no time;
			 * once this daemon synced it at attach, it had. */
			op->rtc_was_set = p->clock_synced || op->offset != 0;
			p->clock_synced = true;
			break;
		default:
			break;
		}
	}
	op_deliver(op);
}

static void op_start(struct op *op)
{
	struct pen *p = op->pen;
	op->started = true;
	int rc = PL_ERR_ARG;
	switch (op->kind) {
	case OP_INFO:
		rc = pl_pen_get_info_async(p->pp, &op->info, op_done, op);
		break;
	case OP_GET_PRESETS:
		rc = pl_pen_get_presets_async(p->pp, &op->out, op_done, op);
		break;
	case OP_PUT_PRESETS:
		rc = pl_pen_put_presets_async(p->pp, &op->in, &op->out, op_done, op);
		break;
	case OP_CLOCK:
		rc = pl_pen_clock_sync_async(p->pp, &op->offset, op_done, op);
		break;
	}
	if (rc)
		op_defer(op, rc, pl_error_message());
	pen_kick(p);
}

static void ops_start(struct pen *p)
{
	struct op *op = p->ops;
	while (op) {
		struct op *next = op->next; /* op_start may unlink op */
		if (!op->started)
			op_start(op);
		op = next;
	}
}

static void ops_fail_all(struct pen *p, int status, const char *msg)
{
	char m[1024];
	snprintf(m, sizeof m, "pen %s on %s: %s", *p->serial ? p->serial : "?",
	         p->port, msg);
	while (p->ops)
		op_defer(p->ops, status, m);
}

/* Queues an operation of kind on p, answered through fn (the member kind
 * calls); have_fn says whether the caller gave one.  in is the set a
 * preset push writes. */
static int op_request(struct pen *p, enum op_kind kind, union op_fn fn,
                      bool have_fn, const struct pl_preset_set *in, void *ud)
{
	static const char *const refusal[] = {
	    [OP_INFO] = "pen_get_info: no pen or no callback",
	    [OP_GET_PRESETS] = "pen_get_presets: no pen or no callback",
	    [OP_PUT_PRESETS] = "pen_put_presets: no pen, presets or callback",
	    [OP_CLOCK] = "pen_clock_sync: no pen or no callback",
	};
	if (!p || !have_fn || (kind == OP_PUT_PRESETS && !in))
		return pl_error_set(PL_ERR_ARG, "%s", refusal[kind]);
	struct op *op = calloc(1, sizeof *op);
	if (!op)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	op->d = p->d;
	op->kind = kind;
	op->fn = fn;
	op->ud = ud;
	if (in)
		op->in = *in;
	op->pen = p;
	op->next = p->ops;
	p->ops = op;
	if (phase_usable(p->phase))
		op_start(op);
	else if (p->phase != PHASE_HANDSHAKE)
		op_defer(op, PL_ERR_UNPLUGGED,
		         *p->last_error ? p->last_error : "the pen is not connected");
	/* else: queued until the handshake is done */
	return PL_OK;
}

int pen_get_info(struct pen *p, pen_info_fn done, void *ud)
{
	return op_request(p, OP_INFO, (union op_fn){.info = done}, done != NULL,
	                  NULL, ud);
}

int pen_get_presets(struct pen *p, pen_presets_fn done, void *ud)
{
	return op_request(p, OP_GET_PRESETS, (union op_fn){.presets = done},
	                  done != NULL, NULL, ud);
}

int pen_put_presets(struct pen *p, const struct pl_preset_set *set,
                    pen_presets_fn done, void *ud)
{
	return op_request(p, OP_PUT_PRESETS, (union op_fn){.presets = done},
	                  done != NULL, set, ud);
}

int pen_clock_sync(struct pen *p, pen_clock_fn done, void *ud)
{
	return op_request(p, OP_CLOCK, (union op_fn){.clock = done}, done != NULL,
	                  NULL, ud);
}

int pen_trace_hold(struct pen *p, uint32_t level)
{
	if (!p)
		return pl_error_set(PL_ERR_ARG, "no pen");
	if (level > 3)
		return pl_error_set(PL_ERR_ARG,
		                "trace level %u; levels run from 0 (errors) to 3 (debug)", level);
	/* Several holders share one subscription at the most verbose level
	 * any of them asked for; each client filters its own. */
	bool change = p->trace_refs == 0 || level > p->trace_level;
	if (p->trace_refs == 0 || level > p->trace_level)
		p->trace_level = level;
	p->trace_refs++;
	if (change && phase_usable(p->phase))
		trace_apply(p, true);
	return PL_OK;
}

void pen_trace_release(struct pen *p)
{
	if (!p || !p->trace_refs)
		return;
	if (--p->trace_refs == 0 && phase_usable(p->phase))
		trace_apply(p, false);
}
