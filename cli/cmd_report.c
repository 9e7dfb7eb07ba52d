/* penctl sessions report | report | sessions export --format fhir: the
 * clinic-facing outputs of report/ (penlink_report.h), fed by either
 * backend (penlinkd's archive, or the pen with --port) or by .plrec files. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <penlink_report.h>

#include "penctl.h"
#include "penlink_export.h"

enum { R_OUT = 1, R_SINCE, R_UNTIL, R_CLIENT, R_FORMAT, R_DIR };

/* Records penctl renders (as sessions show). */
#define REPORT_MAX ((uint64_t)1 << 30)

static const char generator[] = "penctl " PL_VERSION_STRING;

/* ------------------------------------------------------------------ output */

/* A file written whole or not at all: a temporary next to path (mode 0640
 * less the umask), fsynced and renamed over path; a symbolic link or a
 * non-file planted at path is refused.  path "-" is standard output. */
struct out_file {
	const char *path;
	char tmp[PATH_MAX];
	FILE *f;
};

static int out_open(struct ctl *c, struct out_file *o, const char *path)
{
	memset(o, 0, sizeof *o);
	o->path = path;
	if (strcmp(path, "-") == 0) {
		o->f = stdout;
		c->emitted = true; /* the document is stdout's */
		return PX_OK;
	}
	if (strlen(path) > PATH_MAX - 32)
		return ctl_usage(c, "--out: file name too long");
	snprintf(o->tmp, sizeof o->tmp, "%s.tmp.XXXXXX", path);
	int fd = mkostemp(o->tmp, O_CLOEXEC);
	if (fd < 0)
		return ctl_fail_errno(c, errno, "cannot create a file next to %s", path);
	mode_t um = umask(0);
	umask(um);
	if (fchmod(fd, 0640 & ~um) != 0 || !(o->f = fdopen(fd, "w"))) {
		int err = errno;
		close(fd);
		unlink(o->tmp);
		return ctl_fail_errno(c, err, "cannot write %s", o->tmp);
	}
	return PX_OK;
}

/* Drops the temporary (after a failure already reported). */
static void out_abort(struct out_file *o)
{
	if (o->f && o->f != stdout) {
		fclose(o->f);
		unlink(o->tmp);
	}
	o->f = NULL;
}

static int out_commit(struct ctl *c, struct out_file *o)
{
	if (o->f == stdout) {
		o->f = NULL;
		if (fflush(stdout) != 0)
			return ctl_fail_errno(c, errno, "writing standard output");
		return PX_OK;
	}
	int err = 0;
	if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
		err = errno;
	if (fclose(o->f) != 0 && !err)
		err = errno;
	o->f = NULL;
	if (err) {
		unlink(o->tmp);
		return ctl_fail_errno(c, err, "writing %s", o->tmp);
	}
	struct stat st;
	if (lstat(o->path, &st) == 0 && !S_ISREG(st.st_mode)) {
		unlink(o->tmp);
		return ctl_fail_code(c, PL_ERR_ACCESS, "%s is not a regular file (a "
		                     "link or a device planted there?); refusing to "
		                     "replace it", o->path);
	}
	if (rename(o->tmp, o->path) != 0) {
		err = errno;
		unlink(o->tmp);
		return ctl_fail_errno(c, err, "cannot store %s", o->path);
	}
	char dir[PATH_MAX];
	const char *slash = strrchr(o->path, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == o->path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - o->path), o->path);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return PX_OK;
}

/* Commits the file after e == PL_OK (what wrote it), else drops it and
 * reports e. */
static int out_close(struct ctl *c, struct out_file *o, int e)
{
	if (e == PL_OK)
		return out_commit(c, o);
	out_abort(o);
	return ctl_fail_pl(c, e);
}

static long file_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* "wrote ..." for people, or the --json document. */
static int said(struct ctl *c, const char *what, const char *path,
                const char *format, size_t sessions)
{
	if (strcmp(path, "-") == 0)
		return PX_OK;
	long bytes = file_bytes(path);
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(path));
		json_object_object_add(o, "format", json_object_new_string(format));
		json_object_object_add(o, "sessions", json_object_new_uint64(sessions));
		json_object_object_add(o, "bytes", json_object_new_int64(bytes));
		return ctl_emit_json(c, o);
	}
	char sz[FMT_BUF];
	ctl_say("wrote %s (%s) to %s", what, fmt_bytes(sz, bytes < 0 ? 0 : (uint64_t)bytes),
	        path);
	return PX_OK;
}

/* A record file's bytes, whole (at most REPORT_MAX): NULL with errno. */
static uint8_t *read_record_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > REPORT_MAX) {
		int e = errno;
		if (e == 0 || S_ISDIR(st.st_mode))
			e = S_ISDIR(st.st_mode) ? EISDIR : EFBIG;
		close(fd);
		errno = e;
		return NULL;
	}
	size_t size = (size_t)st.st_size, n = 0;
	uint8_t *buf = malloc(size ? size : 1);
	while (buf && n < size) {
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : EIO;
			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		n += (size_t)r;
	}
	close(fd);
	if (!buf)
		errno = ENOMEM;
	*len = n;
	return buf;
}

/* ------------------------------------------------------------------ penlinkd */

/* The pen's device info from penlinkd when it is attached (model,
 * hardware); false when it is not. */
static bool daemon_info(struct ctl *c, const char *serial,
                        struct pl_device_info *out)
{
	Plctl__GetInfo gi = PLCTL__GET_INFO__INIT;
	gi.serial = (char *)serial;
	Plctl__Response *r = NULL;
	int rc = dc_call(c, &DC_REQUEST(GET_INFO, get_info, &gi),
	                 PLCTL__RESPONSE__BODY_INFO, &r);
	if (rc == PL_OK)
		rc = plc_device_info_from_pb(r->info, out);
	dc_free(r);
	return rc == PL_OK;
}

/* penlinkd's central site, when [central] is configured: malloc'd or
 * NULL. */
static char *daemon_site(struct ctl *c)
{
	Plctl__CentralStatus cs = PLCTL__CENTRAL_STATUS__INIT;
	Plctl__Response *r = NULL;
	char *site = NULL;
	if (dc_call(c, &DC_REQUEST(CENTRAL_STATUS, central_status, &cs),
	            PLCTL__RESPONSE__BODY_CENTRAL, &r) == PL_OK &&
	    r->central && r->central->configured && r->central->site &&
	    *r->central->site)
		site = strdup(r->central->site);
	dc_free(r);
	return site;
}

/* Appends a piece of penlinkd's export to the struct plc_buf at b. */
static int buf_add_chunk(void *b, const Plctl__ExportChunk *ch)
{
	struct plc_buf *buf = b;
	if (ch->data.len)
		plc_buf_add(buf, ch->data.data, ch->data.len);
	return buf->oom ? pl_error_set(PL_ERR_MEM, "out of memory") : PL_OK;
}

/* penlinkd's JSON export (the record JSON of each session, without
 * samples, plus sha256 and archived_utc_ms, and annotations where the
 * archive has them) of serial's sessions (NULL: every pen) since since_ms,
 * as entries. */
static int daemon_entries(struct ctl *c, const char *serial, int64_t since_ms,
                          struct pl_report_entry **v, size_t *n)
{
	Plctl__ExportSessions ex = PLCTL__EXPORT_SESSIONS__INIT;
	ex.format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON;
	ex.serial = (char *)(serial ? serial : "");
	ex.since_ms = since_ms;
	struct plc_buf b = {0};
	int e = export_stream(c, &ex, buf_add_chunk, &b);
	if (e == PL_OK)
		e = pl_report_entries_from_json_array(b.p ? b.p : "[]",
		                                      b.p ? b.len : 2, v, n);
	plc_buf_free(&b);
	return e;
}

/* ------------------------------------------------------------------ sessions report */

struct report_args {
	const char *out;
};

const struct optdef report_session_opts[] = {
	OPT("--out", 'o', "FILE", R_OUT,
	    "the HTML file (default <serial>-<seq>-<uuid>.html here; - for stdout)",
	    OPT_NAME, struct report_args, out, .what = "a file name"),
	OPT_TABLE_END,
};

/* The session a record holds: its serial and UUID. */
static void record_key(const struct pl_record *r, struct pl_session_key *key)
{
	memset(key, 0, sizeof *key);
	snprintf(key->serial, sizeof key->serial, "%s", pl_record_serial(r));
	pl_record_uuid(r, key->uuid);
}

/* The annotations the archive (penlinkd's or central's) exports for the
 * session it lists under key, which starts at start_ms in its listing
 * (none until the archive has them): the session's object of a JSON
 * export of its pen since that start. */
static void archive_annotations(struct ctl *c, const struct pl_session_key *key,
                               int64_t start_ms, struct pl_report_entry **v,
                               size_t *n, const struct pl_report_entry **mine)
{
	*v = NULL;
	*n = 0;
	*mine = NULL;
	if (daemon_entries(c, key->serial, start_ms, v, n) != PL_OK)
		return;
	for (size_t i = 0; i < *n; i++)
		if (memcmp((*v)[i].uuid, key->uuid, 16) == 0)
			*mine = &(*v)[i];
}

int sessions_report(struct ctl *c, struct opt_iter *it)
{
	const char *arg = NULL;
	struct report_args a = {NULL};
	struct opt_args args = {"FILE or session", 1, &arg, 0};
	int rc = opt_parse(c, it, &a, &args);
	if (rc != PX_OK)
		return rc;
	const char *out = a.out;
	if (!arg)
		return ctl_usage(c, "sessions report needs a FILE (a pulled .plrec) "
		                 "or a session: SERIAL/UUID, or a UUID");

	uint8_t *data = NULL;
	size_t len = 0;
	struct pl_report_options o;
	pl_report_options_init(&o);
	o.generator = generator;
	struct pl_device_info info;
	char where[PATH_MAX], what[200];
	char *site = NULL;
	struct pl_report_entry *exported = NULL;
	size_t n_exported = 0;
	/* The session asked for, unless a file: its key and listing. */
	struct pl_session_key key = {0};
	struct session_entry s = {0};
	bool asked = false;
	struct stat st;
	if (stat(arg, &st) == 0) {
		/* a file: read it whole (its bytes are what the digest covers) */
		data = read_record_file(arg, &len);
		if (!data)
			return ctl_fail_errno(c, errno, "cannot read %s", arg);
		o.origin.kind = "file";
		if (!realpath(arg, where))
			snprintf(where, sizeof where, "%s", arg);
		o.origin.where = where;
		snprintf(what, sizeof what, "%s", arg);
	} else {
		if (!session_arg_valid(arg))
			return ctl_fail_code(c, PL_ERR_NOT_FOUND, "%s: no such file, and "
			                     "not a session (SERIAL/UUID or UUID)", arg);
		rc = session_arg_resolve(c, arg, &key, &s);
		if (rc != PX_OK)
			return rc;
		asked = true;
		pl_session_key_format(&key, PL_TEXT_TERMINAL, what, sizeof what);
		int e = c->be.ops->read_record(c->be.ctx, &key, REPORT_MAX, &data, &len);
		if (e != PL_OK)
			return ctl_fail_code(c, e, "session %s: %s", what, pl_error_message());
		o.origin.have_listed_sha256 = true;
		memcpy(o.origin.listed_sha256, s.info.sha256, 32);
		snprintf(where, sizeof where, "%s", c->be.ops->where(c->be.ctx));
		o.origin.where = where;
		if (c->be.ops->direct) {
			o.origin.kind = "pen";
			if (c->be.ops->info(c->be.ctx, &info) == PL_OK &&
			    strcmp(info.serial, key.serial) == 0)
				o.device = &info;
		} else if (c->central) {
			/* --central: the clinic's archive (it knows no pens) */
			o.origin.kind = "central archive";
			o.origin.archived_ms = s.archived_ms;
		} else {
			o.origin.kind = "penlinkd archive";
			o.origin.archived_ms = s.archived_ms;
			if (daemon_info(c, key.serial, &info))
				o.device = &info;
			site = daemon_site(c);
			o.origin.site = site;
		}
	}
	struct pl_record *r = NULL;
	int e = pl_record_parse(data ? data : (const uint8_t *)"", len, &r);
	if (e != PL_OK) {
		free(data);
		free(site);
		return record_parse_failed(c, e, what);
	}
	if (asked) {
		/* Only a hand (or a broken pen) makes them differ; the report
		 * shows the record, so the user hears of it. */
		struct pl_session_key in_record;
		record_key(r, &in_record);
		if (strcmp(in_record.serial, key.serial) != 0 ||
		    memcmp(in_record.uuid, key.uuid, 16) != 0) {
			char named[200];
			pl_session_key_format(&in_record, PL_TEXT_TERMINAL, named,
			                      sizeof named);
			ctl_warn("session %s: the record itself names session %s; the "
			         "report shows what the record says", what, named);
		}
	}
	/* The annotations of the session the archive lists (penlinkd's, or
	 * central's, which answers the same export). */
	if (asked && (c->dc || c->cc) && !c->be.ops->direct) {
		const struct pl_report_entry *mine;
		archive_annotations(c, &key, s.info.start_ms, &exported, &n_exported,
		                   &mine);
		if (mine) {
			o.annotations = mine->annotations;
			o.n_annotations = mine->n_annotations;
		}
	}

	char def[PATH_MAX];
	if (!out) {
		struct pl_session_key key;
		record_key(r, &key);
		session_file_name_as(&key, pl_record_seq(r), ".html", def, sizeof def);
		out = def;
	}
	struct out_file of;
	rc = out_open(c, &of, out);
	if (rc == PX_OK)
		rc = out_close(c, &of, pl_report_session_html(r, data, len, &o, of.f));
	if (rc == PX_OK)
		rc = said(c, "the treatment report", out, "html", 1);
	pl_record_free(r);
	pl_report_entries_free(exported, n_exported);
	free(data);
	free(site);
	return rc;
}

/* ------------------------------------------------------------------ files */

/* .plrec files as entries (with their digests). */
static int file_entries(struct ctl *c, const char *const *files,
                        size_t n_files,
                        struct pl_report_entry **v, size_t *n)
{
	*v = calloc(n_files ? n_files : 1, sizeof **v);
	*n = 0;
	if (!*v)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	for (size_t i = 0; i < n_files; i++) {
		size_t len = 0;
		uint8_t *data = read_record_file(files[i], &len);
		if (!data)
			return ctl_fail_errno(c, errno, "cannot read %s", files[i]);
		struct pl_record *r = NULL;
		int e = pl_record_parse(data, len, &r);
		if (e == PL_OK)
			e = pl_report_entry_from_record(r, &(*v)[*n]);
		if (e == PL_OK) {
			pl_sha256(data, len, (*v)[*n].sha256);
			(*v)[*n].have_sha256 = true;
			(*n)++;
		}
		pl_record_free(r);
		free(data);
		if (e != PL_OK)
			return record_parse_failed(c, e, files[i]);
	}
	return PX_OK;
}

/* The sessions to report on: the .plrec files given, else those of the
 * archive (penlinkd's or central's: -s's pen or every pen) since
 * since_ms. */
static int read_entries(struct ctl *c, const char *const *files,
                        size_t n_files,
                        int64_t since_ms, struct pl_report_entry **v,
                        size_t *n)
{
	if (n_files)
		return file_entries(c, files, n_files, v, n);
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	int e = daemon_entries(c, c->serial, since_ms, v, n);
	return e == PL_OK ? PX_OK : ctl_fail_pl(c, e);
}

/* ------------------------------------------------------------------ report */

/* Which of the sessions read report and export --format fhir keep. */
struct period {
	int64_t since, until;         /* dated sessions: [since, until); 0: open */
	bool undated;                 /* keep sessions timed by uptime only */
	const char *serial, *client;  /* NULL: any */
};

static bool has_client(const struct pl_report_entry *e, const char *client);

static bool in_period(const struct pl_report_entry *e, const struct period *p)
{
	bool when = e->rtc ? e->start_ms >= p->since &&
	                         (!p->until || e->start_ms < p->until)
	                   : p->undated;
	return when &&
	       (!p->serial || (e->serial && strcmp(e->serial, p->serial) == 0)) &&
	       (!p->client || has_client(e, p->client));
}

/* Moves the entries of v in p to its front, in order, and clears the
 * others: how many are kept. */
static size_t keep_period(struct pl_report_entry *v, size_t n,
                          const struct period *p)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct pl_report_entry *e = &v[i];
		if (!in_period(e, p)) {
			pl_report_entry_clear(e);
			continue;
		}
		if (k != i) {
			v[k] = *e;
			memset(e, 0, sizeof *e);
		}
		k++;
	}
	return k;
}

/* What report and sessions export --format fhir are asked for. */
struct period_args {
	int64_t since, until;
	const char *client, *out, *dir;
	const char *format; /* export: "fhir" (export_wants_fhir) */
};

static const struct optdef overview_opts[] = {
	OPT("--since", 0, "DATE", R_SINCE,
	    "sessions that started at or after DATE", OPT_DATE,
	    struct period_args, since),
	OPT("--until", 0, "DATE", R_UNTIL, "... and before DATE", OPT_DATE,
	    struct period_args, until),
	OPT("--client", 0, "REF", R_CLIENT,
	    "only sessions annotated with this client reference", OPT_SOME,
	    struct period_args, client),
	OPT("--out", 'o', "FILE", R_OUT, "the HTML file (- for stdout)", OPT_SOME,
	    struct period_args, out),
	OPT_TABLE_END,
};

/* The options of it->spec into *a and the FILEs after them into a
 * malloc'd *files (NULL on failure); PX_OK or an exit code (reported). */
static int parse_period(struct ctl *c, struct opt_iter *it,
                        struct period_args *a, const char ***files,
                        size_t *n_files)
{
	*files = calloc((size_t)it->argc + 1, sizeof **files);
	*n_files = 0;
	if (!*files)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	struct opt_args args = {"FILE", (size_t)it->argc, *files, 0};
	int rc = opt_parse(c, it, a, &args);
	*n_files = args.n;
	return rc;
}

static bool has_client(const struct pl_report_entry *e, const char *client)
{
	for (size_t i = 0; i < e->n_annotations; i++)
		if (e->annotations[i].client_ref &&
		    strcmp(e->annotations[i].client_ref, client) == 0)
			return true;
	return false;
}

static int overview(struct ctl *c, struct opt_iter *it)
{
	struct period_args a = {0};
	const char **files;
	size_t n_files;
	int rc = parse_period(c, it, &a, &files, &n_files);
	int64_t since = a.since, until = a.until;
	const char *out = a.out, *client = a.client;
	if (rc == PX_OK && !(it->given & 1u << R_SINCE))
		rc = ctl_usage(c, "report needs --since DATE (the start of the period)");
	if (rc == PX_OK && !out)
		rc = ctl_usage(c, "report needs --out FILE (or --out - for stdout)");
	if (rc == PX_OK && until && until <= since)
		rc = ctl_usage(c, "--until must be after --since");
	if (rc == PX_OK && !n_files && c->port)
		rc = ctl_usage(c, "report reads penlinkd's archive or .plrec FILEs; "
		               "with --port, pull the sessions first");
	if (rc != PX_OK) {
		free(files);
		return rc;
	}
	struct pl_report_entry *all = NULL;
	size_t n_all = 0;
	struct pl_report_overview_options o;
	pl_report_overview_options_init(&o);
	o.generator = generator;
	o.since_ms = since;
	o.until_ms = until;
	o.serial = c->serial;
	o.client = client;
	char *site = NULL;
	rc = read_entries(c, files, n_files, since, &all, &n_all);
	if (n_files) {
		o.origin.kind = "files";
	} else if (rc == PX_OK) {
		o.origin.kind = c->central ? "central archive" : "penlinkd archive";
		o.origin.where = c->be.ops ? c->be.ops->where(c->be.ctx)
		                           : ctl_socket_path(c);
		if (!c->central)
			site = daemon_site(c);
		o.origin.site = site;
	}
	free(files);
	/* the period and the filters, applied alike to both sources */
	bool any_annotated = false;
	for (size_t i = 0; rc == PX_OK && i < n_all; i++)
		any_annotated |= all[i].n_annotations > 0;
	const struct period p = {.since = since, .until = until,
	                         .undated = !n_files || since == 0,
	                         .serial = c->serial, .client = client};
	size_t k = rc == PX_OK ? keep_period(all, n_all, &p) : 0;
	if (rc == PX_OK && client && !any_annotated)
		ctl_warn("penctl: warning: no session of the period carries "
		         "annotations, so none has client reference %s", client);
	if (rc == PX_OK) {
		struct out_file of;
		rc = out_open(c, &of, out);
		if (rc == PX_OK)
			rc = out_close(c, &of, pl_report_overview_html(all, k, &o, of.f));
		if (rc == PX_OK)
			rc = said(c, "the overview", out, "html", k);
	}
	pl_report_entries_free(all, n_all);
	free(site);
	return rc;
}

CMD_SINGLE(report, "report",
           "--since DATE [--until DATE] [--client REF] --out FILE [FILE...]",
           "an HTML overview of a period: sessions per day and pen, depths, "
           "errors", CMD_BOTH | CMD_CENTRAL, overview_opts,
           "Reads penlinkd's archive (every pen, or -s SERIAL's), central's with\n"
           "--central, or the .plrec FILEs given.  DATE as for --since everywhere.\n",
           overview);

/* ------------------------------------------------------------------ FHIR */

/* export_wants_fhir() found --format fhir; any other is a mistake. */
static int parse_fhir_format(struct ctl *c, const char *opt, const char *val,
                             void *field)
{
	if (strcmp(val, "fhir") != 0)
		return ctl_usage(c, "%s: give it once ('fhir', got '%.40s')", opt,
		                 val);
	*(const char **)field = val;
	return PX_OK;
}

static const struct optdef fhir_opts[] = {
	OPT("--format", 'f', "fhir", R_FORMAT, "FHIR R4 transaction Bundles",
	    OPT_CALL, struct period_args, format, .parse = parse_fhir_format),
	OPT("--since", 0, "DATE", R_SINCE,
	    "sessions that started at or after DATE", OPT_DATE,
	    struct period_args, since),
	OPT("--out", 'o', "FILE", R_OUT, "one Bundle of every session to FILE",
	    OPT_SOME, struct period_args, out),
	OPT("--dir", 0, "DIR", R_DIR, "one Bundle per session in DIR", OPT_SOME,
	    struct period_args, dir),
	OPT_TABLE_END,
};

static const struct cmd_spec fhir_spec = {
	"sessions export",
	"--format fhir [--since DATE] [--out FILE|--dir DIR] [FILE...]",
	"sessions as FHIR R4 transaction Bundles", CMD_BOTH | CMD_CENTRAL, fhir_opts,
	"Through penlinkd the archive's sessions (every pen, or -s SERIAL's);\n"
	"or the .plrec FILEs given.  README.md \"Reports and FHIR\" has the mapping.\n",
	NULL,
};

bool export_wants_fhir(const struct opt_iter *it)
{
	for (int i = it->i; i < it->argc; i++) {
		const char *a = it->argv[i];
		if (strcmp(a, "--") == 0)
			return false;
		if (strcmp(a, "--format=fhir") == 0 || strcmp(a, "-ffhir") == 0)
			return true;
		if ((strcmp(a, "--format") == 0 || strcmp(a, "-f") == 0) &&
		    i + 1 < it->argc && strcmp(it->argv[i + 1], "fhir") == 0)
			return true;
	}
	return false;
}

/* The models of the pens penlinkd serves, for Device resources. */
static void daemon_devices(struct ctl *c, struct pl_device_info **out,
                           size_t *n)
{
	*out = NULL;
	*n = 0;
	Plctl__Response *r = NULL;
	if (dc_list_pens(c, &r) != PL_OK || !r->pens) {
		dc_free(r);
		return;
	}
	*out = calloc(r->pens->n_pens ? r->pens->n_pens : 1, sizeof **out);
	for (size_t i = 0; *out && i < r->pens->n_pens; i++) {
		const Plctl__Pen *p = r->pens->pens[i];
		snprintf((*out)[i].serial, sizeof (*out)[i].serial, "%s",
		         p->serial ? p->serial : "");
		snprintf((*out)[i].model, sizeof (*out)[i].model, "%s",
		         p->model ? p->model : "");
		snprintf((*out)[i].fw_version, sizeof (*out)[i].fw_version, "%s",
		         p->fw_version ? p->fw_version : "");
		(*n)++;
	}
	dc_free(r);
}

/* One Bundle per session into DIR, each named after its key. */
static int fhir_dir(struct ctl *c, const char *dir,
                    const struct pl_report_entry *v, size_t n,
                    const struct pl_fhir_options *fo)
{
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return ctl_fail_errno(c, errno, "cannot create %s", dir);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ctl_fail_errno(c, errno, "cannot open the folder %s", dir);
	int rc = PX_OK;
	json_object *files = json_object_new_array();
	for (size_t i = 0; i < n && rc == PX_OK; i++) {
		char *json = NULL;
		size_t len = 0;
		int e = pl_fhir_bundle(&v[i], 1, fo, &json, &len);
		if (e != PL_OK) {
			rc = ctl_fail_pl(c, e);
			break;
		}
		struct pl_session_key key;
		memset(&key, 0, sizeof key);
		snprintf(key.serial, sizeof key.serial, "%s", v[i].serial ? v[i].serial : "");
		memcpy(key.uuid, v[i].uuid, 16);
		char name[200], tmp[232];
		session_file_name_as(&key, v[i].seq, ".fhir.json", name, sizeof name);
		snprintf(tmp, sizeof tmp, ".%s.tmp", name);
		int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		                              O_CLOEXEC, 0640);
		struct stat st;
		if (fd < 0) {
			rc = ctl_fail_errno(c, errno, "cannot create %s/%s", dir, tmp);
		} else {
			bool ok = write(fd, json, len) == (ssize_t)len && fsync(fd) == 0;
			int err = errno;
			close(fd);
			if (!ok)
				rc = ctl_fail_errno(c, err, "writing %s/%s", dir, tmp);
			else if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			         !S_ISREG(st.st_mode))
				rc = ctl_fail_code(c, PL_ERR_ACCESS, "%s/%s is not a regular "
				                   "file; refusing to replace it", dir, name);
			else if (renameat(dfd, tmp, dfd, name) != 0)
				rc = ctl_fail_errno(c, errno, "cannot store %s/%s", dir, name);
			if (rc != PX_OK)
				unlinkat(dfd, tmp, 0);
		}
		if (rc == PX_OK) {
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%s/%s", dir, name);
			json_object_array_add(files, json_object_new_string(path));
			if (!c->json)
				ctl_say("exported %s", path);
		}
		free(json);
	}
	if (rc == PX_OK)
		fsync(dfd);
	close(dfd);
	if (rc == PX_OK && c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "dir", json_object_new_string(dir));
		json_object_object_add(o, "format", json_object_new_string("fhir"));
		json_object_object_add(o, "sessions", json_object_new_uint64(n));
		json_object_object_add(o, "files", json_object_get(files));
		rc = ctl_emit_json(c, o);
	} else if (rc == PX_OK) {
		ctl_say("exported %zu session%s as FHIR Bundles to %s", n,
		        n == 1 ? "" : "s", dir);
	}
	json_object_put(files);
	return rc;
}

int sessions_export_fhir(struct ctl *c, struct opt_iter *it)
{
	it->spec = &fhir_spec; /* its own options (and --help) */
	struct period_args a = {0};
	const char **files;
	size_t n_files;
	int rc = parse_period(c, it, &a, &files, &n_files);
	int64_t since = a.since;
	const char *out = a.out, *dir = a.dir;
	if (rc == PX_OK && out && dir)
		rc = ctl_usage(c, "sessions export: --out FILE and --dir DIR exclude "
		               "each other");
	if (rc == PX_OK && !n_files && c->port)
		rc = ctl_usage(c, "sessions export reads penlinkd's archive or .plrec "
		               "FILEs; with --port, pull the sessions first");
	struct pl_report_entry *all = NULL;
	size_t n_all = 0;
	struct pl_device_info *devs = NULL;
	size_t n_devs = 0;
	if (rc == PX_OK)
		rc = read_entries(c, files, n_files, since, &all, &n_all);
	if (rc == PX_OK && !n_files)
		daemon_devices(c, &devs, &n_devs);
	free(files);
	/* files: --since and -s apply here as penlinkd applies them (without
	 * --since, every session, dated or not) */
	const struct period p = {.since = since ? since : INT64_MIN,
	                         .undated = !since, .serial = c->serial};
	size_t k = rc == PX_OK ? keep_period(all, n_all, &p) : 0;
	struct pl_fhir_options fo;
	pl_fhir_options_init(&fo);
	fo.devices = devs;
	fo.n_devices = n_devs;
	if (rc == PX_OK && dir) {
		rc = fhir_dir(c, dir, all, k, &fo);
	} else if (rc == PX_OK) {
		char *json = NULL;
		size_t len = 0;
		int e = pl_fhir_bundle(all, k, &fo, &json, &len);
		if (e != PL_OK)
			rc = ctl_fail_pl(c, e);
		struct out_file of;
		if (rc == PX_OK)
			rc = out_open(c, &of, out ? out : "-");
		if (rc == PX_OK) {
			if (fwrite(json, 1, len, of.f) != len || fputc('\n', of.f) == EOF) {
				int err = errno;
				out_abort(&of);
				rc = ctl_fail_errno(c, err, "writing %s", out ? out : "stdout");
			} else {
				rc = out_commit(c, &of);
			}
		}
		free(json);
		if (rc == PX_OK && out)
			rc = said(c, "a FHIR Bundle", out, "fhir", k);
	}
	pl_report_entries_free(all, n_all);
	free(devs);
	return rc;
}
