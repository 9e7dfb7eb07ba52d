/* Access control and preset policy (daemon/access.c), with made-up
 * credentials: no sockets, no real groups needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "access.h"
#include "log.h"

#define DAEMON_UID 990
#define GID_LOGS 2001
#define GID_TECH 2002
#define GID_JUNIOR 2003
#define GID_SENIOR 2004

static struct access_policy policy(void)
{
	struct access_policy p;
	memset(&p, 0, sizeof p);
	p.daemon_uid = DAEMON_UID;
	p.logs = (struct access_group){"penlink-logs", true, GID_LOGS};
	p.presets = (struct access_group){"penlink-tech", true, GID_TECH};
	p.caps[0] = (struct access_cap){{"penlink-junior", true, GID_JUNIOR}, 1000};
	p.caps[1] = (struct access_cap){{"penlink-senior", true, GID_SENIOR}, 2500};
	p.n_caps = 2;
	p.confirm_above_um = 1500;
	return p;
}

/* A caller whose groups are the given gids (0-terminated after the first). */
static struct caller who(uid_t uid, const char *user, gid_t *groups, size_t n)
{
	struct caller c;
	memset(&c, 0, sizeof c);
	c.uid = uid;
	c.gid = n ? groups[0] : 100;
	c.pid = 4242;
	snprintf(c.user, sizeof c.user, "%s", user);
	c.groups = groups;
	c.n_groups = n;
	return c;
}

static const Plctl__Request__OpCase logs_ops[] = {
	PLCTL__REQUEST__OP_LIST_SESSIONS, PLCTL__REQUEST__OP_SHOW_SESSION,
	PLCTL__REQUEST__OP_EXPORT_SESSIONS, PLCTL__REQUEST__OP_AUDIT};
static const Plctl__Request__OpCase tech_ops[] = {
	PLCTL__REQUEST__OP_PUSH_PRESETS, PLCTL__REQUEST__OP_CLOCK_SYNC,
	PLCTL__REQUEST__OP_ATTACH, PLCTL__REQUEST__OP_DETACH};
static const Plctl__Request__OpCase open_ops[] = {
	PLCTL__REQUEST__OP_HELLO, PLCTL__REQUEST__OP_LIST_PENS,
	PLCTL__REQUEST__OP_GET_INFO, PLCTL__REQUEST__OP_GET_PRESETS,
	PLCTL__REQUEST__OP_MONITOR, PLCTL__REQUEST__OP_TRACE};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void expect_allowed(const struct access_policy *p, const struct caller *c,
                           const Plctl__Request__OpCase *ops, size_t n)
{
	char msg[512];
	for (size_t i = 0; i < n; i++) {
		msg[0] = 0;
		int rc = access_check(p, c, ops[i], msg, sizeof msg);
		if (rc)
			fail_msg("%s refused %s: %s", c->user, access_op_of(ops[i])->name,
			         msg);
	}
}

static void expect_denied(const struct access_policy *p, const struct caller *c,
                          const Plctl__Request__OpCase *ops, size_t n)
{
	char msg[512];
	for (size_t i = 0; i < n; i++) {
		int rc = access_check(p, c, ops[i], msg, sizeof msg);
		if (rc != PL_ERR_ACCESS)
			fail_msg("%s was allowed %s", c->user, access_op_of(ops[i])->name);
		assert_non_null(strstr(msg, "permission denied: "));
	}
}

static void test_root_and_daemon_user_do_everything(void **state)
{
	(void)state;
	struct access_policy p = policy();
	struct caller root = who(0, "root", NULL, 0);
	struct caller self = who(DAEMON_UID, "penlink", NULL, 0);
	for (int k = 0; k < 2; k++) {
		const struct caller *c = k ? &self : &root;
		expect_allowed(&p, c, logs_ops, N(logs_ops));
		expect_allowed(&p, c, tech_ops, N(tech_ops));
		expect_allowed(&p, c, open_ops, N(open_ops));
		assert_true(access_has_right(&p, c, ACCESS_READ_LOGS));
		assert_true(access_has_right(&p, c, ACCESS_CHANGE_PRESETS));
	}
}

static void test_outsider(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t g[] = {1000, 27};
	struct caller alice = who(1000, "alice", g, 2);
	expect_allowed(&p, &alice, open_ops, N(open_ops));
	expect_denied(&p, &alice, logs_ops, N(logs_ops));
	expect_denied(&p, &alice, tech_ops, N(tech_ops));

	char msg[512];
	assert_int_equal(access_check(&p, &alice, PLCTL__REQUEST__OP_LIST_SESSIONS,
	                              msg, sizeof msg),
	                 PL_ERR_ACCESS);
	assert_string_equal(msg, "permission denied: alice is not in group "
	                         "penlink-logs (needed to read session logs)");
	access_check(&p, &alice, PLCTL__REQUEST__OP_PUSH_PRESETS, msg, sizeof msg);
	assert_string_equal(msg, "permission denied: alice is not in group "
	                         "penlink-tech (needed to change presets)");
	access_check(&p, &alice, PLCTL__REQUEST__OP_AUDIT, msg, sizeof msg);
	assert_string_equal(msg, "permission denied: alice is not in group "
	                         "penlink-logs (needed to read the audit trail)");
	access_check(&p, &alice, PLCTL__REQUEST__OP_ATTACH, msg, sizeof msg);
	assert_string_equal(msg, "permission denied: alice is not in group "
	                         "penlink-tech (needed to attach pens)");
	assert_false(access_has_right(&p, &alice, ACCESS_READ_LOGS));
	assert_false(access_has_right(&p, &alice, ACCESS_CHANGE_PRESETS));
	assert_true(access_has_right(&p, &alice, ACCESS_ANYONE));
}

static void test_group_members(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t gl[] = {1001, GID_LOGS};
	struct caller clerk = who(1001, "clerk", gl, 2);
	expect_allowed(&p, &clerk, logs_ops, N(logs_ops));
	expect_denied(&p, &clerk, tech_ops, N(tech_ops));

	gid_t gt[] = {GID_TECH};  /* the primary group counts too */
	struct caller tech = who(1002, "tech", gt, 1);
	expect_allowed(&p, &tech, tech_ops, N(tech_ops));
	expect_denied(&p, &tech, logs_ops, N(logs_ops));

	gid_t gb[] = {5, GID_TECH, 7, GID_LOGS};
	struct caller both = who(1003, "both", gb, 4);
	expect_allowed(&p, &both, logs_ops, N(logs_ops));
	expect_allowed(&p, &both, tech_ops, N(tech_ops));
}

static void test_missing_or_unconfigured_group(void **state)
{
	(void)state;
	struct access_policy p = policy();
	/* The group does not exist on this system: its old gid grants nothing. */
	p.logs.exists = false;
	gid_t gl[] = {GID_LOGS};
	struct caller clerk = who(1001, "clerk", gl, 1);
	expect_denied(&p, &clerk, logs_ops, N(logs_ops));

	/* Not configured at all: only root and the daemon's user. */
	p.presets.name[0] = 0;
	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1002, "tech", gt, 1);
	char msg[512];
	assert_int_equal(access_check(&p, &tech, PLCTL__REQUEST__OP_PUSH_PRESETS,
	                              msg, sizeof msg),
	                 PL_ERR_ACCESS);
	assert_string_equal(msg, "permission denied: only root and the daemon's "
	                         "user may change presets (no presets_group is "
	                         "configured)");
	struct caller root = who(0, "root", NULL, 0);
	expect_allowed(&p, &root, tech_ops, N(tech_ops));
}

static void test_unknown_op(void **state)
{
	(void)state;
	struct access_policy p = policy();
	struct caller root = who(0, "root", NULL, 0);
	char msg[128];
	assert_null(access_op_of(PLCTL__REQUEST__OP__NOT_SET));
	assert_null(access_op_of((Plctl__Request__OpCase)99));
	assert_null(access_op_of((Plctl__Request__OpCase)5));
	assert_int_equal(access_check(&p, &root, (Plctl__Request__OpCase)99, msg,
	                              sizeof msg),
	                 PL_ERR_UNSUPPORTED);
	assert_string_equal(access_op_of(PLCTL__REQUEST__OP_PUSH_PRESETS)->name,
	                    "presets.push");
}

static void test_format_mm(void **state)
{
	(void)state;
	char b[24];
	access_format_mm(1500, b, sizeof b);
	assert_string_equal(b, "1.50");
	access_format_mm(2000, b, sizeof b);
	assert_string_equal(b, "2.00");
	access_format_mm(250, b, sizeof b);
	assert_string_equal(b, "0.25");
	access_format_mm(125, b, sizeof b);
	assert_string_equal(b, "0.125");
	access_format_mm(0, b, sizeof b);
	assert_string_equal(b, "0.00");
	access_format_mm(1010, b, sizeof b);
	assert_string_equal(b, "1.01");
}

static void test_depth_caps(void **state)
{
	(void)state;
	struct access_policy p = policy();
	uint32_t cap = 0;
	const char *group = NULL;

	gid_t gj[] = {GID_TECH, GID_JUNIOR};
	struct caller junior = who(1010, "junior", gj, 2);
	assert_true(access_depth_cap(&p, &junior, &cap, &group));
	assert_int_equal(cap, 1000);
	assert_string_equal(group, "penlink-junior");

	/* In both capped groups: the senior group's larger cap wins, whatever
	 * the order of the caps or of the caller's groups. */
	gid_t gb[] = {GID_SENIOR, GID_TECH, GID_JUNIOR};
	struct caller both = who(1011, "both", gb, 3);
	assert_true(access_depth_cap(&p, &both, &cap, &group));
	assert_int_equal(cap, 2500);
	assert_string_equal(group, "penlink-senior");
	struct access_policy q = p;
	q.caps[0] = p.caps[1];
	q.caps[1] = p.caps[0];
	assert_true(access_depth_cap(&q, &both, &cap, &group));
	assert_int_equal(cap, 2500);

	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);
	assert_false(access_depth_cap(&p, &tech, &cap, &group));

	gid_t gr[] = {GID_JUNIOR};
	struct caller root = who(0, "root", gr, 1);
	assert_false(access_depth_cap(&p, &root, &cap, &group));
	struct caller self = who(DAEMON_UID, "penlink", gr, 1);
	assert_false(access_depth_cap(&p, &self, &cap, &group));

	/* A capped group that does not exist caps nobody. */
	p.caps[0].group.exists = false;
	assert_false(access_depth_cap(&p, &junior, &cap, &group));
}

static struct pl_preset_set presets(uint32_t d1, uint32_t d2, uint32_t d3)
{
	struct pl_preset_set s;
	memset(&s, 0, sizeof s);
	s.count = 3;
	s.presets[0] = (struct pl_preset){.id = 1, .name = "Forehead",
	                                  .depth_um = d1, .speed_level = 3,
	                                  .area = PL_AREA_FOREHEAD};
	s.presets[1] = (struct pl_preset){.id = 2, .name = "Cheek",
	                                  .depth_um = d2, .speed_level = 2,
	                                  .area = PL_AREA_CHEEK};
	s.presets[2] = (struct pl_preset){.id = 3, .name = "Scar",
	                                  .depth_um = d3, .speed_level = 1,
	                                  .area = PL_AREA_BODY_SCAR};
	return s;
}

/* Only what a push adds or deepens needs a confirmation or must fit the
 * cap; a deep preset already on the pen and left alone does not. */
static void test_policy_compares_with_the_pen(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);
	char msg[512];

	struct pl_preset_set on_pen = presets(500, 1000, 2000);
	struct pl_preset_set s = presets(750, 1000, 2000);   /* only preset 1 changes */
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false, msg, sizeof msg),
	                 PL_OK);
	s = presets(500, 1000, 2250);                        /* the deep one deepens */
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_string_equal(msg, "preset 3 \"Scar\": depth 2.25 mm is above 1.50 "
	                         "mm; add --confirm to push it");
	s = presets(500, 1750, 2000);                        /* another becomes deep */
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_non_null(strstr(msg, "preset 2 \"Cheek\""));
	on_pen.count = 2;                                    /* preset 3 is new */
	s = presets(500, 1000, 2000);
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);

	/* A capped caller may edit a set that holds a deeper preset someone
	 * else set, but not deepen anything past the cap. */
	gid_t gj[] = {GID_JUNIOR};
	struct caller junior = who(1010, "junior", gj, 1);
	on_pen = presets(500, 750, 2000);
	s = presets(750, 750, 2000);
	assert_int_equal(access_check_presets(&p, &junior, &on_pen, &s, true, msg, sizeof msg),
	                 PL_OK);
	s = presets(1250, 750, 2000);
	assert_int_equal(access_check_presets(&p, &junior, &on_pen, &s, true, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_non_null(strstr(msg, "cap of 1.00 mm"));
}

static void test_confirm_policy(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);
	char msg[512];

	struct pl_preset_set s = presets(500, 1500, 2000);
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_string_equal(msg, "preset 3 \"Scar\": depth 2.00 mm is above 1.50 "
	                         "mm; add --confirm to push it");
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, true, msg, sizeof msg),
	                 PL_OK);

	/* Exactly at the threshold needs no confirmation. */
	s = presets(500, 1500, 1500);
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false, msg, sizeof msg),
	                 PL_OK);

	/* Root is uncapped but confirms like everyone. */
	struct caller root = who(0, "root", NULL, 0);
	s = presets(500, 3000, 500);
	assert_int_equal(access_check_presets(&p, &root, NULL, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_string_equal(msg, "preset 2 \"Cheek\": depth 3.00 mm is above 1.50 "
	                         "mm; add --confirm to push it");
	assert_int_equal(access_check_presets(&p, &root, NULL, &s, true, msg, sizeof msg),
	                 PL_OK);

	/* An empty set is fine. */
	memset(&s, 0, sizeof s);
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false, msg, sizeof msg),
	                 PL_OK);
}

static void test_cap_policy(void **state)
{
	(void)state;
	struct access_policy p = policy();
	char msg[512];

	gid_t gj[] = {GID_TECH, GID_JUNIOR};
	struct caller junior = who(1010, "junior", gj, 2);
	struct pl_preset_set s = presets(500, 1250, 750);
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, true, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_string_equal(msg, "preset 2 \"Cheek\": depth 1.25 mm is above "
	                         "junior's cap of 1.00 mm (group penlink-junior)");

	/* The cap is checked before the confirmation: no point confirming a
	 * push that is refused anyway. */
	s = presets(500, 750, 2000);
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_non_null(strstr(msg, "cap of 1.00 mm (group penlink-junior)"));

	s = presets(500, 1000, 750);  /* at the cap */
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, false, msg, sizeof msg),
	                 PL_OK);

	gid_t gs[] = {GID_JUNIOR, GID_SENIOR};
	struct caller senior = who(1011, "senior", gs, 2);
	s = presets(500, 2500, 750);
	assert_int_equal(access_check_presets(&p, &senior, NULL, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_non_null(strstr(msg, "add --confirm"));
	assert_int_equal(access_check_presets(&p, &senior, NULL, &s, true, msg, sizeof msg),
	                 PL_OK);
	s = presets(2750, 500, 750);
	assert_int_equal(access_check_presets(&p, &senior, NULL, &s, true, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_string_equal(msg, "preset 1 \"Forehead\": depth 2.75 mm is above "
	                         "senior's cap of 2.50 mm (group penlink-senior)");
}

static void test_names_in_messages_are_defused(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);
	struct pl_preset_set s = presets(500, 500, 2000);
	snprintf(s.presets[2].name, sizeof s.presets[2].name, "a\x1b[2J\"b\n");
	char msg[512];
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false, msg, sizeof msg),
	                 PL_ERR_VALIDATION);
	assert_string_equal(msg, "preset 3 \"a?[2J?b?\": depth 2.00 mm is above "
	                         "1.50 mm; add --confirm to push it");
}

/* The system side: credentials of a real socket peer (ourselves). */
static void test_caller_from_socket(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct caller c;
	assert_int_equal(caller_from_socket(sv[0], &c), 0);
	assert_int_equal(c.uid, getuid());
	assert_int_equal(c.gid, getgid());
	assert_int_equal(c.pid, getpid());
	assert_true(caller_in_group(&c, getgid()));
	struct passwd *pw = getpwuid(getuid());
	if (pw)
		assert_string_equal(c.user, pw->pw_name);
	else
		assert_int_equal(atoi(c.user), (int)getuid());
	/* Every group this process holds counts. */
	gid_t g[256];
	int n = getgroups(256, g);
	for (int i = 0; i < n; i++)
		assert_true(caller_in_group(&c, g[i]));
	caller_free(&c);
	close(sv[0]);
	close(sv[1]);
}

static void test_policy_from_config(void **state)
{
	(void)state;
	struct group *gr = getgrgid(getgid());
	if (!gr)
		skip();
	struct config cfg;
	config_defaults(&cfg);
	snprintf(cfg.logs_group, sizeof cfg.logs_group, "%s", gr->gr_name);
	snprintf(cfg.presets_group, sizeof cfg.presets_group,
	         "penlink-no-such-group-x9");
	cfg.n_caps = 1;
	snprintf(cfg.caps[0].group, sizeof cfg.caps[0].group, "%s", gr->gr_name);
	cfg.caps[0].max_depth_um = 1200;
	cfg.confirm_above_um = 1750;
	struct access_policy p;
	access_policy_init(&p, &cfg, 12345);
	assert_int_equal(p.daemon_uid, 12345);
	assert_true(p.logs.exists);
	assert_int_equal(p.logs.gid, getgid());
	assert_false(p.presets.exists);
	assert_string_equal(p.presets.name, "penlink-no-such-group-x9");
	assert_int_equal(p.n_caps, 1);
	assert_int_equal(p.caps[0].max_depth_um, 1200);
	assert_int_equal(p.confirm_above_um, 1750);

	gid_t g[] = {getgid()};
	struct caller c = who(54321, "someone", g, 1);
	assert_true(access_has_right(&p, &c, ACCESS_READ_LOGS));
	assert_false(access_has_right(&p, &c, ACCESS_CHANGE_PRESETS));
	uint32_t cap;
	const char *name;
	assert_true(access_depth_cap(&p, &c, &cap, &name));
	assert_int_equal(cap, 1200);
}

int main(void)
{
	log_set_level(LOG_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_and_daemon_user_do_everything),
		cmocka_unit_test(test_outsider),
		cmocka_unit_test(test_group_members),
		cmocka_unit_test(test_missing_or_unconfigured_group),
		cmocka_unit_test(test_unknown_op),
		cmocka_unit_test(test_format_mm),
		cmocka_unit_test(test_depth_caps),
		cmocka_unit_test(test_confirm_policy),
		cmocka_unit_test(test_policy_compares_with_the_pen),
		cmocka_unit_test(test_cap_policy),
		cmocka_unit_test(test_names_in_messages_are_defused),
		cmocka_unit_test(test_caller_from_socket),
		cmocka_unit_test(test_policy_from_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
