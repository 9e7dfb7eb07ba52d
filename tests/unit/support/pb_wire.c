/* Protobuf written by hand (pb_wire.h). */
#include "pb_wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

#include "penlink.pb-c.h"

void w_varint(struct wire *w, uint64_t v)
{
	do {
		assert_true(w->n < sizeof w->b);
		w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
}

void w_uint(struct wire *w, unsigned field, uint64_t v)
{
	w_varint(w, (uint64_t)field << 3);
	w_varint(w, v);
}

void w_bytes(struct wire *w, unsigned field, const void *p, size_t len)
{
	w_varint(w, (uint64_t)field << 3 | 2);
	w_varint(w, len);
	assert_true(w->n + len <= sizeof w->b);
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

void w_preset(struct wire *to, unsigned field, uint32_t id, const char *name,
              size_t len)
{
	struct wire p = {0};
	w_uint(&p, 1, id);
	w_bytes(&p, 2, name, len);
	w_uint(&p, 3, 500);
	w_uint(&p, 4, 2);
	w_uint(&p, 5, PL__AREA__AREA_CHEEK);
	w_bytes(to, field, p.b, p.n);
}
