/* Access control (daemon/access.c, with ctl_ops.c's table of operations)
 * and who the clinic's preset policy sees in a caller, with made-up
 * credentials: no sockets, no real groups needed.  The policy's decision
 * itself is libpenlink's (tests/unit). */
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
#include "ctl_int.h"
#include "log.h"

#define DAEMON_UID 990
#define GID_LOGS 2001
#define GID_TECH 2002
#define GID_JUNIOR 2003
#define GID_SENIOR 2004

/* The clinic's policy of these tests: the default confirmation (1.50 mm),
 * juniors capped at 1.00 mm, seniors at 2.50 mm. */
static struct pl_policy *clinic;

static int make_clinic(void **state)
{
	(void)state;
	return pl_policy_new(&clinic) ||
	       pl_policy_set(clinic, "depth_cap.penlink-junior", "1.0") ||
	       pl_policy_set(clinic, "depth_cap.penlink-senior", "2.5");
}

static int free_clinic(void **state)
{
	(void)state;
	pl_policy_free(clinic);
	return 0;
}

static struct access_policy policy(void)
{
	struct access_policy p;
	memset(&p, 0, sizeof p);
	p.daemon_uid = DAEMON_UID;
	p.logs = (struct access_group){"penlink-logs", true, GID_LOGS};
	p.presets = (struct access_group){"penlink-tech", true, GID_TECH};
	p.presets_policy = clinic;
	p.caps[0] = (struct access_group){"penlink-junior", true, GID_JUNIOR};
	p.caps[1] = (struct access_group){"penlink-senior", true, GID_SENIOR};
	p.n_caps = 2;
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

/* The access check of op, as the daemon runs it: with the right and
 * purpose its table entry holds. */
static int check(const struct access_policy *p, const struct caller *c,
                 Plctl__Request__OpCase op, char *msg, size_t len)
{
	const struct ctl_op *o = ctl_op_of(op);
	assert_non_null(o);
	return access_check(p, c, o->right, o->purpose, msg, len);
}

static void expect_allowed(const struct access_policy *p, const struct caller *c,
                           const Plctl__Request__OpCase *ops, size_t n)
{
	char msg[512];
	for (size_t i = 0; i < n; i++) {
		msg[0] = 0;
		int rc = check(p, c, ops[i], msg, sizeof msg);
		if (rc)
			fail_msg("%s refused %s: %s", c->user, ctl_op_of(ops[i])->name,
			         msg);
	}
}

static void expect_denied(const struct access_policy *p, const struct caller *c,
                          const Plctl__Request__OpCase *ops, size_t n)
{
	char msg[512];
	for (size_t i = 0; i < n; i++) {
		int rc = check(p, c, ops[i], msg, sizeof msg);
		if (rc != PL_ERR_ACCESS)
			fail_msg("%s was allowed %s", c->user, ctl_op_of(ops[i])->name);
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
	assert_int_equal(check(&p, &alice, PLCTL__REQUEST__OP_LIST_SESSIONS,
	                              msg, sizeof msg),
	                 PL_ERR_ACCESS);
	assert_string_equal(msg, "permission denied: alice is not in group "
	                         "penlink-logs (needed to read session logs)");
	check(&p, &alice, PLCTL__REQUEST__OP_PUSH_PRESETS, msg, sizeof msg);
	assert_string_equal(msg, "permission denied: alice is not in group "
	                         "penlink-tech (needed to change presets)");
	check(&p, &alice, PLCTL__REQUEST__OP_AUDIT, msg, sizeof msg);
	assert_string_equal(msg, "permission denied: alice is not in group "
	                         "penlink-logs (needed to read the audit trail)");
	check(&p, &alice, PLCTL__REQUEST__OP_ATTACH, msg, sizeof msg);
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
	assert_int_equal(check(&p, &tech, PLCTL__REQUEST__OP_PUSH_PRESETS,
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
	assert_null(ctl_op_of(PLCTL__REQUEST__OP__NOT_SET));
	assert_null(ctl_op_of((Plctl__Request__OpCase)99));
	assert_null(ctl_op_of((Plctl__Request__OpCase)5));
	assert_string_equal(ctl_op_of(PLCTL__REQUEST__OP_PUSH_PRESETS)->name,
	                    "presets.push");
	/* Every operation the protocol has is in the table. */
	for (unsigned i = 0; i < plctl__request__descriptor.n_fields; i++) {
		unsigned id = plctl__request__descriptor.fields[i].id;
		if (id != 1)  /* the request id, not an operation */
			assert_non_null(ctl_op_of((Plctl__Request__OpCase)id));
	}
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

/* Who the policy caps: members of an existing capped group, with the
 * largest cap of their groups; never root or the daemon's user. */
static void test_depth_caps(void **state)
{
	(void)state;
	struct access_policy p = policy();
	struct pl_preset_set s = presets(500, 1250, 500);

	gid_t gj[] = {GID_TECH, GID_JUNIOR};
	struct caller junior = who(1010, "junior", gj, 2);
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, true),
	                 PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "cap of 1.00 mm (group "
	                                           "penlink-junior)"));

	/* In both capped groups: the senior group's larger cap applies. */
	gid_t gb[] = {GID_SENIOR, GID_TECH, GID_JUNIOR};
	struct caller both = who(1011, "both", gb, 3);
	assert_int_equal(access_check_presets(&p, &both, NULL, &s, true), PL_OK);

	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);
	s = presets(500, 3000, 500);
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, true), PL_OK);

	gid_t gr[] = {GID_JUNIOR};
	struct caller root = who(0, "root", gr, 1);
	assert_int_equal(access_check_presets(&p, &root, NULL, &s, true), PL_OK);
	struct caller self = who(DAEMON_UID, "penlink", gr, 1);
	assert_int_equal(access_check_presets(&p, &self, NULL, &s, true), PL_OK);

	/* A capped group that does not exist caps nobody. */
	p.caps[0].exists = false;
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, true), PL_OK);
}

/* Only what a push adds or deepens needs a confirmation or must fit the
 * cap; a deep preset already on the pen and left alone does not. */
static void test_policy_compares_with_the_pen(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);

	struct pl_preset_set on_pen = presets(500, 1000, 2000);
	struct pl_preset_set s = presets(750, 1000, 2000);   /* only preset 1 changes */
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false),
	                 PL_OK);
	s = presets(500, 1000, 2250);                        /* the deep one deepens */
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false),
	                 PL_ERR_POLICY);
	assert_string_equal(pl_error_message(), "preset 3 \"Scar\": depth 2.25 mm is above 1.50 "
	                         "mm; add --confirm to push it");
	s = presets(500, 1750, 2000);                        /* another becomes deep */
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false),
	                 PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "preset 2 \"Cheek\""));
	on_pen.count = 2;                                    /* preset 3 is new */
	s = presets(500, 1000, 2000);
	assert_int_equal(access_check_presets(&p, &tech, &on_pen, &s, false),
	                 PL_ERR_POLICY);

	/* A capped caller may edit a set that holds a deeper preset someone
	 * else set, but not deepen anything past the cap. */
	gid_t gj[] = {GID_JUNIOR};
	struct caller junior = who(1010, "junior", gj, 1);
	on_pen = presets(500, 750, 2000);
	s = presets(750, 750, 2000);
	assert_int_equal(access_check_presets(&p, &junior, &on_pen, &s, true),
	                 PL_OK);
	s = presets(1250, 750, 2000);
	assert_int_equal(access_check_presets(&p, &junior, &on_pen, &s, true),
	                 PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "cap of 1.00 mm"));
}

static void test_confirm_policy(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);

	struct pl_preset_set s = presets(500, 1500, 2000);
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false),
	                 PL_ERR_POLICY);
	assert_string_equal(pl_error_message(), "preset 3 \"Scar\": depth 2.00 mm is above 1.50 "
	                         "mm; add --confirm to push it");
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, true),
	                 PL_OK);

	/* Exactly at the threshold needs no confirmation. */
	s = presets(500, 1500, 1500);
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false),
	                 PL_OK);

	/* Root is uncapped but confirms like everyone. */
	struct caller root = who(0, "root", NULL, 0);
	s = presets(500, 3000, 500);
	assert_int_equal(access_check_presets(&p, &root, NULL, &s, false),
	                 PL_ERR_POLICY);
	assert_string_equal(pl_error_message(), "preset 2 \"Cheek\": depth 3.00 mm is above 1.50 "
	                         "mm; add --confirm to push it");
	assert_int_equal(access_check_presets(&p, &root, NULL, &s, true),
	                 PL_OK);

	/* An empty set is fine. */
	memset(&s, 0, sizeof s);
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false),
	                 PL_OK);
}

static void test_cap_policy(void **state)
{
	(void)state;
	struct access_policy p = policy();

	gid_t gj[] = {GID_TECH, GID_JUNIOR};
	struct caller junior = who(1010, "junior", gj, 2);
	struct pl_preset_set s = presets(500, 1250, 750);
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, true),
	                 PL_ERR_POLICY);
	assert_string_equal(pl_error_message(), "preset 2 \"Cheek\": depth 1.25 mm is above "
	                         "junior's cap of 1.00 mm (group penlink-junior)");

	/* The cap is checked before the confirmation: no point confirming a
	 * push that is refused anyway. */
	s = presets(500, 750, 2000);
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, false),
	                 PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "cap of 1.00 mm (group penlink-junior)"));

	s = presets(500, 1000, 750);  /* at the cap */
	assert_int_equal(access_check_presets(&p, &junior, NULL, &s, false),
	                 PL_OK);

	gid_t gs[] = {GID_JUNIOR, GID_SENIOR};
	struct caller senior = who(1011, "senior", gs, 2);
	s = presets(500, 2500, 750);
	assert_int_equal(access_check_presets(&p, &senior, NULL, &s, false),
	                 PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "add --confirm"));
	assert_int_equal(access_check_presets(&p, &senior, NULL, &s, true),
	                 PL_OK);
	s = presets(2750, 500, 750);
	assert_int_equal(access_check_presets(&p, &senior, NULL, &s, true),
	                 PL_ERR_POLICY);
	assert_string_equal(pl_error_message(), "preset 1 \"Forehead\": depth 2.75 mm is above "
	                         "senior's cap of 2.50 mm (group penlink-senior)");
}

static void test_names_in_messages_are_defused(void **state)
{
	(void)state;
	struct access_policy p = policy();
	gid_t gt[] = {GID_TECH};
	struct caller tech = who(1012, "tech", gt, 1);
	struct pl_preset_set s = presets(500, 500, 2000);
	/* Control characters are no name at all (issue 10): refused by the
	 * name rule, and the refusal quotes nothing raw either. */
	snprintf(s.presets[2].name, sizeof s.presets[2].name, "a\x1b[2J\"b\n");
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false),
	                 PL_ERR_VALIDATION);
	for (const char *m = pl_error_message(); *m; m++)
		assert_true((unsigned char)*m >= 0x20 && *m != 0x7f);
	assert_non_null(strstr(pl_error_message(), "control character"));
	/* A name may hold a direction override; a message shows it escaped. */
	snprintf(s.presets[2].name, sizeof s.presets[2].name, "a\xe2\x80\xae\"b");
	assert_int_equal(access_check_presets(&p, &tech, NULL, &s, false),
	                 PL_ERR_POLICY);
	/* The refusal goes to the audit trail another user reads. */
	assert_null(strstr(pl_error_message(), "\xe2\x80\xae"));
	assert_non_null(strstr(pl_error_message(), "\"a\\u202e\"b\""));
	assert_non_null(strstr(pl_error_message(), "depth 2.00 mm is above "
	                                           "1.50 mm; add --confirm"));
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
	char key[96];
	assert_int_equal(config_defaults(&cfg), PL_OK);
	snprintf(cfg.logs_group, sizeof cfg.logs_group, "%s", gr->gr_name);
	snprintf(cfg.presets_group, sizeof cfg.presets_group,
	         "penlink-no-such-group-x9");
	snprintf(key, sizeof key, "depth_cap.%s", gr->gr_name);
	assert_int_equal(pl_policy_set(cfg.policy, key, "1.2"), PL_OK);
	assert_int_equal(pl_policy_set(cfg.policy, "confirm_above_mm", "1.75"),
	                 PL_OK);
	struct access_policy p;
	access_policy_init(&p, &cfg, 12345);
	assert_int_equal(p.daemon_uid, 12345);
	assert_true(p.logs.exists);
	assert_int_equal(p.logs.gid, getgid());
	assert_false(p.presets.exists);
	assert_string_equal(p.presets.name, "penlink-no-such-group-x9");
	assert_int_equal(p.n_caps, 1);
	assert_true(p.caps[0].exists);
	assert_ptr_equal(p.presets_policy, cfg.policy);

	gid_t g[] = {getgid()};
	struct caller c = who(54321, "someone", g, 1);
	assert_true(access_has_right(&p, &c, ACCESS_READ_LOGS));
	assert_false(access_has_right(&p, &c, ACCESS_CHANGE_PRESETS));
	/* The configuration's cap and threshold, for a member of the group. */
	struct pl_preset_set s = presets(500, 1250, 500);
	assert_int_equal(access_check_presets(&p, &c, NULL, &s, true),
	                 PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "cap of 1.20 mm"));
	s = presets(500, 1750, 500);
	struct caller root = who(0, "root", NULL, 0);
	assert_int_equal(access_check_presets(&p, &root, NULL, &s, false), PL_OK);
	config_free(&cfg);
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
		cmocka_unit_test(test_depth_caps),
		cmocka_unit_test(test_confirm_policy),
		cmocka_unit_test(test_policy_compares_with_the_pen),
		cmocka_unit_test(test_cap_policy),
		cmocka_unit_test(test_names_in_messages_are_defused),
		cmocka_unit_test(test_caller_from_socket),
		cmocka_unit_test(test_policy_from_config),
	};
	return cmocka_run_group_tests(tests, make_clinic, free_clinic);
}
