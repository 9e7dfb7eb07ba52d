/*
 * penlinkd: watches for pens, archives every session they recorded, and
 * serves penctl on a Unix socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "central.h"
#include "daemon.h"
#include "log.h"
#include "service.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define DEFAULT_CONFIG "/etc/penlink/penlinkd.conf"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: penlinkd [--config FILE] [--socket PATH] [--db PATH] [--port PATH ...]\n"
	        "                [--no-usb] [--foreground] [--log-level LEVEL] [--help] [--version]\n"
	        "\n"
	        "The penlink daemon: finds pens (USB hotplug, or ports named with --port and\n"
	        "`penctl attach`), downloads every session each pen recorded into the archive,\n"
	        "verified and exactly once, then lets the pen reclaim it; serves penctl on a\n"
	        "Unix socket with per-group access control.\n"
	        "\n"
	        "  --config FILE      configuration (INI; every key in penlinkd.conf.example).\n"
	        "                     Default: " DEFAULT_CONFIG " if it exists\n"
	        "  --socket PATH      control socket (default /run/penlink/penlinkd.sock)\n"
	        "  --db PATH          session archive, SQLite (default /var/lib/penlink/archive.db)\n"
	        "  --port PATH        attach this port at start (a pty, an adapter); repeatable\n"
	        "  --no-usb           do not watch USB\n"
	        "  --foreground       stay in the foreground (systemd runs it so); otherwise\n"
	        "                     detach once the socket is ready\n"
	        "  --log-level LEVEL  err, warn, notice, info (default) or debug\n"
	        "  --help, --version\n"
	        "\n"
	        "Options override the configuration file.  Logs go to stderr (with journal\n"
	        "priorities under systemd).  SIGTERM or SIGINT: detach the pens (downloads\n"
	        "resume at the next start), remove the socket, close the archive, exit 0.\n"
	        "\n"
	        "Exit status: 0 stopped by a signal, 1 runtime failure (archive in use by\n"
	        "another penlinkd, socket, loop), 2 bad arguments or configuration.\n");
}

static int parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {{"err", LOG_ERR},       {"error", LOG_ERR},   {"warn", LOG_WARN},
	             {"warning", LOG_WARN},  {"notice", LOG_NOTICE}, {"info", LOG_INFO},
	             {"debug", LOG_DEBUG}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(s, names[i].name))
			return names[i].level;
	return -1;
}

/* The daemon runs from / once detached, so paths given relative to where
 * it was started are made absolute first. */
static bool absolute(const char *in, char *out, size_t cap)
{
	if (in[0] == '/')
		return snprintf(out, cap, "%s", in) < (int)cap;
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return false;
	return snprintf(out, cap, "%s/%s", cwd, in) < (int)cap;
}

struct args {
	const char *config;
	const char *socket;
	const char *db;
	char **ports;
	int nports;
	bool no_usb, foreground;
	int log_level; /* -1: from the config */
};

static int parse_args(int argc, char **argv, struct args *a)
{
	enum { O_CONFIG = 256, O_SOCKET, O_DB, O_PORT, O_NO_USB, O_FG, O_LEVEL, O_HELP, O_VERSION };
	static const struct option opts[] = {
	    {"config", required_argument, NULL, O_CONFIG},
	    {"socket", required_argument, NULL, O_SOCKET},
	    {"db", required_argument, NULL, O_DB},
	    {"port", required_argument, NULL, O_PORT},
	    {"no-usb", no_argument, NULL, O_NO_USB},
	    {"foreground", no_argument, NULL, O_FG},
	    {"log-level", required_argument, NULL, O_LEVEL},
	    {"help", no_argument, NULL, O_HELP},
	    {"version", no_argument, NULL, O_VERSION},
	    {NULL, 0, NULL, 0},
	};
	memset(a, 0, sizeof *a);
	a->log_level = -1;
	a->ports = calloc((size_t)argc + 1, sizeof *a->ports);
	if (!a->ports) {
		fprintf(stderr, "penlinkd: out of memory\n");
		return EXIT_RUNTIME;
	}
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG: a->config = optarg; break;
		case O_SOCKET: a->socket = optarg; break;
		case O_DB: a->db = optarg; break;
		case O_PORT: a->ports[a->nports++] = optarg; break;
		case O_NO_USB: a->no_usb = true; break;
		case O_FG: a->foreground = true; break;
		case O_LEVEL:
			a->log_level = parse_level(optarg);
			if (a->log_level < 0) {
				fprintf(stderr, "penlinkd: --log-level '%s': expected err, warn, "
				        "notice, info or debug\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_HELP:
			usage(stdout);
			free(a->ports);
			exit(0);
		case O_VERSION:
			printf("penlinkd %s\n", PL_VERSION_STRING);
			free(a->ports);
			exit(0);
		default:
			if (optopt && optopt < 256)
				fprintf(stderr, "penlinkd: option -%c is not known\n", optopt);
			else if (optind > 0 && optind <= argc)
				fprintf(stderr, "penlinkd: %s: unknown option or missing value\n",
				        argv[optind - 1]);
			fprintf(stderr, "Try 'penlinkd --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "penlinkd: unexpected argument '%s'\nTry 'penlinkd --help'.\n",
		        argv[optind]);
		return EXIT_USAGE;
	}
	return 0;
}

/* ------------------------------------------------------------------ detaching */

/*
 * Forks; the parent waits until the child reports that it is serving (one
 * byte on a pipe) and exits 0, or exits 1 if the child failed first - so
 * "penlinkd" without --foreground still fails visibly when, say, another
 * instance holds the archive.
 */
static int daemonize(int *notify_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_err("cannot create a pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_err("cannot fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		char ok = 0;
		ssize_t n;
		do
			n = read(p[0], &ok, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 && ok == 'R' ? 0 : EXIT_RUNTIME);
	}
	close(p[0]);
	if (setsid() < 0) {
		log_err("setsid: %s", strerror(errno));
		_exit(EXIT_RUNTIME);
	}
	/* A second fork: the session leader exits, so opening a tty (a pen's
	 * port) can never make it our controlling terminal. */
	pid = fork();
	if (pid < 0) {
		log_err("cannot fork: %s", strerror(errno));
		_exit(EXIT_RUNTIME);
	}
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0) {
		log_err("chdir /: %s", strerror(errno));
		_exit(EXIT_RUNTIME);
	}
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0) {
		log_err("/dev/null: %s", strerror(errno));
		_exit(EXIT_RUNTIME);
	}
	if (null > STDERR_FILENO)
		close(null);
	/* stderr stays: it is where the logs go. */
	*notify_fd = p[1];
	return 0;
}

static void notify_ready(int *fd)
{
	if (*fd < 0)
		return;
	const char r = 'R';
	ssize_t n;
	do
		n = write(*fd, &r, 1);
	while (n < 0 && errno == EINTR);
	close(*fd);
	*fd = -1;
}

/* ------------------------------------------------------------------ reload */

/* Where the configuration came from, for SIGHUP. */
static struct {
	const char *path;
	bool required;
	/* What the command line overrides keeps overriding the file. */
	int log_level; /* -1 if none */
	bool no_usb;
	const char *socket_path, *db_path; /* NULL if none */
} config_source;

/*
 * SIGHUP (systemctl reload penlinkd): re-reads the configuration file and
 * applies what can change under attached pens and connected clients:
 * log_level, [access] (groups are looked up again) and [policy].  The other
 * keys name resources the daemon holds open (socket, database, USB, the
 * pens' timeouts and window, central) and need a restart; a change to one
 * of them is logged and ignored.  A file that does not parse changes
 * nothing.
 */
static void reload(struct daemon *d)
{
	service_reloading();
	struct config fresh;
	char err[600];
	if (config_defaults(&fresh) != PL_OK) {
		log_err("reload: out of memory; keeping the running configuration");
	} else if (config_load(&fresh, config_source.path, config_source.required,
	                       err, sizeof err) < 0) {
		log_err("reload: %s; keeping the running configuration", err);
	} else {
		struct config *c = &d->cfg;
		if (config_source.socket_path)
			snprintf(fresh.socket_path, sizeof fresh.socket_path, "%s",
			         config_source.socket_path);
		if (config_source.db_path)
			snprintf(fresh.db_path, sizeof fresh.db_path, "%s",
			         config_source.db_path);
		if (config_source.no_usb)
			fresh.usb_enabled = false;
		if (strcmp(fresh.socket_path, c->socket_path) ||
		    strcmp(fresh.db_path, c->db_path) ||
		    strcmp(fresh.socket_group, c->socket_group) ||
		    fresh.socket_mode != c->socket_mode ||
		    fresh.usb_enabled != c->usb_enabled ||
		    fresh.n_usb_ids != c->n_usb_ids ||
		    memcmp(fresh.usb_ids, c->usb_ids, sizeof c->usb_ids) ||
		    fresh.timeout_ms != c->timeout_ms ||
		    fresh.handshake_ms != c->handshake_ms || fresh.window != c->window ||
		    strcmp(fresh.central_url, c->central_url) ||
		    strcmp(fresh.central_site, c->central_site))
			log_warn("reload: [daemon], [usb], [pens] and [central] changes "
			         "take effect at the next restart");
		c->log_level = config_source.log_level >= 0 ? config_source.log_level
		                                            : fresh.log_level;
		log_set_level((enum log_level)c->log_level);
		memcpy(c->logs_group, fresh.logs_group, sizeof c->logs_group);
		memcpy(c->presets_group, fresh.presets_group, sizeof c->presets_group);
		struct pl_policy *old = c->policy;
		c->policy = fresh.policy;
		fresh.policy = old;
		if (d->ctl)
			ctl_access_reload(d->ctl);
		log_notice("reloaded %s", config_source.path);
	}
	config_free(&fresh);
	service_reloaded(pens_count(d->pens));
}

/* ------------------------------------------------------------------ signals */

static void on_signal(void *ud, int fd, unsigned events)
{
	(void)events;
	struct daemon *d = ud;
	struct signalfd_siginfo si;
	ssize_t n = read(fd, &si, sizeof si);
	if (n != (ssize_t)sizeof si)
		return;
	if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
		log_notice("%s: stopping", strsignal((int)si.ssi_signo));
		service_stopping();
		d->stopping = true;
		loop_stop(d->loop);
	} else if (si.ssi_signo == SIGHUP) {
		reload(d);
	}
}

/* ------------------------------------------------------------------ main */

/* Everything after the configuration: returns the exit status. */
static int serve(struct daemon *d, bool foreground, char **ports, int nports)
{
	int notify = -1;
	if (!foreground && daemonize(&notify) < 0)
		return EXIT_RUNTIME;

	/* Signals arrive as loop events, between callbacks, never inside one. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		log_err("sigprocmask: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return EXIT_RUNTIME;
	}

	int status = EXIT_RUNTIME;
	int rc = archive_open(d->cfg.db_path, &d->archive);
	if (rc) {
		log_err("cannot open the archive %s: %s", d->cfg.db_path,
		        d->archive ? archive_errmsg(d->archive) : pl_error_message());
		goto out;
	}
	d->loop = loop_new();
	if (!d->loop || (rc = loop_add_fd(d->loop, sfd, LOOP_IN, on_signal, d)) < 0) {
		log_err("cannot create the event loop: %s", strerror(d->loop ? -rc : errno));
		goto out;
	}
	/* Before any pen: every session committed from here on enters the
	 * outbox with its commit.  Refusing to start beats silently not
	 * feeding the clinic's archive of record. */
	if (central_start(d, &d->central) != PL_OK) {
		log_err("cannot set up replication to central: %s", pl_error_message());
		goto out;
	}
	d->pens = pens_new(d);
	if (!d->pens) {
		log_err("out of memory");
		goto out;
	}
	if (ctl_start(d, &d->ctl)) {
		log_err("cannot serve the control socket %s: %s", d->cfg.socket_path,
		        pl_error_message());
		goto out;
	}
	if (d->cfg.usb_enabled)
		d->usb = usb_start(d);
	for (int i = 0; i < nports; i++)
		if (pens_attach(d->pens, ports[i], false, NULL))
			log_err("cannot attach %s: %s", ports[i], pl_error_message());

	log_notice("penlinkd %s serving %s, archive %s%s", PL_VERSION_STRING,
	           d->cfg.socket_path, d->cfg.db_path, d->usb ? ", watching USB" : "");
	notify_ready(&notify);
	if (service_ready(d->loop, pens_count(d->pens)) < 0)
		log_err("cannot start the systemd watchdog timer: out of memory");

	rc = loop_run(d->loop);
	if (rc < 0)
		log_err("event loop failed: %s", strerror(-rc));
	status = rc < 0 ? EXIT_RUNTIME : 0;
out:
	/* Pens first (their downloads are flushed into the archive and the
	 * monitor hears about it), then the socket, then the archive.
	 * Each is forgotten as it stops, so the teardown of the ones after it
	 * sees it gone rather than freed. */
#define STOP_AND_FORGET(stop, part) (stop(d->part), d->part = NULL)
	STOP_AND_FORGET(usb_stop, usb);
	STOP_AND_FORGET(pens_free, pens);
	STOP_AND_FORGET(ctl_stop, ctl);
	STOP_AND_FORGET(central_stop, central);
	STOP_AND_FORGET(archive_close, archive);
	STOP_AND_FORGET(loop_free, loop);
#undef STOP_AND_FORGET
	close(sfd);
	if (!status)
		log_notice("penlinkd stopped");
	return status;
}

int main(int argc, char **argv)
{
	struct args a;
	int rc = parse_args(argc, argv, &a);
	if (rc) {
		free(a.ports);
		return rc;
	}

	static struct daemon d;
	char err[600];
	const char *cfg_path = a.config ? a.config : DEFAULT_CONFIG;
	config_source.path = cfg_path;
	config_source.required = a.config != NULL;
	config_source.log_level = a.log_level;
	char **ports = calloc((size_t)a.nports + 1, sizeof *ports);
	if (!ports || config_defaults(&d.cfg) != PL_OK) {
		fprintf(stderr, "penlinkd: out of memory\n");
		rc = EXIT_RUNTIME;
	} else if (config_load(&d.cfg, cfg_path, a.config != NULL, err, sizeof err) < 0) {
		fprintf(stderr, "penlinkd: %s\n", err);
		rc = EXIT_USAGE;
	} else if (a.socket && !absolute(a.socket, d.cfg.socket_path, sizeof d.cfg.socket_path)) {
		fprintf(stderr, "penlinkd: --socket: path too long\n");
		rc = EXIT_USAGE;
	} else if (a.db && !absolute(a.db, d.cfg.db_path, sizeof d.cfg.db_path)) {
		fprintf(stderr, "penlinkd: --db: path too long\n");
		rc = EXIT_USAGE;
	}
	for (int i = 0; !rc && i < a.nports; i++) {
		ports[i] = malloc(PATH_MAX);
		if (!ports[i] || !absolute(a.ports[i], ports[i], PATH_MAX)) {
			fprintf(stderr, "penlinkd: --port %s: path too long\n", a.ports[i]);
			rc = EXIT_USAGE;
		}
	}
	if (!rc) {
		static char socket_abs[sizeof d.cfg.socket_path];
		static char db_abs[sizeof d.cfg.db_path];
		if (a.socket) {
			memcpy(socket_abs, d.cfg.socket_path, sizeof socket_abs);
			config_source.socket_path = socket_abs;
		}
		if (a.db) {
			memcpy(db_abs, d.cfg.db_path, sizeof db_abs);
			config_source.db_path = db_abs;
		}
		config_source.no_usb = a.no_usb;
		if (a.no_usb)
			d.cfg.usb_enabled = false;
		if (a.log_level >= 0)
			d.cfg.log_level = a.log_level;
		log_set_level((enum log_level)d.cfg.log_level);
		/* A client that goes away mid-write must not kill the daemon,
		 * and neither may a file-size limit reached mid-commit: both
		 * are errors the code handles (the pen then keeps its session). */
		signal(SIGPIPE, SIG_IGN);
		signal(SIGXFSZ, SIG_IGN);
		rc = serve(&d, a.foreground, ports, a.nports);
	}
	for (int i = 0; ports && i < a.nports; i++)
		free(ports[i]);
	free(ports);
	free(a.ports);
	config_free(&d.cfg);
	return rc;
}
