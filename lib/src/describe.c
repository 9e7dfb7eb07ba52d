/*
 * One-line text of an Envelope for --dump-frames.
 *
 * Walks protobuf-c's descriptors instead of switching on the body type, so
 * a message added to proto/penlink.proto shows up here without anyone
 * touching this file.  Fields at their proto3 default are left out, as in
 * protobuf's own text format, to keep lines short.
 */
#include "describe.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "penlink.pb-c.h"

#define MAX_ELEMENTS 8  /* of a repeated field */
#define MAX_BYTES 8     /* of a bytes field, in hex */
#define MAX_STRING 64   /* bytes of a string field */
#define MAX_DEPTH 16    /* our schema is not recursive; a guard all the same */

struct out {
	char *buf;
	size_t cap;
	size_t len;
	int full; /* something did not fit */
};

static void put(struct out *o, const char *s, size_t n)
{
	size_t room;

	if (o->full)
		return;
	room = o->cap - 1 - o->len; /* keep the terminator's place */
	if (n > room) {
		n = room;
		o->full = 1;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void outf(struct out *o, const char *fmt, ...) PL_PRINTF(2, 3);

static void outf(struct out *o, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_hex(struct out *o, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		char h[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
		put(o, h, 2);
	}
}

static void put_bytes(struct out *o, const ProtobufCBinaryData *b)
{
	if (b->len == 0) {
		puts_(o, "<0 bytes>");
		return;
	}
	outf(o, "<%zu bytes ", b->len);
	put_hex(o, b->data, b->len < MAX_BYTES ? b->len : MAX_BYTES);
	puts_(o, b->len > MAX_BYTES ? "...>" : ">");
}

/* Quoted, with control characters escaped: strings come off the wire and
 * end up on a developer's terminal. */
static void put_string(struct out *o, const char *s)
{
	size_t n = strlen(s);
	size_t shown = n < MAX_STRING ? n : MAX_STRING;

	put(o, "\"", 1);
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			put(o, e, 2);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c < 0x20 || c == 0x7f) {
			outf(o, "\\x%02x", c);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, "\"", 1);
	if (shown < n)
		outf(o, "...(%zu bytes)", n);
}

/*
 * Enum values are named in the proto style PREFIX_VALUE, where PREFIX is
 * the enum's name in upper snake case (Area -> AREA_FOREHEAD).  Shows
 * "forehead"; the number if the value is not one we know.
 */
static void put_enum(struct out *o, const ProtobufCEnumDescriptor *ed, int v)
{
	const ProtobufCEnumValue *ev =
	    ed ? protobuf_c_enum_descriptor_get_value(ed, v) : NULL;
	char prefix[64];
	size_t plen = 0;
	const char *name;

	if (!ev || !ev->name) {
		outf(o, "%d", v);
		return;
	}
	for (const char *p = ed->short_name; p && *p && plen + 3 < sizeof prefix; p++) {
		if (isupper((unsigned char)*p) && p != ed->short_name)
			prefix[plen++] = '_';
		prefix[plen++] = (char)toupper((unsigned char)*p);
	}
	prefix[plen++] = '_';
	prefix[plen] = '\0';
	name = ev->name;
	if (strncmp(name, prefix, plen) == 0 && name[plen] != '\0')
		name += plen;
	for (; *name; name++) {
		char c = (char)tolower((unsigned char)*name);
		put(o, &c, 1);
	}
}

static void put_message(struct out *o, const ProtobufCMessage *m, int depth);

/* One value of a field; p points at it inside the message (or array). */
static void put_value(struct out *o, const ProtobufCFieldDescriptor *f,
                      const void *p, int depth)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		outf(o, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		outf(o, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		outf(o, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		outf(o, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		outf(o, "%g", (double)*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		outf(o, "%g", *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		puts_(o, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM:
		put_enum(o, f->descriptor, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;
		put_string(o, s ? s : "");
		break;
	}
	case PROTOBUF_C_TYPE_BYTES:
		put_bytes(o, p);
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;
		put(o, "{", 1);
		if (m)
			put_message(o, m, depth + 1);
		put(o, "}", 1);
		break;
	}
	}
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return sizeof(uint32_t);
	}
}

/* Whether a singular field holds something worth showing. */
static int present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;
	const void *p = base + f->offset;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(const void *)(base + f->quantifier_offset) == f->id;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
	    f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
		return *(const protobuf_c_boolean *)(const void *)(base + f->quantifier_offset);
	if (f->label == PROTOBUF_C_LABEL_REQUIRED)
		return 1;
	/* proto3 singular: shown unless it is the default. */
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;
		return s && *s;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len > 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(const ProtobufCMessage *const *)p != NULL;
	default: {
		static const uint8_t zero[8];
		return memcmp(p, zero, elem_size(f)) != 0;
	}
	}
}

static void put_field(struct out *o, const ProtobufCMessage *m,
                      const ProtobufCFieldDescriptor *f, int depth)
{
	const char *base = (const char *)m;

	puts_(o, f->name);
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
		const char *arr = *(const char *const *)(const void *)(base + f->offset);
		size_t shown = n < MAX_ELEMENTS ? n : MAX_ELEMENTS;

		puts_(o, ":[");
		for (size_t i = 0; i < shown && arr; i++) {
			if (i)
				put(o, " ", 1);
			put_value(o, f, arr + i * elem_size(f), depth);
		}
		if (shown < n)
			outf(o, " ...(+%zu)", n - shown);
		put(o, "]", 1);
		return;
	}
	if (f->type != PROTOBUF_C_TYPE_MESSAGE)
		put(o, ":", 1);
	put_value(o, f, base + f->offset, depth);
}

static void put_message(struct out *o, const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	int first = 1;

	if (depth > MAX_DEPTH) {
		puts_(o, "...");
		return;
	}
	for (unsigned i = 0; i < d->n_fields && !o->full; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (*(const size_t *)(const void *)((const char *)m + f->quantifier_offset) == 0)
				continue;
		} else if (!present(m, f)) {
			continue;
		}
		if (!first)
			put(o, " ", 1);
		first = 0;
		put_field(o, m, f, depth);
	}
}

/* Marks a cut-short line with "..." at its end, without splitting a UTF-8
 * sequence. */
static void finish(struct out *o)
{
	size_t at;

	if (!o->full)
		return;
	if (o->cap < 4) {
		at = o->len;
	} else {
		at = o->len > o->cap - 4 ? o->cap - 4 : o->len;
		while (at > 0 && ((unsigned char)o->buf[at] & 0xc0) == 0x80)
			at--;
		memcpy(o->buf + at, "...", 3);
		at += 3;
	}
	o->buf[at] = '\0';
	o->len = at;
}

size_t pl__describe_envelope(const uint8_t *payload, size_t len, char *out,
                             size_t cap)
{
	struct out o = {out, cap, 0, 0};
	Pl__Envelope *env;

	if (!out || cap == 0)
		return 0;
	out[0] = '\0';
	env = payload || len == 0 ? pl__envelope__unpack(NULL, len, payload) : NULL;
	if (!env) {
		ProtobufCBinaryData b = {len, (uint8_t *)(uintptr_t)payload};
		puts_(&o, "not a valid envelope: ");
		if (payload)
			put_bytes(&o, &b);
		else
			outf(&o, "<%zu bytes>", len);
		finish(&o);
		return o.len;
	}
	outf(&o, "id=%" PRIu32, env->id);
	{
		const ProtobufCMessageDescriptor *d = env->base.descriptor;
		int any = 0;
		for (unsigned i = 0; i < d->n_fields && !o.full; i++) {
			const ProtobufCFieldDescriptor *f = &d->fields[i];
			if (strcmp(f->name, "id") == 0)
				continue;
			if (f->label == PROTOBUF_C_LABEL_REPEATED
			        ? *(const size_t *)(const void *)((const char *)env + f->quantifier_offset) == 0
			        : !present(&env->base, f))
				continue;
			put(&o, " ", 1);
			put_field(&o, &env->base, f, 0);
			any = 1;
		}
		if (!any)
			puts_(&o, " (no body)");
	}
	pl__envelope__free_unpacked(env, NULL);
	finish(&o);
	return o.len;
}
