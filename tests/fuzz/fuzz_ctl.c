/*
 * fuzz_ctl: penlinkd's control socket (daemon/ctl.c, daemon/ctl_ops.c,
 * daemon/access.c): whatever bytes a local client writes.
 *
 * One daemon for the whole run, as in tests/daemon/test_ctl.c: the real
 * loop, archive (holding a few sessions, one of them undecodable), pen
 * service and control server on a socket in a temporary folder.  One pen
 * is attached: fuzz_fakepen.h's firmware endpoint on the master side of a
 * pseudo-terminal, served by the same loop, so GetInfo, PushPresets (and
 * the clinic policy: a depth cap and the confirmation threshold), Trace,
 * Detach and the rest reach a pen.  Each input connects a client (as root
 * or, when running as root, as nobody, who is in the presets group with a
 * 1 mm cap but not in the logs group; picked by the first byte), writes the
 * rest of the input, reads what comes back, and once the daemon is quiet
 * (all read, all sent, streams finished - they flow only as the client
 * reads - nothing waiting on the pen) half-closes, reads until the daemon
 * hangs up and runs the loop until no request waits on the pen.
 *
 * An input that would attach any character device but the fake pen's
 * (Attach takes a path, and a fuzzer must not write to /dev/console) is
 * skipped: its frames are decoded beforehand exactly as the daemon will.
 *
 * Invariants: the daemon has answered everything and hung up within 5 s
 * of the client's connecting; every frame it sends decodes to a
 * Response, with a negative code and a message when it is an error; once
 * the client is gone nothing of it is left: no client, no graveyard entry,
 * no request (LeakSanitizer then checks the memory).
 */
#include "fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_int.h"
#include "penlink_wire.h"
#include "fuzz_fakepen.h"
#include "log.h"
#include "record.pb-c.h"

#define FUZZ_MAX_INPUT (1u << 20)
#define HANGUP_MS 5000
#define PEN_READY_MS 10000
#define NOBODY 65534

static struct daemon D;
static char dir[256];
static uint8_t *dec_buf;

/* The pen: the endpoint on a pty master; the daemon opens the slave. */
static struct fakepen pen;
static int master = -1;
static bool master_watched, master_out;
static char slave[64];
static dev_t slave_rdev;
static struct {
	uint8_t *p;
	size_t len, cap;
} penq; /* the endpoint's bytes the pty has not taken yet */

static void open_pty(void);

/* ------------------------------------------------------------------ fixture */

static void cleanup(void)
{
	char cmd[300];
	ctl_stop(D.ctl);
	D.ctl = NULL;
	pens_free(D.pens);
	D.pens = NULL;
	if (master >= 0)
		close(master);
	free(penq.p);
	archive_close(D.archive);
	D.archive = NULL;
	loop_free(D.loop);
	D.loop = NULL;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_ctl: could not remove %s\n", dir);
}

/* Stores one session the way a download does, so the archive has
 * something to list, show and export. */
static void seed_session(const char *serial, uint32_t n, const uint8_t *rec,
                         size_t len, int64_t start_ms)
{
	struct pl_session_info s;
	memset(&s, 0, sizeof s);
	s.id = n;
	s.seq = n;
	s.size = len;
	for (int i = 0; i < 16; i++)
		s.uuid[i] = (uint8_t)(0x10 * n + i);
	pl_sha256(rec, len, s.sha256);
	s.start_ms = start_ms;
	s.end_ms = start_ms + 1800000;
	s.rtc_time = true;
	FUZZ_CHECK(archive_partial_append(D.archive, serial, &s, 0, rec, len) ==
	                   PL_OK &&
	               archive_commit_session(D.archive, serial, &s) == PL_OK,
	           "seeding the archive: %s", archive_errmsg(D.archive));
}

static void seed_archive(void)
{
	Pl__SessionRecord r = PL__SESSION_RECORD__INIT;
	Pl__Preset p = PL__PRESET__INIT;
	Pl__Telemetry t = PL__TELEMETRY__INIT;
	Pl__Event e1 = PL__EVENT__INIT, e2 = PL__EVENT__INIT;
	Pl__Event *ev[2] = {&e1, &e2};
	uint32_t depth[4] = {500, 510, 490, 500}, cur[4] = {200, 210, 220, 230},
	         bat[4] = {3900, 3899, 3898, 3897};
	uint8_t uuid[16], *buf;
	size_t len;
	bool more = true;

	for (int i = 0; i < 16; i++)
		uuid[i] = (uint8_t)(0x10 + i);
	r.format = 1;
	r.uuid.data = uuid;
	r.uuid.len = 16;
	r.seq = 1;
	r.serial = "PEN-0001";
	r.start_ms = 1700000000000;
	r.end_ms = 1700001800000;
	r.time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	p.id = 1;
	p.name = "Forehead, \"fine\"";
	p.depth_um = 500;
	p.speed_level = 3;
	p.area = PL__AREA__AREA_FOREHEAD;
	r.preset = &p;
	e1.kind = PL__EVENT_KIND__EVENT_KIND_START;
	e1.value = 1;
	e2.offset_ms = 1000;
	e2.kind = PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE;
	e2.value = 750;
	r.events = ev;
	r.n_events = 2;
	t.interval_us = 10000;
	t.depth_um = depth;
	t.n_depth_um = 4;
	t.current_ma = cur;
	t.n_current_ma = 4;
	t.battery_mv = bat;
	t.n_battery_mv = 4;
	r.telemetry = &t;
	len = pl__session_record__get_packed_size(&r);
	buf = malloc(len);
	FUZZ_CHECK(buf != NULL, "out of memory");
	pl__session_record__pack(&r, buf);
	seed_session("PEN-0001", 1, buf, len, r.start_ms);
	seed_session("PEN-0002", 2, buf, len, r.start_ms + 86400000);
	free(buf);
	{
		static const uint8_t junk[] = "not a record at all";
		seed_session("PEN-0001", 3, junk, sizeof junk, 1700000500000);
	}
	while (more)
		FUZZ_CHECK(archive_decode_step(D.archive, 100000, &more) == PL_OK,
		           "decode_step: %s", archive_errmsg(D.archive));
}

static void start_daemon(void)
{
	const char *base = getenv("PL_FUZZ_TMPDIR");
	struct stat st;

	if (!base || !*base)
		base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%.200s/pl-fuzz-ctl-XXXXXX", base);
	FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
	/* nobody must reach the socket to be refused by the daemon itself. */
	chmod(dir, 0755);
	/* The daemon's log is noise at fuzzing speed; FUZZ_TRACE=1 shows it. */
	log_set_level(getenv("FUZZ_TRACE") ? LOG_DEBUG : LOG_ERR);
	memset(&D, 0, sizeof D);
	FUZZ_CHECK(config_defaults(&D.cfg) == PL_OK, "config_defaults");
	snprintf(D.cfg.socket_path, sizeof D.cfg.socket_path, "%s/run/ctl.sock",
	         dir);
	snprintf(D.cfg.db_path, sizeof D.cfg.db_path, "%s/archive.db", dir);
	D.cfg.socket_group[0] = '\0';
	D.cfg.socket_mode = 0666;
	D.cfg.timeout_ms = 500;
	/* nobody (group nogroup) may push presets, capped at 1 mm. */
	snprintf(D.cfg.presets_group, sizeof D.cfg.presets_group, "nogroup");
	FUZZ_CHECK(pl_policy_set(D.cfg.policy, "depth_cap.nogroup", "1.0") == PL_OK,
	           "pl_policy_set: %s", pl_error_message());
	D.loop = loop_new();
	FUZZ_CHECK(D.loop != NULL, "loop_new");
	FUZZ_CHECK(archive_open(D.cfg.db_path, &D.archive) == PL_OK,
	           "archive_open: %s", pl_error_message());
	seed_archive();
	D.pens = pens_new(&D);
	FUZZ_CHECK(D.pens != NULL, "pens_new");
	FUZZ_CHECK(ctl_start(&D, &D.ctl) == PL_OK, "ctl_start: %s",
	           pl_error_message());
	atexit(cleanup);
	open_pty();
}

/* ------------------------------------------------------------------ pen */

static void master_watch(void);

static void master_flush(void)
{
	while (penq.len) {
		ssize_t n = write(master, penq.p, penq.len);
		if (n > 0) {
			memmove(penq.p, penq.p + n, penq.len - (size_t)n);
			penq.len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		penq.len = 0; /* EIO: nobody has the slave open; the bytes are lost */
	}
	master_watch();
}

/* Readable always, writable while bytes wait, nothing while the slave is
 * closed (a master then reports a hang-up on every wait). */
static void master_watch(void)
{
	bool out = penq.len > 0;
	if (!master_watched || out == master_out)
		return;
	if (loop_mod_fd(D.loop, master, LOOP_IN | (out ? LOOP_OUT : 0)) == 0)
		master_out = out;
}

static int pen_send(void *ud, const uint8_t *data, size_t len)
{
	(void)ud;
	if (penq.cap - penq.len < len) {
		size_t cap = penq.cap ? penq.cap : 4096;
		while (cap - penq.len < len)
			cap *= 2;
		penq.p = realloc(penq.p, cap);
		FUZZ_CHECK(penq.p != NULL, "out of memory");
		penq.cap = cap;
	}
	memcpy(penq.p + penq.len, data, len);
	penq.len += len;
	master_flush();
	return PL_FW_OK;
}

static void on_master(void *ud, int fd, unsigned events)
{
	bool gone = false;

	(void)ud;
	if (events & (LOOP_IN | LOOP_ERR)) {
		uint8_t buf[4096];
		for (;;) {
			ssize_t n = read(fd, buf, sizeof buf);
			if (n > 0) {
				pl_fw_rx(&pen.fw, buf, (size_t)n);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			gone = true; /* EIO: the daemon closed the slave (a detach) */
			break;
		}
	}
	if (gone) {
		loop_del_fd(D.loop, fd);
		master_watched = false;
		penq.len = 0;
		pl_fw_reset(&pen.fw);
		return;
	}
	if (events & LOOP_OUT)
		master_flush();
}

static void open_pty(void)
{
	struct stat st;
	const char *name;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	FUZZ_CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0,
	           "pty: %s", strerror(errno));
	name = ptsname(master);
	FUZZ_CHECK(name != NULL && stat(name, &st) == 0, "ptsname: %s",
	           strerror(errno));
	snprintf(slave, sizeof slave, "%s", name);
	slave_rdev = st.st_rdev;
	FUZZ_CHECK(fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) == 0,
	           "O_NONBLOCK: %s", strerror(errno));
}

/* The pen's state as the daemon lists it, or -1 if it is not attached. */
static int pen_state(void)
{
	Plctl__PenList list;
	int state = -1;

	FUZZ_CHECK(pens_list(D.pens, &list) == PL_OK, "pens_list");
	for (size_t i = 0; i < list.n_pens; i++)
		if (list.pens[i]->port && !strcmp(list.pens[i]->port, slave))
			state = (int)list.pens[i]->state;
	pens_list_free(&list);
	return state;
}

static void pen_ready_check(void *ud)
{
	int s = pen_state();
	(void)ud;
	if (s == PLCTL__PEN_STATE__PEN_STATE_IDLE ||
	    s == PLCTL__PEN_STATE__PEN_STATE_FAILED || s < 0)
		loop_stop(D.loop);
	else
		loop_add_timer(D.loop, 2, pen_ready_check, NULL);
}

static void pen_not_ready(void *ud)
{
	(void)ud;
	FUZZ_CHECK(0, "the pen on %s is not ready after %d ms (state %d)", slave,
	           PEN_READY_MS, pen_state());
}

/* Attaches the pen again if an earlier input detached it, and waits until
 * the daemon is done with it (handshake, info, clock, sessions). */
static void pen_attach(void)
{
	uint64_t overdue;
	int rc;

	if (pen_state() >= 0)
		return;
	fakepen_init(&pen, pen_send, NULL);
	penq.len = 0;
	if (!master_watched) {
		FUZZ_CHECK(loop_add_fd(D.loop, master, LOOP_IN, on_master, NULL) == 0,
		           "watching the pty");
		master_watched = true;
		master_out = false;
	}
	rc = pens_attach(D.pens, slave, false, NULL);
	FUZZ_CHECK(rc == PL_OK, "attaching %s: %s", slave, pl_error_message());
	overdue = loop_add_timer(D.loop, PEN_READY_MS, pen_not_ready, NULL);
	loop_add_timer(D.loop, 2, pen_ready_check, NULL);
	FUZZ_CHECK(loop_run(D.loop) == 0, "loop_run");
	loop_cancel_timer(D.loop, overdue);
	FUZZ_CHECK(pen_state() == PLCTL__PEN_STATE__PEN_STATE_IDLE,
	           "the pen on %s ended in state %d: the daemon could not serve "
	           "the fake pen at all", slave, pen_state());
}

/* Whether the input would make the daemon attach a character device other
 * than the fake pen: decoded exactly as the daemon decodes (the same
 * decoder and limit; the frames do not depend on how reads split them). */
static bool attach_unsafe;

static void scan_frame(void *ctx, uint8_t flags, const uint8_t *p, size_t len)
{
	Plctl__Request *rq = plctl__request__unpack(NULL, len, p);
	struct stat st;
	(void)ctx;
	(void)flags;
	if (!rq)
		return;
	if (rq->op_case == PLCTL__REQUEST__OP_ATTACH && rq->attach->path &&
	    stat(rq->attach->path, &st) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev != slave_rdev)
		attach_unsafe = true;
	plctl__request__free_unpacked(rq, NULL);
}

static bool would_attach_a_device(const uint8_t *p, size_t len)
{
	static uint8_t *buf;
	struct pl_frame_decoder d;

	if (!buf)
		buf = malloc(PL_FRAME_RAW_LEN(CTL_MAX_REQUEST));
	FUZZ_CHECK(buf != NULL, "out of memory");
	attach_unsafe = false;
	pl_frame_decoder_init(&d, buf, PL_FRAME_RAW_LEN(CTL_MAX_REQUEST),
	                      scan_frame, NULL, NULL);
	pl_frame_decoder_set_limit(&d, CTL_MAX_REQUEST);
	pl_frame_decoder_feed(&d, p, len);
	return attach_unsafe;
}

/* ------------------------------------------------------------------ client */

struct client_side {
	int fd;
	const uint8_t *out;
	size_t out_len, out_off;
	bool all_written, seen_server, half_closed, done;
	uint64_t quiet_timer;
	uint64_t stop_timer;
	struct pl_frame_decoder dec;
	size_t responses;
};

static void on_response(void *ctx, uint8_t flags, const uint8_t *p, size_t len)
{
	struct client_side *c = ctx;
	Plctl__Response *r = plctl__response__unpack(NULL, len, p);
	(void)flags;
	FUZZ_CHECK(r != NULL, "the daemon sent %zu bytes that are no Response",
	           len);
	if (r->body_case == PLCTL__RESPONSE__BODY_ERROR) {
		FUZZ_CHECK(r->error->code < 0, "error with code %d", r->error->code);
		FUZZ_CHECK(r->error->message && r->error->message[0],
		           "error %d without a message", r->error->code);
		FUZZ_CHECK(r->last, "an error that is not the last response of %u",
		           r->id);
	}
	c->responses++;
	plctl__response__free_unpacked(r, NULL);
}

static void hangup_overdue(void *ud)
{
	struct client_side *c = ud;
	c->stop_timer = 0;
	FUZZ_CHECK(0, "after %d ms the daemon %s (%zu of %zu bytes written)",
	           HANGUP_MS,
	           !c->all_written ? "has not read the client's requests"
	           : !c->half_closed ? "is still busy with them (streams, "
	                               "output or requests on the pen)"
	           : !c->done ? "keeps the connection open after the client's "
	                        "half-close"
	                      : "still has requests waiting on the pen",
	           c->out_off, c->out_len);
}

/* Stops the loop once no request waits on the pen any more (they outlive
 * their client), after the daemon's own 0 ms timers (its graveyard). */
static void settle(void *ud)
{
	(void)ud;
	if (D.ctl->reqs)
		loop_add_timer(D.loop, 0, settle, NULL);
	else
		loop_stop(D.loop);
}

static void finish(struct client_side *c)
{
	loop_del_fd(D.loop, c->fd);
	close(c->fd);
	c->fd = -1;
	c->done = true;
	if (c->quiet_timer)
		loop_cancel_timer(D.loop, c->quiet_timer);
	c->quiet_timer = 0;
	loop_add_timer(D.loop, 0, settle, NULL);
}

/*
 * Half-closes once the daemon is quiet: it has read all the client wrote,
 * sent all it queued, finished its streams (which it produces only as the
 * client reads: flow control) and has no request waiting on the pen.
 * Closing earlier would have the daemon read the requests and the end of
 * input at once, so nothing would ever stream.  Re-checked on every round
 * of the loop (0 ms timers run after the round's I/O), not after a sleep.
 */
static void quiet_check(void *ud)
{
	struct client_side *c = ud;
	struct client *cl = D.ctl->clients;
	int unread = 0;

	c->quiet_timer = 0;
	if (c->done)
		return;
	if (cl) {
		c->seen_server = true;
		if (!cl->dead && ioctl(cl->fd, FIONREAD, &unread) < 0)
			unread = 0;
		if (!cl->dead && (unread > 0 || cl->streams || cl->n_pending ||
		                  cl->out_off < cl->out_len)) {
			c->quiet_timer = loop_add_timer(D.loop, 0, quiet_check, c);
			return;
		}
	} else if (!c->seen_server) {
		/* Not accepted yet. */
		c->quiet_timer = loop_add_timer(D.loop, 0, quiet_check, c);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	c->half_closed = true;
}

static void client_io(void *ud, int fd, unsigned events)
{
	struct client_side *c = ud;

	if ((events & LOOP_OUT) && !c->all_written) {
		while (c->out_off < c->out_len) {
			ssize_t n = send(fd, c->out + c->out_off, c->out_len - c->out_off,
			                 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				c->out_off += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			/* The daemon hung up on us (EPIPE): no more to write. */
			c->out_off = c->out_len;
		}
		if (c->out_off == c->out_len && !c->all_written) {
			c->all_written = true;
			loop_mod_fd(D.loop, fd, LOOP_IN);
			c->quiet_timer = loop_add_timer(D.loop, 0, quiet_check, c);
		}
	}
	if (events & (LOOP_IN | LOOP_ERR)) {
		uint8_t buf[64 << 10];
		for (;;) {
			ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
			if (n > 0) {
				pl_frame_decoder_feed(&c->dec, buf, (size_t)n);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			finish(c); /* EOF or reset: the daemon hung up */
			return;
		}
	}
}

static void connect_client(struct client_side *c, bool as_nobody)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	bool switched = false;
	int rc, err;

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(c->fd >= 0, "socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", D.cfg.socket_path);
	/* SO_PEERCRED records who connected, so only connect() runs as
	 * nobody. */
	if (as_nobody && geteuid() == 0) {
		FUZZ_CHECK(setegid(NOBODY) == 0 && seteuid(NOBODY) == 0,
		           "becoming nobody: %s", strerror(errno));
		switched = true;
	}
	rc = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
	err = errno;
	if (switched)
		FUZZ_CHECK(seteuid(0) == 0 && setegid(0) == 0, "back to root: %s",
		           strerror(errno));
	if (rc < 0 && err == EACCES && switched) {
		/* A folder above ours that nobody cannot enter: test as root. */
		static bool told;
		if (!told)
			fprintf(stderr, "fuzz_ctl: nobody cannot reach %s; clients "
			        "connect as root only\n", sa.sun_path);
		told = true;
		rc = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
		err = errno;
	}
	FUZZ_CHECK(rc == 0, "connect %s: %s", sa.sun_path, strerror(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct client_side c;
	struct ctl *ctl;

	if (size == 0 || size > FUZZ_MAX_INPUT)
		return 0;
	if (!D.loop)
		start_daemon();
	if (would_attach_a_device(data + 1, size - 1))
		return -1; /* not into the corpus either */
	pen_attach();
	fakepen_reset_presets(&pen);
	/* Responses up to the daemon's whole queue bound; allocated once, as
	 * mapping 4 MiB per input would cost more than the input. */
	if (!dec_buf)
		dec_buf = malloc(PL_FRAME_RAW_LEN(CTL_QUEUE_MAX));
	FUZZ_CHECK(dec_buf != NULL, "out of memory");
	memset(&c, 0, sizeof c);
	c.out = data + 1;
	c.out_len = size - 1;
	pl_frame_decoder_init(&c.dec, dec_buf, PL_FRAME_RAW_LEN(CTL_QUEUE_MAX),
	                      on_response, NULL, &c);
	connect_client(&c, data[0] & 1);
	FUZZ_CHECK(loop_add_fd(D.loop, c.fd, LOOP_IN | LOOP_OUT, client_io, &c) == 0,
	           "watching the client");
	c.stop_timer = loop_add_timer(D.loop, HANGUP_MS, hangup_overdue, &c);
	do
		FUZZ_CHECK(loop_run(D.loop) == 0, "loop_run: %s", strerror(errno));
	while (!c.done || D.ctl->reqs);
	loop_cancel_timer(D.loop, c.stop_timer);

	ctl = D.ctl;
	FUZZ_CHECK(ctl->n_clients == 0 && ctl->clients == NULL,
	           "%u clients left after the client hung up", ctl->n_clients);
	FUZZ_CHECK(ctl->graveyard == NULL, "a dead client was not freed");
	FUZZ_CHECK(ctl->reqs == NULL, "a request outlived its client");
	FUZZ_CHECK(!ctl->listen_paused, "the daemon stopped listening");
	FUZZ_CHECK(c.dec.stats.dropped[PL_FRAME_DROP_CRC] == 0 &&
	               c.dec.stats.dropped[PL_FRAME_DROP_COBS] == 0 &&
	               c.dec.stats.dropped[PL_FRAME_DROP_SHORT] == 0 &&
	               c.dec.stats.dropped[PL_FRAME_DROP_OVERSIZE] == 0,
	           "the daemon sent broken frames");
	return 0;
}
