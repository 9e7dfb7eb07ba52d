/* The audit trail's hash chain (penlink_audit.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <penlink.h>
#include <sqlite3.h>

#include "penlink_audit.h"

static size_t put_field(char *p, const char *s, size_t n)
{
	int k = sprintf(p, "\n%zu:", n);
	memcpy(p + k, s, n);
	return (size_t)k + n;
}

int plc_audit_hash(const char *prev_hex, const struct plc_audit_row *r,
                   char out[PLC_AUDIT_HASH_TEXT])
{
	char num[3][24];
	snprintf(num[0], sizeof num[0], "%" PRId64, r->id);
	snprintf(num[1], sizeof num[1], "%" PRId64, r->utc_ms);
	snprintf(num[2], sizeof num[2], "%" PRId64, r->uid);
	const char *f[9] = {num[0], num[1], num[2], r->user, r->pen, r->action,
	                    r->old_value, r->new_value, r->result};
	size_t len[9], total = 64 + sizeof "\npenlink-audit-1";
	for (int i = 0; i < 9; i++) {
		if (!f[i])
			f[i] = "";
		len[i] = strlen(f[i]);
		total += len[i] + 24;
	}
	char *buf = malloc(total);
	if (!buf)
		return pl_error_set(PL_ERR_MEM, "out of memory hashing an audit row");
	size_t n = 0;
	const char *prev = prev_hex && strlen(prev_hex) == 64 ? prev_hex
	                                                      : PLC_AUDIT_GENESIS;
	memcpy(buf, prev, 64);
	n = 64;
	memcpy(buf + n, "\npenlink-audit-1", sizeof "\npenlink-audit-1" - 1);
	n += sizeof "\npenlink-audit-1" - 1;
	for (int i = 0; i < 9; i++)
		n += put_field(buf + n, f[i], len[i]);
	uint8_t d[32];
	pl_sha256(buf, n, d);
	free(buf);
	pl_hex_format(d, 32, out);
	return PL_OK;
}

static bool is_hash(const char *h)
{
	if (!h || strlen(h) != 64)
		return false;
	for (const char *p = h; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

void plc_audit_chain_init(struct plc_audit_chain *c, const char *anchor)
{
	memset(c, 0, sizeof *c);
	memcpy(c->prev, PLC_AUDIT_GENESIS, sizeof c->prev);
	if (anchor)
		snprintf(c->anchor, sizeof c->anchor, "%s", anchor);
}

static bool bad(struct plc_audit_chain *c, int64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool bad(struct plc_audit_chain *c, int64_t id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof c->reason, fmt, ap);
	va_end(ap);
	c->broken = true;
	c->bad_id = id;
	return false;
}

bool plc_audit_chain_step(struct plc_audit_chain *c,
                          const struct plc_audit_row *r, const char *prev_hash,
                          const char *hash)
{
	if (c->broken)
		return false;
	int64_t id = r->id;
	if (!is_hash(hash) || !is_hash(prev_hash))
		return bad(c, id, "row %" PRId64 " has no valid hash: it was added "
		           "or changed behind penlinkd's back", id);
	char h[PLC_AUDIT_HASH_TEXT];
	if (plc_audit_hash(prev_hash, r, h) != PL_OK)
		return bad(c, id, "out of memory at row %" PRId64, id);
	if (strcmp(h, hash) != 0)
		return bad(c, id, "row %" PRId64 " was changed: its content does not "
		           "match its hash (altered, or swapped with another row)", id);
	if (strcmp(prev_hash, c->prev) != 0) {
		if (c->prev_id == 0)
			return bad(c, id, "row %" PRId64 " does not start the chain: the "
			           "rows before it were removed", id);
		if (id > c->prev_id + 1) {
			char gone[64];
			if (id == c->prev_id + 2)
				snprintf(gone, sizeof gone, "row %" PRId64 " was",
				         c->prev_id + 1);
			else
				snprintf(gone, sizeof gone, "rows %" PRId64 "-%" PRId64
				         " were", c->prev_id + 1, id - 1);
			return bad(c, id, "row %" PRId64 " does not follow row %" PRId64
			           ": %s removed", id, c->prev_id, gone);
		}
		return bad(c, id, "row %" PRId64 " does not follow row %" PRId64
		           " in the chain: a row was removed, inserted or moved", id,
		           c->prev_id);
	}
	memcpy(c->prev, hash, sizeof c->prev);
	c->prev_id = id;
	c->rows++;
	if (c->anchor[0] && strcmp(c->anchor, hash) == 0)
		c->anchor_found = true;
	return true;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

void plc_audit_row_read(sqlite3_stmt *st, struct plc_audit_row *r)
{
	*r = (struct plc_audit_row){
	    .id = sqlite3_column_int64(st, 0),
	    .utc_ms = sqlite3_column_int64(st, 1),
	    .uid = sqlite3_column_int64(st, 2),
	    .user = col_text(st, 3), .pen = col_text(st, 4),
	    .action = col_text(st, 5), .old_value = col_text(st, 6),
	    .new_value = col_text(st, 7), .result = col_text(st, 8),
	};
}

bool plc_audit_chain_step_row(struct plc_audit_chain *c, sqlite3_stmt *st)
{
	struct plc_audit_row r;
	plc_audit_row_read(st, &r);
	return plc_audit_chain_step(c, &r,
	                            (const char *)sqlite3_column_text(st, 9),
	                            (const char *)sqlite3_column_text(st, 10));
}

bool plc_audit_chain_end(struct plc_audit_chain *c)
{
	if (c->broken)
		return false;
	if (c->anchor[0] && !c->anchor_found) {
		snprintf(c->reason, sizeof c->reason,
		         "the row with hash %.16s... is not in the chain: rows were "
		         "removed from its end, or the chain was rewritten",
		         c->anchor);
		c->broken = true;
		c->bad_id = 0;
		return false;
	}
	return true;
}
