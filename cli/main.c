/* penctl: option parsing and command dispatch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "penctl.h"

static const char help_text[] =
"usage: penctl [--socket PATH | --port PATH] [-s SERIAL] [--json]\n"
"              [--timeout MS] [--dump-frames] COMMAND ...\n"
"\n"
"Without --port, penctl talks to penlinkd on its control socket (--socket,\n"
"else $PENLINK_SOCKET, else " DAEMON_DEFAULT_SOCKET ").\n"
"With --port it talks to one pen directly, without the daemon.\n"
"\n"
"Global options (accepted before or after the command):\n"
"  --socket PATH        penlinkd's control socket\n"
"  -p, --port PATH      the pen's serial port, e.g. /dev/ttyACM0 or a pty\n"
"  -s, --serial SERIAL  the pen to act on (through penlinkd: needed when\n"
"                       several are attached); with --port: refuse to act\n"
"                       unless the pen has this serial number\n"
"  --json               print one JSON document on stdout (see README.md)\n"
"  --timeout MS         how long to wait for each answer (default 1000 for a\n"
"                       pen, 10000 for penlinkd)\n"
"  --dump-frames        print every frame to and from the pen (--port only)\n"
"                       to stderr, decoded, with timestamps\n"
"  -h, --help           this text;  --version  the version\n"
"\n"
"Commands (both ways):\n"
"  info                          device info, limits, counters, battery, link\n"
"  preset list                   the presets on the pen\n"
"  preset push FILE              replace the presets with a JSON preset file\n"
"                                (depths in mm)\n"
"  preset push --id N --name S --depth MM --speed L [--area A] [--needles N]\n"
"              [--max-duration S]\n"
"                                add or replace the preset with that id\n"
"      --confirm                 allow depths above 1.50 mm\n"
"  sessions list [--since DATE]  --port: the session logs on the pen;\n"
"                                penlinkd: the sessions in its archive\n"
"  sessions pull [--out DIR] [--since DATE] [--keep]\n"
"                                copy every session to DIR (default .) and\n"
"                                verify its SHA-256.  --port: download from\n"
"                                the pen (resuming), then let it reclaim them\n"
"                                (unless --keep); penlinkd: from the archive\n"
"  sessions show FILE|UUID [--samples]\n"
"                                decode a pulled record, or (penlinkd) an\n"
"                                archived session by its UUID\n"
"  clock sync                    set the pen's clock to this host's time\n"
"  trace [--level N]             stream the pen's trace (0 error .. 3 debug,\n"
"                                default 2) until Ctrl-C\n"
"\n"
"Only through penlinkd:\n"
"  list                          the pens penlinkd serves and their state\n"
"  sessions export [--format csv|json] [--since DATE] [--out FILE|--dir DIR]\n"
"                                the archive as CSV or JSON (stdout, FILE, or\n"
"                                DIR/<serial>-<seq>-<uuid>.csv|json per session)\n"
"  monitor                       print penlinkd's events until Ctrl-C\n"
"  attach PATH                   serve a pen that is not on USB (a pty)\n"
"  detach PATH | -s SERIAL       stop serving a pen\n"
"  audit [--since DATE] [--limit N]\n"
"                                the audit trail, newest first\n"
"\n"
"Only with --port:\n"
"  ping [--count N]              round-trip time (default 4 pings)\n"
"\n"
"DATE is YYYY-MM-DD (local midnight) or YYYY-MM-DDTHH:MM[:SS][Z].\n"
"Areas: forehead glabella periorbital nose cheek cheekbone perioral chin-jaw\n"
"       neck decollete scalp stretch-marks body-scar other\n"
"\n"
"Exit codes:\n"
"  0  success\n"
"  1  failure reported by the pen, or another error\n"
"  2  usage error\n"
"  3  not found (no such port, pen, session, file, or a different serial)\n"
"  4  refused by validation (penctl, penlinkd, library or pen) or by policy\n"
"  5  permission denied\n"
"  6  timeout or I/O error (including the pen unplugged)\n"
"  7  port busy, pen busy, or presets changed meanwhile (conflict)\n"
"  8  data integrity: digest or read-back mismatch, corrupt record\n"
"  9  penlinkd is not running (or went away)\n";

void print_help(FILE *out)
{
	fputs(help_text, out);
}

/* ------------------------------------------------------------------ options */

enum {
	G_PORT = 1000,
	G_SOCKET,
	G_SERIAL,
	G_JSON,
	G_TIMEOUT,
	G_DUMP,
	G_HELP,
	G_VERSION,
};

static const struct optdef global_opts[] = {
	{"--port", 'p', true, G_PORT},
	{"--socket", 0, true, G_SOCKET},
	{"--serial", 's', true, G_SERIAL},
	{"--json", 0, false, G_JSON},
	{"--timeout", 0, true, G_TIMEOUT},
	{"--dump-frames", 0, false, G_DUMP},
	{"--help", 'h', false, G_HELP},
	{"--version", 0, false, G_VERSION},
	{NULL, 0, false, 0},
};

void opt_init(struct opt_iter *it, int argc, char **argv, int start,
              const char *cmd)
{
	it->argc = argc;
	it->argv = argv;
	it->i = start;
	it->no_more_opts = false;
	it->cmd = cmd;
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

static int apply_global(struct ctl *c, int id, const char *val)
{
	uint32_t ms;
	switch (id) {
	case G_PORT:
		if (!*val)
			return ctl_usage(c, "--port needs a path");
		c->port = val;
		return PX_OK;
	case G_SOCKET:
		if (!*val)
			return ctl_usage(c, "--socket needs a path");
		c->socket = val;
		return PX_OK;
	case G_SERIAL:
		if (!*val)
			return ctl_usage(c, "--serial needs a serial number");
		c->serial = val;
		return PX_OK;
	case G_JSON:
		c->json = true;
		return PX_OK;
	case G_TIMEOUT:
		if (parse_u32(c, "--timeout", val, 1, 3600000, &ms) != PX_OK)
			return PX_USAGE;
		c->timeout_ms = (int)ms;
		return PX_OK;
	case G_DUMP:
		c->dump_frames = true;
		return PX_OK;
	case G_HELP:
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

int opt_next(struct ctl *c, struct opt_iter *it, const struct optdef *defs,
             const char **val)
{
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
				if (!d->has_arg)
					d = NULL;
				else
					inline_val = a + 2;
			}
			snprintf(shown, sizeof shown, "%.60s", a);
		}
		if (!d) {
			if (it->cmd)
				ctl_usage(c, "unknown option '%s' for '%s'; see penctl --help",
				          shown, it->cmd);
			else
				ctl_usage(c, "unknown option '%s'; see penctl --help", shown);
			return OPT_BAD;
		}
		it->i++;
		const char *v = NULL;
		if (d->has_arg) {
			if (inline_val) {
				v = inline_val;
			} else if (it->i < it->argc) {
				v = it->argv[it->i++];
			} else {
				ctl_usage(c, "option %s needs a value", d->name);
				return OPT_BAD;
			}
		} else if (inline_val) {
			ctl_usage(c, "option %s takes no value", d->name);
			return OPT_BAD;
		}
		if (global) {
			if (apply_global(c, d->id, v) != PX_OK)
				return OPT_BAD;
			continue;
		}
		*val = v;
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

/* ------------------------------------------------------------------ dispatch */

struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv, int start);
};

static const struct command commands[] = {
	{"info", cmd_info},         {"preset", cmd_preset},
	{"presets", cmd_preset},    {"sessions", cmd_sessions},
	{"session", cmd_sessions},  {"clock", cmd_clock},
	{"trace", cmd_trace},       {"ping", cmd_ping},
	{"list", cmd_list},         {"monitor", cmd_monitor},
	{"attach", cmd_attach},     {"detach", cmd_detach},
	{"audit", cmd_audit},       {NULL, NULL},
};

/* Usage errors found while parsing should come out as JSON too when the
 * user asked for it, even if --json comes after the bad option. */
static bool wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--json") == 0)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct ctl c;
	memset(&c, 0, sizeof c);
	c.json = wants_json(argc, argv);
	c.stdout_tty = isatty(STDOUT_FILENO) == 1;

	struct opt_iter it;
	opt_init(&it, argc, argv, 1, NULL);
	const char *cmd = NULL;
	int id = opt_next(&c, &it, NULL, &cmd);
	int rc;
	if (id == OPT_BAD) {
		rc = PX_USAGE;
	} else if (id == OPT_END) {
		rc = ctl_usage(&c, "no command given; see penctl --help");
	} else if (strcmp(cmd, "help") == 0) {
		print_help(stdout);
		rc = PX_OK;
	} else {
		const struct command *k = commands;
		while (k->name && strcmp(k->name, cmd) != 0)
			k++;
		if (!k->name)
			rc = ctl_usage(&c, "unknown command '%.40s'; see penctl --help",
			               cmd);
		else
			rc = k->run(&c, argc, argv, it.i);
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
