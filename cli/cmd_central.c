/* The clinic's central PostgreSQL archive (issue 12): `central init URL`
 * creates or migrates its schema; `central status` asks penlinkd how its
 * replication is doing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "penctl.h"
#include "penlink_central.h"

/* ------------------------------------------------------------------ init */

static int init_run(struct ctl *c, struct opt_iter *it)
{
	const char *url = NULL;
	struct opt_args args = {"URL", 1, &url, 0};
	int rc = opt_parse(c, it, NULL, &args);
	if (rc != PX_OK)
		return rc;
	if (!url)
		return ctl_usage(c, "central init needs the database's URL "
		                 "(a libpq connection string or postgresql:// URI)");
	/* Checked before connecting so a password never reaches libpq from
	 * a command line (where ps shows it). */
	if (pc_conninfo_check(url) != PL_OK)
		return ctl_fail_pl(c, PL_ERR_ARG);
	char where[256];
	pc_conninfo_describe(url, where, sizeof where);
	int from = 0, to = 0;
	int e = pc_init(url, &from, &to);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "database", json_str(where));
		json_object_object_add(o, "from_version", json_object_new_int(from));
		json_object_object_add(o, "schema_version", json_object_new_int(to));
		json_object_object_add(o, "applied", json_object_new_int(to - from));
		return ctl_emit_json(c, o);
	}
	if (from == to)
		ctl_say("central %s: schema already at version %d", where, to);
	else
		ctl_say("central %s: schema version %d -> %d (roles penlink_ingest "
		        "and penlink_read exist)", where, from, to);
	return PX_OK;
}

/* ------------------------------------------------------------------ status */

static void add_time(json_object *o, const char *key, int64_t ms)
{
	if (ms) {
		char t[PL_TIME_TEXT_MAX];
		json_object_object_add(o, key, json_str(pl_time_format_utc(ms, t)));
	} else {
		json_object_object_add(o, key, NULL);
	}
}

/* The replication state as `central status --json` gives it. */
static json_object *state_json(const Plctl__CentralState *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "configured",
	                       json_object_new_boolean(s->configured));
	if (!s->configured)
		return o;
	json_object_object_add(o, "site", json_str(s->site));
	json_object_object_add(o, "target", json_str(s->target));
	json_object_object_add(o, "connected",
	                       json_object_new_boolean(s->connected));
	json_object_object_add(o, "pending", json_object_new_uint64(s->pending));
	json_object_object_add(o, "conflicts",
	                       json_object_new_uint64(s->conflicts));
	json_object_object_add(o, "refused", json_object_new_uint64(s->refused));
	json_object_object_add(o, "confirmed",
	                       json_object_new_uint64(s->confirmed));
	json_object_object_add(o, "audit_pending",
	                       json_object_new_uint64(s->audit_pending));
	json_object_object_add(o, "annotations_pending",
	                       json_object_new_uint64(s->annotations_pending));
	json_object_object_add(o, "pens_pending",
	                       json_object_new_uint64(s->pens_pending));
	add_time(o, "last_sync_utc", s->last_sync_ms);
	json_object_object_add(o, "last_error", json_str(s->last_error));
	add_time(o, "last_error_utc", s->last_error_ms);
	add_time(o, "next_attempt_utc", s->next_attempt_ms);
	return o;
}

static int status_run(struct ctl *c, struct opt_iter *it)
{
	int rc = cmd_start(c, it);
	if (rc != PX_OK)
		return rc;
	Plctl__CentralStatus cs = PLCTL__CENTRAL_STATUS__INIT;
	Plctl__Response *r;
	int e = dc_call(c, &DC_REQUEST(CENTRAL_STATUS, central_status, &cs),
	                PLCTL__RESPONSE__BODY_CENTRAL, &r);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	const Plctl__CentralState *s = r->central;
	if (c->json) {
		json_object *o = state_json(s);
		dc_free(r);
		return ctl_emit_json(c, o);
	}
	if (!s->configured) {
		ctl_say("penlinkd does not replicate to a central archive (no "
		        "[central] in its configuration)");
		dc_free(r);
		return PX_OK;
	}
	char sync[PL_TIME_TEXT_MAX] = "never", err_at[PL_TIME_TEXT_MAX] = "";
	if (s->last_sync_ms)
		pl_time_format_local(s->last_sync_ms, sync);
	if (s->last_error_ms)
		pl_time_format_local(s->last_error_ms, err_at);
	ctl_say("site        %s", s->site);
	ctl_say("central     %s (%s)", s->target,
	        s->connected ? "connected" : "not connected");
	ctl_say("outbox      %" PRIu64 " pending, %" PRIu64 " confirmed, %" PRIu64
	        " conflicts, %" PRIu64 " refused; %" PRIu64 " audit entries, %"
	        PRIu64 " annotations, %" PRIu64 " pens pending",
	        s->pending, s->confirmed, s->conflicts, s->refused, s->audit_pending,
	        s->annotations_pending, s->pens_pending);
	ctl_say("last sync   %s", sync);
	if (s->last_error && *s->last_error)
		ctl_say("last error  %s: %s", err_at, s->last_error);
	dc_free(r);
	return PX_OK;
}

void central_list_note(struct ctl *c, json_object *doc)
{
	Plctl__CentralStatus cs = PLCTL__CENTRAL_STATUS__INIT;
	Plctl__Response *r;
	/* A penlinkd too old to know the request answers with an error:
	 * then there is nothing to say. */
	if (dc_call(c, &DC_REQUEST(CENTRAL_STATUS, central_status, &cs),
	            PLCTL__RESPONSE__BODY_CENTRAL, &r) != PL_OK)
		return;
	const Plctl__CentralState *s = r->central;
	if (!s || !s->configured) {
		dc_free(r);
		return;
	}
	if (doc) {
		json_object_object_add(doc, "central", state_json(s));
		dc_free(r);
		return;
	}
	char when[PL_TIME_TEXT_MAX] = "never";
	if (s->last_sync_ms)
		pl_time_format_local(s->last_sync_ms, when);
	if (s->last_error && *s->last_error)
		ctl_say("central: site %s, %s, %" PRIu64 " pending, last sync %s; "
		        "last error: %s", s->site,
		        s->connected ? "connected" : "not connected", s->pending, when,
		        s->last_error);
	else
		ctl_say("central: site %s, %s, %" PRIu64 " pending, last sync %s",
		        s->site, s->connected ? "connected" : "not connected",
		        s->pending, when);
	dc_free(r);
}

static const struct cmd_spec central_specs[] = {
	{"central init", "URL",
	 "create or migrate the central archive's schema (and its roles)",
	 CMD_BOTH, NULL,
	 "URL is a libpq connection string or postgresql:// URI of a role that "
	 "may create schemas and roles; a password belongs in ~/.pgpass or a "
	 "service file, never on the command line.  Safe to run again: only "
	 "missing migrations are applied, all in one transaction; a database "
	 "whose schema is newer than this penctl knows is refused.\n",
	 init_run},
	{"central status", NULL,
	 "penlinkd's replication: outbox depth, last sync, last error",
	 CMD_DAEMON, NULL, NULL, status_run},
	{NULL, NULL, NULL, CMD_BOTH, NULL, NULL, NULL},
};
const struct cmd_group central_cmds = {"central", NULL, central_specs};
