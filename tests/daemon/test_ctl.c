/*
 * The control socket, in process: the real ctl, loop, archive and pens on a
 * temporary socket, with test clients served by the same loop.  Bad input
 * (garbage, oversized frames, unknown operations), a client that stops
 * reading, refusals and their audit entries, and - with penemu, when it is
 * built next to this test - the pen operations and flow-controlled streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "ctl_int.h"
#include "penlink_wire.h"
#include "log.h"

/* ------------------------------------------------------------------ fixture */

static struct daemon D;
static char tmpdir[256];
static pid_t emu_pid = -1;
static int emu_out = -1;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/pl-ctl-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	memset(&D, 0, sizeof D);
	config_defaults(&D.cfg);
	/* A folder that does not exist yet: ctl_start creates it. */
	snprintf(D.cfg.socket_path, sizeof D.cfg.socket_path, "%.64s/run/ctl.sock",
	         tmpdir);
	snprintf(D.cfg.db_path, sizeof D.cfg.db_path, "%.64s/archive.db", tmpdir);
	D.cfg.socket_group[0] = 0;
	D.cfg.timeout_ms = 500;
	D.cfg.handshake_ms = 5000;
	D.loop = loop_new();
	if (!D.loop)
		return -1;
	if (archive_open(D.cfg.db_path, &D.archive))
		return -1;
	D.pens = pens_new(&D);
	if (!D.pens)
		return -1;
	return ctl_start(&D, &D.ctl) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	ctl_stop(D.ctl);
	D.ctl = NULL;
	pens_free(D.pens);
	D.pens = NULL;
	if (emu_pid > 0) {
		kill(emu_pid, SIGTERM);
		waitpid(emu_pid, NULL, 0);
		emu_pid = -1;
	}
	if (emu_out >= 0) {
		close(emu_out);
		emu_out = -1;
	}
	archive_close(D.archive);
	D.archive = NULL;
	loop_free(D.loop);
	D.loop = NULL;
	config_free(&D.cfg);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ test clients */

struct tc {
	int fd;
	bool deaf;          /* never reads */
	bool eof;
	bool watching;
	size_t read_chunk;  /* bytes per wake-up (a slow reader reads little) */
	struct pl_frame_decoder dec;
	uint8_t *dbuf;
	Plctl__Response **r;
	size_t n, cap;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	struct client *srv; /* the server's side, while connected */
	size_t srv_max_queued;
};

static void tc_frame(void *ctx, uint8_t flags, const uint8_t *p, size_t len)
{
	(void)flags;
	struct tc *t = ctx;
	Plctl__Response *r = plctl__response__unpack(NULL, len, p);
	if (!r)
		fail_msg("the daemon sent a frame that is not a Response");
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->r = realloc(t->r, t->cap * sizeof *t->r);
		assert_non_null(t->r);
	}
	t->r[t->n++] = r;
}

static void tc_update(struct tc *t);

static void tc_io(void *ud, int fd, unsigned events)
{
	struct tc *t = ud;
	if ((events & LOOP_OUT) && t->out_off < t->out_len) {
		ssize_t n = send(fd, t->out + t->out_off, t->out_len - t->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			t->out_off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			t->out_off = t->out_len; /* the daemon hung up */
	}
	if ((events & (LOOP_IN | LOOP_ERR)) && !t->deaf) {
		uint8_t buf[64 << 10];
		size_t want = t->read_chunk && t->read_chunk < sizeof buf
		                  ? t->read_chunk
		                  : sizeof buf;
		ssize_t n = recv(fd, buf, want, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			t->eof = true;
		else if (n > 0)
			pl_frame_decoder_feed(&t->dec, buf, (size_t)n);
	}
	tc_update(t);
}

static void tc_update(struct tc *t)
{
	unsigned ev = (t->deaf || t->eof ? 0 : LOOP_IN) |
	              (t->out_off < t->out_len && !t->eof ? LOOP_OUT : 0);
	if (!ev) {
		if (t->watching)
			loop_del_fd(D.loop, t->fd);
		t->watching = false;
		return;
	}
	if (!t->watching) {
		assert_int_equal(loop_add_fd(D.loop, t->fd, ev, tc_io, t), 0);
		t->watching = true;
	} else {
		loop_mod_fd(D.loop, t->fd, ev);
	}
}

static struct tc *tc_connect(void)
{
	struct tc *t = calloc(1, sizeof *t);
	assert_non_null(t);
	t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(t->fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%.107s", D.cfg.socket_path);
	assert_int_equal(connect(t->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	size_t cap = PL_FRAME_RAW_LEN(4u << 20);
	t->dbuf = malloc(cap);
	assert_non_null(t->dbuf);
	pl_frame_decoder_init(&t->dec, t->dbuf, cap, tc_frame, NULL, t);
	tc_update(t);
	return t;
}

static void tc_close(struct tc *t)
{
	if (!t)
		return;
	if (t->watching)
		loop_del_fd(D.loop, t->fd);
	close(t->fd);
	for (size_t i = 0; i < t->n; i++)
		plctl__response__free_unpacked(t->r[i], NULL);
	free(t->r);
	free(t->out);
	free(t->dbuf);
	free(t);
}

static void tc_raw(struct tc *t, const void *data, size_t len)
{
	if (t->out_cap - t->out_len < len) {
		size_t cap = t->out_cap ? t->out_cap : 4096;
		while (cap - t->out_len < len)
			cap *= 2;
		t->out = realloc(t->out, cap);
		assert_non_null(t->out);
		t->out_cap = cap;
	}
	memcpy(t->out + t->out_len, data, len);
	t->out_len += len;
	tc_update(t);
}

static void tc_payload(struct tc *t, const uint8_t *p, size_t len)
{
	size_t cap = PL_FRAME_ENCODED_MAX(len);
	uint8_t *f = malloc(cap);
	assert_non_null(f);
	size_t n = pl_frame_encode(p, len, 0, f, cap);
	assert_true(n > 0);
	tc_raw(t, f, n);
	free(f);
}

static void tc_send(struct tc *t, const Plctl__Request *rq)
{
	size_t len = plctl__request__get_packed_size(rq);
	uint8_t *p = malloc(len ? len : 1);
	assert_non_null(p);
	plctl__request__pack(rq, p);
	tc_payload(t, p, len);
	free(p);
}

/* The nth (0-based) response with this id, or NULL. */
static Plctl__Response *tc_get(struct tc *t, uint32_t id, size_t nth)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i]->id == id && nth-- == 0)
			return t->r[i];
	return NULL;
}

static size_t tc_count(struct tc *t, uint32_t id)
{
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++)
		k += t->r[i]->id == id;
	return k;
}

static Plctl__Response *tc_last(struct tc *t, uint32_t id)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i]->id == id && t->r[i]->last)
			return t->r[i];
	return NULL;
}

/* ------------------------------------------------------------------ running the loop */

struct waiter {
	bool (*pred)(void *);
	void *ud;
	int64_t deadline;
	bool ok;
	void (*each)(void);
};

static void waiter_tick(void *ud)
{
	struct waiter *w = ud;
	if (w->each)
		w->each();
	if (w->pred(w->ud)) {
		w->ok = true;
		loop_stop(D.loop);
		return;
	}
	if (now_ms() > w->deadline) {
		loop_stop(D.loop);
		return;
	}
	loop_add_timer(D.loop, 2, waiter_tick, w);
}

/* A deadline timeout_ms from now, ten times further under a memory checker
 * (PL_TEST_WRAPPER, see tests/wrap.sh), which slows everything 20-50x: the
 * bounds are there to end a hung test, not to time a healthy one. */
static int64_t deadline_in(int timeout_ms)
{
	const char *wrap = getenv("PL_TEST_WRAPPER");
	return now_ms() + (int64_t)timeout_ms * (wrap && *wrap ? 10 : 1);
}

static bool run_until(bool (*pred)(void *), void *ud, int timeout_ms)
{
	struct waiter w = {pred, ud, deadline_in(timeout_ms), false, NULL};
	loop_add_timer(D.loop, 0, waiter_tick, &w);
	assert_int_equal(loop_run(D.loop), 0);
	return w.ok;
}

struct want_last { struct tc *t; uint32_t id; };

static bool has_last(void *ud)
{
	struct want_last *w = ud;
	return tc_last(w->t, w->id) != NULL;
}

static Plctl__Response *wait_last(struct tc *t, uint32_t id, int timeout_ms)
{
	struct want_last w = {t, id};
	if (!run_until(has_last, &w, timeout_ms))
		fail_msg("no final response to request %u within %d ms", id,
		         timeout_ms);
	return tc_last(t, id);
}

struct want_n { struct tc *t; uint32_t id; size_t n; };

static bool has_n(void *ud)
{
	struct want_n *w = ud;
	return tc_count(w->t, w->id) >= w->n;
}

static void wait_n(struct tc *t, uint32_t id, size_t n, int timeout_ms)
{
	struct want_n w = {t, id, n};
	if (!run_until(has_n, &w, timeout_ms))
		fail_msg("%zu of %zu responses to request %u within %d ms",
		         tc_count(t, id), n, id, timeout_ms);
}

static bool is_eof(void *ud)
{
	return ((struct tc *)ud)->eof;
}

static Plctl__Response *expect_error(struct tc *t, uint32_t id, int code,
                                     const char *text)
{
	Plctl__Response *r = wait_last(t, id, 3000);
	if (r->body_case != PLCTL__RESPONSE__BODY_ERROR)
		fail_msg("request %u: expected error %d, got body %d", id, code,
		         r->body_case);
	if (r->error->code != code)
		fail_msg("request %u: expected error %d, got %d (%s)", id, code,
		         r->error->code, r->error->message);
	if (text && !strstr(r->error->message, text))
		fail_msg("request %u: \"%s\" lacks \"%s\"", id, r->error->message,
		         text);
	return r;
}

/* ------------------------------------------------------------------ requests */

static void send_hello(struct tc *t, uint32_t id)
{
	Plctl__Hello h = PLCTL__HELLO__INIT;
	h.version = 1;
	h.client = "test_ctl";
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = id;
	rq.op_case = PLCTL__REQUEST__OP_HELLO;
	rq.hello = &h;
	tc_send(t, &rq);
}

static void expect_hello(struct tc *t, uint32_t id)
{
	send_hello(t, id);
	Plctl__Response *r = wait_last(t, id, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_HELLO_REPLY);
}

/* Connects and completes one round trip, so the server's side is known
 * (the newest client is first in its list). */
static struct tc *tc_open(void)
{
	struct tc *t = tc_connect();
	expect_hello(t, 1);
	t->srv = D.ctl->clients;
	assert_non_null(t->srv);
	return t;
}

static void send_monitor(struct tc *t, uint32_t id)
{
	Plctl__Monitor m = PLCTL__MONITOR__INIT;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = id;
	rq.op_case = PLCTL__REQUEST__OP_MONITOR;
	rq.monitor = &m;
	tc_send(t, &rq);
}

static void send_audit(struct tc *t, uint32_t id)
{
	Plctl__Audit a = PLCTL__AUDIT__INIT;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = id;
	rq.op_case = PLCTL__REQUEST__OP_AUDIT;
	rq.audit = &a;
	tc_send(t, &rq);
}

/* Pushes s, or n presets cycling through s's when n > 0 (more than a set
 * can hold). */
static void send_push_n(struct tc *t, uint32_t id, const char *serial,
                        uint32_t expected, const struct pl_preset_set *s,
                        bool confirm, size_t n)
{
	Pl__Preset w[2 * PL_MAX_PRESETS], *pw[2 * PL_MAX_PRESETS];
	if (!n)
		n = s->count;
	assert_true(n <= 2 * PL_MAX_PRESETS && s->count > 0);
	for (size_t i = 0; i < n; i++) {
		const struct pl_preset *p = &s->presets[i % s->count];
		pl__preset__init(&w[i]);
		w[i].id = n == s->count ? p->id : (uint32_t)i + 1;
		w[i].name = (char *)p->name;
		w[i].depth_um = p->depth_um;
		w[i].speed_level = p->speed_level;
		w[i].area = (Pl__Area)p->area;
		w[i].needle_count = p->needle_count;
		pw[i] = &w[i];
	}
	Plctl__PushPresets pp = PLCTL__PUSH_PRESETS__INIT;
	pp.serial = (char *)serial;
	pp.expected_revision = expected;
	pp.n_presets = n;
	pp.presets = pw;
	pp.confirm = confirm;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = id;
	rq.op_case = PLCTL__REQUEST__OP_PUSH_PRESETS;
	rq.push_presets = &pp;
	tc_send(t, &rq);
}

static void send_push(struct tc *t, uint32_t id, const char *serial,
                      uint32_t expected, const struct pl_preset_set *s,
                      bool confirm)
{
	send_push_n(t, id, serial, expected, s, confirm, 0);
}

static struct pl_preset_set three_presets(uint32_t deep)
{
	struct pl_preset_set s;
	memset(&s, 0, sizeof s);
	s.count = 3;
	s.presets[0] = (struct pl_preset){.id = 1, .name = "Forehead",
	                                  .depth_um = 500, .speed_level = 3,
	                                  .area = PL_AREA_FOREHEAD,
	                                  .needle_count = 12};
	s.presets[1] = (struct pl_preset){.id = 2, .name = "Cheek",
	                                  .depth_um = 1000, .speed_level = 2,
	                                  .area = PL_AREA_CHEEK,
	                                  .needle_count = 12};
	s.presets[2] = (struct pl_preset){.id = 3, .name = "Scar",
	                                  .depth_um = deep, .speed_level = 1,
	                                  .area = PL_AREA_BODY_SCAR,
	                                  .needle_count = 36};
	return s;
}

/* ------------------------------------------------------------------ tests */

static void test_socket_file(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(stat(D.cfg.socket_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);

	/* A second server on a live socket refuses and leaves it alone. */
	struct ctl *second = NULL;
	assert_int_equal(ctl_start(&D, &second), PL_ERR_PORT_BUSY);
	assert_null(second);
	assert_non_null(strstr(pl_error_message(),
	                       "another penlinkd is already serving"));
	struct tc *t = tc_open();
	tc_close(t);

	/* Stopping removes the file; a stale one (nobody listening) is
	 * replaced. */
	ctl_stop(D.ctl);
	D.ctl = NULL;
	assert_int_equal(stat(D.cfg.socket_path, &st), -1);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%.107s", D.cfg.socket_path);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	close(s);
	assert_int_equal(stat(D.cfg.socket_path, &st), 0);
	assert_int_equal(ctl_start(&D, &D.ctl), PL_OK);
	t = tc_open();
	tc_close(t);

	/* Something that is not a socket is never removed. */
	ctl_stop(D.ctl);
	D.ctl = NULL;
	int fd = open(D.cfg.socket_path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ctl_start(&D, &D.ctl), PL_ERR_ARG);
	assert_non_null(strstr(pl_error_message(),
	                       "exists and is not a socket; not removing it"));
	assert_int_equal(stat(D.cfg.socket_path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(D.cfg.socket_path);
	D.cfg.socket_mode = 0600;
	assert_int_equal(ctl_start(&D, &D.ctl), PL_OK);
	assert_int_equal(stat(D.cfg.socket_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_hello_and_list(void **state)
{
	(void)state;
	struct tc *t = tc_connect();
	send_hello(t, 7);
	Plctl__Response *r = wait_last(t, 7, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_HELLO_REPLY);
	assert_int_equal(r->hello_reply->version, 1);
	assert_int_equal(r->hello_reply->uid, getuid());
	assert_string_equal(r->hello_reply->daemon, "penlinkd " PL_VERSION_STRING);
	/* The daemon's own user may do everything. */
	assert_true(r->hello_reply->may_read_logs);
	assert_true(r->hello_reply->may_change_presets);

	Plctl__ListPens lp = PLCTL__LIST_PENS__INIT;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 8;
	rq.op_case = PLCTL__REQUEST__OP_LIST_PENS;
	rq.list_pens = &lp;
	tc_send(t, &rq);
	r = wait_last(t, 8, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_PENS);
	assert_int_equal(r->pens->n_pens, 0);

	/* Pen operations with no pen: not found, with a reason. */
	Plctl__GetInfo gi = PLCTL__GET_INFO__INIT;
	rq.id = 9;
	rq.op_case = PLCTL__REQUEST__OP_GET_INFO;
	rq.get_info = &gi;
	tc_send(t, &rq);
	expect_error(t, 9, PL_ERR_NOT_FOUND, NULL);
	gi.serial = "PEN-NOPE";
	rq.id = 10;
	tc_send(t, &rq);
	expect_error(t, 10, PL_ERR_NOT_FOUND, NULL);

	/* Sessions of an empty archive: one empty, final list. */
	Plctl__ListSessions ls = PLCTL__LIST_SESSIONS__INIT;
	rq.id = 11;
	rq.op_case = PLCTL__REQUEST__OP_LIST_SESSIONS;
	rq.list_sessions = &ls;
	tc_send(t, &rq);
	r = wait_last(t, 11, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_SESSIONS);
	assert_int_equal(r->sessions->n_sessions, 0);
	assert_int_equal(tc_count(t, 11), 1);

	/* A session is named by its pen's serial and its UUID: without the
	 * serial, with a UUID that is not one, and one that is not archived. */
	Plctl__ShowSession ss = PLCTL__SHOW_SESSION__INIT;
	ss.uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
	rq.id = 12;
	rq.op_case = PLCTL__REQUEST__OP_SHOW_SESSION;
	rq.show_session = &ss;
	tc_send(t, &rq);
	expect_error(t, 12, PL_ERR_ARG, "ShowSession needs the pen's serial");
	ss.serial = "PEN-X";
	ss.uuid = "not-a-uuid";
	rq.id = 15;
	tc_send(t, &rq);
	expect_error(t, 15, PL_ERR_ARG, "is not a UUID");
	ss.uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
	rq.id = 13;
	tc_send(t, &rq);
	expect_error(t, 13, PL_ERR_NOT_FOUND,
	             "no archived session PEN-X/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

	/* CSV export of nothing: the header, then the end. */
	Plctl__ExportSessions ex = PLCTL__EXPORT_SESSIONS__INIT;
	rq.id = 14;
	rq.op_case = PLCTL__REQUEST__OP_EXPORT_SESSIONS;
	rq.export_sessions = &ex;
	tc_send(t, &rq);
	r = wait_last(t, 14, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_EXPORT);
	assert_true(tc_count(t, 14) >= 2);
	Plctl__Response *first = tc_get(t, 14, 0);
	assert_int_equal(first->body_case, PLCTL__RESPONSE__BODY_EXPORT);
	assert_true(first->export->data.len > 10);
	assert_memory_equal(first->export->data.data, "serial,uuid,", 12);
	tc_close(t);
}

static void test_unknown_op(void **state)
{
	(void)state;
	struct tc *t = tc_connect();
	/* No operation at all. */
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 9;
	tc_send(t, &rq);
	expect_error(t, 9, PL_ERR_UNSUPPORTED, "unknown operation");

	/* A newer client's operation (field 99): protobuf skips it, so the
	 * request arrives with no operation and keeps its id. */
	uint8_t buf[64];
	rq.id = 10;
	size_t n = plctl__request__pack(&rq, buf);
	buf[n++] = 0x9a; /* field 99, length-delimited */
	buf[n++] = 0x06;
	buf[n++] = 0x00; /* empty message */
	tc_payload(t, buf, n);
	expect_error(t, 10, PL_ERR_UNSUPPORTED, "control protocol version 1");

	/* Id 0 is reserved. */
	send_hello(t, 0);
	expect_error(t, 0, PL_ERR_ARG, "request ids must not be 0");

	/* Still serving. */
	expect_hello(t, 11);
	tc_close(t);
}

static void test_garbage(void **state)
{
	(void)state;
	struct tc *t = tc_open();
	struct tc *other = tc_open();

	/* Line noise is forgiven up to a point, silently. */
	for (unsigned i = 0; i < CTL_DROPS_FORGIVEN; i++)
		tc_raw(t, "xyz\0", 4);
	expect_hello(t, 2);
	assert_int_equal(tc_count(t, 0), 0);
	assert_int_equal(t->srv->drops, CTL_DROPS_FORGIVEN);

	/* Then each bad frame is answered. */
	tc_raw(t, "xyz\0", 4);
	Plctl__Response *r = expect_error(t, 0, PL_ERR_ARG, "malformed request");
	assert_non_null(strstr(r->error->message, "frames dropped"));

	/* An intact frame that is not a request. */
	const uint8_t junk[] = {0xff, 0xff, 0xff};
	tc_payload(t, junk, sizeof junk);
	wait_n(t, 0, 2, 3000);
	r = tc_get(t, 0, 1);
	assert_int_equal(r->error->code, PL_ERR_ARG);
	assert_string_equal(r->error->message,
	                    "malformed request: a frame of 3 bytes that is not a "
	                    "control request");
	expect_hello(t, 3);

	/* Repeated offences end the connection. */
	for (unsigned i = 0; i < CTL_MAX_OFFENCES; i++)
		tc_payload(t, junk, sizeof junk);
	assert_true(run_until(is_eof, t, 3000));
	/* Each offence was answered, the last one too. */
	assert_int_equal(tc_count(t, 0), CTL_MAX_OFFENCES);

	/* The other client never noticed. */
	expect_hello(other, 5);
	assert_int_equal(D.ctl->n_clients, 1);
	tc_close(t);
	tc_close(other);
}

static void test_oversized(void **state)
{
	(void)state;
	struct tc *t = tc_open();
	size_t len = CTL_MAX_REQUEST + 100;
	uint8_t *big = malloc(len);
	assert_non_null(big);
	memset(big, 0x5a, len);
	tc_payload(t, big, len);
	free(big);
	expect_error(t, 0, PL_ERR_ARG, "request larger than the 64 KiB budget dropped");
	/* Dropped as it arrived: the decoder never held more than its limit,
	 * and the connection goes on. */
	expect_hello(t, 2);
	/* The largest request allowed still gets through (an unknown field
	 * fills it: the daemon ignores it). */
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 3;
	uint8_t head[16];
	size_t hn = plctl__request__pack(&rq, head);
	size_t body = CTL_MAX_REQUEST - hn - 6;
	uint8_t *p = malloc(CTL_MAX_REQUEST);
	memcpy(p, head, hn);
	size_t k = hn;
	p[k++] = 0xfa; /* field 1000, length-delimited: 0x1f42 */
	p[k++] = 0x3e;
	size_t v = body;
	while (v >= 0x80) {
		p[k++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[k++] = (uint8_t)v;
	memset(p + k, 'a', body);
	k += body;
	assert_true(k <= CTL_MAX_REQUEST);
	tc_payload(t, p, k);
	free(p);
	expect_error(t, 3, PL_ERR_UNSUPPORTED, "unknown operation");
	tc_close(t);
}

static bool srv_queue_sample_target;
static struct tc *sampled;
static void sample_queue(void)
{
	if (!srv_queue_sample_target || !sampled || !sampled->srv ||
	    sampled->eof)
		return;
	size_t q = sampled->srv->out_len - sampled->srv->out_off;
	if (q > sampled->srv_max_queued)
		sampled->srv_max_queued = q;
}

struct flood { struct tc *fast; size_t events; };

static bool fast_has_all(void *ud)
{
	struct flood *f = ud;
	return tc_count(f->fast, 50) >= f->events + 1; /* + the Ack */
}

static void test_slow_client_dropped(void **state)
{
	(void)state;
	struct tc *slow = tc_open();
	struct tc *fast = tc_open();
	send_monitor(slow, 40);
	wait_n(slow, 40, 1, 3000);
	Plctl__Response *ack = tc_get(slow, 40, 0);
	assert_int_equal(ack->body_case, PLCTL__RESPONSE__BODY_ACK);
	assert_false(ack->last);
	send_monitor(fast, 50);
	wait_n(fast, 50, 1, 3000);

	/* From now on the slow client reads nothing. */
	slow->deaf = true;
	tc_update(slow);

	char text[8192];
	memset(text, 'e', sizeof text - 1);
	text[sizeof text - 1] = 0;
	struct flood f = {fast, 0};
	int rounds = 0;
	while (D.ctl->n_clients == 2 && rounds++ < 400) {
		for (int i = 0; i < 32; i++) {
			Plctl__Event ev;
			event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_ERROR, "PEN-X");
			ev.message = text;
			ev.done = f.events;
			ctl_broadcast(D.ctl, &ev);
			f.events++;
		}
		/* The reading client keeps up: it is never dropped. */
		if (!run_until(fast_has_all, &f, 5000))
			fail_msg("the reading client got %zu of %zu events",
			         tc_count(fast, 50) - 1, f.events);
	}
	assert_int_equal(D.ctl->n_clients, 1);
	/* It got a bound's worth beyond what the socket holds, not the
	 * whole flood. */
	assert_true(f.events * sizeof text > CTL_QUEUE_MAX);

	/* Its events came in order, none lost. */
	for (size_t i = 0; i < f.events; i++) {
		Plctl__Response *r = tc_get(fast, 50, i + 1);
		assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_EVENT);
		assert_int_equal(r->event->done, i);
		assert_false(r->last);
	}
	expect_hello(fast, 51);

	/* The slow one finds its connection closed once it reads. */
	slow->deaf = false;
	tc_update(slow);
	assert_true(run_until(is_eof, slow, 5000));
	assert_true(tc_count(slow, 40) > 1);
	assert_true(tc_count(slow, 40) < f.events + 1);
	tc_close(slow);
	tc_close(fast);
}

static void test_push_policy_and_audit(void **state)
{
	(void)state;
	/* A capped group the caller (root or the daemon's user) is in: caps
	 * never apply to them, confirmation does. */
	struct tc *t = tc_open();
	struct pl_preset_set s = three_presets(2000);
	/* The policy needs the pen's current set, so with no pen attached
	 * both are refused for that (tests/daemon/test_access.c and
	 * test_pen_operations cover the policy itself). */
	send_push(t, 2, "", 0, &s, false);
	Plctl__Response *r = expect_error(t, 2, PL_ERR_NOT_FOUND, "no pen");
	send_push(t, 3, "", 0, &s, true);
	expect_error(t, 3, PL_ERR_NOT_FOUND, NULL);

	/* Not a preset set at all. */
	struct pl_preset_set few = three_presets(500);
	send_push_n(t, 4, "", 0, &few, false, PL_MAX_PRESETS + 1);
	expect_error(t, 4, PL_ERR_VALIDATION, "65 presets; a pen holds at most 64");

	/* Every attempt is in the audit trail, newest first. */
	send_audit(t, 5);
	r = wait_last(t, 5, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_AUDIT);
	assert_int_equal(r->audit->n_entries, 3);
	Plctl__AuditEntry **e = r->audit->entries;
	for (int i = 0; i < 3; i++) {
		assert_string_equal(e[i]->action, "presets.push");
		assert_int_equal(e[i]->uid, getuid());
		assert_true(e[i]->utc_ms > 0);
	}
	assert_non_null(strstr(e[0]->result, "65 presets"));
	assert_non_null(strstr(e[1]->result, "no pen"));
	assert_non_null(strstr(e[2]->result, "no pen"));
	/* The refused set as a preset file, depths in millimetres. */
	assert_string_equal(e[2]->old_value, "");
	struct pl_preset_set back;
	assert_int_equal(pl_preset_set_from_json(e[2]->new_value, &back), PL_OK);
	assert_int_equal(back.count, 3);
	assert_string_equal(back.presets[2].name, "Scar");
	assert_int_equal(back.presets[2].depth_um, 2000);
	tc_close(t);
}

/* More sessions than a page, several sharing each start time, so pages
 * end in the middle of a tie: every session exactly once, in order. */
static void test_session_list_pages(void **state)
{
	(void)state;
	const size_t total = 2 * CTL_LIST_PAGE + 52;
	uint8_t rec[40];
	for (size_t i = 0; i < total; i++) {
		struct pl_session_info si;
		memset(&si, 0, sizeof si);
		si.id = (uint32_t)i + 1;
		si.seq = (uint32_t)i + 1;
		si.uuid[0] = 0xab;
		si.uuid[14] = (uint8_t)(i >> 8);
		si.uuid[15] = (uint8_t)i;
		memset(rec, 0, sizeof rec);
		snprintf((char *)rec, sizeof rec, "not a record, number %zu", i);
		si.size = sizeof rec;
		pl_sha256(rec, sizeof rec, si.sha256);
		si.start_ms = 1700000000000 + (int64_t)(i / 3) * 1000;
		si.end_ms = si.start_ms + 500;
		si.rtc_time = true;
		assert_int_equal(archive_partial_append(D.archive, "PEN-LOTS", &si, 0,
		                                        rec, sizeof rec),
		                 PL_OK);
		assert_int_equal(archive_commit_session(D.archive, "PEN-LOTS", &si),
		                 PL_OK);
	}
	struct tc *t = tc_open();
	Plctl__ListSessions ls = PLCTL__LIST_SESSIONS__INIT;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 2;
	rq.op_case = PLCTL__REQUEST__OP_LIST_SESSIONS;
	rq.list_sessions = &ls;
	tc_send(t, &rq);
	wait_last(t, 2, 10000);
	assert_int_equal(tc_count(t, 2), 3);
	size_t k = 0;
	for (size_t i = 0; i < 3; i++) {
		Plctl__Response *r = tc_get(t, 2, i);
		assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_SESSIONS);
		assert_int_equal(r->last, i == 2);
		assert_true(r->sessions->n_sessions <= CTL_LIST_PAGE);
		for (size_t j = 0; j < r->sessions->n_sessions; j++, k++) {
			Plctl__ArchivedSession *a = r->sessions->sessions[j];
			assert_int_equal(a->seq, k + 1);
			assert_int_equal(a->uuid.data[15], (uint8_t)k);
			assert_string_equal(a->serial, "PEN-LOTS");
		}
	}
	assert_int_equal(k, total);

	/* since_ms and serial filter. */
	ls.since_ms = 1700000000000 + 10 * 1000;
	rq.id = 3;
	tc_send(t, &rq);
	wait_last(t, 3, 10000);
	k = 0;
	for (size_t i = 0; i < tc_count(t, 3); i++)
		k += tc_get(t, 3, i)->sessions->n_sessions;
	assert_int_equal(k, total - 30);
	ls.since_ms = 0;
	ls.serial = "PEN-OTHER";
	rq.id = 4;
	tc_send(t, &rq);
	Plctl__Response *r = wait_last(t, 4, 10000);
	assert_int_equal(r->sessions->n_sessions, 0);
	tc_close(t);
}

/* Runs in a child that became uid/gid 65534: connects, asks, checks. */
static int unprivileged_client(const char *path, const char *user)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%.107s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa))
		return 10;
	Plctl__ListSessions ls = PLCTL__LIST_SESSIONS__INIT;
	Plctl__Hello h = PLCTL__HELLO__INIT;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	uint8_t pb[256], fb[512];
	rq.id = 1;
	rq.op_case = PLCTL__REQUEST__OP_HELLO;
	rq.hello = &h;
	size_t n = pl_frame_encode(pb, plctl__request__pack(&rq, pb), 0, fb, sizeof fb);
	if (write(fd, fb, n) != (ssize_t)n)
		return 11;
	rq.id = 2;
	rq.op_case = PLCTL__REQUEST__OP_LIST_SESSIONS;
	rq.list_sessions = &ls;
	n = pl_frame_encode(pb, plctl__request__pack(&rq, pb), 0, fb, sizeof fb);
	if (write(fd, fb, n) != (ssize_t)n)
		return 12;

	struct tc t;
	memset(&t, 0, sizeof t);
	uint8_t dbuf[PL_FRAME_RAW_LEN(4096)];
	pl_frame_decoder_init(&t.dec, dbuf, sizeof dbuf, tc_frame, NULL, &t);
	int rc = 0;
	while (!tc_last(&t, 2)) {
		uint8_t b[4096];
		ssize_t k = read(fd, b, sizeof b);
		if (k <= 0) {
			rc = 13;
			goto out;
		}
		pl_frame_decoder_feed(&t.dec, b, (size_t)k);
	}
	Plctl__Response *hr = tc_last(&t, 1);
	if (!hr || hr->body_case != PLCTL__RESPONSE__BODY_HELLO_REPLY ||
	    hr->hello_reply->uid != 65534 || hr->hello_reply->may_read_logs ||
	    hr->hello_reply->may_change_presets) {
		rc = 14;
		goto out;
	}
	Plctl__Response *r = tc_last(&t, 2);
	if (r->body_case != PLCTL__RESPONSE__BODY_ERROR ||
	    r->error->code != PL_ERR_ACCESS) {
		rc = 15;
		goto out;
	}
	char want[256];
	snprintf(want, sizeof want,
	         "permission denied: %s is not in group penlink-logs (needed to "
	         "read session logs)",
	         user);
	if (strcmp(r->error->message, want)) {
		fprintf(stderr, "got \"%s\"\nwant \"%s\"\n", r->error->message, want);
		rc = 16;
	}
out:
	/* The child's responses, freed so memory checkers see no leak. */
	for (size_t i = 0; i < t.n; i++)
		plctl__response__free_unpacked(t.r[i], NULL);
	free(t.r);
	return rc;
}

static pid_t child;
static int child_status;
static bool child_done(void *ud)
{
	(void)ud;
	return waitpid(child, &child_status, WNOHANG) == child;
}

static void test_refused_and_audited(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip(); /* needs to become another user */
	struct passwd *pw = getpwuid(65534);
	char user[64];
	snprintf(user, sizeof user, "%s", pw ? pw->pw_name : "65534");
	/* The test's own folders are private; open them to the child. */
	chmod(tmpdir, 0755);
	chmod(D.cfg.socket_path, 0666);
	fflush(NULL);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(20);
		_exit(unprivileged_client(D.cfg.socket_path, user));
	}
	assert_true(run_until(child_done, NULL, 5000));
	assert_true(WIFEXITED(child_status));
	assert_int_equal(WEXITSTATUS(child_status), 0);

	struct tc *t = tc_open();
	send_audit(t, 2);
	Plctl__Response *r = wait_last(t, 2, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_AUDIT);
	assert_int_equal(r->audit->n_entries, 1);
	Plctl__AuditEntry *e = r->audit->entries[0];
	assert_string_equal(e->action, "denied:sessions.list");
	assert_int_equal(e->uid, 65534);
	assert_string_equal(e->user, user);
	assert_non_null(strstr(e->result, "permission denied: "));
	assert_non_null(strstr(e->result, "penlink-logs"));
	tc_close(t);
}

/* ------------------------------------------------------------------ with penemu */

static bool find_penemu(char *out, size_t len)
{
	const char *env = getenv("PENEMU");
	if (env && access(env, X_OK) == 0) {
		snprintf(out, len, "%s", env);
		return true;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	snprintf(out, len, "%s/../firmware-bridge/penemu", dirname(exe));
	return access(out, X_OK) == 0;
}

/* Starts penemu on a pty; returns its port's path in port. */
static bool start_penemu(char *port, size_t len, const char *serial,
                         const char *sessions, const char *bytes)
{
	char bin[PATH_MAX];
	if (!find_penemu(bin, sizeof bin))
		return false;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	emu_pid = fork();
	assert_true(emu_pid >= 0);
	if (emu_pid == 0) {
		/* Not left behind if this test dies. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl(bin, bin, "--pty", "--serial", serial, "--sessions", sessions,
		      "--session-bytes", bytes, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	emu_out = pfd[0];
	size_t k = 0;
	while (k + 1 < len) {
		struct pollfd p = {.fd = emu_out, .events = POLLIN};
		if (poll(&p, 1, 10000) <= 0)
			fail_msg("penemu printed no port");
		char c;
		if (read(emu_out, &c, 1) != 1)
			fail_msg("penemu exited");
		if (c == '\n')
			break;
		port[k++] = c;
	}
	port[k] = 0;
	return true;
}

static void send_attach(struct tc *t, uint32_t id, const char *path)
{
	Plctl__Attach a = PLCTL__ATTACH__INIT;
	a.path = (char *)path;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = id;
	rq.op_case = PLCTL__REQUEST__OP_ATTACH;
	rq.attach = &a;
	tc_send(t, &rq);
}

struct want_event { struct tc *t; uint32_t id; Plctl__EventKind kind; size_t n; };

static size_t count_events(struct tc *t, uint32_t id, Plctl__EventKind kind)
{
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++)
		k += t->r[i]->id == id &&
		     t->r[i]->body_case == PLCTL__RESPONSE__BODY_EVENT &&
		     t->r[i]->event->kind == kind;
	return k;
}

static bool has_events(void *ud)
{
	struct want_event *w = ud;
	return count_events(w->t, w->id, w->kind) >= w->n;
}

static void wait_events(struct tc *t, uint32_t id, Plctl__EventKind kind,
                        size_t n, int timeout_ms)
{
	struct want_event w = {t, id, kind, n};
	if (!run_until(has_events, &w, timeout_ms))
		fail_msg("%zu of %zu events of kind %d within %d ms",
		         count_events(t, id, kind), n, kind, timeout_ms);
}

struct want_text { struct tc *t; uint32_t id; const char *text; };

static bool has_text(void *ud)
{
	struct want_text *w = ud;
	for (size_t i = 0; i < w->t->n; i++) {
		Plctl__Response *r = w->t->r[i];
		if (r->id == w->id && r->body_case == PLCTL__RESPONSE__BODY_EVENT &&
		    !strcmp(r->event->message, w->text))
			return true;
	}
	return false;
}

static bool out_sent(void *ud)
{
	struct tc *t = ud;
	/* Sent is enough: the daemon reads what came before the hang-up. */
	return t->out_off == t->out_len;
}

static int count_ok_push(void *ud, const struct audit_entry *e)
{
	*(int *)ud += !strcmp(e->action, "presets.push") && !strcmp(e->result, "ok") &&
	              strstr(e->new_value, "0.75") != NULL;
	return 0;
}

static bool second_push_audited(void *ud)
{
	(void)ud;
	int n = 0;
	archive_audit_list(D.archive, 0, 100, count_ok_push, &n);
	return n == 1 && !D.ctl->reqs;
}

static void test_pen_operations(void **state)
{
	(void)state;
	char port[256];
	if (!start_penemu(port, sizeof port, "PEN-CTL1", "2", "20000"))
		skip();
	struct tc *t = tc_open();
	send_monitor(t, 2);
	wait_n(t, 2, 1, 3000);

	send_attach(t, 3, "relative/path");
	expect_error(t, 3, PL_ERR_ARG, "absolute path");
	send_attach(t, 4, tmpdir);
	expect_error(t, 4, PL_ERR_NO_PORT, "is not a serial port (a directory)");
	send_attach(t, 5, port);
	Plctl__Response *r = wait_last(t, 5, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_ACK);
	wait_events(t, 2, PLCTL__EVENT_KIND__EVENT_KIND_PEN_ATTACHED, 1, 10000);
	wait_events(t, 2, PLCTL__EVENT_KIND__EVENT_KIND_SESSION_ARCHIVED, 2, 20000);

	Plctl__GetInfo gi = PLCTL__GET_INFO__INIT;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 6;
	rq.op_case = PLCTL__REQUEST__OP_GET_INFO;
	rq.get_info = &gi;
	tc_send(t, &rq);
	r = wait_last(t, 6, 5000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_INFO);
	assert_string_equal(r->info->serial, "PEN-CTL1");
	assert_int_equal(r->info->depth_max_um, 2500);
	assert_int_equal(r->info->speed_levels, 6);
	assert_int_equal(r->info->n_stroke_rate_hz, 6);

	Plctl__GetPresets gp = PLCTL__GET_PRESETS__INIT;
	gp.serial = "PEN-CTL1";
	rq.id = 7;
	rq.op_case = PLCTL__REQUEST__OP_GET_PRESETS;
	rq.get_presets = &gp;
	tc_send(t, &rq);
	r = wait_last(t, 7, 5000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_PRESETS);
	uint32_t rev = r->presets->revision;

	/* A stale revision is a conflict, and nothing is written. */
	struct pl_preset_set s = three_presets(2000);
	send_push(t, 8, "PEN-CTL1", rev + 7, &s, true);
	expect_error(t, 8, PL_ERR_CONFLICT, "changed since they were read");

	/* The pen's limits (the library's validation) after the policy. */
	s.presets[1].depth_um = 1100;
	send_push(t, 9, "PEN-CTL1", rev, &s, true);
	expect_error(t, 9, PL_ERR_VALIDATION, "1.10 mm");
	s.presets[1].depth_um = 1000;

	/* The clinic's policy compares with what the pen holds: deepening the
	 * 2.00 mm preset needs a confirmation ... */
	s.presets[2].depth_um = 2250;
	send_push(t, 30, "PEN-CTL1", rev, &s, false);
	expect_error(t, 30, PL_ERR_POLICY, "depth 2.25 mm is above 1.50 mm; add --confirm");
	s.presets[2].depth_um = 2000;

	/* ... while leaving it as it is on the pen does not. */
	send_push(t, 10, "PEN-CTL1", rev, &s, false);
	r = wait_last(t, 10, 5000);
	if (r->body_case == PLCTL__RESPONSE__BODY_ERROR)
		fail_msg("push refused: %s", r->error->message);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_PUSHED);
	assert_int_equal(r->pushed->previous_revision, rev);
	assert_true(r->pushed->presets->revision != rev);
	assert_int_equal(r->pushed->presets->n_presets, 3);
	assert_string_equal(r->pushed->presets->presets[2]->name, "Scar");
	assert_int_equal(r->pushed->presets->presets[2]->depth_um, 2000);
	wait_events(t, 2, PLCTL__EVENT_KIND__EVENT_KIND_PRESETS_CHANGED, 1, 3000);

	/* The daemon's configuration decides, and may loosen the library's
	 * default: with confirm_above_mm = 2.0 a 1.75 mm preset goes through
	 * unconfirmed, while 2.25 mm is refused with the policy's own code. */
	assert_int_equal(pl_policy_set(D.cfg.policy, "confirm_above_mm", "2.0"),
	                 PL_OK);
	s.presets[1].depth_um = 1750;
	send_push(t, 31, "PEN-CTL1", 0, &s, false);
	r = wait_last(t, 31, 5000);
	if (r->body_case == PLCTL__RESPONSE__BODY_ERROR)
		fail_msg("push refused: %s", r->error->message);
	assert_int_equal(r->pushed->presets->presets[1]->depth_um, 1750);
	s.presets[2].depth_um = 2250;
	send_push(t, 32, "PEN-CTL1", 0, &s, false);
	expect_error(t, 32, PL_ERR_POLICY,
	             "depth 2.25 mm is above 2.00 mm; add --confirm");
	s.presets[2].depth_um = 2000;

	Plctl__ClockSync cs = PLCTL__CLOCK_SYNC__INIT;
	rq.id = 11;
	rq.op_case = PLCTL__REQUEST__OP_CLOCK_SYNC;
	rq.clock_sync = &cs;
	tc_send(t, &rq);
	r = wait_last(t, 11, 5000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_CLOCK);

	Plctl__Trace tr = PLCTL__TRACE__INIT;
	tr.level = 3;
	rq.id = 12;
	rq.op_case = PLCTL__REQUEST__OP_TRACE;
	rq.trace = &tr;
	tc_send(t, &rq);
	wait_n(t, 12, 1, 3000);
	r = tc_get(t, 12, 0);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_ACK);
	assert_false(r->last);
	/* Trace lines reach the clients tracing that pen (penemu's own lines
	 * come through too). */
	ctl_trace_line(D.ctl, "PEN-OTHER", 2, "not ours");
	ctl_trace_line(D.ctl, "PEN-CTL1", 2, "motor at 100 Hz");
	struct want_text wt = {t, 12, "motor at 100 Hz"};
	assert_true(run_until(has_text, &wt, 3000));
	wt.text = "not ours";
	assert_false(has_text(&wt));
	for (size_t i = 1; i < tc_count(t, 12); i++) {
		r = tc_get(t, 12, i);
		assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_EVENT);
		assert_int_equal(r->event->kind, PLCTL__EVENT_KIND__EVENT_KIND_TRACE);
		assert_string_equal(r->event->serial, "PEN-CTL1");
	}

	/* The audit trail has the push with both sets, and the attach. */
	send_audit(t, 13);
	r = wait_last(t, 13, 3000);
	Plctl__AuditEntry *ok = NULL, *att = NULL;
	unsigned refused = 0;
	for (size_t i = 0; i < r->audit->n_entries; i++) {
		Plctl__AuditEntry *e = r->audit->entries[i];
		if (!strcmp(e->action, "presets.push") && !strcmp(e->result, "ok"))
			ok = e;
		if (!strcmp(e->action, "attach") && !strcmp(e->result, "ok"))
			att = e;
		/* Policy refusals are audited as refusals, with what was tried. */
		if (!strcmp(e->action, "refused:presets.push")) {
			refused++;
			assert_string_equal(e->pen, "PEN-CTL1");
			assert_non_null(strstr(e->result, "2.25 mm is above"));
			assert_non_null(strstr(e->new_value, "2.25"));
		}
	}
	assert_int_equal(refused, 2);
	assert_non_null(ok);
	assert_non_null(att);
	assert_string_equal(ok->pen, "PEN-CTL1");
	/* Old and new values are JSON objects. */
	assert_int_equal(att->new_value[0], '{');
	assert_non_null(strstr(att->new_value, port));
	struct pl_preset_set o, n;
	assert_int_equal(pl_preset_set_from_json(ok->old_value, &o), PL_OK);
	assert_int_equal(pl_preset_set_from_json(ok->new_value, &n), PL_OK);
	assert_int_equal(n.count, 3);
	assert_int_equal(n.presets[2].depth_um, 2000);

	/* A client that hangs up while its requests wait on the pen: the
	 * requests complete without it, and the push is still audited. */
	struct tc *gone = tc_open();
	gp.serial = "";
	rq.id = 2;
	rq.op_case = PLCTL__REQUEST__OP_GET_PRESETS;
	rq.get_presets = &gp;
	tc_send(gone, &rq);
	s.presets[0].depth_um = 750;
	send_push(gone, 3, "", 0, &s, true);
	assert_true(run_until(out_sent, gone, 3000));
	tc_close(gone);
	assert_true(run_until(second_push_audited, NULL, 5000));

	/* Detach: acknowledged, the trace stream ends, the pen is gone. */
	Plctl__Detach dt = PLCTL__DETACH__INIT;
	dt.serial = "PEN-CTL1";
	rq.id = 14;
	rq.op_case = PLCTL__REQUEST__OP_DETACH;
	rq.detach = &dt;
	tc_send(t, &rq);
	r = wait_last(t, 14, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_ACK);
	wait_events(t, 2, PLCTL__EVENT_KIND__EVENT_KIND_PEN_DETACHED, 1, 3000);
	r = wait_last(t, 12, 3000);
	assert_int_equal(r->error->code, PL_ERR_UNPLUGGED);
	assert_int_equal(t->srv->n_traces, 0);
	rq.id = 15;
	tc_send(t, &rq);
	expect_error(t, 15, PL_ERR_NOT_FOUND, NULL);
	tc_close(t);
}

static bool two_clients(void *ud)
{
	(void)ud;
	return D.ctl->n_clients == 2;
}

/* A record larger than the queue bound, to a client that reads slowly:
 * served completely, never more than the bound queued. */
static void test_streams_flow_controlled(void **state)
{
	(void)state;
	char port[256];
	if (!start_penemu(port, sizeof port, "PEN-CTL2", "1", "6000000"))
		skip();
	struct tc *t = tc_open();
	send_monitor(t, 2);
	wait_n(t, 2, 1, 3000);
	send_attach(t, 3, port);
	wait_last(t, 3, 3000);
	wait_events(t, 2, PLCTL__EVENT_KIND__EVENT_KIND_SESSION_ARCHIVED, 1, 60000);

	Plctl__ListSessions ls = PLCTL__LIST_SESSIONS__INIT;
	ls.serial = "PEN-CTL2";
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 4;
	rq.op_case = PLCTL__REQUEST__OP_LIST_SESSIONS;
	rq.list_sessions = &ls;
	tc_send(t, &rq);
	Plctl__Response *r = wait_last(t, 4, 3000);
	assert_int_equal(r->sessions->n_sessions, 1);
	Plctl__ArchivedSession *as = r->sessions->sessions[0];
	assert_true(as->size > CTL_QUEUE_MAX);
	assert_int_equal(as->uuid.len, 16);
	char uuid[37];
	pl_uuid_format(as->uuid.data, uuid);

	struct tc *slow = tc_open();
	slow->read_chunk = 16 << 10;
	sampled = slow;
	srv_queue_sample_target = true;
	Plctl__ShowSession ss = PLCTL__SHOW_SESSION__INIT;
	ss.uuid = uuid;
	ss.serial = "PEN-CTL2";
	rq.id = 5;
	rq.op_case = PLCTL__REQUEST__OP_SHOW_SESSION;
	rq.show_session = &ss;
	tc_send(slow, &rq);
	struct want_last w = {slow, 5};
	struct waiter wt = {has_last, &w, deadline_in(60000), false, sample_queue};
	loop_add_timer(D.loop, 0, waiter_tick, &wt);
	loop_run(D.loop);
	srv_queue_sample_target = false;
	assert_true(wt.ok);
	assert_false(slow->eof);

	uint8_t *rec = malloc(as->size);
	assert_non_null(rec);
	uint64_t off = 0;
	size_t chunks = tc_count(slow, 5);
	for (size_t i = 0; i < chunks; i++) {
		Plctl__Response *c = tc_get(slow, 5, i);
		assert_int_equal(c->body_case, PLCTL__RESPONSE__BODY_RECORD);
		assert_int_equal(c->record->offset, off);
		assert_int_equal(c->record->size, as->size);
		assert_true(c->record->data.len <= CTL_CHUNK);
		assert_int_equal(c->last, i + 1 == chunks);
		memcpy(rec + off, c->record->data.data, c->record->data.len);
		off += c->record->data.len;
	}
	assert_int_equal(off, as->size);
	uint8_t sha[32];
	pl_sha256(rec, as->size, sha);
	assert_memory_equal(sha, as->sha256.data, 32);
	free(rec);
	/* The queue stayed near the low-water mark, far under the bound. */
	assert_true(slow->srv_max_queued > 0);
	assert_true(slow->srv_max_queued <= CTL_LOW_WATER + PL_FRAME_ENCODED_MAX(CTL_CHUNK + 64));

	/* A client that starts a transfer and then takes nothing of it stays
	 * under the queue bound, so it is dropped after a while instead. */
	D.ctl->stall_ms = 300;
	struct tc *stalled = tc_open();
	rq.id = 7;
	rq.op_case = PLCTL__REQUEST__OP_SHOW_SESSION;
	rq.show_session = &ss;
	tc_send(stalled, &rq);
	stalled->deaf = true;
	tc_update(stalled);
	assert_true(run_until(out_sent, stalled, 3000));
	int64_t t0 = now_ms();
	assert_true(run_until(two_clients, NULL, 5000));
	/* At the limit, counted from when the client stopped taking bytes:
	 * not a period later (a timer re-armed for a full period whenever
	 * the client had taken something dropped it at twice the limit). */
	int64_t took = now_ms() - t0;
	assert_true(took >= 250);
	assert_true(took < 450);
	stalled->deaf = false;
	tc_update(stalled);
	assert_true(run_until(is_eof, stalled, 3000));
	assert_null(tc_last(stalled, 7));
	tc_close(stalled);

	/* JSON export: one array, the session's digest in it. */
	Plctl__ExportSessions ex = PLCTL__EXPORT_SESSIONS__INIT;
	ex.format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON;
	rq.id = 6;
	rq.op_case = PLCTL__REQUEST__OP_EXPORT_SESSIONS;
	rq.export_sessions = &ex;
	tc_send(slow, &rq);
	wait_last(slow, 6, 10000);
	size_t total = 0;
	for (size_t i = 0; i < tc_count(slow, 6); i++)
		total += tc_get(slow, 6, i)->export->data.len;
	char *json = malloc(total + 1);
	total = 0;
	for (size_t i = 0; i < tc_count(slow, 6); i++) {
		Plctl__Response *c = tc_get(slow, 6, i);
		if (c->export->data.len)
			memcpy(json + total, c->export->data.data, c->export->data.len);
		total += c->export->data.len;
	}
	json[total] = 0;
	json_object *arr = json_tokener_parse(json);
	assert_non_null(arr);
	assert_true(json_object_is_type(arr, json_type_array));
	assert_int_equal(json_object_array_length(arr), 1);
	json_object *o = json_object_array_get_idx(arr, 0), *v = NULL;
	assert_true(json_object_object_get_ex(o, "sha256", &v));
	char hex[65];
	pl_hex_format(as->sha256.data, 32, hex);
	assert_string_equal(json_object_get_string(v), hex);
	json_object_put(arr);
	free(json);
	tc_close(slow);
	tc_close(t);
}

/* Archives len bytes as a session of serial with uuid (all bytes u). */
static void archive_bytes(const char *serial, uint8_t u, const uint8_t *data,
                          size_t len, int64_t start_ms)
{
	struct pl_session_info info;
	memset(&info, 0, sizeof info);
	memset(info.uuid, u, sizeof info.uuid);
	info.seq = 7;
	info.size = len;
	pl_sha256(data, len, info.sha256);
	info.start_ms = start_ms;
	info.end_ms = start_ms + 1000;
	info.rtc_time = true;
	assert_int_equal(archive_partial_append(D.archive, serial, &info, 0, data,
	                                        len),
	                 PL_OK);
	assert_int_equal(archive_commit_session(D.archive, serial, &info), PL_OK);
}

/* PEN-A's session (300 'A's) and PEN-B's (500 'B's), both with UUID u. */
static uint8_t rec_a[300], rec_b[500];

static void archive_two_pens(uint8_t u)
{
	memset(rec_a, 'A', sizeof rec_a);
	memset(rec_b, 'B', sizeof rec_b);
	archive_bytes("PEN-A", u, rec_a, sizeof rec_a, 1700000000000);
	archive_bytes("PEN-B", u, rec_b, sizeof rec_b, 1700000001000);
}

/*
 * Two pens whose sessions share a UUID (cloned firmware; penemu
 * --uuid-serial plays it): each is shown as itself, by (serial, uuid).  The
 * daemon used to look records up by UUID alone and served the first pen's
 * record for the second pen's name, so `penctl sessions pull` failed its
 * digest check.
 */
static void test_same_uuid_two_pens(void **state)
{
	(void)state;
	archive_two_pens(0x5a);
	char uuid[37];
	uint8_t raw[16];
	memset(raw, 0x5a, sizeof raw);
	pl_uuid_format(raw, uuid);

	struct tc *t = tc_open();
	Plctl__ShowSession ss = PLCTL__SHOW_SESSION__INIT;
	ss.serial = "PEN-B";
	ss.uuid = uuid;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 5;
	rq.op_case = PLCTL__REQUEST__OP_SHOW_SESSION;
	rq.show_session = &ss;
	tc_send(t, &rq);
	Plctl__Response *r = wait_last(t, 5, 3000);
	if (r->body_case == PLCTL__RESPONSE__BODY_ERROR)
		fail_msg("show refused: %s", r->error->message);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_RECORD);
	assert_int_equal(r->record->size, sizeof rec_b);
	assert_int_equal(r->record->data.len, sizeof rec_b);
	assert_memory_equal(r->record->data.data, rec_b, sizeof rec_b);

	ss.serial = "PEN-A";
	rq.id = 6;
	tc_send(t, &rq);
	r = wait_last(t, 6, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_RECORD);
	assert_int_equal(r->record->size, sizeof rec_a);
	assert_memory_equal(r->record->data.data, rec_a, sizeof rec_a);
	tc_close(t);
}

/*
 * sessions export --dir: one ExportChunk per session, each a whole CSV
 * document (header and row) with the session's identity, so penctl writes
 * one file per session without parsing; the last response carries nothing.
 */
static void test_export_per_session(void **state)
{
	(void)state;
	archive_two_pens(0x5b);

	struct tc *t = tc_open();
	Plctl__ExportSessions ex = PLCTL__EXPORT_SESSIONS__INIT;
	ex.per_session = true;
	Plctl__Request rq = PLCTL__REQUEST__INIT;
	rq.id = 5;
	rq.op_case = PLCTL__REQUEST__OP_EXPORT_SESSIONS;
	rq.export_sessions = &ex;
	tc_send(t, &rq);
	Plctl__Response *r = wait_last(t, 5, 3000);
	assert_int_equal(r->body_case, PLCTL__RESPONSE__BODY_EXPORT);
	assert_null(r->export->session);
	assert_int_equal(r->export->data.len, 0);
	assert_int_equal(tc_count(t, 5), 3);
	static const char *const serials[] = {"PEN-A", "PEN-B"};
	for (size_t i = 0; i < 2; i++) {
		Plctl__Response *c = tc_get(t, 5, i);
		assert_int_equal(c->body_case, PLCTL__RESPONSE__BODY_EXPORT);
		assert_false(c->last);
		assert_non_null(c->export->session);
		struct pl_session_key key;
		struct pl_session_info info;
		assert_int_equal(plc_session_from_pb(c->export->session, &key, &info,
		                                     NULL),
		                 PL_OK);
		assert_string_equal(key.serial, serials[i]);
		assert_int_equal(key.uuid[0], 0x5b);
		assert_int_equal(info.size, i ? sizeof rec_b : sizeof rec_a);
		/* A whole document: the header, then this session's one row. */
		char *doc = strndup((const char *)c->export->data.data,
		                    c->export->data.len);
		assert_non_null(doc);
		assert_memory_equal(doc, "serial,uuid,", 12);
		char *row = strstr(doc, "\r\n");
		assert_non_null(row);
		assert_memory_equal(row + 2, serials[i], 5);
		assert_null(strstr(row + 2, "\r\nPEN-"));
		free(doc);
	}
	tc_close(t);
}

int main(void)
{
	log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_op, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_client_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_policy_and_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_list_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_and_audited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pen_operations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streams_flow_controlled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_uuid_two_pens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_per_session, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
