/*
 * The control socket: listening, clients, framing and bounded queues.  The
 * requests themselves are handled in ctl_ops.c.
 *
 * Nothing a client does can make the daemon block or grow without bound
 * (the budgets are in ctl_int.h): requests larger than CTL_MAX_REQUEST are
 * dropped as they arrive, unfinished requests of all clients together are
 * bounded by CTL_PARTIAL_ALL_MAX, connections by CTL_MAX_CLIENTS (and
 * CTL_MAX_CLIENTS_PER_USER), a client's outgoing queue by CTL_QUEUE_MAX and
 * all queues together by CTL_QUEUE_ALL_MAX, streams produce only while the
 * queue is below CTL_LOW_WATER, a client that takes nothing for
 * CTL_STALL_MS is dropped, and garbage is answered, then disconnected.
 *
 * A client is never freed inside a callback that may still use it:
 * client_kill() closes it at once and moves it to a graveyard that a 0 ms
 * timer empties.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_int.h"
#include "log.h"

/* ------------------------------------------------------------------ audit */

/*
 * The audit trail is read by people (penctl audit) and by tools: its lines
 * are cleaned here, at the daemon's door, PL_TEXT_LOG, and the old and new
 * values, JSON documents, PL_TEXT_JSON so that they stay valid JSON.  The
 * pen's serial is cleaned too: the trail names a pen for a reader, it is
 * not a key to look anything up by.
 */
void ctl_audit(struct daemon *d, uint32_t uid, const char *user,
               const char *pen, const char *action, const char *old_value,
               const char *new_value, const char *result)
{
	if (!d || !d->archive)
		return;
	char *text[6] = {
	    pl_text_clean_dup(PL_TEXT_LOG, user),
	    pl_text_clean_dup(PL_TEXT_LOG, pen),
	    pl_text_clean_dup(PL_TEXT_LOG, action),
	    pl_text_clean_dup(PL_TEXT_JSON, old_value),
	    pl_text_clean_dup(PL_TEXT_JSON, new_value),
	    pl_text_clean_dup(PL_TEXT_LOG, result),
	};
	int rc = PL_ERR_MEM;
	if (text[0] && text[1] && text[2] && text[3] && text[4] && text[5]) {
		struct audit_entry e = {
			.utc_ms = pl_time_utc_ms(),
			.uid = uid,
			.user = text[0],
			.pen = text[1],
			.action = text[2],
			.old_value = text[3],
			.new_value = text[4],
			.result = text[5],
		};
		rc = archive_audit_add(d->archive, &e);
	}
	if (rc)
		log_err("audit trail: cannot record %s by %s: %s", action,
		        user ? user : "", rc == PL_ERR_MEM ? "out of memory"
		                                            : archive_errmsg(d->archive));
	for (int i = 0; i < 6; i++)
		free(text[i]);
}

/* ------------------------------------------------------------------ requests */

struct ctl_req *ctl_req_new(struct client *cl, uint32_t id,
                            Plctl__Request__OpCase op)
{
	struct ctl_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	struct ctl *c = cl->ctl;
	r->ctl = c;
	r->d = c->d;
	r->cl = cl;
	r->id = id;
	r->op = op;
	r->uid = (uint32_t)cl->who.uid;
	snprintf(r->user, sizeof r->user, "%s", cl->who.user);
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
	cl->n_pending++;
	return r;
}

void ctl_req_free(struct ctl_req *r)
{
	if (!r)
		return;
	if (r->cl)
		r->cl->n_pending--;
	if (r->ctl) {
		if (r->prev)
			r->prev->next = r->next;
		else
			r->ctl->reqs = r->next;
		if (r->next)
			r->next->prev = r->prev;
	}
	caller_free(&r->who);
	free(r);
}

/* ------------------------------------------------------------------ output */

static size_t queued(const struct client *cl)
{
	return cl->out_len - cl->out_off;
}

static void want_out(struct client *cl, bool on)
{
	if (cl->dead || cl->polling_out == on)
		return;
	if (loop_mod_fd(cl->ctl->loop, cl->fd, LOOP_IN | (on ? LOOP_OUT : 0)) == 0)
		cl->polling_out = on;
}

/*
 * The stall limit counts from the client's last progress (the socket took
 * bytes, or output was queued to an empty queue), so a client that stops
 * reading is dropped stall_ms after it stopped.  The timer is armed for the
 * time left to that instant, never a full period from whenever it happened
 * to fire (which dropped clients after up to twice the limit).
 */
static void stall_check(void *ud);

static void stall_arm(struct client *cl, int64_t now)
{
	int64_t due = cl->progress_ms + cl->ctl->stall_ms - now;
	cl->stall_timer = loop_add_timer(cl->ctl->loop, due > 0 ? (int)due : 0,
	                                 stall_check, cl);
}

static void stall_check(void *ud)
{
	struct client *cl = ud;
	cl->stall_timer = 0;
	if (cl->dead || !queued(cl))
		return; /* nothing waits for it: no limit runs */
	int64_t now = pl_time_monotonic_ms();
	if (now - cl->progress_ms >= cl->ctl->stall_ms) {
		char why[96];
		snprintf(why, sizeof why, "not reading (took nothing for %d ms)",
		         cl->ctl->stall_ms);
		client_kill(cl, why);
		return;
	}
	stall_arm(cl, now);
}

/* While output waits for the client, check that it takes it. */
static void watch_stall(struct client *cl)
{
	if (cl->dead || !queued(cl) || cl->stall_timer)
		return;
	stall_arm(cl, pl_time_monotonic_ms());
}

static void evict_largest(void *ud);

/* Output was queued (n > 0) or sent (n < 0): the global account, and the
 * client's progress for the stall limit. */
static void queue_account(struct client *cl, size_t before)
{
	struct ctl *c = cl->ctl;
	size_t now_q = queued(cl);
	c->queued_all = c->queued_all - before + now_q;
	if (now_q < before || before == 0)
		cl->progress_ms = pl_time_monotonic_ms();
}

/* Writes what the socket takes now.  False if the client died. */
static bool flush(struct client *cl)
{
	size_t before = queued(cl);
	int err = 0;
	while (!cl->dead && cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off,
		                 cl->out_len - cl->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			cl->out_off += (size_t)n;
			cl->written += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		err = n < 0 ? errno : EIO;
		break;
	}
	if (cl->dead)
		return false;
	queue_account(cl, before);
	if (err) {
		client_kill(cl, err == EPIPE ? NULL : "write failed");
		return false;
	}
	if (cl->out_off == cl->out_len) {
		cl->out_off = cl->out_len = 0;
		/* An idle client should not keep a stream's buffer. */
		if (cl->out_cap > (64u << 10)) {
			free(cl->out);
			cl->out = NULL;
			cl->out_cap = 0;
		}
	}
	want_out(cl, queued(cl) > 0 || cl->streams);
	watch_stall(cl);
	return true;
}

/* Drops the clients with the largest queues until all queues together are
 * within CTL_QUEUE_ALL_MAX again (see client_send). */
static void evict_largest(void *ud)
{
	struct ctl *c = ud;
	c->evict_timer = 0;
	while (c->queued_all > CTL_QUEUE_ALL_MAX) {
		struct client *big = NULL;
		for (struct client *o = c->clients; o; o = o->next)
			if (!o->dead && (!big || queued(o) > queued(big)))
				big = o;
		if (!big || !queued(big))
			break;
		char why[160];
		snprintf(why, sizeof why,
		         "queued output of all clients above the %u MiB budget "
		         "(its %zu KiB the most)", CTL_QUEUE_ALL_MAX >> 20,
		         queued(big) >> 10);
		client_kill(big, why);
	}
}

bool client_send(struct client *cl, uint32_t id, bool last,
                 Plctl__Response__BodyCase body, const void *msg)
{
	if (!cl || cl->dead)
		return false;
	Plctl__Response r = PLCTL__RESPONSE__INIT;
	r.id = id;
	r.last = last;
	r.body_case = body;
	/* The body is a oneof: protobuf-c keeps its members in one anonymous
	 * union of message pointers and reads it back by body_case, so one
	 * store serves every kind of body. */
	r.ack = (Pl__Ack *)msg;
	uint8_t *frame;
	size_t need;
	if (plc_frame_message(&r.base, &frame, &need) != PL_OK) {
		client_kill(cl, pl_error_message());
		return false;
	}
	if (queued(cl) + need > CTL_QUEUE_MAX) {
		free(frame);
		char why[128];
		snprintf(why, sizeof why,
		         "not reading: its output queue is above the %u MiB budget",
		         CTL_QUEUE_MAX >> 20);
		client_kill(cl, why);
		return false;
	}
	struct ctl *c = cl->ctl;
	if (c->queued_all + need > CTL_QUEUE_ALL_MAX) {
		/* The client with the largest queue goes: this one at once,
		 * another from a 0 ms timer (callers may be walking the client
		 * list), the response going out meanwhile. */
		struct client *big = cl;
		for (struct client *o = c->clients; o; o = o->next)
			if (!o->dead && queued(o) > queued(big))
				big = o;
		if (big == cl) {
			free(frame);
			char why[160];
			snprintf(why, sizeof why,
			         "queued output of all clients above the %u MiB "
			         "budget (its %zu KiB the most)",
			         CTL_QUEUE_ALL_MAX >> 20, queued(cl) >> 10);
			client_kill(cl, why);
			return false;
		}
		if (!c->evict_timer)
			c->evict_timer = loop_add_timer(c->loop, 0, evict_largest, c);
	}
	size_t before = queued(cl);
	if (cl->out_cap - cl->out_len < need && cl->out_off) {
		memmove(cl->out, cl->out + cl->out_off, queued(cl));
		cl->out_len -= cl->out_off;
		cl->out_off = 0;
	}
	if (cl->out_cap - cl->out_len < need) {
		size_t cap = cl->out_cap ? cl->out_cap : 4096;
		while (cap - cl->out_len < need)
			cap *= 2;
		uint8_t *o = realloc(cl->out, cap);
		if (!o) {
			free(frame);
			client_kill(cl, "out of memory");
			return false;
		}
		cl->out = o;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_len, frame, need);
	free(frame);
	cl->out_len += need;
	queue_account(cl, before);
	want_out(cl, true);
	watch_stall(cl);
	return true;
}

bool client_error(struct client *cl, uint32_t id, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	Plctl__Error e = PLCTL__ERROR__INIT;
	e.code = code;
	e.message = msg;
	return client_send(cl, id, true, PLCTL__RESPONSE__BODY_ERROR, &e);
}

void client_pump(struct client *cl)
{
	/* Round robin over the client's streams, one piece at a time, until
	 * the queue holds enough to keep the socket busy. */
	while (!cl->dead && cl->streams && queued(cl) < CTL_LOW_WATER) {
		struct stream *s = cl->streams;
		bool finished = ctl_ops_stream_step(cl, s);
		if (cl->dead)
			return;
		cl->streams = s->next;
		s->next = NULL;
		if (finished) {
			ctl_ops_stream_free(s);
			cl->n_streams--;
		} else {
			struct stream **t = &cl->streams;
			while (*t)
				t = &(*t)->next;
			*t = s;
		}
	}
	if (!cl->dead) {
		want_out(cl, queued(cl) > 0 || cl->streams);
		watch_stall(cl);
	}
}

/* ------------------------------------------------------------------ clients */

static void reap(void *ud)
{
	struct ctl *c = ud;
	c->reap_timer = 0;
	while (c->graveyard) {
		struct client *cl = c->graveyard;
		c->graveyard = cl->next;
		while (cl->streams) {
			struct stream *s = cl->streams;
			cl->streams = s->next;
			ctl_ops_stream_free(s);
		}
		while (cl->traces) {
			struct trace_sub *t = cl->traces;
			cl->traces = t->next;
			free(t);
		}
		caller_free(&cl->who);
		free(cl->dec_buf);
		free(cl->out);
		free(cl);
	}
}

static void resume_listening(struct ctl *c)
{
	if (!c->listen_paused || c->lfd < 0)
		return;
	if (c->resume_timer) {
		loop_cancel_timer(c->loop, c->resume_timer);
		c->resume_timer = 0;
	}
	if (loop_mod_fd(c->loop, c->lfd, LOOP_IN) == 0)
		c->listen_paused = false;
}

void client_kill(struct client *cl, const char *why)
{
	if (cl->dead)
		return;
	struct ctl *c = cl->ctl;
	cl->dead = true;
	c->partial_all -= cl->partial;
	cl->partial = 0;
	c->queued_all -= queued(cl);
	if (why)
		log_notice("client uid %u pid %d (%s) dropped: %s",
		           (unsigned)cl->who.uid, (int)cl->who.pid, cl->who.user,
		           why);
	else
		log_debug("client pid %d (%s) left", (int)cl->who.pid, cl->who.user);
	if (cl->denials > CTL_MAX_DENIALS_AUDITED)
		log_notice("client pid %d (%s) was refused %u times; %u were not "
		           "audited", (int)cl->who.pid, cl->who.user, cl->denials,
		           cl->denials - CTL_MAX_DENIALS_AUDITED);
	/* What is queued (e.g. the error that explains the disconnection)
	 * gets one chance to leave, without waiting. */
	if (queued(cl))
		(void)!send(cl->fd, cl->out + cl->out_off, queued(cl),
		            MSG_NOSIGNAL | MSG_DONTWAIT);
	loop_del_fd(c->loop, cl->fd);
	close(cl->fd);
	cl->fd = -1;
	if (cl->stall_timer) {
		loop_cancel_timer(c->loop, cl->stall_timer);
		cl->stall_timer = 0;
	}

	/* The pen streams trace lines while anyone holds it. */
	for (struct trace_sub *t = cl->traces; t; t = t->next) {
		char err[256];
		struct pen *pen = c->d && c->d->pens
		                      ? pens_lookup(c->d->pens, t->serial, err, sizeof err)
		                      : NULL;
		if (pen)
			pen_trace_release(pen);
	}
	for (struct ctl_req *r = c->reqs; r; r = r->next)
		if (r->cl == cl)
			r->cl = NULL;
	cl->n_pending = 0;

	struct client **p = &c->clients;
	while (*p && *p != cl)
		p = &(*p)->next;
	if (*p)
		*p = cl->next;
	c->n_clients--;
	cl->next = c->graveyard;
	c->graveyard = cl;
	if (!c->reap_timer)
		c->reap_timer = loop_add_timer(c->loop, 0, reap, c);
	/* Without a timer the client is freed with the server instead. */
	resume_listening(c);
}

static void offence(struct client *cl, const char *what)
{
	cl->offences++;
	if (!client_error(cl, 0, PL_ERR_ARG, "malformed request: %s", what))
		return;
	if (cl->offences >= CTL_MAX_OFFENCES)
		client_kill(cl, "malformed requests");
}

static void on_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	(void)flags;
	struct client *cl = ctx;
	if (cl->dead)
		return;
	Plctl__Request *rq = plctl__request__unpack(NULL, len, payload);
	if (!rq) {
		char what[96];
		snprintf(what, sizeof what,
		         "a frame of %zu bytes that is not a control request", len);
		offence(cl, what);
		return;
	}
	if (!ctl_op_of(rq->op_case)) {
		/* A newer client's operation: protobuf left it unknown. */
		client_error(cl, rq->id, PL_ERR_UNSUPPORTED,
		             "unknown operation in request %u; this penlinkd "
		             "(%s) speaks control protocol version 1",
		             rq->id, PL_VERSION_STRING);
	} else if (rq->id == 0) {
		client_error(cl, 0, PL_ERR_ARG,
		             "malformed request: request ids must not be 0");
	} else {
		ctl_ops_handle(cl, rq, payload, len);
	}
	plctl__request__free_unpacked(rq, NULL);
}

static void on_drop(void *ctx, enum pl_frame_drop why, size_t len)
{
	(void)len;
	struct client *cl = ctx;
	if (cl->dead)
		return;
	cl->drops++;
	if (why == PL_FRAME_DROP_OVERSIZE) {
		/* Not line noise: a client built a request too big to take. */
		char what[96];
		snprintf(what, sizeof what,
		         "request larger than the %u KiB budget dropped",
		         CTL_MAX_REQUEST >> 10);
		offence(cl, what);
	} else if (cl->drops > CTL_DROPS_FORGIVEN) {
		char what[96];
		snprintf(what, sizeof what, "%u frames dropped (last: %s)",
		         cl->drops, pl_frame_drop_name(why));
		offence(cl, what);
	}
}

static void on_client(void *ud, int fd, unsigned events)
{
	struct client *cl = ud;
	if (cl->dead)
		return;
	if (events & LOOP_IN) {
		uint8_t buf[64 << 10];
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0) {
			client_kill(cl, NULL);
			return;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			client_kill(cl, errno == ECONNRESET ? NULL : "read failed");
			return;
		}
		if (n > 0) {
			pl_frame_decoder_feed(&cl->dec, buf, (size_t)n);
			if (cl->dead)
				return;
			/* What the decoder holds of a request in progress. */
			struct ctl *c = cl->ctl;
			c->partial_all = c->partial_all - cl->partial + cl->dec.len;
			cl->partial = cl->dec.len;
			if (c->partial_all > CTL_PARTIAL_ALL_MAX) {
				char why[128];
				snprintf(why, sizeof why,
				         "partial requests of all clients above the "
				         "%u MiB budget", CTL_PARTIAL_ALL_MAX >> 20);
				client_kill(cl, why);
				return;
			}
		}
	} else if (events & LOOP_ERR) {
		client_kill(cl, NULL);
		return;
	}
	if (events & LOOP_OUT) {
		if (!flush(cl))
			return;
		client_pump(cl);
		if (!cl->dead && queued(cl))
			flush(cl);
	}
}

static void resume_timer_fired(void *ud)
{
	struct ctl *c = ud;
	c->resume_timer = 0;
	resume_listening(c);
}

/* Out of descriptors: stop accepting for a while rather than spin on a
 * listening socket that stays readable. */
static void pause_listening(struct ctl *c)
{
	if (c->listen_paused)
		return;
	if (loop_mod_fd(c->loop, c->lfd, 0) == 0) {
		c->listen_paused = true;
		c->resume_timer = loop_add_timer(c->loop, 1000, resume_timer_fired, c);
	}
}

/* Logs a connection refused for a budget, at most once per
 * CTL_REFUSAL_LOG_MS with the number left out since. */
static void log_refusal(struct ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_refusal(struct ctl *c, const char *fmt, ...)
{
	int64_t now = pl_time_monotonic_ms();
	if (c->refusal_logged_ms && now - c->refusal_logged_ms < CTL_REFUSAL_LOG_MS) {
		c->refusals_unlogged++;
		return;
	}
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (c->refusals_unlogged)
		log_warn("%s (and %u more refused since the last such line)", msg,
		         c->refusals_unlogged);
	else
		log_warn("%s", msg);
	c->refusal_logged_ms = now;
	c->refusals_unlogged = 0;
}

/* The connection budgets, checked on the peer's credentials before
 * anything is resolved or allocated for it.  True if fd may stay. */
static bool connection_allowed(struct ctl *c, int fd)
{
	struct ucred cr = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return true; /* add_client reports it */
	if (c->n_clients >= CTL_MAX_CLIENTS) {
		log_refusal(c, "client uid %u pid %d refused: %u clients connected, "
		            "above the budget of %u clients", (unsigned)cr.uid,
		            (int)cr.pid, c->n_clients, CTL_MAX_CLIENTS);
		return false;
	}
	if (cr.uid == 0 || cr.uid == geteuid())
		return true;
	unsigned mine = 0;
	for (struct client *o = c->clients; o; o = o->next)
		if (!o->dead && o->who.uid == cr.uid)
			mine++;
	if (mine >= CTL_MAX_CLIENTS_PER_USER) {
		log_refusal(c, "client uid %u pid %d refused: %u clients of this "
		            "user connected, above the budget of %u clients per "
		            "user", (unsigned)cr.uid, (int)cr.pid, mine,
		            CTL_MAX_CLIENTS_PER_USER);
		return false;
	}
	return true;
}

static void add_client(struct ctl *c, int fd)
{
	if (!connection_allowed(c, fd)) {
		close(fd);
		return;
	}
	struct client *cl = calloc(1, sizeof *cl);
	if (!cl) {
		close(fd);
		return;
	}
	cl->ctl = c;
	cl->fd = fd;
	int rc = caller_from_socket(fd, &cl->who);
	size_t cap = PL_FRAME_RAW_LEN(CTL_MAX_REQUEST);
	/* malloc maps a buffer this large lazily: only what a client actually
	 * sends costs memory. */
	cl->dec_buf = rc == 0 ? malloc(cap) : NULL;
	if (rc || !cl->dec_buf) {
		log_warn("control socket: dropping a client: %s",
		         rc ? strerror(-rc) : "out of memory");
		caller_free(&cl->who);
		free(cl->dec_buf);
		free(cl);
		close(fd);
		return;
	}
	pl_frame_decoder_init(&cl->dec, cl->dec_buf, cap, on_frame, on_drop, cl);
	pl_frame_decoder_set_limit(&cl->dec, CTL_MAX_REQUEST);
	rc = loop_add_fd(c->loop, fd, LOOP_IN, on_client, cl);
	if (rc) {
		log_warn("control socket: cannot watch a client: %s", strerror(-rc));
		caller_free(&cl->who);
		free(cl->dec_buf);
		free(cl);
		close(fd);
		return;
	}
	cl->next = c->clients;
	c->clients = cl;
	c->n_clients++;
	log_debug("client pid %d (%s, uid %u) connected", (int)cl->who.pid,
	          cl->who.user, (unsigned)cl->who.uid);
}

static void on_listen(void *ud, int fd, unsigned events)
{
	(void)events;
	struct ctl *c = ud;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_warn("control socket: cannot accept: %s; pausing "
				         "for a second", strerror(errno));
				pause_listening(c);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warn("control socket: accept: %s", strerror(errno));
			}
			return;
		}
		add_client(c, cfd);
	}
}

/* ------------------------------------------------------------------ monitor, trace */

void ctl_broadcast(struct ctl *c, const Plctl__Event *ev)
{
	if (!c || !ev)
		return;
	bool gone = ev->kind == PLCTL__EVENT_KIND__EVENT_KIND_PEN_DETACHED &&
	            ev->serial && ev->serial[0];
	for (struct client *cl = c->clients, *next; cl; cl = next) {
		next = cl->next;
		if (gone) {
			/* The pen is gone, and its trace subscriptions with it:
			 * nothing to release any more. */
			for (struct trace_sub **t = &cl->traces; *t && !cl->dead;) {
				struct trace_sub *s = *t;
				if (strcmp(s->serial, ev->serial)) {
					t = &s->next;
					continue;
				}
				*t = s->next;
				cl->n_traces--;
				uint32_t id = s->id;
				free(s);
				client_error(cl, id, PL_ERR_UNPLUGGED,
				             "pen %s went away%s%s", ev->serial,
				             ev->message && ev->message[0] ? ": " : "",
				             ev->message ? ev->message : "");
			}
		}
		if (cl->dead || !cl->monitoring)
			continue;
		client_send(cl, cl->monitor_id, false, PLCTL__RESPONSE__BODY_EVENT,
		            ev);
	}
}

void ctl_trace_line(struct ctl *c, const char *serial, uint32_t level,
                    const char *text)
{
	if (!c || !serial)
		return;
	Plctl__Event ev;
	event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_TRACE, serial);
	ev.level = level;
	ev.message = (char *)(text ? text : "");
	for (struct client *cl = c->clients, *next; cl; cl = next) {
		next = cl->next;
		for (struct trace_sub *t = cl->traces; t && !cl->dead; t = t->next) {
			if (level > t->level || strcmp(t->serial, serial))
				continue;
			client_send(cl, t->id, false, PLCTL__RESPONSE__BODY_EVENT, &ev);
		}
	}
}

void ctl_pen_event(struct ctl *c, const Plctl__Event *ev)
{
	if (!c || !ev || !ev->serial)
		return;
	ctl_broadcast(c, ev);
	for (struct client *cl = c->clients, *next; cl; cl = next) {
		next = cl->next;
		for (struct trace_sub *t = cl->traces; t && !cl->dead; t = t->next) {
			if (strcmp(t->serial, ev->serial))
				continue;
			client_send(cl, t->id, false, PLCTL__RESPONSE__BODY_EVENT, ev);
		}
	}
}

/* ------------------------------------------------------------------ start, stop */

static int mkdir_parents(const char *path)
{
	char dir[256];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || *p == 0) {
			char save = *p;
			*p = 0;
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = save;
			if (!save)
				break;
		}
	}
	return 0;
}

static int fail(struct ctl *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ctl *c, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (c->lfd >= 0)
		close(c->lfd);
	free(c);
	/* The caller says it (main: "cannot serve the control socket ..."). */
	return pl_error_set(code, "%s", msg);
}

static int errno_code(int e)
{
	return e == EACCES || e == EPERM ? PL_ERR_ACCESS
	       : e == ENOENT            ? PL_ERR_NO_PORT
	                                : PL_ERR_IO;
}

int ctl_start(struct daemon *d, struct ctl **out)
{
	*out = NULL;
	struct ctl *c = calloc(1, sizeof *c);
	if (!c)
		return PL_ERR_MEM;
	c->d = d;
	c->loop = d->loop;
	c->lfd = -1;
	c->stall_ms = CTL_STALL_MS;
	const char *stall = getenv(CTL_STALL_ENV);
	if (stall && *stall) {
		char *end;
		errno = 0;
		long v = strtol(stall, &end, 10);
		if (errno || *end || v < 100 || v > CTL_STALL_MS)
			log_warn("%s=%s ignored: not a number of ms in 100..%d",
			         CTL_STALL_ENV, stall, CTL_STALL_MS);
		else {
			c->stall_ms = (int)v;
			log_notice("clients that take nothing for %d ms are dropped "
			           "(%s)", c->stall_ms, CTL_STALL_ENV);
		}
	}
	const char *path = d->cfg.socket_path;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!path[0] || strlen(path) >= sizeof sa.sun_path)
		return fail(c, PL_ERR_ARG,
		            "socket path \"%s\" is empty or longer than %zu bytes",
		            path, sizeof sa.sun_path - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	snprintf(c->path, sizeof c->path, "%s", path);
	access_policy_init(&c->policy, &d->cfg, geteuid());

	int rc = mkdir_parents(path);
	if (rc)
		return fail(c, errno_code(-rc), "cannot create the folder of %s: %s",
		            path, strerror(-rc));

	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->lfd < 0)
		return fail(c, PL_ERR_IO, "socket: %s", strerror(errno));

	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return fail(c, PL_ERR_ARG,
			            "%s exists and is not a socket; not removing it",
			            path);
		/* Is someone serving it?  A live daemon answers connect(). */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return fail(c, PL_ERR_IO, "socket: %s", strerror(errno));
		int live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
		int e = errno;
		close(probe);
		if (live)
			return fail(c, PL_ERR_PORT_BUSY,
			            "another penlinkd is already serving %s", path);
		if (e != ECONNREFUSED && e != ENOENT)
			return fail(c, errno_code(e), "cannot check %s: %s", path,
			            strerror(e));
		if (unlink(path) < 0 && errno != ENOENT)
			return fail(c, errno_code(errno),
			            "cannot remove the stale socket %s: %s", path,
			            strerror(errno));
		log_info("control socket: removed the stale %s", path);
	}

	/* No moment with a socket wider open than configured. */
	mode_t old = umask(0177);
	rc = bind(c->lfd, (struct sockaddr *)&sa, sizeof sa);
	int e = errno;
	umask(old);
	if (rc < 0)
		return fail(c, errno_code(e), "cannot bind %s: %s", path, strerror(e));
	if (chmod(path, (mode_t)d->cfg.socket_mode) < 0)
		log_warn("control socket: chmod %o %s: %s",
		         (unsigned)d->cfg.socket_mode, path, strerror(errno));
	if (d->cfg.socket_group[0]) {
		char buf[16384];
		struct group gr, *res = NULL;
		if (getgrnam_r(d->cfg.socket_group, &gr, buf, sizeof buf, &res) ||
		    !res)
			log_warn("control socket: group %s does not exist; %s keeps "
			         "the daemon's group", d->cfg.socket_group, path);
		else if (chown(path, (uid_t)-1, res->gr_gid) < 0)
			log_warn("control socket: cannot give %s to group %s: %s", path,
			         d->cfg.socket_group, strerror(errno));
	}
	if (stat(path, &st) == 0) {
		c->dev = st.st_dev;
		c->ino = st.st_ino;
	}
	if (listen(c->lfd, 128) < 0) {
		e = errno;
		unlink(path);
		return fail(c, PL_ERR_IO, "listen on %s: %s", path, strerror(e));
	}
	rc = loop_add_fd(c->loop, c->lfd, LOOP_IN, on_listen, c);
	if (rc) {
		unlink(path);
		return fail(c, PL_ERR_IO, "cannot watch %s: %s", path, strerror(-rc));
	}
	log_info("control socket: listening on %s", path);
	*out = c;
	return PL_OK;
}

/* After a reload: groups are looked up again and the new [policy] is the
 * one requests are checked against (config.h owns it). */
void ctl_access_reload(struct ctl *c)
{
	access_policy_init(&c->policy, &c->d->cfg, geteuid());
}

void ctl_stop(struct ctl *c)
{
	if (!c)
		return;
	while (c->clients)
		client_kill(c->clients, NULL);
	if (c->reap_timer)
		loop_cancel_timer(c->loop, c->reap_timer);
	reap(c);
	/* Requests still waiting on pens free themselves when the pens call
	 * back; they only must not touch the server any more. */
	for (struct ctl_req *r = c->reqs, *next; r; r = next) {
		next = r->next;
		r->ctl = NULL;
		r->prev = r->next = NULL;
	}
	if (c->resume_timer)
		loop_cancel_timer(c->loop, c->resume_timer);
	if (c->evict_timer)
		loop_cancel_timer(c->loop, c->evict_timer);
	if (c->lfd >= 0) {
		loop_del_fd(c->loop, c->lfd);
		close(c->lfd);
		/* Only our own socket: a newer daemon may have replaced it. */
		struct stat st;
		if (stat(c->path, &st) == 0 && st.st_dev == c->dev &&
		    st.st_ino == c->ino)
			unlink(c->path);
	}
	free(c);
}
