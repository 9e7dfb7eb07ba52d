/* penlinkd.conf: defaults, the documented example, every key, and bad
 * files refused with the file, line, section and key named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/pld-config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The example next to the daemon's sources, found from this file's own
 * path (CMake compiles with absolute paths), so ctest finds it from any
 * build directory. */
static void example_path(char *out, size_t cap)
{
	const char *me = __FILE__;
	const char *tail = strstr(me, "tests/daemon/test_config.c");
	assert_non_null(tail);
	snprintf(out, cap, "%.*sdaemon/penlinkd.conf.example", (int)(tail - me), me);
}

static char *write_file(const char *name, const char *text)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Two policies decide the same: same threshold, same caps in order. */
static void assert_same_policy(const struct pl_policy *a,
                               const struct pl_policy *b)
{
	assert_int_equal(pl_policy_confirm_above_um(a),
	                 pl_policy_confirm_above_um(b));
	for (size_t i = 0;; i++) {
		const char *ga, *gb;
		uint32_t ua, ub;
		int ra = pl_policy_cap(a, i, &ga, &ua);
		assert_int_equal(ra, pl_policy_cap(b, i, &gb, &ub));
		if (ra != PL_OK)
			break;
		assert_string_equal(ga, gb);
		assert_int_equal(ua, ub);
	}
}

static void assert_same(const struct config *a, const struct config *b)
{
	assert_string_equal(a->socket_path, b->socket_path);
	assert_string_equal(a->db_path, b->db_path);
	assert_string_equal(a->socket_group, b->socket_group);
	assert_int_equal(a->socket_mode, b->socket_mode);
	assert_int_equal(a->log_level, b->log_level);
	assert_int_equal(a->usb_enabled, b->usb_enabled);
	assert_int_equal(a->n_usb_ids, b->n_usb_ids);
	for (int i = 0; i < a->n_usb_ids; i++) {
		assert_int_equal(a->usb_ids[i].vid, b->usb_ids[i].vid);
		assert_int_equal(a->usb_ids[i].pid, b->usb_ids[i].pid);
	}
	assert_string_equal(a->logs_group, b->logs_group);
	assert_string_equal(a->presets_group, b->presets_group);
	assert_same_policy(a->policy, b->policy);
	assert_int_equal(a->timeout_ms, b->timeout_ms);
	assert_int_equal(a->handshake_ms, b->handshake_ms);
	assert_int_equal(a->window, b->window);
	/* And nothing else differs (defaults start from a zeroed struct); the
	 * policies are compared by what they decide, not where they are. */
	struct config x = *a, y = *b;
	x.policy = y.policy = NULL;
	assert_memory_equal(&x, &y, sizeof x);
}

static void test_defaults(void **state)
{
	(void)state;
	struct config c;
	config_defaults(&c);
	assert_string_equal(c.socket_path, "/run/penlink/penlinkd.sock");
	assert_string_equal(c.db_path, "/var/lib/penlink/archive.db");
	assert_string_equal(c.socket_group, "penlink");
	assert_int_equal(c.socket_mode, 0660);
	assert_int_equal(c.log_level, LOG_INFO);
	assert_true(c.usb_enabled);
	assert_int_equal(c.n_usb_ids, 1);
	assert_int_equal(c.usb_ids[0].vid, 0x1209);
	assert_int_equal(c.usb_ids[0].pid, 0x0001);
	assert_string_equal(c.logs_group, "penlink-logs");
	assert_string_equal(c.presets_group, "penlink-tech");
	/* The library's default policy. */
	assert_int_equal(pl_policy_confirm_above_um(c.policy),
	                 PL_POLICY_CONFIRM_ABOVE_UM);
	const char *g;
	uint32_t um;
	assert_int_equal(pl_policy_cap(c.policy, 0, &g, &um), PL_ERR_NOT_FOUND);
	assert_int_equal(c.timeout_ms, 1000);
	assert_int_equal(c.handshake_ms, 5000);
	assert_int_equal(c.window, 0);
	/* No [central]: no replication. */
	assert_string_equal(c.central_url, "");
	assert_string_equal(c.central_site, "");
	assert_int_equal(c.central_retry_max_s, 60);
	assert_int_equal(c.central_batch_kib, 8192);
	config_free(&c);
}

static void test_example_as_shipped(void **state)
{
	(void)state;
	char path[1024], err[600];
	example_path(path, sizeof path);
	struct config c, d;
	config_defaults(&c);
	config_defaults(&d);
	assert_int_equal(config_load(&c, path, true, err, sizeof err), 0);
	assert_same(&c, &d);
	config_free(&c);
	config_free(&d);
}

/*
 * The example documents each key as "#key = default".  Uncommenting every
 * such line must give a file that loads and equals the defaults - so each
 * documented default is the real one - and must cover every key.
 */
static void test_example_defaults_are_true(void **state)
{
	(void)state;
	static const char *keys[] = {
	    "socket", "database", "socket_group", "socket_mode", "log_level",
	    "enabled", "ids", "logs_group", "presets_group", "confirm_above_mm",
	    "request_timeout_ms", "handshake_timeout_ms", "download_window",
	    "retry_max_s", "batch_kib",
	};
	const size_t nkeys = sizeof keys / sizeof keys[0];
	bool seen[sizeof keys / sizeof keys[0]] = {false};
	char path[1024], err[600];
	example_path(path, sizeof path);
	FILE *in = fopen(path, "r");
	assert_non_null(in);
	char out_path[128];
	snprintf(out_path, sizeof out_path, "%s/uncommented.conf", tmpdir);
	FILE *out = fopen(out_path, "w");
	assert_non_null(out);
	char line[512];
	int uncommented = 0;
	while (fgets(line, sizeof line, in)) {
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " = ")) {
			fputs(line + 1, out);
			uncommented++;
			for (size_t k = 0; k < nkeys; k++) {
				size_t n = strlen(keys[k]);
				if (!strncmp(line + 1, keys[k], n) && line[1 + n] == ' ')
					seen[k] = true;
			}
		} else {
			fputs(line, out);
		}
	}
	fclose(in);
	fclose(out);
	assert_int_equal(uncommented, (int)nkeys);
	for (size_t k = 0; k < nkeys; k++)
		if (!seen[k])
			fail_msg("the example does not document '%s'", keys[k]);
	struct config c, d;
	config_defaults(&c);
	config_defaults(&d);
	c.timeout_ms = 1; /* so equality below proves the file set it */
	c.n_usb_ids = 0;
	if (config_load(&c, out_path, true, err, sizeof err) != 0)
		fail_msg("uncommented example: %s", err);
	assert_same(&c, &d);
	config_free(&c);
	config_free(&d);
}

static void test_every_key(void **state)
{
	(void)state;
	const char *text =
	    "; a comment\n"
	    "[daemon]\n"
	    "socket = /tmp/x/penlinkd.sock\n"
	    "database = /tmp/x/archive.db   ; inline comment\n"
	    "socket_group =\n"
	    "socket_mode = 0666\n"
	    "log_level = debug\n"
	    "\n"
	    "[usb]\n"
	    "enabled = no\n"
	    "ids = 1209:0001, 1209:ABCD,dead:beef\n"
	    "[access]\n"
	    "logs_group = clinic-staff\n"
	    "presets_group = techs\n"
	    "[policy]\n"
	    "confirm_above_mm = 2\n"
	    "depth_cap.nurses = 1.0\n"
	    "depth_cap.seniors = 2.25\n"
	    "[pens]\n"
	    "request_timeout_ms = 250\n"
	    "handshake_timeout_ms = 10000\n"
	    "download_window = 4\n"
	    "[central]\n"
	    "url = postgresql://site_n@db.example/penlink?sslmode=verify-full\n"
	    "site = north-1\n"
	    "retry_max_s = 5\n"
	    "batch_kib = 1024\n";
	char *path = write_file("all.conf", text);
	struct config c;
	char err[600];
	config_defaults(&c);
	if (config_load(&c, path, true, err, sizeof err) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.socket_path, "/tmp/x/penlinkd.sock");
	assert_string_equal(c.db_path, "/tmp/x/archive.db");
	assert_string_equal(c.socket_group, "");
	assert_int_equal(c.socket_mode, 0666);
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_false(c.usb_enabled);
	assert_int_equal(c.n_usb_ids, 3);
	assert_int_equal(c.usb_ids[1].vid, 0x1209);
	assert_int_equal(c.usb_ids[1].pid, 0xabcd);
	assert_int_equal(c.usb_ids[2].vid, 0xdead);
	assert_int_equal(c.usb_ids[2].pid, 0xbeef);
	assert_string_equal(c.logs_group, "clinic-staff");
	assert_string_equal(c.presets_group, "techs");
	const char *g;
	uint32_t um;
	assert_int_equal(pl_policy_confirm_above_um(c.policy), 2000);
	assert_int_equal(pl_policy_cap(c.policy, 0, &g, &um), PL_OK);
	assert_string_equal(g, "nurses");
	assert_int_equal(um, 1000);
	assert_int_equal(pl_policy_cap(c.policy, 1, &g, &um), PL_OK);
	assert_string_equal(g, "seniors");
	assert_int_equal(um, 2250);
	assert_int_equal(pl_policy_cap(c.policy, 2, &g, &um), PL_ERR_NOT_FOUND);
	assert_int_equal(c.timeout_ms, 250);
	assert_int_equal(c.handshake_ms, 10000);
	assert_int_equal(c.window, 4);
	assert_string_equal(c.central_url,
	                    "postgresql://site_n@db.example/penlink?sslmode=verify-full");
	assert_string_equal(c.central_site, "north-1");
	assert_int_equal(c.central_retry_max_s, 5);
	assert_int_equal(c.central_batch_kib, 1024);
	config_free(&c);
}

/* A [policy] section replaces the loaded policy as a whole, and may loosen
 * the library's default as well as tighten it: the daemon decides. */
static void test_policy_section_replaces(void **state)
{
	(void)state;
	struct config c;
	char err[600];
	assert_int_equal(config_defaults(&c), PL_OK);
	char *path = write_file("loose.conf", "[policy]\nconfirm_above_mm = 2.0\n");
	assert_int_equal(config_load(&c, path, true, err, sizeof err), 0);
	assert_int_equal(pl_policy_confirm_above_um(c.policy), 2000);
	path = write_file("caps.conf", "[policy]\ndepth_cap.nurses = 1.0\n");
	assert_int_equal(config_load(&c, path, true, err, sizeof err), 0);
	assert_int_equal(pl_policy_confirm_above_um(c.policy),
	                 PL_POLICY_CONFIRM_ABOVE_UM);
	/* A file without the section keeps what was loaded. */
	path = write_file("none.conf", "[pens]\ndownload_window = 2\n");
	assert_int_equal(config_load(&c, path, true, err, sizeof err), 0);
	const char *g;
	uint32_t um;
	assert_int_equal(pl_policy_cap(c.policy, 0, &g, &um), PL_OK);
	assert_string_equal(g, "nurses");
	config_free(&c);
}

static void test_missing_file(void **state)
{
	(void)state;
	struct config c, d;
	char err[600];
	config_defaults(&c);
	config_defaults(&d);
	char path[128];
	snprintf(path, sizeof path, "%s/absent.conf", tmpdir);
	assert_int_equal(config_load(&c, path, false, err, sizeof err), 0);
	assert_same(&c, &d);
	assert_int_equal(config_load(&c, path, true, err, sizeof err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
	config_free(&c);
	config_free(&d);
}

/* Each bad file: the message, exactly, and the config left untouched. */
static void expect_error(const char *text, const char *want_suffix)
{
	char *path = write_file("bad.conf", text);
	struct config c, d;
	char err[600], want[800];
	config_defaults(&c);
	config_defaults(&d);
	assert_int_equal(config_load(&c, path, true, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:%s", path, want_suffix);
	assert_string_equal(err, want);
	assert_same(&c, &d);
	config_free(&c);
	config_free(&d);
}

static void test_bad_files(void **state)
{
	(void)state;
	expect_error("[daemon]\nsocket = /tmp/s\nsockett = /tmp/s\n",
	             "3: [daemon] sockett: unknown key");
	expect_error("[pens]\n\nrequest_timeout_ms = 12x\n",
	             "3: [pens] request_timeout_ms: '12x' is not a number of "
	             "milliseconds from 10 to 600000");
	expect_error("[pens]\nhandshake_timeout_ms = 0\n",
	             "2: [pens] handshake_timeout_ms: '0' is not a number of "
	             "milliseconds from 10 to 600000");
	expect_error("[pens]\ndownload_window = -1\n",
	             "2: [pens] download_window: '-1' is not a number from 0 (as the "
	             "pen allows) to 1024");
	expect_error("[usb]\nids = 1209:0001, 12090:1\n",
	             "2: [usb] ids: '12090:1' is not VID:PID in hexadecimal (e.g. 1209:0001)");
	expect_error("[usb]\nids = 1209-0001\n",
	             "2: [usb] ids: '1209-0001' is not VID:PID in hexadecimal (e.g. 1209:0001)");
	expect_error("[usb]\nids = 1209:0001,,1209:0002\n",
	             "2: [usb] ids: expected a comma-separated list of VID:PID in "
	             "hexadecimal, e.g. 1209:0001");
	expect_error("[usb]\nenabled = maybe\n", "2: [usb] enabled: 'maybe' is not yes or no");
	/* [policy] is read by the library, whose messages name the key. */
	expect_error("[policy]\nconfirm_above_mm = 1.5mm\n",
	             "2: [policy] confirm_above_mm = \"1.5mm\": expected a depth in "
	             "millimetres, e.g. 1.5");
	expect_error("[policy]\ndepth_cap.nurses = deep\n",
	             "2: [policy] depth_cap.nurses = \"deep\": expected a depth in "
	             "millimetres, e.g. 1.5");
	expect_error("[policy]\nconfirm_above = 1.5\n",
	             "2: [policy] unknown key \"confirm_above\" (known: "
	             "confirm_above_mm, depth_cap.GROUP)");
	expect_error("[policy]\ndepth_cap. = 1.0\n",
	             "2: [policy] depth_cap.: expected depth_cap.GROUP with a Unix group name");
	expect_error("[daemon]\nsocket_mode = 0999\n",
	             "2: [daemon] socket_mode: '0999' is not an octal mode from 0000 "
	             "to 0777 (e.g. 0660)");
	expect_error("[daemon]\nlog_level = loud\n",
	             "2: [daemon] log_level: 'loud' is not a level (err, warn, notice, "
	             "info or debug)");
	expect_error("[daemon]\ndatabase = archive.db\n",
	             "2: [daemon] database: 'archive.db' is not an absolute path");
	expect_error("[access]\nlogs_group = two words\n",
	             "2: [access] logs_group: 'two words' is not a valid group name");
	expect_error("[daemon]\nlog_level = info\n[pens]\n[daemon]\nlog_level = debug\n",
	             "5: [daemon] log_level: given twice (first on line 2)");
	expect_error("[sockets]\npath = /tmp/s\n",
	             "2: [sockets] path: unknown section (known: daemon, usb, access, "
	             "policy, pens, central)");
	/* [central]: no password in the url (and never echoed), both keys. */
	expect_error("[central]\nsite = x\nurl = host=/tmp password=hunter2\n",
	             "3: [central] url: the connection string holds a password; put "
	             "it in a passfile (~/.pgpass, or passfile=FILE) or a service "
	             "file (service=NAME), never in the configuration or on a "
	             "command line");
	expect_error("[central]\nurl = host=/tmp dbname=x\n",
	             "2: [central] site: missing; central replication needs both "
	             "url and site");
	expect_error("[central]\nsite = north\n",
	             "2: [central] url: missing; central replication needs both "
	             "url and site");
	expect_error("[central]\nsite = -x\n",
	             "2: [central] site: '-x' is not a site name (1 to 63 letters, "
	             "digits, '-', '_' or '.', starting with a letter or digit)");
	expect_error("[central]\nretry_max_s = 0\n",
	             "2: [central] retry_max_s: '0' is not a number of seconds from "
	             "1 to 3600");
	expect_error("log_level = info\n", "1: [] log_level: key outside any [section]");
	/* inih's own complaint (not key = value): the line is still named. */
	expect_error("[daemon]\n# fine\nthis is not ini\nlog_level = info\n",
	             "3: expected [section], key = value or a comment (# or ;)");
	/* The first error wins, whichever kind it is. */
	expect_error("[daemon]\nbogus = 1\nnot ini\n", "2: [daemon] bogus: unknown key");
	expect_error("[daemon]\nnot ini\nbogus = 1\n",
	             "2: expected [section], key = value or a comment (# or ;)");
}

/* A line too long for inih's buffer is refused, not cut (a cut path would
 * silently name another file), and the lines after it keep their numbers. */
static void test_long_line(void **state)
{
	(void)state;
	char text[2048];
	char longpath[600];
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	snprintf(text, sizeof text, "[daemon]\nsocket = %s\nlog_level = info\n", longpath);
	char *path = write_file("long.conf", text);
	struct config c;
	char err[600];
	config_defaults(&c);
	assert_int_equal(config_load(&c, path, true, err, sizeof err), -1);
	char want[300];
	snprintf(want, sizeof want, "%s:2: line longer than", path);
	assert_memory_equal(err, want, strlen(want));
	assert_string_equal(c.socket_path, "/run/penlink/penlinkd.sock");
	config_free(&c);

	snprintf(text, sizeof text, "[daemon]\n# %s\nlog_lvl = info\n", longpath);
	path = write_file("long2.conf", text);
	config_defaults(&c);
	assert_int_equal(config_load(&c, path, true, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: line longer than", path);
	assert_memory_equal(err, want, strlen(want));
	config_free(&c);
}

static void test_caps_limit(void **state)
{
	(void)state;
	char text[4096];
	size_t n = (size_t)snprintf(text, sizeof text, "[policy]\n");
	/* The library's limit: 16 capped groups. */
	for (int i = 0; i <= 16; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "depth_cap.g%d = 1.0\n", i);
	char *path = write_file("caps.conf", text);
	struct config c;
	char err[600], want[300];
	config_defaults(&c);
	assert_int_equal(config_load(&c, path, true, err, sizeof err), -1);
	snprintf(want, sizeof want,
	         "%s:%d: [policy] depth_cap.g16: at most 16 groups may have a cap",
	         path, 18);
	assert_string_equal(err, want);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_example_as_shipped),
	    cmocka_unit_test(test_example_defaults_are_true),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_policy_section_replaces),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_caps_limit),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
