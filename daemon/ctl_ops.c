/*
 * Control requests: one table of operations (access right, audit name,
 * handler), the access check, then forwarding to the pens (device.c) or
 * the archive (archive.c).  Presets, device info and sessions cross the
 * socket through penlink_control's conversions.  Pen operations are
 * asynchronous: their
 * request record (struct ctl_req) outlives the client, so a client that
 * hangs up never leaves a pen callback with a dangling pointer, and a
 * preset push it started is still audited.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "central.h"
#include "ctl_int.h"
#include "log.h"

#define S(x) ((x) ? (x) : "")

/* Most an Audit answer carries; newer entries come first, so what is left
 * out is the oldest.  Keeps one answer well under the queue bound. */
#define CTL_AUDIT_BUDGET (2u << 20)
#define CTL_AUDIT_MAX_LIMIT 10000u

const char *ctl_errmsg(int code)
{
	const char *m = pl_error_message();
	return m && m[0] ? m : pl_error_name(code);
}

static struct daemon *dmn(const struct client *cl)
{
	return cl->ctl->d;
}

static bool send_ack(struct client *cl, uint32_t id, bool last)
{
	Pl__Ack ack = PL__ACK__INIT;
	return client_send(cl, id, last, PLCTL__RESPONSE__BODY_ACK, &ack);
}

/* Sends msg as the last answer to id, or the error its conversion (rc) ran
 * into. */
static void answer(struct client *cl, uint32_t id, int rc,
                   Plctl__Response__BodyCase body, const void *msg)
{
	if (rc)
		client_error(cl, id, rc, "%s", ctl_errmsg(rc));
	else
		client_send(cl, id, true, body, msg);
}

/* The client of a request, if it is still there to be answered. */
static struct client *req_client(const struct ctl_req *r)
{
	return r->ctl && r->cl && !r->cl->dead ? r->cl : NULL;
}

/* ------------------------------------------------------------------ conversions */

/* The set a PushPresets carries, read from the request's bytes so that a
 * name is measured on the wire (a NUL in it is refused, not cut at). */
static int push_set(const struct client *cl, const Plctl__Request *rq,
                    struct pl_preset_set *out)
{
	return plc_push_presets_decode(rq, cl->rq_wire, cl->rq_wire_len, out);
}

/* An archived session as libpenlink names and describes it. */
static void session_of(const struct archived_session *x,
                       struct pl_session_key *key, struct pl_session_info *info)
{
	memset(key, 0, sizeof *key);
	memcpy(key->serial, x->serial, sizeof key->serial);
	memcpy(key->uuid, x->uuid, sizeof key->uuid);
	memset(info, 0, sizeof *info);
	memcpy(info->uuid, x->uuid, sizeof info->uuid);
	info->seq = x->summary.seq;
	info->size = x->summary.size;
	memcpy(info->sha256, x->summary.sha256, sizeof info->sha256);
	info->start_ms = x->summary.start_ms;
	info->end_ms = x->summary.end_ms;
	info->rtc_time = x->summary.rtc_time;
	info->archived = true;
}

/* ------------------------------------------------------------------ refusals */

/*
 * The serial a request names, if its message has one.  Every operation on
 * a pen or its sessions has a `serial` field, so a refusal's audit entry
 * names the pen without a list of operations to keep in step.
 */
static const char *request_serial(const Plctl__Request *rq)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
	    &plctl__request__descriptor, (unsigned)rq->op_case);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return "";
	const ProtobufCMessage *m =
	    *(ProtobufCMessage *const *)((const char *)rq + f->offset);
	const ProtobufCFieldDescriptor *sf =
	    m ? protobuf_c_message_descriptor_get_field_by_name(m->descriptor,
	                                                        "serial")
	      : NULL;
	if (!sf || sf->type != PROTOBUF_C_TYPE_STRING)
		return "";
	const char *serial = *(char *const *)((const char *)m + sf->offset);
	return S(serial);
}

static void denied(struct client *cl, const Plctl__Request *rq,
                   const struct ctl_op *op, const char *msg)
{
	log_notice("refused %s for pid %d (%s): %s", op->name, (int)cl->who.pid,
	           cl->who.user, msg);
	if (++cl->denials <= CTL_MAX_DENIALS_AUDITED) {
		char action[64];
		snprintf(action, sizeof action, "denied:%s", op->name);
		char *tried = op->tried ? op->tried(cl, rq) : NULL;
		ctl_audit(dmn(cl), (uint32_t)cl->who.uid, cl->who.user,
		          request_serial(rq), action, "", S(tried), msg);
		free(tried);
	}
	client_error(cl, rq->id, PL_ERR_ACCESS, "%s", msg);
}

/* What a refused push tried: the set as a preset file, when it is one. */
static char *tried_push(const struct client *cl, const Plctl__Request *rq)
{
	struct pl_preset_set *set = malloc(sizeof *set);
	char *json = set && push_set(cl, rq, set) == PL_OK
	                 ? pl_preset_set_to_json(set)
	                 : NULL;
	free(set);
	return json;
}

static char *tried_attach(const struct client *cl, const Plctl__Request *rq)
{
	(void)cl;
	return strdup(S(rq->attach->path));
}

static char *tried_detach(const struct client *cl, const Plctl__Request *rq)
{
	(void)cl;
	return strdup(S(rq->detach->path));
}

/* ------------------------------------------------------------------ pens */

static struct pen *lookup(struct client *cl, uint32_t id, const char *serial)
{
	char err[256] = "";
	struct pen *pen = dmn(cl)->pens
	                      ? pens_lookup(dmn(cl)->pens, S(serial), err, sizeof err)
	                      : NULL;
	if (!pen)
		client_error(cl, id, PL_ERR_NOT_FOUND, "%s",
		             err[0] ? err : "no pen is attached");
	return pen;
}

static bool room_for_request(struct client *cl, uint32_t id)
{
	if (cl->n_pending < CTL_MAX_PENDING)
		return true;
	client_error(cl, id, PL_ERR_BUSY,
	             "%u requests are already waiting on pens; wait for their "
	             "answers", cl->n_pending);
	return false;
}

/* The client to answer a pen's reply to r with, or NULL when it left or
 * has had the pen's error (a reply without its result is the pen's fault). */
static struct client *pen_answered(const struct ctl_req *r, int status,
                                   bool have_result)
{
	struct client *cl = req_client(r);
	if (cl && (status || !have_result)) {
		client_error(cl, r->id, status ? status : PL_ERR_DEVICE, "%s",
		             ctl_errmsg(status));
		return NULL;
	}
	return cl;
}

/* A pen's reply to GetInfo or GetPresets, carrying whichever of info and
 * set was asked for. */
static void model_done(struct ctl_req *r, int status,
                       const struct pl_device_info *info,
                       const struct pl_preset_set *set)
{
	struct client *cl = pen_answered(r, status, info || set);
	if (cl) {
		Pl__DeviceInfo *info_pb = NULL;
		Pl__PresetSet *set_pb = NULL;
		int rc = info ? plc_device_info_to_pb(info, &info_pb)
		              : plc_preset_set_to_pb(set, &set_pb);
		if (info)
			answer(cl, r->id, rc, PLCTL__RESPONSE__BODY_INFO, info_pb);
		else
			answer(cl, r->id, rc, PLCTL__RESPONSE__BODY_PRESETS, set_pb);
		plc_device_info_pb_free(info_pb);
		plc_preset_set_pb_free(set_pb);
	}
	ctl_req_free(r);
}

static void info_done(void *ud, int status, const struct pl_device_info *info)
{
	model_done(ud, status, info, NULL);
}

static void presets_done(void *ud, int status, uint32_t previous_revision,
                         const struct pl_preset_set *set)
{
	(void)previous_revision;
	model_done(ud, status, NULL, set);
}

/* A clock sync is a change to the pen: audited with what the pen's clock
 * was (set or not, and how far off) and the time it was set to. */
static void clock_audit(struct ctl_req *r, int status, bool rtc_was_set,
                        int64_t offset_ms)
{
	char oldv[96] = "", newv[64];
	if (!status)
		snprintf(oldv, sizeof oldv, "{\"rtc_set\":%s,\"offset_ms\":%lld}",
		         rtc_was_set ? "true" : "false", (long long)offset_ms);
	snprintf(newv, sizeof newv, "{\"utc_ms\":%lld}",
	         (long long)pl_time_utc_ms());
	ctl_audit(r->d, r->uid, r->user, r->serial, "clock.sync", oldv, newv,
	          status ? ctl_errmsg(status) : "ok");
}

static void clock_done(void *ud, int status, bool rtc_was_set, int64_t offset_ms)
{
	struct ctl_req *r = ud;
	clock_audit(r, status, rtc_was_set, offset_ms);
	struct client *cl = pen_answered(r, status, true);
	if (cl) {
		Plctl__ClockSynced cs = PLCTL__CLOCK_SYNCED__INIT;
		cs.rtc_was_set = rtc_was_set;
		cs.offset_ms = offset_ms;
		client_send(cl, r->id, true, PLCTL__RESPONSE__BODY_CLOCK, &cs);
	}
	ctl_req_free(r);
}

/* GetInfo, GetPresets and ClockSync: forwarded to the pen. */
static void pen_request(struct client *cl, const Plctl__Request *rq)
{
	if (!room_for_request(cl, rq->id))
		return;
	struct pen *pen = lookup(cl, rq->id, request_serial(rq));
	if (!pen)
		return;
	struct ctl_req *r = ctl_req_new(cl, rq->id, rq->op_case);
	if (!r) {
		client_error(cl, rq->id, PL_ERR_MEM, "out of memory");
		return;
	}
	snprintf(r->serial, sizeof r->serial, "%s", S(pen_serial(pen)));
	int rc;
	switch (rq->op_case) {
	case PLCTL__REQUEST__OP_GET_INFO: rc = pen_get_info(pen, info_done, r); break;
	case PLCTL__REQUEST__OP_GET_PRESETS:
		rc = pen_get_presets(pen, presets_done, r);
		break;
	default: rc = pen_clock_sync(pen, clock_done, r); break;
	}
	if (rc && rq->op_case == PLCTL__REQUEST__OP_CLOCK_SYNC)
		clock_audit(r, rc, false, 0);
	if (rc) {
		client_error(cl, rq->id, rc, "%s", ctl_errmsg(rc));
		ctl_req_free(r);
	}
}

/* ------------------------------------------------------------------ preset push */

/* Audits the attempt and answers it (code PL_OK: with the set read back,
 * or for a dry run the set that would be written, and the diff against the
 * pen's set).  A push the clinic's policy or the --replace rule refuses is
 * audited as a refusal; a dry run is not audited (it changes nothing). */
static void push_finish(struct ctl_req *r, int code, const char *msg,
                        uint32_t previous_revision,
                        const struct pl_preset_set *result)
{
	if (!r->dry_run) {
		char *oldj = r->have_old ? pl_preset_set_to_json(&r->old_set) : NULL;
		char *newj = pl_preset_set_to_json(result ? result : &r->new_set);
		ctl_audit(r->d, r->uid, r->user, r->serial,
		          code == PL_ERR_POLICY ? "refused:presets.push"
		                                : "presets.push",
		          S(oldj), S(newj), code ? msg : "ok");
		free(oldj);
		free(newj);
	}

	struct client *cl = req_client(r);
	if (code) {
		log_notice("preset %s by %s to %s refused: %s",
		           r->dry_run ? "dry run" : "push", r->user,
		           r->serial[0] ? r->serial : "(no pen)", msg);
		if (cl)
			client_error(cl, r->id, code, "%s", msg);
		ctl_req_free(r);
		return;
	}
	if (!r->dry_run)
		log_notice("%s pushed %zu presets to %s (revision %u -> %u)", r->user,
		           result->count, r->serial, previous_revision,
		           result->revision);
	if (cl) {
		/* The diff of what was written against what the pen held: one
		 * computation (pl_preset_set_diff), the one the client prints. */
		Plctl__PresetsPushed pp = PLCTL__PRESETS_PUSHED__INIT;
		pp.previous_revision = previous_revision;
		pp.dry_run = r->dry_run;
		struct pl_preset_diff *diff = malloc(sizeof *diff);
		int rc = diff ? pl_preset_set_diff(&r->old_set, &r->new_set, diff)
		              : pl_error_set(PL_ERR_MEM, "out of memory");
		if (!rc)
			rc = plc_preset_diff_to_pb(diff, &pp.diff, &pp.n_diff);
		free(diff);
		if (!rc)
			rc = plc_preset_set_to_pb(result, &pp.presets);
		answer(cl, r->id, rc, PLCTL__RESPONSE__BODY_PUSHED, &pp);
		plc_preset_set_pb_free(pp.presets);
		plc_preset_diff_pb_free(pp.diff, pp.n_diff);
	}
	/* device.c tells the monitor stream about the change. */
	ctl_req_free(r);
}

static void push_written(void *ud, int status, uint32_t previous_revision,
                         const struct pl_preset_set *set)
{
	struct ctl_req *r = ud;
	if (status || !set) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", ctl_errmsg(status ? status : PL_ERR_DEVICE));
		push_finish(r, status ? status : PL_ERR_DEVICE, msg, 0, NULL);
		return;
	}
	push_finish(r, PL_OK, NULL,
	            previous_revision ? previous_revision : r->old_set.revision, set);
}

static void push_got_old(void *ud, int status, uint32_t previous_revision,
                         const struct pl_preset_set *set)
{
	(void)previous_revision;
	struct ctl_req *r = ud;
	char msg[512];
	if (status || !set) {
		snprintf(msg, sizeof msg, "%s", ctl_errmsg(status ? status : PL_ERR_DEVICE));
		push_finish(r, status ? status : PL_ERR_DEVICE, msg, 0, NULL);
		return;
	}
	r->old_set = *set;
	r->have_old = true;
	if (r->expected_revision && set->revision != r->expected_revision) {
		snprintf(msg, sizeof msg,
		         "the presets on %s changed since they were read (revision "
		         "%u now, %u read); read them again and retry",
		         r->serial, set->revision, r->expected_revision);
		push_finish(r, PL_ERR_CONFLICT, msg, 0, NULL);
		return;
	}
	/* A push removes presets only when told to (--replace), then the
	 * clinic's policy, both against what the pen holds now.  r->ctl is
	 * NULL when the server stopped meanwhile: nothing is written then. */
	struct pl_preset_diff *diff = malloc(sizeof *diff);
	int rc = diff ? pl_preset_set_diff(&r->old_set, &r->new_set, diff)
	              : pl_error_set(PL_ERR_MEM, "out of memory");
	if (!rc)
		rc = pl_preset_diff_check_removals(diff, r->replace);
	free(diff);
	if (!rc)
		rc = r->ctl ? access_check_presets(&r->ctl->policy, &r->who,
		                                   &r->old_set, &r->new_set,
		                                   r->confirm)
		            : pl_error_set(PL_ERR_UNPLUGGED, "penlinkd is stopping");
	if (rc) {
		snprintf(msg, sizeof msg, "%s", ctl_errmsg(rc));
		push_finish(r, rc, msg, 0, NULL);
		return;
	}
	r->new_set.revision = set->revision;
	/* Looked up again rather than kept: the pen may be gone by now. */
	char err[256] = "";
	struct pen *pen = r->d && r->d->pens
	                      ? pens_lookup(r->d->pens, r->serial, err, sizeof err)
	                      : NULL;
	if (!pen) {
		push_finish(r, PL_ERR_UNPLUGGED, err[0] ? err : "the pen went away",
		            0, NULL);
		return;
	}
	if (r->dry_run) {
		/* The pen's limits as the library would check them before
		 * writing (known once the pen is past its info). */
		const struct pl_device_info *limits = pen_info(pen);
		rc = limits ? pl_preset_set_validate(limits, &r->new_set) : PL_OK;
		if (rc) {
			snprintf(msg, sizeof msg, "%s", ctl_errmsg(rc));
			push_finish(r, rc, msg, 0, NULL);
		} else {
			push_finish(r, PL_OK, NULL, set->revision, &r->new_set);
		}
		return;
	}
	rc = pen_put_presets(pen, &r->new_set, push_written, r);
	if (rc) {
		snprintf(msg, sizeof msg, "%s", ctl_errmsg(rc));
		push_finish(r, rc, msg, 0, NULL);
	}
}

static void push_presets(struct client *cl, const Plctl__Request *rq)
{
	const Plctl__PushPresets *pp = rq->push_presets;
	if (!room_for_request(cl, rq->id))
		return;
	struct ctl_req *r = ctl_req_new(cl, rq->id, rq->op_case);
	if (!r) {
		client_error(cl, rq->id, PL_ERR_MEM, "out of memory");
		return;
	}
	snprintf(r->serial, sizeof r->serial, "%s", S(pp->serial));
	r->expected_revision = pp->expected_revision;
	char msg[512];
	int rc = push_set(cl, rq, &r->new_set);
	/* More presets or longer names than any pen holds, or a NUL in a
	 * name: to the user the set is invalid, as the library's own check
	 * would say. */
	if (rc == PL_ERR_PROTOCOL)
		rc = PL_ERR_VALIDATION;
	if (rc) {
		/* Not even a set: nothing meaningful to record as "new". */
		snprintf(msg, sizeof msg, "%s", ctl_errmsg(rc));
		ctl_audit(r->d, r->uid, r->user, r->serial, "presets.push", "", "",
		          msg);
		client_error(cl, rq->id, rc, "%s", msg);
		ctl_req_free(r);
		return;
	}
	r->confirm = pp->confirm;
	r->replace = pp->replace;
	r->dry_run = pp->dry_run;
	if (caller_copy(&r->who, &cl->who)) {
		push_finish(r, PL_ERR_MEM, "out of memory", 0, NULL);
		return;
	}
	char err[256] = "";
	struct pen *pen = dmn(cl)->pens ? pens_lookup(dmn(cl)->pens, r->serial,
	                                              err, sizeof err)
	                                : NULL;
	if (!pen) {
		push_finish(r, PL_ERR_NOT_FOUND, err[0] ? err : "no pen is attached",
		            0, NULL);
		return;
	}
	snprintf(r->serial, sizeof r->serial, "%s", S(pen_serial(pen)));
	/* The current set first: the revision to write against, and the old
	 * set for the audit trail. */
	rc = pen_get_presets(pen, push_got_old, r);
	if (rc) {
		snprintf(msg, sizeof msg, "%s", ctl_errmsg(rc));
		push_finish(r, rc, msg, 0, NULL);
	}
}

/* ------------------------------------------------------------------ attach, detach */

static void attach(struct client *cl, const Plctl__Request *rq)
{
	const char *path = S(rq->attach->path);
	char msg[512];
	int rc = PL_OK;
	struct stat st;
	if (path[0] != '/' || strlen(path) >= 256) {
		rc = PL_ERR_ARG;
		snprintf(msg, sizeof msg,
		         "attach needs the absolute path of a port, e.g. /dev/pts/3");
	} else if (stat(path, &st) < 0) {
		rc = PL_ERR_NO_PORT;
		snprintf(msg, sizeof msg, "no port %s: %s", path, strerror(errno));
	} else if (!dmn(cl)->pens) {
		rc = PL_ERR_IO;
		snprintf(msg, sizeof msg, "pens are not served");
	} else {
		/* The daemon may run as root: the library opens serial ttys
		 * only, and refuses anything else before reading from it. */
		rc = pens_attach(dmn(cl)->pens, path, false, NULL);
		if (rc)
			snprintf(msg, sizeof msg, "%s", ctl_errmsg(rc));
	}
	/* A path that exists but is no port was refused for what it is; an
	 * attach that failed otherwise (busy, gone) is audited as itself. */
	bool refused = rc == PL_ERR_NO_PORT && stat(path, &st) == 0;
	ctl_audit(dmn(cl), (uint32_t)cl->who.uid, cl->who.user, "",
	          refused ? "refused:attach" : "attach", "", path,
	          rc ? msg : "ok");
	/* The path and the message naming it are the client's text. */
	char *shown = pl_text_clean_dup(PL_TEXT_LOG, rc ? msg : path);
	if (rc) {
		if (refused)
			log_notice("refused attach for pid %d (%s): %s", (int)cl->who.pid,
			           cl->who.user, shown ? shown : "(out of memory)");
		free(shown);
		client_error(cl, rq->id, rc, "%s", msg);
		return;
	}
	log_notice("%s attached %s", cl->who.user, shown ? shown : "a port");
	free(shown);
	send_ack(cl, rq->id, true);
}

static void detach(struct client *cl, const Plctl__Request *rq)
{
	const char *path = S(rq->detach->path), *serial = S(rq->detach->serial);
	char msg[512], why[128];
	int rc;
	if (!path[0] && !serial[0]) {
		rc = PL_ERR_ARG;
		snprintf(msg, sizeof msg, "detach needs a port path or a serial");
	} else if (!dmn(cl)->pens) {
		rc = PL_ERR_NOT_FOUND;
		snprintf(msg, sizeof msg, "no pen is attached");
	} else {
		snprintf(why, sizeof why, "detached by %s", cl->who.user);
		rc = pens_detach(dmn(cl)->pens, path[0] ? path : NULL,
		                 serial[0] ? serial : NULL, why);
		if (rc)
			snprintf(msg, sizeof msg, "%s",
			         rc == PL_ERR_NOT_FOUND && !pl_error_message()[0]
			             ? "no such pen is attached"
			             : ctl_errmsg(rc));
	}
	ctl_audit(dmn(cl), (uint32_t)cl->who.uid, cl->who.user, serial, "detach",
	          "", path, rc ? msg : "ok");
	if (rc) {
		client_error(cl, rq->id, rc, "%s", msg);
		return;
	}
	send_ack(cl, rq->id, true);
}

/* ------------------------------------------------------------------ trace, monitor */

static void trace(struct client *cl, const Plctl__Request *rq)
{
	if (cl->n_traces >= CTL_MAX_TRACES) {
		client_error(cl, rq->id, PL_ERR_BUSY,
		             "already tracing %u times on this connection",
		             cl->n_traces);
		return;
	}
	struct pen *pen = lookup(cl, rq->id, rq->trace->serial);
	if (!pen)
		return;
	if (!S(pen_serial(pen))[0]) {
		/* Lines and the detach are matched by serial: wait for it. */
		client_error(cl, rq->id, PL_ERR_BUSY,
		             "the pen has not answered yet; try again in a moment");
		return;
	}
	struct trace_sub *t = calloc(1, sizeof *t);
	if (!t) {
		client_error(cl, rq->id, PL_ERR_MEM, "out of memory");
		return;
	}
	t->id = rq->id;
	t->level = rq->trace->level > 3 ? 3 : rq->trace->level;
	snprintf(t->serial, sizeof t->serial, "%s", S(pen_serial(pen)));
	int rc = pen_trace_hold(pen, t->level);
	if (rc) {
		client_error(cl, rq->id, rc, "%s", ctl_errmsg(rc));
		free(t);
		return;
	}
	t->next = cl->traces;
	cl->traces = t;
	cl->n_traces++;
	send_ack(cl, rq->id, false);
}

/* ------------------------------------------------------------------ archive queries */

static bool archive_open_or_fail(struct client *cl, uint32_t id)
{
	if (dmn(cl)->archive)
		return true;
	client_error(cl, id, PL_ERR_IO, "the archive is not open");
	return false;
}

static struct stream *stream_new(struct client *cl, uint32_t id,
                                 enum stream_kind kind)
{
	if (cl->n_streams >= CTL_MAX_STREAMS) {
		client_error(cl, id, PL_ERR_BUSY,
		             "%u transfers are already running on this connection",
		             cl->n_streams);
		return NULL;
	}
	struct stream *s = calloc(1, sizeof *s);
	if (!s) {
		client_error(cl, id, PL_ERR_MEM, "out of memory");
		return NULL;
	}
	s->id = id;
	s->kind = kind;
	return s;
}

static void stream_start(struct client *cl, struct stream *s)
{
	struct stream **t = &cl->streams;
	while (*t)
		t = &(*t)->next;
	*t = s;
	cl->n_streams++;
	client_pump(cl);
}

/* Who reads records out of the archive, for the audit trail. */
static void stream_audited(struct stream *s, struct client *cl,
                           const char *action)
{
	s->d = dmn(cl);
	s->uid = (uint32_t)cl->who.uid;
	snprintf(s->user, sizeof s->user, "%s", cl->who.user);
	snprintf(s->action, sizeof s->action, "%s", action);
}

/* The audit row of a show, pull or export, once it ends with result. */
static void stream_audit(struct stream *s, const char *result)
{
	if (!s->action[0] || s->audited)
		return;
	s->audited = true;
	json_object *o = s->what ? json_tokener_parse(s->what) : NULL;
	if (!o)
		o = json_object_new_object();
	char uuid[37];
	if (s->kind == STREAM_SHOW) {
		pl_uuid_format(s->key.uuid, uuid);
		json_object_object_add(o, "uuid", json_object_new_string(uuid));
		json_object_object_add(o, "size", json_object_new_uint64(s->size));
	} else {
		json_object_object_add(o, "sessions", json_object_new_uint64(s->docs));
	}
	json_object_object_add(o, "bytes", json_object_new_uint64(s->sent));
	const char *nv = o ? json_object_to_json_string_ext(
	                         o, JSON_C_TO_STRING_PLAIN |
	                                JSON_C_TO_STRING_NOSLASHESCAPE)
	                   : NULL;
	ctl_audit(s->d, s->uid, s->user,
	          s->kind == STREAM_SHOW ? s->key.serial : s->serial, s->action,
	          "", nv ? nv : "", result);
	json_object_put(o);
}

void ctl_ops_stream_free(struct stream *s)
{
	if (!s)
		return;
	if (s->action[0] && !s->audited) {
		char why[96];
		snprintf(why, sizeof why,
		         "interrupted: the client left after %llu bytes",
		         (unsigned long long)s->sent);
		stream_audit(s, why);
	}
	free(s->what);
	if (s->cur)
		archive_export_end(s->cur);
	free(s->piece);
	free(s);
}

static bool step_show(struct client *cl, struct stream *s)
{
	struct archive *a = dmn(cl)->archive;
	uint8_t *buf = malloc(CTL_CHUNK);
	if (!buf) {
		client_error(cl, s->id, PL_ERR_MEM, "out of memory");
		return true;
	}
	size_t got = 0;
	uint64_t size = 0;
	int rc = a ? archive_read_record(a, &s->key, s->offset, buf, CTL_CHUNK,
	                                 &got, &size)
	           : PL_ERR_IO;
	char u[128], msg[512];
	pl_session_key_format(&s->key, PL_TEXT_LOG, u, sizeof u);
	s->size = size;
	if (rc) {
		if (rc == PL_ERR_NOT_FOUND)
			snprintf(msg, sizeof msg, "no archived session %s", u);
		else
			snprintf(msg, sizeof msg, "cannot read session %s: %s", u,
			         a ? archive_errmsg(a) : "the archive is not open");
		stream_audit(s, msg);
		client_error(cl, s->id, rc, "%s", msg);
		free(buf);
		return true;
	}
	if (got == 0 && s->offset < size) {
		snprintf(msg, sizeof msg, "session %s ends at %llu bytes of %llu", u,
		         (unsigned long long)s->offset, (unsigned long long)size);
		stream_audit(s, msg);
		client_error(cl, s->id, PL_ERR_IO, "%s", msg);
		free(buf);
		return true;
	}
	Plctl__RecordChunk rc_ = PLCTL__RECORD_CHUNK__INIT;
	rc_.offset = s->offset;
	rc_.data.data = buf;
	rc_.data.len = got;
	rc_.size = size;
	bool last = s->offset + got >= size;
	client_send(cl, s->id, last, PLCTL__RESPONSE__BODY_RECORD, &rc_);
	free(buf);
	s->offset += got;
	s->sent += got;
	if (last)
		stream_audit(s, "ok");
	return last;
}

/*
 * Per session: one session's whole document in one ExportChunk, with whose
 * it is, so that a client writes it to a file as it comes.  One that does
 * not fit a response ends the export with an error rather than arriving
 * cut.  True when the stream has finished.
 */
static bool send_session_doc(struct client *cl, struct stream *s,
                             const struct archived_session *who, char *data,
                             size_t len)
{
	struct pl_session_key key;
	struct pl_session_info info;
	session_of(who, &key, &info);
	if (len > CTL_DOC_MAX) {
		char name[128];
		pl_session_key_format(&key, PL_TEXT_LOG, name, sizeof name);
		free(data);
		client_error(cl, s->id, PL_ERR_UNSUPPORTED,
		             "session %s exports to %zu bytes, more than one "
		             "response holds (%u); export it without --dir",
		             name, len, CTL_DOC_MAX);
		return true;
	}
	Plctl__ArchivedSession as;
	plc_session_to_pb(&key, &info, who->summary.archived_ms, &as);
	Plctl__ExportChunk ec = PLCTL__EXPORT_CHUNK__INIT;
	ec.data.data = (uint8_t *)data;
	ec.data.len = len;
	ec.session = &as;
	client_send(cl, s->id, false, PLCTL__RESPONSE__BODY_EXPORT, &ec);
	free(data);
	return false;
}

static bool step_export(struct client *cl, struct stream *s)
{
	if (!s->piece) {
		char *data = NULL;
		size_t len = 0;
		struct archived_session who;
		who.serial[0] = '\0';
		int rc = archive_export_next(s->cur, &data, &len, &who);
		if (rc) {
			char msg[512];
			free(data);
			snprintf(msg, sizeof msg, "export failed: %s",
			         archive_errmsg(dmn(cl)->archive));
			stream_audit(s, msg);
			client_error(cl, s->id, rc, "%s", msg);
			return true;
		}
		if (!data || !len) {
			free(data);
			Plctl__ExportChunk ec = PLCTL__EXPORT_CHUNK__INIT;
			client_send(cl, s->id, true, PLCTL__RESPONSE__BODY_EXPORT, &ec);
			stream_audit(s, "ok");
			return true;
		}
		if (who.serial[0])
			s->docs++;
		s->sent += len;
		if (s->per_session)
			return send_session_doc(cl, s, &who, data, len);
		s->piece = data;
		s->piece_len = len;
		s->piece_off = 0;
	}
	/* One session's text can be large: sent in slices, one per step. */
	size_t n = s->piece_len - s->piece_off;
	if (n > CTL_CHUNK)
		n = CTL_CHUNK;
	Plctl__ExportChunk ec = PLCTL__EXPORT_CHUNK__INIT;
	ec.data.data = (uint8_t *)s->piece + s->piece_off;
	ec.data.len = n;
	client_send(cl, s->id, false, PLCTL__RESPONSE__BODY_EXPORT, &ec);
	s->piece_off += n;
	if (s->piece_off >= s->piece_len) {
		free(s->piece);
		s->piece = NULL;
	}
	return false;
}

struct list_page {
	struct archived_session *v;
	size_t n;
	uint64_t skip, seen;
};

static int list_cb(void *ud, const struct archived_session *s)
{
	struct list_page *p = ud;
	if (p->seen++ < p->skip)
		return 0;
	p->v[p->n++] = *s;
	return p->n > CTL_LIST_PAGE;  /* one more than a page: is there more? */
}

/*
 * One page of the session list.  The archive lists by (start_ms, id), so the
 * next page starts at the last start time sent and skips the sessions of
 * that very start time already sent: each page costs a page, however long
 * the archive.
 */
static bool step_list(struct client *cl, struct stream *s)
{
	struct archive *a = dmn(cl)->archive;
	struct list_page p = {.skip = s->skip};
	p.v = malloc((CTL_LIST_PAGE + 1) * sizeof *p.v);
	if (!p.v) {
		client_error(cl, s->id, PL_ERR_MEM, "out of memory");
		return true;
	}
	int rc = a ? archive_list_client(a, s->serial, s->since_ms, s->client,
	                                 list_cb, &p)
	           : PL_ERR_IO;
	if (rc < 0 && p.n <= CTL_LIST_PAGE) {
		client_error(cl, s->id, rc, "cannot list sessions: %s",
		             a ? archive_errmsg(a) : "the archive is not open");
		free(p.v);
		return true;
	}
	bool last = p.n <= CTL_LIST_PAGE;
	size_t n = last ? p.n : CTL_LIST_PAGE;
	/* The messages point into these, which outlive the send. */
	struct listed {
		struct pl_session_key key;
		struct pl_session_info info;
		Plctl__ArchivedSession pb;
	} *w = calloc(n ? n : 1, sizeof *w);
	Plctl__ArchivedSession **ptrs = calloc(n ? n : 1, sizeof *ptrs);
	if (!w || !ptrs) {
		free(w);
		free(ptrs);
		free(p.v);
		client_error(cl, s->id, PL_ERR_MEM, "out of memory");
		return true;
	}
	for (size_t i = 0; i < n; i++) {
		session_of(&p.v[i], &w[i].key, &w[i].info);
		plc_session_to_pb(&w[i].key, &w[i].info, p.v[i].summary.archived_ms,
		                  &w[i].pb);
		ptrs[i] = &w[i].pb;
	}
	Plctl__SessionList sl = PLCTL__SESSION_LIST__INIT;
	sl.n_sessions = n;
	sl.sessions = ptrs;
	client_send(cl, s->id, last, PLCTL__RESPONSE__BODY_SESSIONS, &sl);
	free(w);
	free(ptrs);
	if (n) {
		int64_t at = p.v[n - 1].summary.start_ms;
		uint64_t same = 0;
		for (size_t i = n; i > 0 && p.v[i - 1].summary.start_ms == at; i--)
			same++;
		if (at == s->since_ms) {
			s->skip += same;
		} else {
			s->since_ms = at;
			s->skip = same;
		}
	}
	free(p.v);
	return last;
}

bool ctl_ops_stream_step(struct client *cl, struct stream *s)
{
	switch (s->kind) {
	case STREAM_SHOW: return step_show(cl, s);
	case STREAM_EXPORT: return step_export(cl, s);
	case STREAM_LIST: return step_list(cl, s);
	}
	return true;
}

/* Audit: newest first, in pieces that each stay small; at most
 * CTL_AUDIT_BUDGET bytes in all. */
struct audit_acc {
	struct client *cl;
	uint32_t id;
	Plctl__AuditEntry **v;
	size_t n, cap;
	size_t piece_bytes, total_bytes;
	bool failed;
};

static void audit_flush(struct audit_acc *a, bool last)
{
	Plctl__AuditList al = PLCTL__AUDIT_LIST__INIT;
	al.n_entries = a->n;
	al.entries = a->v;
	if (!a->failed &&
	    !client_send(a->cl, a->id, last, PLCTL__RESPONSE__BODY_AUDIT, &al))
		a->failed = true;
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
	a->piece_bytes = 0;
}

/*
 * One allocation holding a protocol message of type desc, initialised,
 * followed by copies of the n strings in src, stored into the message's
 * string fields at the byte offsets in field: a reply entry is freed with
 * one free() whatever the row held.  *bytes says what it costs.  NULL when
 * out of memory.  n is at most PACK_MAX.
 */
#define PACK_MAX 8
static void *pack_strings(const ProtobufCMessageDescriptor *desc, size_t n,
                          const char *const src[], const size_t field[],
                          size_t *bytes)
{
	size_t len[PACK_MAX], total = desc->sizeof_message;
	if (n > PACK_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		len[i] = strlen(src[i]);
		total += len[i] + 1;
	}
	char *block = malloc(total);
	if (!block)
		return NULL;
	protobuf_c_message_init(desc, block);
	char *p = block + desc->sizeof_message;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, src[i], len[i] + 1);
		memcpy(block + field[i], &p, sizeof p);
		p += len[i] + 1;
	}
	*bytes = total;
	return block;
}

static Plctl__AuditEntry *audit_entry_copy(const struct audit_entry *e,
                                           size_t *bytes)
{
	static const size_t field[] = {
		offsetof(Plctl__AuditEntry, user),
		offsetof(Plctl__AuditEntry, pen),
		offsetof(Plctl__AuditEntry, action),
		offsetof(Plctl__AuditEntry, old_value),
		offsetof(Plctl__AuditEntry, new_value),
		offsetof(Plctl__AuditEntry, result),
		offsetof(Plctl__AuditEntry, hash),
	};
	const char *src[] = {S(e->user), S(e->pen), S(e->action),
	                     S(e->old_value), S(e->new_value), S(e->result),
	                     S(e->hash)};
	Plctl__AuditEntry *w = pack_strings(&plctl__audit_entry__descriptor,
	                                    sizeof field / sizeof field[0], src,
	                                    field, bytes);
	if (!w)
		return NULL;
	w->utc_ms = e->utc_ms;
	w->uid = e->uid;
	w->id = e->id;
	return w;
}

static int audit_cb(void *ud, const struct audit_entry *e)
{
	struct audit_acc *a = ud;
	if (a->failed)
		return 1;
	size_t bytes = 0;
	Plctl__AuditEntry *w = audit_entry_copy(e, &bytes);
	if (!w) {
		a->failed = true;
		return 1;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		Plctl__AuditEntry **v = realloc(a->v, cap * sizeof *v);
		if (!v) {
			free(w);
			a->failed = true;
			return 1;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = w;
	a->piece_bytes += bytes;
	a->total_bytes += bytes;
	if (a->piece_bytes >= CTL_CHUNK)
		audit_flush(a, false);
	return a->total_bytes >= CTL_AUDIT_BUDGET || a->failed;
}

static void audit(struct client *cl, const Plctl__Request *rq)
{
	if (!archive_open_or_fail(cl, rq->id))
		return;
	unsigned limit = rq->audit->limit ? rq->audit->limit : 100;
	if (limit > CTL_AUDIT_MAX_LIMIT)
		limit = CTL_AUDIT_MAX_LIMIT;
	struct audit_acc a = {.cl = cl, .id = rq->id};
	int rc = archive_audit_list(dmn(cl)->archive, rq->audit->since_ms, limit,
	                            audit_cb, &a);
	if (rc < 0 && !a.failed && a.total_bytes < CTL_AUDIT_BUDGET) {
		for (size_t i = 0; i < a.n; i++)
			free(a.v[i]);
		a.n = 0;
		client_error(cl, rq->id, rc, "cannot read the audit trail: %s",
		             archive_errmsg(dmn(cl)->archive));
	} else if (a.failed && !cl->dead) {
		for (size_t i = 0; i < a.n; i++)
			free(a.v[i]);
		a.n = 0;
		client_error(cl, rq->id, PL_ERR_MEM, "out of memory");
	} else {
		audit_flush(&a, true);
	}
	free(a.v);
}

/* Recomputes the audit trail's hash chain (AuditVerified); the first bad
 * row is an answer, not an error. */
static void audit_verify(struct client *cl, const Plctl__Request *rq)
{
	if (!archive_open_or_fail(cl, rq->id))
		return;
	const char *head = S(rq->audit_verify->head);
	if (head[0] && strlen(head) != 64) {
		client_error(cl, rq->id, PL_ERR_ARG,
		             "a row hash is 64 hex digits (audit --json shows them)");
		return;
	}
	struct plc_audit_chain ch;
	int rc = archive_audit_verify(dmn(cl)->archive, head, &ch);
	if (rc) {
		client_error(cl, rq->id, rc, "cannot verify the audit trail: %s",
		             archive_errmsg(dmn(cl)->archive));
		return;
	}
	Plctl__AuditVerified v = PLCTL__AUDIT_VERIFIED__INIT;
	v.rows = ch.rows;
	v.intact = !ch.broken;
	v.bad_id = ch.bad_id;
	v.reason = ch.reason;
	v.head = ch.prev;
	v.head_found = ch.anchor_found;
	client_send(cl, rq->id, true, PLCTL__RESPONSE__BODY_AUDIT_VERIFIED, &v);
}

/* ------------------------------------------------------------------ annotations */

/* The session (serial, uuid) a request names in the open archive, or
 * false after answering the error. */
static bool request_key(struct client *cl, uint32_t id, const char *serial,
                        const char *uuid, struct pl_session_key *key)
{
	char text[256];
	if (!archive_open_or_fail(cl, id))
		return false;
	if (!S(serial)[0]) {
		client_error(cl, id, PL_ERR_ARG, "a session is named by its pen's "
		             "serial and its UUID");
		return false;
	}
	snprintf(text, sizeof text, "%s/%s", serial, S(uuid));
	if (pl_session_key_parse(text, key) != PL_OK) {
		client_error(cl, id, PL_ERR_ARG, "%s", pl_error_message());
		return false;
	}
	return true;
}

/* Annotations as the protocol carries them, each one allocation with its
 * strings (pack_strings). */
struct annot_list {
	Plctl__Annotation **v;
	size_t n, cap;
	bool oom;
};

static int annot_add(void *ud, const struct annotation *an)
{
	struct annot_list *l = ud;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		Plctl__Annotation **v = realloc(l->v, cap * sizeof *v);
		if (!v) {
			l->oom = true;
			return PL_ERR_MEM;
		}
		l->v = v;
		l->cap = cap;
	}
	static const size_t field[] = {
		offsetof(Plctl__Annotation, user),
		offsetof(Plctl__Annotation, client_ref),
		offsetof(Plctl__Annotation, operator_),
		offsetof(Plctl__Annotation, note),
	};
	const char *src[] = {S(an->user), S(an->client_ref),
	                     S(an->operator_name), S(an->note)};
	size_t bytes;
	Plctl__Annotation *w = pack_strings(&plctl__annotation__descriptor,
	                                    sizeof field / sizeof field[0], src,
	                                    field, &bytes);
	if (!w) {
		l->oom = true;
		return PL_ERR_MEM;
	}
	w->id = an->id;
	w->utc_ms = an->utc_ms;
	w->uid = an->uid;
	l->v[l->n++] = w;
	return 0;
}

static void annot_free(struct annot_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Answers with the list, or with rc and why when gathering it failed (out
 * of memory when the list ran out); frees the list either way. */
static void annot_reply(struct client *cl, uint32_t id, struct annot_list *l,
                        int rc, const char *why)
{
	if (rc || l->oom) {
		client_error(cl, id, rc ? rc : PL_ERR_MEM, "%s",
		             l->oom ? "out of memory" : why);
		annot_free(l);
		return;
	}
	Plctl__AnnotationList al = PLCTL__ANNOTATION_LIST__INIT;
	al.n_annotations = l->n;
	al.annotations = l->v;
	client_send(cl, id, true, PLCTL__RESPONSE__BODY_ANNOTATIONS, &al);
	annot_free(l);
}

/* Adds an annotation and audits it, applied or not. */
static void annotate(struct client *cl, const Plctl__Request *rq)
{
	const Plctl__Annotate *an = rq->annotate;
	struct pl_session_key key;
	if (!request_key(cl, rq->id, an->serial, an->uuid, &key))
		return;
	struct annotation a = {
	    .utc_ms = pl_time_utc_ms(),
	    .uid = (uint32_t)cl->who.uid,
	    .user = cl->who.user,
	    .client_ref = S(an->client_ref),
	    .operator_name = S(an->operator_),
	    .note = S(an->note),
	};
	int64_t aid = 0;
	int rc = archive_annotate(dmn(cl)->archive, &key, &a, &aid);
	char msg[512] = "ok";
	if (rc)
		snprintf(msg, sizeof msg, "%s", archive_errmsg(dmn(cl)->archive));
	/* What was asked, applied or not; the text is cut to its limits so
	 * that a refused flood cannot fill the trail. */
	char uuid[37];
	pl_uuid_format(key.uuid, uuid);
	json_object *o = json_object_new_object();
	char *nv = NULL;
	if (o) {
		json_object_object_add(o, "uuid", json_object_new_string(uuid));
		json_object_object_add(
		    o, "client_ref",
		    json_object_new_string_len(a.client_ref,
		                               (int)strnlen(a.client_ref,
		                                            PLC_ANNOT_CLIENT_MAX)));
		json_object_object_add(
		    o, "operator",
		    json_object_new_string_len(a.operator_name,
		                               (int)strnlen(a.operator_name,
		                                            PLC_ANNOT_OPERATOR_MAX)));
		json_object_object_add(
		    o, "note",
		    json_object_new_string_len(a.note, (int)strnlen(a.note,
		                                                    PLC_ANNOT_NOTE_MAX)));
		if (aid)
			json_object_object_add(o, "annotation", json_object_new_int64(aid));
		const char *t = json_object_to_json_string_ext(
		    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		nv = t ? strdup(t) : NULL;
		json_object_put(o);
	}
	ctl_audit(dmn(cl), a.uid, a.user, key.serial, "sessions.annotate", "",
	          S(nv), msg);
	free(nv);
	if (rc) {
		client_error(cl, rq->id, rc, "%s", msg);
		return;
	}
	a.id = aid;
	struct annot_list l = {0};
	annot_add(&l, &a); /* out of memory marks l */
	annot_reply(cl, rq->id, &l, PL_OK, NULL);
}

static void list_annotations(struct client *cl, const Plctl__Request *rq)
{
	const Plctl__ListAnnotations *la = rq->list_annotations;
	struct pl_session_key key;
	if (!request_key(cl, rq->id, la->serial, la->uuid, &key))
		return;
	struct annot_list l = {0};
	int rc = archive_annotations(dmn(cl)->archive, &key, annot_add, &l);
	annot_reply(cl, rq->id, &l, rc, archive_errmsg(dmn(cl)->archive));
}

/* ------------------------------------------------------------------ operations */

static void hello(struct client *cl, const Plctl__Request *rq)
{
	const struct access_policy *p = &cl->ctl->policy;
	Plctl__HelloReply h = PLCTL__HELLO_REPLY__INIT;
	h.version = PLC_VERSION;
	h.daemon = "penlinkd " PL_VERSION_STRING;
	h.uid = (uint32_t)cl->who.uid;
	h.may_read_logs = access_has_right(p, &cl->who, ACCESS_READ_LOGS);
	h.may_change_presets = access_has_right(p, &cl->who,
	                                        ACCESS_CHANGE_PRESETS);
	client_send(cl, rq->id, true, PLCTL__RESPONSE__BODY_HELLO_REPLY, &h);
}

static void list_pens(struct client *cl, const Plctl__Request *rq)
{
	struct pens *pens = dmn(cl)->pens;
	Plctl__PenList list = PLCTL__PEN_LIST__INIT;
	if (pens) {
		int rc = pens_list(pens, &list);
		if (rc) {
			client_error(cl, rq->id, rc, "%s", ctl_errmsg(rc));
			return;
		}
	}
	client_send(cl, rq->id, true, PLCTL__RESPONSE__BODY_PENS, &list);
	if (pens)
		pens_list_free(&list);
}

static void list_sessions(struct client *cl, const Plctl__Request *rq)
{
	struct stream *s;
	if (!archive_open_or_fail(cl, rq->id) ||
	    !(s = stream_new(cl, rq->id, STREAM_LIST)))
		return;
	snprintf(s->serial, sizeof s->serial, "%s", S(rq->list_sessions->serial));
	s->since_ms = rq->list_sessions->since_ms;
	if (strlen(S(rq->list_sessions->client_ref)) > PLC_ANNOT_CLIENT_MAX) {
		client_error(cl, rq->id, PL_ERR_ARG,
		             "a client reference has at most %u bytes",
		             PLC_ANNOT_CLIENT_MAX);
		ctl_ops_stream_free(s);
		return;
	}
	snprintf(s->client, sizeof s->client, "%s",
	         S(rq->list_sessions->client_ref));
	stream_start(cl, s);
}

static void show_session(struct client *cl, const Plctl__Request *rq)
{
	const Plctl__ShowSession *ss = rq->show_session;
	struct pl_session_key key;
	char text[256];
	if (!S(ss->serial)[0]) {
		client_error(cl, rq->id, PL_ERR_ARG,
		             "ShowSession needs the pen's serial");
		return;
	}
	/* The key's text form, parsed by the library's one parser. */
	snprintf(text, sizeof text, "%s/%s", ss->serial, S(ss->uuid));
	if (pl_session_key_parse(text, &key) != PL_OK) {
		client_error(cl, rq->id, PL_ERR_ARG, "%s", pl_error_message());
		return;
	}
	struct stream *s;
	if (!archive_open_or_fail(cl, rq->id) ||
	    !(s = stream_new(cl, rq->id, STREAM_SHOW)))
		return;
	s->key = key;
	stream_audited(s, cl,
	               strcmp(S(ss->purpose), "sessions.pull") == 0
	                   ? "sessions.pull"
	                   : "sessions.show");
	stream_start(cl, s);
}

static void export_sessions(struct client *cl, const Plctl__Request *rq)
{
	const Plctl__ExportSessions *e = rq->export_sessions;
	if (e->format != PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV &&
	    e->format != PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON) {
		client_error(cl, rq->id, PL_ERR_UNSUPPORTED,
		             "unknown export format %d; csv and json are supported",
		             (int)e->format);
		return;
	}
	struct stream *s;
	if (!archive_open_or_fail(cl, rq->id) ||
	    !(s = stream_new(cl, rq->id, STREAM_EXPORT)))
		return;
	s->per_session = e->per_session;
	snprintf(s->serial, sizeof s->serial, "%s", S(e->serial));
	stream_audited(s, cl, "sessions.export");
	json_object *w = json_object_new_object();
	if (w) {
		json_object_object_add(
		    w, "format",
		    json_object_new_string(
		        e->format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON ? "json"
		                                                              : "csv"));
		json_object_object_add(w, "serial", json_object_new_string(s->serial));
		json_object_object_add(w, "since_ms", json_object_new_int64(e->since_ms));
		json_object_object_add(w, "per_session",
		                       json_object_new_boolean(e->per_session));
		const char *t = json_object_to_json_string_ext(
		    w, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		s->what = t ? strdup(t) : NULL;
		json_object_put(w);
	}
	int rc = archive_export_begin(
	    dmn(cl)->archive,
	    e->format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON ? EXPORT_JSON
	                                                          : EXPORT_CSV,
	    S(e->serial), e->since_ms, e->per_session, &s->cur);
	if (rc) {
		char msg[512];
		snprintf(msg, sizeof msg, "cannot export: %s",
		         archive_errmsg(dmn(cl)->archive));
		stream_audit(s, msg);
		client_error(cl, rq->id, rc, "%s", msg);
		ctl_ops_stream_free(s);
		return;
	}
	stream_start(cl, s);
}

static void monitor(struct client *cl, const Plctl__Request *rq)
{
	cl->monitoring = true;
	cl->monitor_id = rq->id;
	send_ack(cl, rq->id, false);
}

/* The replication to central (central.h): outbox depth, last sync, last
 * error.  Not configured is an answer, not an error. */
static void central_status(struct client *cl, const Plctl__Request *rq)
{
	Plctl__CentralState cs = PLCTL__CENTRAL_STATE__INIT;
	struct central_status st;
	struct central *c = dmn(cl)->central;
	if (c && central_get_status(c, &st) != PL_OK) {
		client_error(cl, rq->id, PL_ERR_IO, "%s", pl_error_message());
		return;
	}
	if (c) {
		cs.configured = true;
		cs.site = st.site;
		cs.target = st.target;
		cs.connected = st.connected;
		cs.pending = st.pending;
		cs.conflicts = st.conflicts;
		cs.refused = st.refused;
		cs.confirmed = st.confirmed;
		cs.audit_pending = st.audit_pending;
		cs.annotations_pending = st.annotations_pending;
		cs.pens_pending = st.pens_pending;
		cs.last_sync_ms = st.last_sync_ms;
		cs.last_error = st.last_error;
		cs.last_error_ms = st.last_error_ms;
		cs.next_attempt_ms = st.next_attempt_ms;
	}
	client_send(cl, rq->id, true, PLCTL__RESPONSE__BODY_CENTRAL, &cs);
}

/* ------------------------------------------------------------------ dispatch */

/* Root and the daemon's user may do everything; see access.h. */
static const struct ctl_op ops[] = {
	[PLCTL__REQUEST__OP_HELLO] = {"hello", ACCESS_ANYONE, NULL, hello, NULL},
	[PLCTL__REQUEST__OP_LIST_PENS] = {"pens.list", ACCESS_ANYONE, NULL,
	                                  list_pens, NULL},
	[PLCTL__REQUEST__OP_GET_INFO] = {"info", ACCESS_ANYONE, NULL, pen_request,
	                                 NULL},
	[PLCTL__REQUEST__OP_GET_PRESETS] = {"presets.get", ACCESS_ANYONE, NULL,
	                                    pen_request, NULL},
	[PLCTL__REQUEST__OP_PUSH_PRESETS] = {"presets.push", ACCESS_CHANGE_PRESETS,
	                                     "change presets", push_presets,
	                                     tried_push},
	[PLCTL__REQUEST__OP_CLOCK_SYNC] = {"clock.sync", ACCESS_CHANGE_PRESETS,
	                                   "set a pen's clock", pen_request, NULL},
	[PLCTL__REQUEST__OP_LIST_SESSIONS] = {"sessions.list", ACCESS_READ_LOGS,
	                                      "read session logs", list_sessions,
	                                      NULL},
	[PLCTL__REQUEST__OP_SHOW_SESSION] = {"sessions.show", ACCESS_READ_LOGS,
	                                     "read session logs", show_session,
	                                     NULL},
	[PLCTL__REQUEST__OP_EXPORT_SESSIONS] = {"sessions.export",
	                                        ACCESS_READ_LOGS,
	                                        "read session logs",
	                                        export_sessions, NULL},
	[PLCTL__REQUEST__OP_ATTACH] = {"attach", ACCESS_CHANGE_PRESETS,
	                               "attach pens", attach, tried_attach},
	[PLCTL__REQUEST__OP_DETACH] = {"detach", ACCESS_CHANGE_PRESETS,
	                               "detach pens", detach, tried_detach},
	[PLCTL__REQUEST__OP_AUDIT] = {"audit", ACCESS_READ_LOGS,
	                              "read the audit trail", audit, NULL},
	[PLCTL__REQUEST__OP_MONITOR] = {"monitor", ACCESS_ANYONE, NULL, monitor,
	                                NULL},
	[PLCTL__REQUEST__OP_TRACE] = {"trace", ACCESS_ANYONE, NULL, trace, NULL},
	[PLCTL__REQUEST__OP_CENTRAL_STATUS] = {"central.status", ACCESS_ANYONE,
	                                       NULL, central_status, NULL},
	/* Annotating is the clinic's records work: those who may read the
	 * session logs. */
	[PLCTL__REQUEST__OP_ANNOTATE] = {"sessions.annotate", ACCESS_READ_LOGS,
	                                 "annotate sessions", annotate, NULL},
	[PLCTL__REQUEST__OP_LIST_ANNOTATIONS] = {"sessions.annotations",
	                                         ACCESS_READ_LOGS,
	                                         "read session logs",
	                                         list_annotations, NULL},
	[PLCTL__REQUEST__OP_AUDIT_VERIFY] = {"audit.verify", ACCESS_READ_LOGS,
	                                     "read the audit trail", audit_verify,
	                                     NULL},
};

const struct ctl_op *ctl_op_of(Plctl__Request__OpCase op)
{
	if ((int)op <= 0 || (size_t)op >= sizeof ops / sizeof ops[0] ||
	    !ops[op].handle)
		return NULL;
	return &ops[op];
}

void ctl_ops_handle(struct client *cl, const Plctl__Request *rq,
                    const uint8_t *wire, size_t len)
{
	const struct ctl_op *op = ctl_op_of(rq->op_case);
	char msg[512];
	cl->rq_wire = wire;
	cl->rq_wire_len = len;
	if (access_check(&cl->ctl->policy, &cl->who, op->right, op->purpose, msg,
	                 sizeof msg) != PL_OK)
		denied(cl, rq, op, msg);
	else
		op->handle(cl, rq);
	cl->rq_wire = NULL;
	cl->rq_wire_len = 0;
}
