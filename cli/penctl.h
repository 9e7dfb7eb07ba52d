/* Shared between penctl's source files. */
#ifndef PENCTL_H
#define PENCTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <signal.h>

#include <json-c/json.h>

#include <penlink.h>

#include "exit_codes.h"
#include "penlink_control.h"

#if defined(__GNUC__)
#define PX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PX_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------ backend
 *
 * What a command needs from "the pen", whoever talks to it: direct
 * (libpenlink on --port, backend.c) or penlinkd (its control socket,
 * daemon.c), so each command is written once: it parses arguments, calls
 * these and renders the results.  An operation a backend cannot do returns
 * PL_ERR_UNSUPPORTED (penlinkd reports no link statistics and no pen
 * uptime).  Every operation fails like the library: a code, and the detail
 * in pl_error_message().
 *
 * Sessions are the pen's own with --port and penlinkd's archive (of every
 * pen) through the daemon; either way a session is named by its key
 * (serial, UUID), since two pens may record equal UUIDs.
 */
struct link_info {
	uint32_t protocol_version;
	uint32_t max_frame;
	uint32_t max_in_flight;
	uint32_t capabilities;
	struct pl_link_stats stats;
};

struct session_entry {
	struct pl_session_key key;  /* serial as the pen sent it: clean to print */
	/* id is the pen's handle (0 through penlinkd); archived: the pen was
	 * told it may reclaim the session (always true in the archive). */
	struct pl_session_info info;
	int64_t archived_ms;        /* when penlinkd archived it; 0 on a pen */
};

/* What a preset push asks for besides the set (penctl preset push). */
struct push_flags {
	bool confirm; /* depths above the policy's threshold */
	bool replace; /* the push may remove presets */
	bool dry_run; /* check and diff; write nothing */
};

struct backend_ops {
	/* true: the pen itself (--port); sessions carry the pen's ids and
	 * archived flags.  false: penlinkd and its archive. */
	bool direct;
	const char *(*serial)(void *ctx);
	const char *(*where)(void *ctx); /* port path or daemon socket, for messages */
	int (*info)(void *ctx, struct pl_device_info *out);
	int (*link)(void *ctx, struct link_info *out);
	int (*get_presets)(void *ctx, struct pl_preset_set *out);
	/* Writes next over cur (the set read before) once the --replace rule
	 * (pl_preset_diff_check_removals) and the clinic policy allow it:
	 * direct, the library's rule and pl_policy_check_push() on penctl's
	 * policy; through penlinkd, the daemon's, with the flags passed on.
	 * A refusal is PL_ERR_POLICY.  *diff (not NULL) gets the diff of next
	 * against the set the pen held, computed by whoever decides (penctl
	 * with --port, penlinkd through it).  A dry run checks everything a
	 * push would (the pen's limits too), fills *diff and sets *result to
	 * the set it would write, and writes nothing. */
	int (*put_presets)(void *ctx, const struct pl_preset_set *cur,
	                   const struct pl_preset_set *next,
	                   const struct push_flags *flags,
	                   struct pl_preset_set *result,
	                   struct pl_preset_diff *diff);
	int (*clock_get)(void *ctx, int64_t *utc_ms, bool *rtc_set,
	                 uint64_t *uptime_ms);
	/* *rtc_was_set: 1 or 0 when the backend learns it from the sync
	 * itself, -1 when it does not (ask clock_get first). */
	int (*clock_sync)(void *ctx, int64_t *offset_ms, int *rtc_was_set);
	/* Sessions that started at or after since (UTC ms; 0: all), of the
	 * pen -s names or every pen.  Free *out with free(). */
	int (*list_sessions)(void *ctx, int64_t since, struct session_entry **out,
	                     size_t *count);
	/* Copies s's record into path and checks it against s's SHA-256
	 * (PL_ERR_DIGEST, and path removed, on a difference); on PL_OK the
	 * file is complete and durable.  A pen resumes from what path holds;
	 * penlinkd's copy starts afresh. */
	int (*fetch_to_file)(void *ctx, const struct session_entry *s,
	                     const char *path, pl_progress_fn progress, void *ud);
	/* Bytes path holds that fetch_to_file() will keep (0: starts afresh). */
	uint64_t (*resume_point)(void *ctx, const char *path);
	/* The record of the session key names, verified, in a malloc'd buffer
	 * of at most max bytes (more: PL_ERR_PARSE); PL_ERR_NOT_FOUND if there
	 * is none. */
	int (*read_record)(void *ctx, const struct pl_session_key *key,
	                   uint64_t max, uint8_t **data, size_t *len);
	/* Tells the pen a verified copy of s is stored, so it may reclaim it.
	 * NULL through penlinkd: the daemon decides that itself. */
	int (*release)(void *ctx, const struct session_entry *s);
	int (*ping)(void *ctx, uint32_t *rtt_us);
	int (*trace)(void *ctx, bool enable, uint32_t level);
	void (*set_event_handler)(void *ctx, pl_event_fn fn, void *ud);
	int (*poll)(void *ctx, int timeout_ms);
	/* From inside a progress callback: makes the running fetch_to_file
	 * return PL_ERR_CANCELLED soon (Ctrl-C); nothing but close may follow.
	 * NULL when the backend notices ctl_interrupted itself (penlinkd). */
	void (*cancel)(void *ctx);
	void (*close)(void *ctx);
};

struct backend {
	const struct backend_ops *ops;
	void *ctx;
};

/* ------------------------------------------------------------------ context */

struct dconn;

struct ctl {
	/* global options */
	const char *port;
	const char *socket; /* --socket; else $PENLINK_SOCKET, else the default */
	const char *serial; /* -s: the pen we expect */
	const char *policy_file; /* --policy: the clinic policy for --port */
	bool json;
	int timeout_ms; /* 0: library default */
	bool dump_frames;
	bool utc; /* --utc: times for people in UTC (TZ=UTC0), not local */

	bool stderr_tty; /* progress is drawn only then */
	/* A stream (trace, monitor): with --json every object, the closing
	 * error too, is one line. */
	bool stream;
	bool emitted; /* the one JSON document is out */
	int argc;     /* the command line, to say what resumes a pull */
	char **argv;
	struct backend be; /* ops == NULL until ctl_connect() */
	struct dconn *dc;  /* the daemon connection when be is penlinkd's */
	/* --central URL: the clinic's central PostgreSQL archive, read-only
	 * (backend_central.c); --site: only what that site delivered. */
	const char *central;
	const char *site;
	int64_t until_ms;  /* sessions list --until (0: none) */
	struct central_conn *cc; /* the connection when be is central's */

	/* Fields a failing command has already produced (e.g. the sessions a
	 * pull stored before the pen went away); merged into the --json error
	 * document so nothing is lost to a script.  Owned. */
	json_object *partial;
};

/* Opens the backend chosen by the global options (direct with --port, else
 * penlinkd), checks -s.  Returns PX_OK or an exit code (error already
 * reported). */
int ctl_connect(struct ctl *c);
void ctl_disconnect(struct ctl *c);

int direct_open(struct ctl *c, struct backend *out);

/* ------------------------------------------------------------------ central
 *
 * penctl --central URL (backend_central.c): the third backend, the clinic's
 * central PostgreSQL archive (issue 12), read-only, connected as a role
 * holding penlink_read.  It lists, shows and pulls sessions like penlinkd's
 * archive, and answers the control-protocol requests the commands send
 * themselves (sessions list --client, sessions export, audit) from
 * PostgreSQL: dc_send() and dc_next() hand them to central_ctl_send() and
 * central_ctl_next() when c->cc is set, so every command is written once.
 * Requests central cannot answer (pens, presets, attach, monitor...) fail
 * with PL_ERR_UNSUPPORTED naming what --central serves.
 */
struct central_conn;
int central_open(struct ctl *c, struct backend *out);
int central_ctl_send(struct ctl *c, Plctl__Request *req);
int central_ctl_next(struct ctl *c, uint32_t id, Plctl__Response **rep);
/* penctl list's line (and --json key "central") on penlinkd's replication,
 * when it has a [central] section (cmd_central.c).  Adds nothing for a
 * penlinkd without one, or one too old to say. */
void central_list_note(struct ctl *c, json_object *doc);

/* ------------------------------------------------------------------ penlinkd
 *
 * The control-socket client (daemon.c): proto/ctl.proto requests, framed
 * like the wire protocol.  penctl has one request outstanding at a time.
 */
/* The daemon itself waits on the pen, so penctl waits longer than it would
 * for a pen. */
#define DAEMON_DEFAULT_TIMEOUT_MS 10000

/* No --port: everything goes through penlinkd. */
bool ctl_daemon_mode(const struct ctl *c);
/* The socket path the options choose. */
const char *ctl_socket_path(const struct ctl *c);
/* For commands that exist only through penlinkd: a usage error (exit 2)
 * naming the command when --port was given. */
int ctl_need_daemon(struct ctl *c, const char *what);

/* Connects, says Hello; sets c->dc.  Exit code (reported) on failure. */
int daemon_open(struct ctl *c, struct backend *out);

/* The request whose one op is *msg: DC_REQUEST(AUDIT, audit, &au).  An
 * lvalue, so &DC_REQUEST(...) can go straight to dc_call(). */
#define DC_REQUEST(OP, field, msg)                                          \
	((Plctl__Request){                                                      \
	    .base = PROTOBUF_C_MESSAGE_INIT(&plctl__request__descriptor),       \
	    .op_case = PLCTL__REQUEST__OP_##OP,                                 \
	    .field = (msg)})

/* Sends req (its id is assigned here) and waits for one response with that
 * id whose body is want.  An Error response becomes its code (message in
 * pl_error_message()); penlinkd going away is PX_ERR_DAEMON; no
 * response within the timeout PL_ERR_TIMEOUT.  Free *rep with dc_free(). */
int dc_call(struct ctl *c, Plctl__Request *req, Plctl__Response__BodyCase want,
            Plctl__Response **rep);
/* Streams: dc_send() the request, then dc_next() each piece.  timeout_ms
 * < 0 waits forever (monitor); a Ctrl-C (see ctl_catch_signals) makes it
 * return PL_ERR_CANCELLED.  Error bodies become their code. */
int dc_send(struct ctl *c, Plctl__Request *req);
int dc_next(struct ctl *c, uint32_t id, int timeout_ms, Plctl__Response **rep);
void dc_free(Plctl__Response *rep);
/* Lists may come in pieces (penlinkd pages long session lists and audit
 * trails): sends req and collects every response up to the one marked
 * last, each with body want.  Free with dc_pages_free(). */
struct dc_pages {
	Plctl__Response **v;
	size_t n;
};
int dc_collect(struct ctl *c, Plctl__Request *req,
               Plctl__Response__BodyCase want, struct dc_pages *out);
void dc_pages_free(struct dc_pages *p);
/* The pens penlinkd serves (a Pens body).  Free *rep with dc_free(). */
int dc_list_pens(struct ctl *c, Plctl__Response **rep);
/* The pen that pen commands act on (-s, else the only one attached),
 * resolved once per run; *serial stays valid until disconnect. */
int dc_pen(struct ctl *c, const char **serial);
/* The per-response timeout for daemon mode (--timeout or the default). */
int dc_timeout(const struct ctl *c);
/* The archive's sessions (of -s's pen, or every pen) that started at or
 * after since, only those whose current client reference is client_ref
 * when it is not NULL or "".  Free *out with free(). */
int dc_list_sessions(struct ctl *c, int64_t since, const char *client_ref,
                     struct session_entry **out, size_t *count);

/* Ctrl-C / SIGTERM set ctl_interrupted (no SA_RESTART, so a blocked wait
 * returns at once). */
extern volatile sig_atomic_t ctl_interrupted;
void ctl_catch_signals(void);

/* ------------------------------------------------------------------ options
 *
 * Every command's options are one table that both parses them and
 * generates the command's --help, so the two cannot drift apart.  A row
 * also says where its value goes (mmcli-style, like struct json_field): a
 * member of the command's own struct of arguments, by its kind, so one
 * parser (opt_parse) serves every command and a command only checks what
 * its options mean together.
 */

enum { OPT_END = -1, OPT_ARG = -2, OPT_BAD = -3 };

struct ctl;

enum opt_kind {
	OPT_RETURN, /* stored nowhere: opt_next() returns its id */
	OPT_FLAG,   /* bool: true */
	OPT_TEXT,   /* const char *: the value as given */
	OPT_NAME,   /* const char *: never empty ("--out needs <what>") */
	OPT_SOME,   /* const char *: the value, NULL when empty (as if not given) */
	OPT_DATE,   /* int64_t UTC ms: parse_date() */
	OPT_U32,    /* uint32_t within [min, max]: parse_u32() */
	OPT_CALL,   /* parse(c, the option's name, the value, the member) */
};

struct optdef {
	const char *name; /* "--depth" */
	char short_name;  /* 0 if none */
	const char *arg;  /* the value's name in help ("MM"); NULL: a flag */
	int id;           /* > 0; opt_parse() notes it in opt_iter.given */
	const char *help; /* one line for --help */
	enum opt_kind kind;
	size_t offset;    /* of the member it sets; not OPT_RETURN */
	const char *what; /* OPT_NAME: what the value names ("a directory") */
	uint32_t min, max; /* OPT_U32 */
	/* OPT_CALL: parses val into *field; PX_OK or an exit code (reported). */
	int (*parse)(struct ctl *c, const char *opt, const char *val,
	             void *field);
};

/* Rows: OPT(name, short, ARG, id, help, kind, struct, member, extra...),
 * extra being .what, .min/.max or .parse as the kind needs. */
#define OPT(name_, short_, arg_, id_, help_, kind_, type, member, ...)      \
	{.name = name_, .short_name = short_, .arg = arg_, .id = id_,          \
	 .help = help_, .kind = kind_, .offset = offsetof(type, member),      \
	 __VA_ARGS__}
/* A row whose id the command handles itself (opt_next). */
#define OPT_ID(name_, short_, arg_, id_, help_)                             \
	{.name = name_, .short_name = short_, .arg = arg_, .id = id_,          \
	 .help = help_, .kind = OPT_RETURN}
#define OPT_TABLE_END {.name = NULL}

struct opt_iter;

/* CMD_LOCAL: needs neither penlinkd nor --port (scan). */
enum cmd_where { CMD_BOTH, CMD_DAEMON, CMD_DIRECT, CMD_LOCAL };
/* Or'ed into a spec's where: also answered from --central URL's archive. */
#define CMD_CENTRAL 0x10u
/* The spec's enum cmd_where, without CMD_CENTRAL. */
#define CMD_WHERE(k) ((enum cmd_where)((k)->where & ~CMD_CENTRAL))

/* A command as penctl --help lists it and as it parses itself. */
struct cmd_spec {
	const char *name;     /* "preset push" */
	const char *args;     /* after the name in its usage line, or NULL */
	const char *summary;  /* one line for penctl --help */
	unsigned where;       /* enum cmd_where, | CMD_CENTRAL */
	const struct optdef *opts; /* NULL: none of its own */
	const char *details;  /* more text for its own --help, or NULL */
	int (*run)(struct ctl *c, struct opt_iter *it);
};

/* The commands of one first word ("sessions": list, pull, show, export);
 * a group of one command whose name is the word itself ("info") takes no
 * subcommand. */
struct cmd_group {
	const char *word;
	const char *alias;          /* "presets" for "preset", or NULL */
	const struct cmd_spec *cmds; /* ends with a NULL name */
};

/* The group of a command named by its word alone ("info", "audit"). */
#define CMD_SINGLE(group, name, args, summary, where, opts, details, run)   \
	static const struct cmd_spec group##_specs[] = {                      \
		{name, args, summary, where, opts, details, run},                 \
		{NULL, NULL, NULL, CMD_BOTH, NULL, NULL, NULL},                   \
	};                                                                    \
	const struct cmd_group group##_cmds = {name, NULL, group##_specs}

extern const struct cmd_group info_cmds, ping_cmds, preset_cmds,
    sessions_cmds, clock_cmds, trace_cmds, list_cmds, monitor_cmds,
    attach_cmds, detach_cmds, audit_cmds, scan_cmds;
extern const struct cmd_group central_cmds; /* cmd_central.c */
/* cmd_report.c (report/penlink_report.h): `report`, `sessions report` (an
 * entry of the sessions group) and `sessions export --format fhir`, which
 * sessions export hands over to when export_wants_fhir(). */
extern const struct cmd_group report_cmds;
extern const struct optdef report_session_opts[];
int sessions_report(struct ctl *c, struct opt_iter *it);
#define SESSIONS_REPORT_SPEC                                                \
	{"sessions report", "FILE | SERIAL/UUID | UUID [--out FILE]",           \
	 "the printable HTML treatment report of a session",                  \
	 CMD_BOTH | CMD_CENTRAL,                                              \
	 report_session_opts,                                                 \
	 "One self-contained HTML file (inline CSS and SVG plots) that prints\n" \
	 "on A4 or Letter.  A session as for sessions show.\n",                  \
	 sessions_report}
bool export_wants_fhir(const struct opt_iter *it);
/* "sessions list, sessions pull, ...": the commands --central answers
 * (those whose spec says central), for help and refusals. */
const char *cmd_central_names(void);
/* penctl __complete CWORD WORD...: bash completion's candidates for word
 * CWORD, from the command and option tables (complete.c). */
int complete_words(struct ctl *c, const struct cmd_group *const *groups,
                   const struct optdef *global, int cword, int nwords,
                   char **words);
int sessions_export_fhir(struct ctl *c, struct opt_iter *it);
/* cmd_sessions.c: what sessions show, annotate and report share.  Is arg a
 * session's name (SERIAL/UUID, or a UUID)? */
bool session_arg_valid(const char *arg);
/*
 * The session arg names (session_arg_valid): SERIAL/UUID, or a UUID, with
 * -s that pen's, else the one session of that UUID the backend lists (more
 * than one is a usage error naming each).  Connects.  found (may be NULL):
 * the backend must list the session and *found is its entry.  An exit
 * code, reported.
 */
int session_arg_resolve(struct ctl *c, const char *arg,
                        struct pl_session_key *key, struct session_entry *found);
/* Streams penlinkd's export ex, handing each piece to piece(ud, ...) up to
 * the last.  PL_OK, or the first failure: piece's, or the stream's (an
 * answer other than export data is PL_ERR_PROTOCOL). */
int export_stream(struct ctl *c, Plctl__ExportSessions *ex,
                  int (*piece)(void *ud, const Plctl__ExportChunk *ch),
                  void *ud);
/* A record that did not parse: exit 8 (integrity) when it is not a valid
 * record, else e's exit code; reported. */
int record_parse_failed(struct ctl *c, int e, const char *what);
/* A session's file name (pl_session_file_name) with ext in place of
 * ".plrec": ".html", ".fhir.json", or "" for the name alone. */
void session_file_name_as(const struct pl_session_key *key, uint32_t seq,
                          const char *ext, char *out, size_t cap);
/* backend.c: the index of the first entry of v from `from` on that key
 * names (its UUID, and its serial unless key's is "": any pen); n if
 * none. */
size_t session_find(const struct session_entry *v, size_t n,
                    const struct pl_session_key *key, size_t from);

struct opt_iter {
	int argc;
	char **argv;
	int i;
	bool no_more_opts; /* after "--" */
	const struct cmd_group *group;  /* --help: the group's subcommands */
	const struct cmd_spec *spec;    /* --help: this command's own */
	unsigned given; /* opt_parse(): 1u << id of each option given */
	const struct optdef *last; /* the option opt_next() returned */
};

void opt_init(struct opt_iter *it, int argc, char **argv, int start);
/*
 * Next command-line item.  Returns an optdef id of it->spec's table (value
 * in *val if it takes one), OPT_ARG (a positional argument in *val),
 * OPT_END, or OPT_BAD after reporting a usage error (exit PX_USAGE).
 * Global options (--port, --json, ...) are accepted anywhere and applied to
 * c directly; --help prints the help of it->spec (else it->group, else
 * penctl's) and exits.
 */
int opt_next(struct ctl *c, struct opt_iter *it, const char **val);

/* The positional arguments a command takes (opt_parse).  More than max is
 * a usage error: "CMD takes one WHAT (got 'A' and 'B')", or with max 0
 * "CMD takes no arguments (got 'A')" and "; use WHAT" when what is set. */
struct opt_args {
	const char *what;
	size_t max;
	const char **v; /* room for max of them */
	size_t n;       /* how many were given */
};
/*
 * Every item of the command line for it->spec: each option's value stored
 * in the struct at dst as its row says, positional arguments in *args
 * (NULL: none allowed).  PX_OK, or an exit code (reported).
 */
int opt_parse(struct ctl *c, struct opt_iter *it, void *dst,
              struct opt_args *args);
/* Connects for the command it->spec, refusing --port for one that exists
 * only through penlinkd (ctl_need_daemon).  PX_OK or an exit code
 * (reported). */
int cmd_connect(struct ctl *c, const struct opt_iter *it);
/* opt_parse() of nothing, then cmd_connect(): the start of a command
 * without arguments. */
int cmd_start(struct ctl *c, struct opt_iter *it);

/* Whole-string unsigned parse within [min, max]; reports usage errors. */
int parse_u32(struct ctl *c, const char *opt, const char *text, uint32_t min,
              uint32_t max, uint32_t *out);

/* DATE for --since: YYYY-MM-DD (local midnight) or
 * YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM|-HH:MM] (local time without a zone) to UTC
 * milliseconds.  Reports a usage error naming opt and the text. */
int parse_date(struct ctl *c, const char *opt, const char *text, int64_t *ms);
/* Canonical 8-4-4-4-12 UUID text (either case) to 16 bytes; false if not
 * one. */
bool parse_uuid(const char *text, uint8_t out[16]);

/* ------------------------------------------------------------------ output
 *
 * penctl's doors: whatever text a pen or penlinkd sent is cleaned here for
 * where it goes (pl_text_clean): every table cell and message line for a
 * terminal, every string of a --json document for JSON.  Commands pass raw
 * text in and need not clean it themselves.
 */

/* Errors: print "penctl: <label>: <message>" on stderr and, with --json,
 * {"error": {...}} on stdout.  Each returns the exit code to use. */
int ctl_fail_pl(struct ctl *c, int pl_code); /* message: pl_error_message() */
int ctl_fail_code(struct ctl *c, int pl_code, const char *fmt, ...)
    PX_PRINTF(3, 4);
int ctl_fail_exit(struct ctl *c, int exit_code, const char *slug,
                  const char *label, const char *fmt, ...) PX_PRINTF(5, 6);
int ctl_usage(struct ctl *c, const char *fmt, ...) PX_PRINTF(2, 3);
int ctl_fail_errno(struct ctl *c, int err, const char *fmt, ...)
    PX_PRINTF(3, 4);
/* Takes ownership of obj and adds it to the error document under key. */
void ctl_partial(struct ctl *c, const char *key, json_object *obj);

/* Prints obj as the command's one JSON document and frees it. */
int ctl_emit_json(struct ctl *c, json_object *obj);
/* One compact JSON object on its own line (trace, monitor); frees it. */
void ctl_emit_json_line(json_object *obj);

/* A message line on stdout / a warning on stderr (never on stdout, so
 * --json stays one document), cleaned for the terminal. */
void ctl_say(const char *fmt, ...) PX_PRINTF(1, 2);
void ctl_warn(const char *fmt, ...) PX_PRINTF(1, 2);
/* "penctl: <what it is doing>" on stderr. */
void ctl_note(const char *fmt, ...) PX_PRINTF(1, 2);

/* Formatting.  Buffers: FMT_BUF bytes is enough for each. */
#define FMT_BUF 48
const char *fmt_bytes(char *buf, uint64_t n);      /* "2.1 MB" */
const char *fmt_duration(char *buf, int64_t ms);   /* "12m 03s" */
const char *fmt_area(enum pl_area a);
/* "14:03:22 +02:00" (with_ms: "14:03:22.123 +02:00"), the local time of
 * day with its UTC offset, for lines of a stream.  Returns buf. */
const char *fmt_time_of_day(char buf[PL_TIME_TEXT_MAX], int64_t utc_ms,
                            bool with_ms);

/* A depth as a JSON number with its exact decimal text (PL_MM_SHORT), not
 * the 17 digits json-c would print for a double. */
json_object *json_depth_mm(uint32_t um);
json_object *json_hex(const uint8_t *data, size_t len);
json_object *json_uuid(const uint8_t uuid[16]);
json_object *json_str(const char *s); /* NULL as "" */
json_object *json_preset(const struct pl_preset *p);
json_object *json_preset_set(const struct pl_preset_set *set);
json_object *json_link_stats(const struct pl_link_stats *st);

/*
 * A JSON document's fields as a table (mmcli-style): each row names a key,
 * the nested object it goes in (NULL: the document itself; objects are
 * made where first named, so the table's order is the document's) and the
 * struct member it comes from, by its kind.  JF() checks a member's size
 * against its kind when the document is built (a wrong kind aborts: every
 * test that prints the document finds it).
 */
enum json_kind {
	JK_STR,   /* const char * (NULL: "") */
	JK_CHARS, /* char[] */
	JK_BOOL,  /* bool */
	JK_PBOOL, /* protobuf_c_boolean */
	JK_U32,   /* uint32_t */
	JK_U64,   /* uint64_t */
	JK_I64,   /* int64_t */
	JK_MM,    /* uint32_t micrometres: json_depth_mm */
	JK_UTC,   /* int64_t UTC ms as ISO 8601 text: json_utc */
	JK_MAKE,  /* make(the struct) */
};
struct json_field {
	const char *group, *key;
	enum json_kind kind;
	size_t offset, size;
	json_object *(*make)(const void *obj);
};
#define JF(group, key, kind, type, member)                                 \
	{group, key, kind, offsetof(type, member), sizeof ((type *)0)->member, \
	 NULL}
#define JF_MAKE(group, key, make) {group, key, JK_MAKE, 0, 0, make}
void json_add_fields(json_object *o, const void *obj,
                     const struct json_field *f, size_t n);
/* The one time rule's JSON form: ISO 8601 UTC text of utc_ms
 * ("2024-05-01T12:03:22.000Z"), or null when it is not a date (known false,
 * or out of range).  Beside every *_ms time a person may read. */
json_object *json_utc(bool known, int64_t utc_ms);

/* Aligned text tables. */
struct table;
struct table *table_new(size_t ncols, const char *const *headers,
                        const char *align /* 'l'/'r' per column, or NULL */);
/* Adds one row of ncols strings; NULL cells print empty. */
int table_row(struct table *t, const char *const *cells);
void table_print(struct table *t, FILE *out, const char *indent);
void table_free(struct table *t);

void print_preset_table(const struct pl_preset_set *set, FILE *out);

/* A pull's progress on stderr (progress.c), over every session it copies:
 * `session 2/3 [########............]  45%  1.2 MB/3.0 MB  850 kB/s  ETA 2s`. */
struct progress {
	bool enabled, drawn;
	int64_t start_ms, last_ms;
	size_t index, count;   /* the session being copied (from 1), of count */
	uint64_t total;        /* bytes of every session of the pull */
	uint64_t before;       /* bytes of the sessions finished before it */
	uint64_t current;      /* bytes of this session there so far */
	uint64_t resumed;      /* of which were there before it started */
	uint64_t moved_before; /* bytes copied by this run for finished ones */
};
/* enabled: draw at all (stderr a terminal, not --json). */
void progress_init(struct progress *p, bool enabled, size_t count,
                   uint64_t total_bytes);
/* Session index (from 1) starts with resumed bytes already there. */
void progress_session(struct progress *p, size_t index, uint64_t resumed);
/* done of this session's total bytes (a pl_progress_fn's arguments). */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
/* The session is finished: size bytes; copied: by this run (else already
 * present). */
void progress_session_done(struct progress *p, uint64_t size, bool copied);
void progress_clear(struct progress *p);

/* --dump-frames: `HH:MM:SS.mmm  >  id=7 read_session{...}  (23 bytes)`. */
void frame_log_stderr(void *ud, enum pl_frame_dir dir, const char *text,
                      size_t raw_len);

/* ------------------------------------------------------------------ commands */

const char *trace_level_name(uint32_t level);
/* A pen's state event kind (pl.StateKind): "idle", "treating", ... */
const char *pen_state_kind_name(uint32_t kind);

void print_help(FILE *out);

/* Reads a whole (small) file; NULL with errno set.  Refuses files over
 * max bytes (EFBIG) so a wrong path cannot eat memory. */
char *read_text_file(const char *path, size_t max, size_t *len);

#endif
