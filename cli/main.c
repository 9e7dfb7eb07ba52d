/* penctl: option parsing and command dispatch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "penctl.h"

/* ------------------------------------------------------------------ options */

enum {
	G_PORT = 1000, G_SOCKET, G_SERIAL, G_JSON, G_TIMEOUT, G_POLICY, G_DUMP,
	G_UTC, G_HELP, G_VERSION, G_CENTRAL, G_SITE,
};

static int parse_timeout(struct ctl *c, const char *opt, const char *val,
                         void *field);

/* Most set a member of struct ctl; --utc, --help and --version act. */
#define GLOBAL(name, sh, arg, id, help, kind, member, ...)                  \
	OPT(name, sh, arg, id, help, kind, struct ctl, member, __VA_ARGS__)
static const struct optdef global_opts[] = {
	GLOBAL("--socket", 0, "PATH", G_SOCKET, "penlinkd's control socket",
	       OPT_NAME, socket, .what = "a path"),
	GLOBAL("--port", 'p', "PATH", G_PORT,
	       "the pen's serial port (/dev/ttyACM0, a pty): no daemon",
	       OPT_NAME, port, .what = "a path"),
	GLOBAL("--central", 0, "URL", G_CENTRAL,
	       "the clinic's central PostgreSQL archive, read-only: sessions, "
	       "audit",
	       OPT_NAME, central,
	       .what = "a connection string or postgresql:// URI"),
	GLOBAL("--site", 0, "NAME", G_SITE,
	       "--central: only the sessions and audit entries of site NAME",
	       OPT_NAME, site, .what = "a site's name"),
	GLOBAL("--serial", 's', "SERIAL", G_SERIAL,
	       "the pen to act on; with --port: refuse any other",
	       OPT_NAME, serial, .what = "a serial number"),
	GLOBAL("--json", 0, NULL, G_JSON, "one JSON document on stdout (README.md)",
	       OPT_FLAG, json),
	GLOBAL("--timeout", 0, "MS", G_TIMEOUT,
	       "wait this long for each answer (pen 1000, penlinkd 10000)",
	       OPT_CALL, timeout_ms, .parse = parse_timeout),
	GLOBAL("--policy", 0, "FILE", G_POLICY,
	       "--port: the clinic policy, a [policy] section as in penlinkd.conf",
	       OPT_NAME, policy_file, .what = "a file"),
	GLOBAL("--dump-frames", 0, NULL, G_DUMP,
	       "--port: every frame to stderr, decoded, with times",
	       OPT_FLAG, dump_frames),
	OPT_ID("--utc", 0, NULL, G_UTC,
	       "times for people in UTC, not local time (DATE too)"),
	OPT_ID("--help", 'h', NULL, G_HELP, "this help, or a command's own"),
	OPT_ID("--version", 0, NULL, G_VERSION, "the version"),
	OPT_TABLE_END,
};
#undef GLOBAL

/* ------------------------------------------------------------------ help */

static const struct cmd_group *const groups[] = {
	&info_cmds,  &preset_cmds,  &sessions_cmds, &clock_cmds,
	&trace_cmds, &list_cmds,    &monitor_cmds,  &attach_cmds,
	&central_cmds, &report_cmds,
	&detach_cmds, &audit_cmds,  &ping_cmds,     &scan_cmds, NULL,
};

const char *cmd_central_names(void)
{
	static char names[512];
	if (!names[0]) {
		size_t n = 0;
		for (size_t g = 0; groups[g]; g++)
			for (const struct cmd_spec *k = groups[g]->cmds; k->name; k++)
				if ((k->where & CMD_CENTRAL) && n < sizeof names)
					n += (size_t)snprintf(names + n, sizeof names - n,
					                      "%s%s", n ? ", " : "", k->name);
	}
	return names;
}

/* text at most width columns a line, each indented, broken at spaces. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
	int col = 0;
	while (*text) {
		size_t w = strcspn(text, " ");
		if (col && col + 1 + (int)w > width) {
			fputc('\n', out);
			col = 0;
		}
		if (!col)
			col = fprintf(out, "%*s", indent, "");
		else
			col += fprintf(out, " ");
		col += fprintf(out, "%.*s", (int)w, text);
		text += w;
		text += strspn(text, " ");
	}
	if (col)
		fputc('\n', out);
}

/* "  -o, --out DIR" in a column, then the help. */
static void print_opts(FILE *out, const struct optdef *d)
{
	for (; d && d->name; d++) {
		char name[48], left[64];
		snprintf(name, sizeof name, "%s%s%s", d->name, d->arg ? " " : "",
		         d->arg ? d->arg : "");
		if (d->short_name)
			snprintf(left, sizeof left, "-%c, %s", d->short_name, name);
		else
			snprintf(left, sizeof left, "%s", name);
		fprintf(out, "  %-24s %s\n", left, d->help);
	}
}

static void print_cmd_line(FILE *out, const struct cmd_spec *k)
{
	char left[160];
	snprintf(left, sizeof left, "%s%s%s", k->name, k->args ? " " : "",
	         k->args ? k->args : "");
	if (strlen(left) <= 30)
		fprintf(out, "  %-30s %s\n", left, k->summary);
	else
		fprintf(out, "  %s\n  %-30s %s\n", left, "", k->summary);
}

static const char exit_codes_text[] =
"Exit codes:\n"
"  0  success\n"
"  1  failure reported by the pen, or another error\n"
"  2  usage error\n"
"  3  not found (no such port, pen, session, file, or a different serial)\n"
"  4  refused by validation (penlinkd, library or pen) or by policy\n"
"  5  permission denied\n"
"  6  timeout or I/O error (including the pen unplugged)\n"
"  7  port busy, pen busy, or presets changed meanwhile (conflict)\n"
"  8  data integrity: digest or read-back mismatch, corrupt record\n"
"  9  penlinkd is not running (or went away)\n"
"130 interrupted (Ctrl-C) during a pull: it says what was kept and what "
"resumes\n";

void print_help(FILE *out)
{
	fprintf(out,
	        "usage: penctl [--socket PATH | --port PATH | --central URL] "
	        "[-s SERIAL] [--json]\n"
	        "              [--timeout MS] [--policy FILE] [--dump-frames] "
	        "[--utc] COMMAND ...\n\n"
	        "Times for people are local, with their UTC offset (--utc: UTC);\n"
	        "JSON has UTC.\n\n"
	        "Without --port, penctl talks to penlinkd on its control socket "
	        "(--socket,\nelse $PENLINK_SOCKET, else %s).\n"
	        "With --port it talks to one pen directly, without the daemon.\n"
	        "With --central URL it reads the clinic's central PostgreSQL "
	        "archive\n(the commands listed below), as a role granted "
	        "penlink_read.\n"
	        "\nGlobal options (accepted before or after the command):\n",
	        PLC_DEFAULT_SOCKET);
	print_opts(out, global_opts);
	static const struct {
		enum cmd_where where;
		const char *title;
	} sections[] = {
		{CMD_BOTH, "Commands (both ways)"},
		{CMD_DAEMON, "Only through penlinkd"},
		{CMD_DIRECT, "Only with --port"},
		{CMD_LOCAL, "Neither (this host)"},
	};
	for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
		fprintf(out, "\n%s:\n", sections[s].title);
		for (size_t g = 0; groups[g]; g++)
			for (const struct cmd_spec *k = groups[g]->cmds; k->name; k++)
				if (CMD_WHERE(k) == sections[s].where)
					print_cmd_line(out, k);
	}
	fputs("\nAlso with --central URL (the clinic's central archive, "
	      "read-only):\n", out);
	print_wrapped(out, cmd_central_names(), 2, 76);
	fprintf(out,
	        "\n'penctl COMMAND --help' shows a command's own options.\n"
	        "DATE is YYYY-MM-DD (local midnight) or "
	        "YYYY-MM-DDTHH:MM[:SS][Z].\n\n%s",
	        exit_codes_text);
}

static void print_cmd_help(FILE *out, const struct cmd_spec *k)
{
	fprintf(out, "usage: penctl %s%s%s\n\n%s.\n", k->name, k->args ? " " : "",
	        k->args ? k->args : "", k->summary);
	if (CMD_WHERE(k) == CMD_DAEMON)
		fputs("Only through penlinkd.\n", out);
	else if (CMD_WHERE(k) == CMD_DIRECT)
		fputs("Only with --port.\n", out);
	else if (CMD_WHERE(k) == CMD_LOCAL)
		fputs("Needs neither penlinkd nor --port.\n", out);
	if (k->where & CMD_CENTRAL)
		fputs("Also with --central URL (the clinic's central archive).\n", out);
	if (k->opts && k->opts->name) {
		fputs("\nOptions:\n", out);
		print_opts(out, k->opts);
	}
	if (k->details)
		fprintf(out, "\n%s", k->details);
	fputs("\nGlobal options (--socket, --port, -s, --json, ...): penctl --help\n",
	      out);
}

static void print_group_help(FILE *out, const struct cmd_group *g)
{
	fprintf(out, "usage: penctl %s SUBCOMMAND ...\n\nSubcommands:\n", g->word);
	for (const struct cmd_spec *k = g->cmds; k->name; k++)
		print_cmd_line(out, k);
	fprintf(out, "\n'penctl %s SUBCOMMAND --help' shows its options.\n",
	        g->word);
}

/* ------------------------------------------------------------------ parsing */

void opt_init(struct opt_iter *it, int argc, char **argv, int start)
{
	memset(it, 0, sizeof *it);
	it->argc = argc;
	it->argv = argv;
	it->i = start;
}

static const struct optdef *find_opt(const struct optdef *defs,
                                     const char *name, size_t name_len,
                                     char short_name)
{
	if (!defs)
		return NULL;
	for (const struct optdef *d = defs; d->name; d++) {
		if (short_name) {
			if (d->short_name == short_name)
				return d;
		} else if (strlen(d->name) == name_len &&
		           strncmp(d->name, name, name_len) == 0) {
			return d;
		}
	}
	return NULL;
}

static int parse_timeout(struct ctl *c, const char *opt, const char *val,
                         void *field)
{
	uint32_t ms;
	if (parse_u32(c, opt, val, 1, 3600000, &ms) != PX_OK)
		return PX_USAGE;
	*(int *)field = (int)ms;
	return PX_OK;
}

/* Stores val where d says, in the struct at dst. */
static int opt_store(struct ctl *c, const struct optdef *d, void *dst,
                     const char *val)
{
	void *field = (char *)dst + d->offset;
	switch (d->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		return PX_OK;
	case OPT_NAME:
		if (!*val)
			return ctl_usage(c, "%s needs %s", d->name, d->what);
		/* fall through */
	case OPT_TEXT:
		*(const char **)field = val;
		return PX_OK;
	case OPT_SOME:
		*(const char **)field = *val ? val : NULL;
		return PX_OK;
	case OPT_DATE:
		return parse_date(c, d->name, val, field);
	case OPT_U32:
		return parse_u32(c, d->name, val, d->min, d->max, field);
	case OPT_CALL:
		return d->parse(c, d->name, val, field);
	case OPT_RETURN:
		break;
	}
	return ctl_usage(c, "internal: %s is stored nowhere", d->name);
}

static void use_utc(struct ctl *c);

/* The global options that are no value of struct ctl. */
static int apply_global(struct ctl *c, const struct opt_iter *it, int id)
{
	switch (id) {
	case G_UTC:
		use_utc(c);
		return PX_OK;
	case G_HELP:
		/* Help is text for people, --json or not. */
		if (it->spec)
			print_cmd_help(stdout, it->spec);
		else if (it->group)
			print_group_help(stdout, it->group);
		else
			print_help(stdout);
		exit(fflush(stdout) == 0 ? PX_OK : PX_FAIL);
	case G_VERSION:
		printf("penctl %s (libpenlink %s)\n", PL_VERSION_STRING,
		       PL_VERSION_STRING);
		exit(fflush(stdout) == 0 ? PX_OK : PX_FAIL);
	default:
		return PX_OK;
	}
}

/* The name a message uses for the command being parsed. */
static const char *cmd_name(const struct opt_iter *it)
{
	return it->spec ? it->spec->name : it->group ? it->group->word : NULL;
}

int opt_next(struct ctl *c, struct opt_iter *it, const char **val)
{
	const struct optdef *defs = it->spec ? it->spec->opts : NULL;
	while (it->i < it->argc) {
		const char *a = it->argv[it->i];
		if (it->no_more_opts || a[0] != '-' || a[1] == '\0') {
			it->i++;
			*val = a;
			return OPT_ARG;
		}
		if (strcmp(a, "--") == 0) {
			it->no_more_opts = true;
			it->i++;
			continue;
		}
		const struct optdef *d;
		bool global = false;
		const char *inline_val = NULL;
		char shown[64];
		if (a[1] == '-') {
			const char *eq = strchr(a, '=');
			size_t n = eq ? (size_t)(eq - a) : strlen(a);
			if (eq)
				inline_val = eq + 1;
			d = find_opt(defs, a, n, 0);
			if (!d) {
				d = find_opt(global_opts, a, n, 0);
				global = d != NULL;
			}
			snprintf(shown, sizeof shown, "%.*s", (int)(n > 60 ? 60 : n), a);
		} else {
			/* -s SERIAL or -sSERIAL; no bundling of flags. */
			d = find_opt(defs, NULL, 0, a[1]);
			if (!d) {
				d = find_opt(global_opts, NULL, 0, a[1]);
				global = d != NULL;
			}
			if (d && a[2] != '\0') {
				if (!d->arg)
					d = NULL;
				else
					inline_val = a + 2;
			}
			snprintf(shown, sizeof shown, "%.60s", a);
		}
		if (!d) {
			const char *cmd = cmd_name(it);
			if (cmd)
				ctl_usage(c, "unknown option '%s' for '%s'; see penctl %s "
				          "--help", shown, cmd, cmd);
			else
				ctl_usage(c, "unknown option '%s'; see penctl --help", shown);
			return OPT_BAD;
		}
		it->i++;
		const char *v = NULL;
		if (d->arg) {
			if (inline_val) {
				v = inline_val;
			} else if (it->i < it->argc) {
				v = it->argv[it->i++];
			} else {
				ctl_usage(c, "option %s needs a value (%s)", d->name, d->arg);
				return OPT_BAD;
			}
		} else if (inline_val) {
			ctl_usage(c, "option %s takes no value", d->name);
			return OPT_BAD;
		}
		if (global) {
			if ((d->kind == OPT_RETURN ? apply_global(c, it, d->id)
			                           : opt_store(c, d, c, v)) != PX_OK)
				return OPT_BAD;
			continue;
		}
		*val = v;
		it->last = d;
		return d->id;
	}
	return OPT_END;
}

int parse_u32(struct ctl *c, const char *opt, const char *text, uint32_t min,
              uint32_t max, uint32_t *out)
{
	/* strtoul alone accepts " 12", "-1" (as a huge value) and "12abc". */
	const char *p = text;
	if (*p < '0' || *p > '9')
		return ctl_usage(c, "%s: '%.40s' is not a number", opt, text);
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	if (*end != '\0')
		return ctl_usage(c, "%s: '%.40s' is not a number", opt, text);
	if (errno == ERANGE || v < min || v > max)
		return ctl_usage(c, "%s: %.40s is out of range (%u to %u)", opt,
		                 text, min, max);
	*out = (uint32_t)v;
	return PX_OK;
}

int opt_parse(struct ctl *c, struct opt_iter *it, void *dst,
              struct opt_args *args)
{
	const char *v;
	int id;
	while ((id = opt_next(c, it, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		if (id != OPT_ARG) {
			int rc = opt_store(c, it->last, dst, v);
			if (rc != PX_OK)
				return rc;
			if (id < 32)
				it->given |= 1u << id;
		} else if (args && args->n < args->max) {
			args->v[args->n++] = v;
		} else if (args && args->max) {
			return ctl_usage(c, "%s takes one %s (got '%.40s' and '%.40s')",
			                 cmd_name(it), args->what, args->v[0], v);
		} else {
			bool hint = args && args->what;
			return ctl_usage(c, "%s takes no arguments (got '%.40s')%s%s",
			                 cmd_name(it), v, hint ? "; use " : "",
			                 hint ? args->what : "");
		}
	}
	return PX_OK;
}

int cmd_connect(struct ctl *c, const struct opt_iter *it)
{
	int rc = CMD_WHERE(it->spec) == CMD_DAEMON
	             ? ctl_need_daemon(c, it->spec->name)
	             : PX_OK;
	return rc == PX_OK ? ctl_connect(c) : rc;
}

int cmd_start(struct ctl *c, struct opt_iter *it)
{
	int rc = opt_parse(c, it, NULL, NULL);
	return rc == PX_OK ? cmd_connect(c, it) : rc;
}

/* ------------------------------------------------------------------ dispatch */

static const struct cmd_group *find_group(const char *word)
{
	for (size_t g = 0; groups[g]; g++)
		if (strcmp(groups[g]->word, word) == 0 ||
		    (groups[g]->alias && strcmp(groups[g]->alias, word) == 0))
			return groups[g];
	return NULL;
}

/* "preset push": the group's command named "<word> <sub>", or the group's
 * only command when it is named by the word alone. */
static int run_group(struct ctl *c, struct opt_iter *it,
                     const struct cmd_group *g)
{
	const struct cmd_spec *k = g->cmds;
	if (strcmp(k->name, g->word) != 0) {
		it->group = g;
		const char *sub;
		int id = opt_next(c, it, &sub);
		if (id == OPT_BAD)
			return PX_USAGE;
		char names[160] = "";
		size_t n = 0;
		for (const struct cmd_spec *s = g->cmds; s->name; s++)
			n += (size_t)snprintf(names + n, n < sizeof names ? sizeof names - n : 0,
			                      "%s%s", n ? ", " : "",
			                      s->name + strlen(g->word) + 1);
		if (id == OPT_END)
			return ctl_usage(c, "%s needs a subcommand: %s", g->word, names);
		size_t wl = strlen(g->word);
		for (; k->name; k++)
			if (strcmp(k->name + wl + 1, sub) == 0)
				break;
		if (!k->name)
			return ctl_usage(c, "unknown %s subcommand '%.40s' (%s)", g->word,
			                 sub, names);
	}
	it->spec = k;
	return k->run(c, it);
}

/* Flags that must hold before anything is parsed: usage errors come out
 * as JSON too when the user asked for it, even if --json comes after the
 * bad option, and --utc applies to a --since DATE before it. */
static bool has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], flag) == 0)
			return true;
	}
	return false;
}

static void use_utc(struct ctl *c)
{
	/* One rule for every time shown and read: the library's local time,
	 * in a zone that is UTC. */
	c->utc = true;
	setenv("TZ", "UTC0", 1);
	tzset();
}

int main(int argc, char **argv)
{
	struct ctl c;
	memset(&c, 0, sizeof c);
	c.json = has_flag(argc, argv, "--json");
	if (has_flag(argc, argv, "--utc"))
		use_utc(&c);
	c.stderr_tty = isatty(STDERR_FILENO) == 1;
	c.argc = argc;
	c.argv = argv;

	if (argc >= 3 && strcmp(argv[1], "__complete") == 0) {
		/* The shell's completion (complete.c): never slow, never loud. */
		c.timeout_ms = 1000;
		int rc = complete_words(&c, groups, global_opts, atoi(argv[2]),
		                        argc - 3, argv + 3);
		ctl_disconnect(&c);
		return rc;
	}

	struct opt_iter it;
	opt_init(&it, argc, argv, 1);
	const char *cmd = NULL;
	int id = opt_next(&c, &it, &cmd);
	int rc;
	if (id == OPT_BAD) {
		rc = PX_USAGE;
	} else if (id == OPT_END) {
		rc = ctl_usage(&c, "no command given; see penctl --help");
	} else if (strcmp(cmd, "help") == 0) {
		print_help(stdout);
		rc = PX_OK;
	} else {
		const struct cmd_group *g = find_group(cmd);
		if (!g)
			rc = ctl_usage(&c, "unknown command '%.40s'; see penctl --help",
			               cmd);
		else
			rc = run_group(&c, &it, g);
	}
	ctl_disconnect(&c);
	json_object_put(c.partial);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "penctl: I/O error: writing standard output: %s\n",
		        strerror(errno));
		if (rc == PX_OK)
			rc = PX_IO;
	}
	return rc;
}
