/*
 * penemu, the virtual pen: the firmware endpoint (firmware-bridge/src/fw.c,
 * the very code a pen links) served on a pseudo-terminal or a tty, with
 * SQLite standing in for the pen's flash.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "penemu.h"
#include "treat.h"
#include "penlink.pb-c.h"

#define EMU_HW_REVISION "B"
#define EMU_FW_VERSION "1.0.0"
#define EMU_CAPS (PL_CAP_RTC | PL_CAP_TRACE | PL_CAP_TELEMETRY | \
                  PL_CAP_CARTRIDGE_UID)
#define EMU_MAX_SESSION_BYTES (128ull << 20)
#define EMU_MAX_SESSIONS 10000u
#define WRITE_GIVE_UP_MS 5000
/* libpenlink's default request timeout (pl_open_options_init) plus a
 * second: a late reply then comes after the host gave up on it. */
#define EMU_DEFAULT_LATE_MS (1000u + 1000u)

static volatile sig_atomic_t stop_requested;

struct emu {
	struct pl_fw fw; /* large: the endpoint's static buffers */
	struct flash *flash;
	struct faults *faults;
	struct hostile *hostile;   /* NULL unless --hostile */
	struct treat *treat;       /* NULL unless --treat */
	int fd;
	int wfd;              /* --tty: the same port, blocking, for frames */
	const char *tty_path; /* --tty: reopened after a hangup */
	const char *flash_path;
	const char *model;
	char serial[64];
	bool verbose;
	bool rtc_set;
	int64_t rtc_offset_ms;
};

static struct emu emu;

/*
 * The link, as the pen's USB stack sees it.  Without faults the endpoint's
 * replies are queued and written in batches: all the replies to what one
 * read() brought in go out in one write() (a firmware hands its USB FIFO
 * whole packets, not a stream per frame), and a full port is waited on in
 * that write, as a blocking writer does, not by poll() and a retry per
 * few kilobytes freed.  With fault options every frame is written on its
 * own as it is sent, so each fault lands exactly where it is counted.
 *
 * --link-rate/--link-latency pace it like a real link: the bytes leave
 * through a serializer of that many bytes a second and reach the host
 * --link-latency later (each frame is one transfer), and the host's bytes
 * reach the endpoint --link-latency after they arrived.  A pipeline that
 * keeps enough requests in flight hides the latency and moves the rate.
 */
struct seg {
	size_t bytes;   /* of the transfer (one frame) */
	int64_t due_ns; /* when its last byte reaches the host */
};

struct held {
	int64_t due_ns;
	size_t len;
};

static struct link {
	bool batch;
	uint64_t rate;       /* bytes a second; 0: not paced */
	int64_t latency_ns;
	int64_t free_ns;     /* when the serializer has sent what it was given */
	uint8_t *out;
	size_t out_start, out_len, out_cap;
	struct seg *segs;
	size_t n_segs, segs_cap;
	/* Input held for the latency: its bytes in order, and their times. */
	uint8_t *in;
	size_t in_start, in_len, in_cap;
	struct held *helds;
	size_t n_held, held_cap;
} lk;

/* Past this much queued output a batch is written before more is queued
 * (paced: the endpoint is held until the link drained to it). */
#define LINK_OUT_MAX (4u << 20)

/* ------------------------------------------------------------------ time */

static int64_t boot_ms;

uint64_t emu_uptime_ms(void)
{
	return (uint64_t)(pl_time_monotonic_ms() - boot_ms);
}

/* ------------------------------------------------------------------ port */

static volatile sig_atomic_t write_timed_out;

static void on_write_alarm(int sig)
{
	(void)sig;
	write_timed_out = 1;
}

/* A frame into a tty, in one blocking write on a descriptor of its own:
 * the kernel then refills the gadget's small transmit buffer after every
 * USB packet, where a poll() for POLLOUT would wake us only once it is
 * nearly empty and leave the link idle until we are scheduled (a real pen's
 * USB stack never lets it run dry).  An interval timer (its SIGALRM handler
 * is installed once, without SA_RESTART) keeps the give-up of the
 * non-blocking path: three system calls a frame. */
static int write_blocking(int fd, const uint8_t *data, size_t len)
{
	static const struct itimerval give_up = {
	    {0, 0}, {WRITE_GIVE_UP_MS / 1000, (WRITE_GIVE_UP_MS % 1000) * 1000}};
	static const struct itimerval off = {{0, 0}, {0, 0}};

	while (len > 0) {
		ssize_t n;

		write_timed_out = 0;
		setitimer(ITIMER_REAL, &give_up, NULL);
		n = write(fd, data, len);
		setitimer(ITIMER_REAL, &off, NULL);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR && !write_timed_out && !stop_requested)
			continue;
		return -1; /* nobody drained the port in time, or a stop */
	}
	return 0;
}

int emu_write_all(int fd, const uint8_t *data, size_t len)
{
	int waited = 0;

	if (emu.tty_path && fd == emu.fd)
		return write_blocking(emu.wfd, data, len);

	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			waited = 0;
			continue;
		}
		if (n < 0 && errno == EINTR) {
			if (stop_requested)
				return -1;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {fd, POLLOUT, 0};
			/* Nobody draining the port (no host, or a host that
			 * stopped reading): give up rather than hang. */
			if (waited >= WRITE_GIVE_UP_MS || stop_requested)
				return -1;
			if (poll(&p, 1, 100) == 0)
				waited += 100;
			continue;
		}
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ link */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int emu_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 64;
	void *p;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	p = realloc(*buf, c * elem);
	if (!p)
		return -1;
	*buf = p;
	*cap = c;
	return 0;
}

/* A whole batch into the port.  A pty is written without blocking as far
 * as it takes the bytes; the rest in a blocking write (under the same
 * give-up timer as a tty), which the kernel wakes as the host reads. */
static int write_batch(const uint8_t *p, size_t len)
{
	int fl;
	int rc;

	if (emu.tty_path)
		return write_blocking(emu.wfd, p, len);
	while (len > 0) {
		ssize_t n = write(emu.fd, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR && !stop_requested)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	if (len == 0)
		return 0;
	fl = fcntl(emu.fd, F_GETFL);
	if (fl < 0 || fcntl(emu.fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		return emu_write_all(emu.fd, p, len);
	rc = write_blocking(emu.fd, p, len);
	(void)fcntl(emu.fd, F_SETFL, fl);
	return rc;
}

/* Writes the first len queued bytes (and forgets them, written or not:
 * bytes nobody reads are lost, as on a line without a host). */
static int link_write(size_t len)
{
	int rc = write_batch(lk.out + lk.out_start, len);

	lk.out_start += len;
	lk.out_len -= len;
	if (lk.out_len == 0)
		lk.out_start = 0;
	return rc;
}

/* Writes what is due: everything, or on a paced link the transfers whose
 * last byte has reached the host by now. */
static int link_flush(void)
{
	size_t len = 0, k = 0;
	int64_t now;

	if (!lk.rate)
		return lk.out_len ? link_write(lk.out_len) : 0;
	now = now_ns();
	while (k < lk.n_segs && lk.segs[k].due_ns <= now)
		len += lk.segs[k++].bytes;
	if (k == 0)
		return 0;
	memmove(lk.segs, lk.segs + k, (lk.n_segs - k) * sizeof lk.segs[0]);
	lk.n_segs -= k;
	return link_write(len);
}

/* Nanoseconds until the next transfer is due (0: now), or -1 for none. */
static int64_t link_next_ns(void)
{
	int64_t t = -1, now;

	now = now_ns();
	if (!lk.rate)
		t = lk.out_len ? 0 : -1;
	else if (lk.n_segs)
		t = lk.segs[0].due_ns > now ? lk.segs[0].due_ns - now : 0;
	if (lk.n_held) {
		int64_t h = lk.helds[0].due_ns > now ? lk.helds[0].due_ns - now : 0;
		if (t < 0 || h < t)
			t = h;
	}
	return t;
}

/* Queues one frame from the endpoint. */
static int link_send(const uint8_t *p, size_t len)
{
	while (lk.out_len + len > LINK_OUT_MAX && lk.out_len) {
		/* Far ahead of the host: let the link drain first. */
		int64_t wait = link_next_ns();

		if (wait > 0) {
			struct timespec ts = {(time_t)(wait / 1000000000),
			                      (long)(wait % 1000000000)};
			nanosleep(&ts, NULL);
		}
		if (stop_requested)
			return -1;
		if (link_flush() != 0)
			return -1;
	}
	if (lk.out_start && lk.out_start + lk.out_len + len > lk.out_cap) {
		memmove(lk.out, lk.out + lk.out_start, lk.out_len);
		lk.out_start = 0;
	}
	if (emu_grow((void **)&lk.out, &lk.out_cap, lk.out_start + lk.out_len + len, 1) != 0)
		return -1;
	memcpy(lk.out + lk.out_start + lk.out_len, p, len);
	lk.out_len += len;
	if (lk.rate) {
		int64_t now = now_ns();
		int64_t start = lk.free_ns > now ? lk.free_ns : now;

		if (emu_grow((void **)&lk.segs, &lk.segs_cap, lk.n_segs + 1,
		         sizeof lk.segs[0]) != 0)
			return -1;
		lk.free_ns = start + (int64_t)((double)len * 1e9 / (double)lk.rate);
		lk.segs[lk.n_segs].bytes = len;
		lk.segs[lk.n_segs].due_ns = lk.free_ns + lk.latency_ns;
		lk.n_segs++;
	}
	return 0;
}

/* Holds bytes from the host for the link's latency. */
static int link_hold(const uint8_t *p, size_t len)
{
	if (lk.in_start && lk.in_start + lk.in_len + len > lk.in_cap) {
		memmove(lk.in, lk.in + lk.in_start, lk.in_len);
		lk.in_start = 0;
	}
	if (emu_grow((void **)&lk.in, &lk.in_cap, lk.in_start + lk.in_len + len, 1) != 0 ||
	    emu_grow((void **)&lk.helds, &lk.held_cap, lk.n_held + 1, sizeof lk.helds[0]) != 0)
		return -1;
	memcpy(lk.in + lk.in_start + lk.in_len, p, len);
	lk.in_len += len;
	lk.helds[lk.n_held].due_ns = now_ns() + lk.latency_ns;
	lk.helds[lk.n_held].len = len;
	lk.n_held++;
	return 0;
}

static void link_free(void)
{
	free(lk.out);
	free(lk.segs);
	free(lk.in);
	free(lk.helds);
	memset(&lk, 0, sizeof lk);
}

static int make_raw(int fd, const char *what)
{
	struct termios t;

	if (tcgetattr(fd, &t) != 0) {
		fprintf(stderr, "penemu: %s is not a terminal: %s\n", what,
		        strerror(errno));
		return -1;
	}
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t) != 0) {
		fprintf(stderr, "penemu: cannot set raw mode on %s: %s\n", what,
		        strerror(errno));
		return -1;
	}
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Creates the pty; *keep is a slave descriptor penemu holds open so a host
 * closing the port does not hang up the master, and the next host can
 * connect to the same path. */
static int open_pty(char *path, size_t cap, int *keep)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	const char *name;

	if (m < 0) {
		fprintf(stderr, "penemu: posix_openpt: %s\n", strerror(errno));
		return -1;
	}
	if (grantpt(m) != 0 || unlockpt(m) != 0 || !(name = ptsname(m))) {
		fprintf(stderr, "penemu: cannot set up the pty: %s\n", strerror(errno));
		close(m);
		return -1;
	}
	snprintf(path, cap, "%s", name);
	*keep = open(path, O_RDWR | O_NOCTTY);
	if (*keep < 0) {
		fprintf(stderr, "penemu: cannot open %s: %s\n", path, strerror(errno));
		close(m);
		return -1;
	}
	if (make_raw(*keep, path) != 0 || set_nonblock(m) != 0) {
		close(*keep);
		close(m);
		return -1;
	}
	return m;
}

/* *fd non-blocking, for reads and polls; *wfd blocking, for frames. */
static int open_tty(const char *path, int *fd, int *wfd)
{
	*fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (*fd < 0) {
		fprintf(stderr, "penemu: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	*wfd = open(path, O_WRONLY | O_NOCTTY);
	if (*wfd < 0)
		fprintf(stderr, "penemu: cannot open %s: %s\n", path, strerror(errno));
	if (*wfd < 0 || make_raw(*fd, path) != 0) {
		if (*wfd >= 0)
			close(*wfd);
		close(*fd);
		*fd = *wfd = -1;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ endpoint glue */

static int op_send(void *ctx, const uint8_t *data, size_t len)
{
	struct emu *e = ctx;
	int rc = lk.batch     ? link_send(data, len)
	         : e->hostile ? hostile_send(e->hostile, e->fd, data, len,
	                                     e->fw.host_max_frame)
	                      : faults_send(e->faults, e->fd, data, len);
	return rc == 0 ? PL_FW_OK : PL_FW_INTERNAL;
}

static void op_get_info(void *ctx, struct pl_fw_device_info *out)
{
	static const uint32_t rates[6] = {50, 70, 90, 110, 130, 150};
	struct emu *e = ctx;
	struct flash_meta m;
	uint64_t minutes = emu_uptime_ms() / 60000u;
	uint32_t mv;

	out->serial = e->serial;
	out->model = e->model;
	out->hw_revision = EMU_HW_REVISION;
	out->fw_version = EMU_FW_VERSION;
	out->capabilities = EMU_CAPS;
	out->depth_min_um = 250;
	out->depth_max_um = 2500;
	out->depth_step_um = 250;
	out->speed_levels = 6;
	memcpy(out->stroke_rate_hz, rates, sizeof rates);
	out->slow_lock_depth_um = 2000;
	out->max_presets = 16;
	if (flash_meta(e->flash, &m) == 0) {
		out->total_strokes = m.total_strokes;
		out->motor_seconds = m.motor_seconds;
	}
	/* Idle drain: a millivolt a minute from a nearly full cell. */
	mv = 4080u - (uint32_t)(minutes < 500 ? minutes : 500);
	out->battery_mv = mv;
	out->battery_percent = (mv - 3300u) * 100u / (4200u - 3300u);
	out->charging = false;
}

static int op_presets_load(void *ctx, struct pl_fw_preset *out, size_t max,
                           size_t *count, uint32_t *revision)
{
	return flash_presets_load(((struct emu *)ctx)->flash, out, max, count,
	                          revision);
}

static int op_presets_store(void *ctx, const struct pl_fw_preset *p,
                            size_t count, uint32_t revision)
{
	return flash_presets_store(((struct emu *)ctx)->flash, p, count, revision);
}

static int op_session_next(void *ctx, uint32_t after, struct pl_session_info *out)
{
	struct emu *e = ctx;
	int rc = flash_session_next(e->flash, after, out);

	return hostile_session_next(e->hostile, after, rc, out);
}

static int op_session_get(void *ctx, uint32_t id, struct pl_session_info *out)
{
	return flash_session_get(((struct emu *)ctx)->flash, id, out);
}

static int op_session_read(void *ctx, uint32_t id, uint64_t off, uint8_t *buf,
                           size_t len)
{
	return flash_session_read(((struct emu *)ctx)->flash, id, off, buf, len);
}

static int op_session_archive(void *ctx, uint32_t id)
{
	struct emu *e = ctx;
	char text[96];
	int rc = flash_session_archive(e->flash, id);

	if (rc != PL_FW_OK)
		return rc;
	/* There is no state kind for "archived"; IDLE with the session id
	 * and a detail tells a monitoring host what just happened. */
	snprintf(text, sizeof text, "session %" PRIu32 " archived; the pen may reclaim it", id);
	pl_fw_trace(&e->fw, 2, text);
	pl_fw_state_event(&e->fw, PL__STATE_KIND__STATE_KIND_IDLE, id, text);
	return PL_FW_OK;
}

static uint64_t op_uptime(void *ctx)
{
	(void)ctx;
	return emu_uptime_ms();
}

static int64_t op_rtc_get(void *ctx, bool *is_set)
{
	struct emu *e = ctx;
	*is_set = e->rtc_set;
	return e->rtc_set ? pl_time_utc_ms() + e->rtc_offset_ms : 0;
}

static void op_rtc_set(void *ctx, int64_t utc_ms)
{
	struct emu *e = ctx;
	/* Kept as an offset from the host's clock so it keeps running while
	 * penemu is stopped, like a battery-backed RTC. */
	e->rtc_offset_ms = utc_ms - pl_time_utc_ms();
	e->rtc_set = true;
	(void)flash_rtc_set(e->flash, e->rtc_offset_ms);
}

static void op_log(void *ctx, const char *line)
{
	struct emu *e = ctx;
	if (e->verbose)
		fprintf(stderr, "penemu: %s\n", line);
	pl_fw_trace(&e->fw, 2, line);
}

/* ------------------------------------------------------------------ arguments */

static void usage(FILE *out)
{
	fprintf(out,
"usage: penemu [--pty | --tty PATH] [--flash FILE] [--serial S] [--sessions N]\n"
"              [--session-bytes N] [--model M] [--seed N] [--now UTC_MS]\n"
"              [--treat[=S] [--treat-after S] [--treat-every S]]\n"
"              [--uuid-serial S] [-v] [fault options] [--hostile MODE] [--help]\n"
"\n"
"The virtual penlink pen: the firmware endpoint served on a port.  The first\n"
"line on stdout is the port's path; then penemu serves until SIGTERM/SIGINT.\n"
"\n"
"  --pty              create a pseudo-terminal (the default); hosts may close\n"
"                     and reopen it as often as they like\n"
"  --tty PATH         serve on an existing tty instead (e.g. /dev/ttyGS0)\n"
"  --flash FILE       the pen's flash (SQLite); presets, sessions, the archive\n"
"                     flags and the clock persist there.  Default: in memory\n"
"  --serial S         serial number of a new flash (default PEN-0001); an\n"
"                     existing flash keeps its own and refuses a different one\n"
"  --sessions N       session records to generate (default 3, max %u)\n"
"  --session-bytes N  approximate size of each record (default 200000)\n"
"  --model M          model name reported (default \"PL-Pen 1\")\n"
"  --seed N           seed for session contents and faults (default 1)\n"
"  --now UTC_MS       generate sessions as if it were this time (default: now);\n"
"                     with it, equal seeds give byte-identical records\n"
"  -v, --verbose      log every request to stderr\n"
"  --link-rate B      pace the link: its bytes leave at B bytes a second\n"
"                     (USB full speed moves about 1200000, high speed about\n"
"                     40000000), one frame per transfer\n"
"  --link-latency US  and reach the other side US microseconds after they\n"
"                     left, in both directions (default 0)\n"
"  --raw-text         take --serial and --model byte for byte (any bytes but\n"
"                     NUL, 1..63 of them: control bytes, invalid UTF-8), as a\n"
"                     broken or hostile pen would report them, to test that\n"
"                     hosts clean every output\n"
"  --treat[=S]        run a treatment of S seconds (default 20, 5..3600) in real\n"
"                     time, once a host has connected: start, depth and speed\n"
"                     changes, a pause with a cartridge swap, an area change,\n"
"                     maybe an error, the battery going low, the stop; each sent\n"
"                     as it happens as a state event and a trace line (and the\n"
"                     telemetry as debug trace lines), then recorded as a new\n"
"                     session, announced by a session-recorded state event\n"
"  --treat-after S    start it S seconds after the first host's handshake\n"
"                     (default 2, 0..3600)\n"
"  --treat-every S    treat again S seconds after each treatment stopped\n"
"                     (default 0: once; 1..86400)\n"
"  --uuid-serial S    derive session UUIDs as if the serial were S (by default\n"
"                     they derive from --seed and the pen's own serial, so pens\n"
"                     differ); for testing hosts against cloned firmware\n"
"\n"
"Sessions are generated when the flash is new.  A flash that already exists\n"
"keeps its sessions and never gets new ones, except that a flash without any\n"
"sessions gets N of them when --sessions N is given explicitly.\n"
"\n"
"Faults (counted per outgoing frame, replies and unsolicited frames alike;\n"
"random parts from --fault-seed, so the same seed and the same host requests\n"
"replay the same faults.  Each kind is described on stderr the first time it\n"
"fires, \"penemu: fault: KIND: ...\"; a count of all of them is printed on exit):\n"
"  --fault-seed S              seed for the faults (default: --seed)\n"
"  --fault-garbage N           N random bytes (some of them 0x00) before every\n"
"                              10th frame, ending with a 0x00 delimiter\n"
"  --fault-corrupt N           flip one bit in every Nth frame\n"
"  --fault-drop N              do not send every Nth frame\n"
"  --fault-mute                never send anything\n"
"  --fault-boot-delay MS       ignore all input for MS after the port appears\n"
"                              (the host must retry its handshake)\n"
"  --fault-disconnect-after B  after B bytes sent, stop mid-frame and exit 3\n"
"                              (a pen unplugged mid-download)\n"
"  --fault-delay MS            wait MS before every frame\n"
"  --fault-drop-bytes N        delete one byte (seeded position, never the\n"
"                              delimiter) from every Nth frame\n"
"  --fault-dup N               send every Nth frame twice\n"
"  --fault-stall N:MS          send nothing for MS before every Nth frame (the\n"
"                              whole pen stalls: input waits too)\n"
"  --fault-late N              hold every Nth frame back --fault-late-ms and send\n"
"                              it then, while later frames go out on time (a\n"
"                              reply that arrives after the host gave up)\n"
"  --fault-late-ms MS          default %u: 1 s past libpenlink's default request\n"
"                              timeout of 1000 ms\n"
"  --fault-reboot-after B      after B bytes sent, lose power mid-frame and\n"
"                              reboot: RAM is lost (the protocol endpoint, held\n"
"                              frames, pending input), the flash is reopened\n"
"                              (only committed writes survive; without --flash\n"
"                              the in-memory flash is kept as if it were\n"
"                              non-volatile), uptime restarts, the boot delay\n"
"                              applies again, and the pen goes on serving on the\n"
"                              same port.  It sends nothing on boot: the\n"
"                              protocol has no boot message; the host finds out\n"
"                              by its requests timing out and retrying.  Once.\n"
"  --fault-reboot-every B      the same, again after every B bytes sent\n"
"\n"
"Hostile pen (for the host's defences; excludes the fault options):\n"
"  --hostile MODE   answers the handshake correctly, so the host takes it for a\n"
"                   pen and the attack meets the code behind the handshake, then:\n"
"     oversize   answers every request with, and streams 100 per second of,\n"
"                intact frames twice the size the host's Hello allowed\n"
"     nodelim    drops its replies and streams bytes that are never a frame\n"
"                delimiter (0x00), about 4 MB/s, forever\n"
"     badproto   answers every request with, and sends 20 per second of,\n"
"                frames with a correct CRC whose payload is not protobuf\n"
"     wrongid    answers every request correctly but under an id the host\n"
"                never used\n"
"     flood      answers requests correctly and floods the host with\n"
"                unsolicited trace lines and state events, 20000 per second\n"
"     slow       sends everything after the handshake one byte per second\n"
"     sessions   lists a million sessions after its own, none of which it can\n"
"                serve (reading one finds nothing)\n"
"\n"
"Device: model \"PL-Pen 1\", hardware B, firmware 1.0.0, depth 250..2500 um in\n"
"250 um steps, speed levels 1..6 (50..150 Hz), slow lock from 2000 um,\n"
"16 presets.\n"
"\n"
"Exit status: 0 stopped by a signal, 1 runtime failure (port, flash),\n"
"2 bad arguments, 3 --fault-disconnect-after fired.\n",
	        EMU_MAX_SESSIONS, EMU_DEFAULT_LATE_MS);
}

static void bad_args(const char *fmt, const char *arg)
{
	fprintf(stderr, "penemu: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'penemu --help'.\n");
	exit(2);
}

static uint64_t parse_num(const char *opt, const char *s, uint64_t min,
                          uint64_t max)
{
	char *end;
	unsigned long long v;
	char msg[160];

	errno = 0;
	if (!s || !*s || *s == '-' || *s == '+')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		goto bad;
	if (v < min || v > max) {
		snprintf(msg, sizeof msg, "%s %%s is out of range (%llu..%llu)", opt,
		         (unsigned long long)min, (unsigned long long)max);
		bad_args(msg, s);
	}
	return v;
bad:
	snprintf(msg, sizeof msg, "%s needs a number, not '%%s'", opt);
	bad_args(msg, s ? s : "");
	return 0;
}

/* --fault-stall N:MS */
static void parse_stall(const char *s, struct fault_opts *o)
{
	const char *colon = strchr(s, ':');
	char n[32];

	if (!colon || (size_t)(colon - s) >= sizeof n)
		bad_args("--fault-stall needs N:MS (every Nth frame, MS of silence), "
		         "not '%s'", s);
	memcpy(n, s, (size_t)(colon - s));
	n[colon - s] = '\0';
	o->stall_every = (uint32_t)parse_num("--fault-stall N", n, 1, UINT32_MAX);
	o->stall_ms = (uint32_t)parse_num("--fault-stall MS", colon + 1, 1, 600000);
}

static void check_label(const char *opt, const char *s, bool raw)
{
	size_t n = strlen(s);
	char msg[96];

	snprintf(msg, sizeof msg, "%s '%%s' must be 1..63 printable ASCII characters",
	         opt);
	if (n == 0 || n > 63)
		bad_args(msg, s);
	for (size_t i = 0; i < n && !raw; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			bad_args(msg, s);
}

struct args {
	const char *tty;
	const char *flash;
	const char *serial;
	bool serial_given;
	unsigned sessions;
	bool sessions_given;
	uint64_t session_bytes;
	const char *model;
	uint64_t seed;
	uint64_t fault_seed;
	bool fault_seed_given;
	bool any_fault;
	enum hostile_mode hostile;
	int64_t now_ms;
	bool verbose;
	bool raw_text;
	bool pty;
	uint64_t link_rate;
	uint32_t link_latency_us;
	uint32_t treat_s;          /* 0: no --treat */
	uint32_t treat_after_s;
	uint32_t treat_every_s;
	const char *uuid_serial;
	struct fault_opts faults;
};

/* One row per option: getopt's table is built from it, and numbers are
 * parsed and range-checked by it, so an option is described once. */
enum opt_kind { O_FLAG, O_TEXT, O_NUM, O_OTHER };
struct opt_row {
	const char *name;
	enum opt_kind kind;
	size_t offset;      /* of the field in struct args */
	size_t size;        /* of an O_NUM field: 4 or 8 bytes */
	uint64_t min, max;  /* O_NUM */
	bool is_fault;      /* an injected fault (not with --hostile) */
	size_t given;       /* offset of a bool set when given, or 0 */
};

#define FIELD(f) offsetof(struct args, f), sizeof(((struct args *)0)->f)
#define NUM(name, f, lo, hi, fault) {name, O_NUM, FIELD(f), lo, hi, fault, 0}
static const struct opt_row opt_rows[] = {
	{"pty", O_FLAG, FIELD(pty), 0, 0, false, 0},
	{"tty", O_TEXT, FIELD(tty), 0, 0, false, 0},
	{"flash", O_TEXT, FIELD(flash), 0, 0, false, 0},
	{"serial", O_TEXT, FIELD(serial), 0, 0, false, offsetof(struct args, serial_given)},
	{"sessions", O_NUM, FIELD(sessions), 0, EMU_MAX_SESSIONS, false,
	 offsetof(struct args, sessions_given)},
	NUM("session-bytes", session_bytes, 1024, EMU_MAX_SESSION_BYTES, false),
	{"model", O_TEXT, FIELD(model), 0, 0, false, 0},
	NUM("seed", seed, 0, UINT64_MAX, false),
	NUM("now", now_ms, 42 * 86400000ull, (uint64_t)INT64_MAX / 2, false),
	{"verbose", O_FLAG, FIELD(verbose), 0, 0, false, 0},
	{"raw-text", O_FLAG, FIELD(raw_text), 0, 0, false, 0},
	{"help", O_OTHER, 0, 0, 0, 0, false, 0},
	{"hostile", O_OTHER, 0, 0, 0, 0, false, 0},
	{"fault-stall", O_OTHER, 0, 0, 0, 0, true, 0},
	NUM("fault-garbage", faults.garbage, 1, 1u << 20, true),
	NUM("fault-corrupt", faults.corrupt, 1, UINT32_MAX, true),
	NUM("fault-drop", faults.drop, 1, UINT32_MAX, true),
	{"fault-mute", O_FLAG, FIELD(faults.mute), 0, 0, true, 0},
	NUM("fault-boot-delay", faults.boot_delay_ms, 0, 3600000, true),
	NUM("fault-disconnect-after", faults.disconnect_after, 1, UINT64_MAX, true),
	NUM("fault-delay", faults.delay_ms, 0, 600000, true),
	{"fault-seed", O_NUM, FIELD(fault_seed), 0, UINT64_MAX, false,
	 offsetof(struct args, fault_seed_given)},
	NUM("fault-drop-bytes", faults.drop_bytes, 1, UINT32_MAX, true),
	NUM("fault-dup", faults.dup, 1, UINT32_MAX, true),
	NUM("fault-late", faults.late, 1, UINT32_MAX, true),
	NUM("fault-late-ms", faults.late_ms, 1, 600000, false),
	NUM("fault-reboot-after", faults.reboot_after, 1, UINT64_MAX, true),
	NUM("fault-reboot-every", faults.reboot_every, 1, UINT64_MAX, true),
	NUM("link-rate", link_rate, 1000, 10000000000ull, false),
	NUM("link-latency", link_latency_us, 0, 1000000, false),
	{"treat", O_OTHER, 0, 0, 0, 0, false, 0},
	NUM("treat-after", treat_after_s, 0, TREAT_MAX_S, false),
	NUM("treat-every", treat_every_s, 1, 86400, false),
	{"uuid-serial", O_TEXT, FIELD(uuid_serial), 0, 0, false, 0},
};
#undef NUM
#undef FIELD
#define N_OPTS (sizeof opt_rows / sizeof opt_rows[0])

static void apply_row(const struct opt_row *r, const char *val, struct args *a)
{
	char *base = (char *)a, flag[48];
	if (r->kind == O_FLAG) {
		*(bool *)(base + r->offset) = true;
	} else if (r->kind == O_TEXT) {
		*(const char **)(base + r->offset) = val;
	} else {
		snprintf(flag, sizeof flag, "--%s", r->name);
		uint64_t v = parse_num(flag, val, r->min, r->max);
		if (r->size == sizeof(uint32_t)) {
			uint32_t v32 = (uint32_t)v;
			memcpy(base + r->offset, &v32, sizeof v32);
		} else {
			memcpy(base + r->offset, &v, sizeof v);
		}
	}
	if (r->given)
		*(bool *)(base + r->given) = true;
	if (r->is_fault)
		a->any_fault = true;
}

static void parse_args(int argc, char **argv, struct args *a)
{
	struct option opts[N_OPTS + 1];
	int c;

	for (size_t i = 0; i < N_OPTS; i++) {
		bool takes = opt_rows[i].kind == O_TEXT || opt_rows[i].kind == O_NUM ||
		             !strcmp(opt_rows[i].name, "hostile") ||
		             !strcmp(opt_rows[i].name, "fault-stall");
		opts[i] = (struct option){opt_rows[i].name,
		                          !strcmp(opt_rows[i].name, "treat") ? optional_argument
		                          : takes ? required_argument : no_argument, NULL,
		                          256 + (int)i};
	}
	opts[N_OPTS] = (struct option){NULL, 0, NULL, 0};

	memset(a, 0, sizeof *a);
	a->serial = "PEN-0001";
	a->sessions = 3;
	a->session_bytes = 200000;
	a->model = "PL-Pen 1";
	a->seed = 1;
	a->now_ms = pl_time_utc_ms();
	a->faults.late_ms = EMU_DEFAULT_LATE_MS;
	a->treat_after_s = TREAT_DEFAULT_AFTER_S;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		const struct opt_row *r = c >= 256 ? &opt_rows[c - 256] : NULL;
		if (c == 'v') {
			a->verbose = true;
		} else if (c == 'h' || (r && !strcmp(r->name, "help"))) {
			usage(stdout);
			exit(0);
		} else if (r && !strcmp(r->name, "hostile")) {
			a->hostile = hostile_parse(optarg);
			if (a->hostile == HOSTILE_NONE)
				bad_args("--hostile '%s': the modes are oversize, nodelim, "
				         "badproto, wrongid, flood, slow and sessions", optarg);
		} else if (r && !strcmp(r->name, "treat")) {
			a->treat_s = optarg ? (uint32_t)parse_num("--treat", optarg, TREAT_MIN_S,
			                                          TREAT_MAX_S)
			                    : TREAT_DEFAULT_S;
		} else if (r && !strcmp(r->name, "fault-stall")) {
			parse_stall(optarg, &a->faults);
			a->any_fault = true;
		} else if (r) {
			apply_row(r, optarg, a);
		} else if (c == ':') {
			bad_args("option %s needs a value", argv[optind - 1]);
		} else {
			bad_args("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_args("unexpected argument '%s'", argv[optind]);
	/* Checked after every option is read: --raw-text may come last. */
	check_label("--serial", a->serial, a->raw_text);
	check_label("--model", a->model, a->raw_text);
	if (a->uuid_serial)
		check_label("--uuid-serial", a->uuid_serial, false);
	if (a->treat_s && a->hostile != HOSTILE_NONE)
		bad_args("%s", "--treat cannot be combined with --hostile");
	if (a->pty && a->tty)
		bad_args("%s", "--pty and --tty are mutually exclusive");
	if (a->faults.reboot_after && a->faults.reboot_every)
		bad_args("%s", "--fault-reboot-after and --fault-reboot-every are "
		               "mutually exclusive");
	if (a->hostile != HOSTILE_NONE && a->any_fault)
		bad_args("%s", "--hostile cannot be combined with --fault-* options");
	if ((a->link_rate || a->link_latency_us) &&
	    (a->any_fault || a->hostile != HOSTILE_NONE))
		bad_args("%s", "--link-rate and --link-latency cannot be combined with "
		               "--fault-* options or --hostile");
	if (!a->fault_seed_given)
		a->fault_seed = a->seed;
}

/* ------------------------------------------------------------------ main */

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int prepare_flash(const struct args *a)
{
	struct flash_meta m;
	bool created;
	size_t count;

	if (flash_open(a->flash, a->serial, &emu.flash, &created) != 0)
		return -1;
	if (flash_meta(emu.flash, &m) != 0)
		return -1;
	if (a->serial_given && strcmp(m.serial, a->serial) != 0) {
		fprintf(stderr,
		        "penemu: flash %s belongs to pen %s, not %s\n"
		        "Try 'penemu --help'.\n",
		        a->flash, m.serial, a->serial);
		exit(2);
	}
	snprintf(emu.serial, sizeof emu.serial, "%s", m.serial);
	emu.rtc_set = m.rtc_set;
	emu.rtc_offset_ms = m.rtc_offset_ms;
	if (flash_session_count(emu.flash, &count) != 0)
		return -1;
	if (created || (count == 0 && a->sessions_given)) {
		struct pl_fw_device_info info;
		struct gen_params gp;

		memset(&info, 0, sizeof info);
		op_get_info(&emu, &info);
		memset(&gp, 0, sizeof gp);
		gp.seed = a->seed;
		gp.now_ms = a->now_ms;
		gp.target_bytes = a->session_bytes;
		gp.count = a->sessions;
		gp.serial = emu.serial;
		gp.uuid_serial = a->uuid_serial;
		gp.fw_version = EMU_FW_VERSION;
		gp.info = &info;
		if (gen_sessions(emu.flash, &gp) != 0)
			return -1;
	} else if (a->sessions_given) {
		fprintf(stderr,
		        "penemu: flash already holds %zu sessions; --sessions ignored\n",
		        count);
	}
	return 0;
}

static void init_endpoint(void)
{
	static const struct pl_fw_ops ops = {
		.send = op_send, .get_info = op_get_info,
		.presets_load = op_presets_load, .presets_store = op_presets_store,
		.session_next = op_session_next, .session_get = op_session_get,
		.session_read = op_session_read, .session_archive = op_session_archive,
		.uptime_ms = op_uptime, .rtc_get = op_rtc_get, .rtc_set = op_rtc_set,
		.log = op_log,
	};
	pl_fw_init(&emu.fw, &ops, &emu);
}

/*
 * --fault-reboot-*: power came back.  Everything in RAM is gone: the
 * endpoint (partial frames, negotiated limits, trace subscription), what
 * the host had sent that was not read yet; the flash is opened again, so
 * only what was committed is there.  Uptime starts over, and with it the
 * boot delay.
 */
static int reboot(void)
{
	static uint8_t sink[4096];
	struct flash_meta m;
	bool created;

	if (emu.flash_path) {
		flash_close(emu.flash);
		emu.flash = NULL;
		if (flash_open(emu.flash_path, emu.serial, &emu.flash, &created) != 0)
			return -1;
	}
	if (flash_meta(emu.flash, &m) != 0)
		return -1;
	emu.rtc_set = m.rtc_set;
	emu.rtc_offset_ms = m.rtc_offset_ms;
	while (read(emu.fd, sink, sizeof sink) > 0)
		;
	init_endpoint();
	faults_rebooted(emu.faults);
	boot_ms = pl_time_monotonic_ms();
	fprintf(stderr, "penemu: rebooted; serving again\n");
	return 0;
}

/* Feeds input one frame at a time (up to and including each delimiter),
 * so that a reboot fault stops the pen between requests: nothing the
 * host sent after the frame whose reply lost power is ever handled. */
static int feed(const uint8_t *buf, size_t n)
{
	while (n > 0) {
		const uint8_t *z = memchr(buf, 0, n);
		size_t k = z ? (size_t)(z - buf) + 1 : n;

		pl_fw_rx(&emu.fw, buf, k);
		buf += k;
		n -= k;
		if (faults_reboot_due(emu.faults))
			return reboot();
	}
	return 0;
}

/* How long poll may sleep: until a late frame is due or the hostile pen
 * wants to act, at most a second. */
static int poll_timeout(void)
{
	int t = 1000, d;

	if (emu.hostile) {
		d = hostile_tick(emu.hostile, emu.fd, emu.fw.host_max_frame);
		if (d >= 0 && d < t)
			t = d;
	} else {
		d = faults_next_due(emu.faults);
		if (d >= 0 && d < t)
			t = d;
	}
	d = treat_tick(emu.treat, &emu.fw, emu.flash);
	if (d >= 0 && d < t)
		t = d;
	return t;
}

/* A gadget tty is hung up when its host goes away (an unplug): the kernel
 * turns the open file into a dead one, so the pen must open the port again,
 * as a getty does, to serve the next host. */
static int reopen_tty(void)
{
	int fd, wfd;

	if (open_tty(emu.tty_path, &fd, &wfd) != 0)
		return -1;
	close(emu.fd);
	close(emu.wfd);
	emu.fd = fd;
	emu.wfd = wfd;
	return 0;
}

static int serve(void)
{
	static uint8_t buf[64 * 1024];

	while (!stop_requested) {
		struct pollfd p = {emu.fd, POLLIN, 0};
		int64_t wait_ns = (int64_t)poll_timeout() * 1000000;
		int64_t due = lk.batch ? link_next_ns() : -1;
		struct timespec ts;
		int r;

		if (due >= 0 && due < wait_ns)
			wait_ns = due;
		ts.tv_sec = (time_t)(wait_ns / 1000000000);
		ts.tv_nsec = (long)(wait_ns % 1000000000);
		if (emu.hostile && hostile_want_write(emu.hostile))
			p.events |= POLLOUT;
		r = ppoll(&p, 1, &ts, NULL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "penemu: poll: %s\n", strerror(errno));
			return -1;
		}
		if (lk.batch) {
			/* Paced: what the latency held back reaches the
			 * endpoint, and transfers that are due go out. */
			while (lk.n_held && lk.helds[0].due_ns <= now_ns()) {
				size_t k = lk.helds[0].len;

				memmove(lk.helds, lk.helds + 1,
				        (lk.n_held - 1) * sizeof lk.helds[0]);
				lk.n_held--;
				lk.in_start += k;
				lk.in_len -= k;
				feed(lk.in + lk.in_start - k, k);
				if (lk.in_len == 0)
					lk.in_start = 0;
			}
			(void)link_flush(); /* -1: nobody reads; the bytes are lost */
		}
		if (!emu.hostile) {
			/* Late frames go out even if the host's reads are
			 * what woke us. */
			/* -1: nobody reads; the frame is lost, as on a line
			 * without a host. */
			(void)faults_release(emu.faults, emu.fd);
			if (faults_reboot_due(emu.faults) && reboot() != 0)
				return -1;
		}
		if (r == 0)
			continue;
		if (p.revents & POLLIN) {
			ssize_t n = read(emu.fd, buf, sizeof buf);
			if (n > 0) {
				if (faults_ignore_input(emu.faults, emu_uptime_ms()))
					continue; /* still "booting" */
				if (lk.latency_ns) {
					if (link_hold(buf, (size_t)n) != 0)
						return -1;
					continue;
				}
				if (feed(buf, (size_t)n) != 0)
					return -1;
				/* All the replies to what this read brought in, in
				 * one write. */
				if (lk.batch)
					(void)link_flush();
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			/* EOF or EIO: a gadget tty whose host went away.  Wait
			 * for the next one with a clean endpoint. */
		} else if (p.revents & POLLOUT) {
			continue; /* hostile_tick writes on the next turn */
		} else if (!(p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
			continue;
		}
		if (p.revents & POLLNVAL) {
			fprintf(stderr, "penemu: the port was closed under us\n");
			return -1;
		}
		pl_fw_reset(&emu.fw);
		{
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (emu.tty_path && reopen_tty() != 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct args a;
	struct sigaction sa;
	char path[256];
	int keep = -1;
	int rc = 1;

	boot_ms = pl_time_monotonic_ms();
	parse_args(argc, argv, &a);
	emu.model = a.model;
	emu.verbose = a.verbose;
	emu.fd = emu.wfd = -1;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: poll must return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	emu.flash_path = a.flash;
	emu.faults = faults_new(&a.faults, a.fault_seed);
	if (a.hostile != HOSTILE_NONE)
		emu.hostile = hostile_new(a.hostile, a.fault_seed);
	if (!emu.faults || (a.hostile != HOSTILE_NONE && !emu.hostile)) {
		fprintf(stderr, "penemu: out of memory\n");
		return 1;
	}
	if (prepare_flash(&a) != 0)
		goto out;
	if (a.treat_s) {
		struct treat_opts to = {a.treat_s, a.treat_after_s, a.treat_every_s,
		                        a.seed, a.uuid_serial, EMU_FW_VERSION};
		emu.treat = treat_new(&to);
		if (!emu.treat) {
			fprintf(stderr, "penemu: out of memory\n");
			goto out;
		}
	}

	/* Batches without faults; see struct link. */
	lk.batch = !a.any_fault && a.hostile == HOSTILE_NONE;
	lk.rate = a.link_rate;
	lk.latency_ns = (int64_t)a.link_latency_us * 1000;
	sa.sa_handler = on_write_alarm; /* no SA_RESTART: write returns */
	sigaction(SIGALRM, &sa, NULL);
	if (a.tty) {
		open_tty(a.tty, &emu.fd, &emu.wfd);
		emu.tty_path = a.tty;
		snprintf(path, sizeof path, "%s", a.tty);
	} else {
		emu.fd = open_pty(path, sizeof path, &keep);
	}
	if (emu.fd < 0)
		goto out;

	init_endpoint();

	/* The pen "boots" when its port appears: uptime and the boot delay
	 * count from here, not from the session generation before. */
	boot_ms = pl_time_monotonic_ms();
	printf("%s\n", path);
	fflush(stdout);
	if (emu.verbose)
		fprintf(stderr, "penemu: pen %s serving on %s\n", emu.serial, path);
	if (emu.hostile)
		fprintf(stderr, "penemu: hostile pen (%s) %s on %s\n",
		        hostile_name(a.hostile), emu.serial, path);

	rc = serve() == 0 ? 0 : 1;
out:
	if (emu.fd >= 0)
		close(emu.fd);
	if (emu.wfd >= 0)
		close(emu.wfd);
	if (keep >= 0)
		close(keep);
	flash_close(emu.flash);
	faults_free(emu.faults);
	hostile_free(emu.hostile);
	treat_free(emu.treat);
	link_free();
	return rc;
}
