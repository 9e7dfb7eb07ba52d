/*
 * Protobuf written by hand, for tests that must put on the wire what the
 * generated code would never write (a NUL inside a name, a name longer on
 * the wire than by strlen).  Field numbers are the caller's.
 */
#ifndef PL_TEST_PB_WIRE_H
#define PL_TEST_PB_WIRE_H

#include <stddef.h>
#include <stdint.h>

struct wire {
	uint8_t b[8192];
	size_t n;
};

void w_varint(struct wire *w, uint64_t v);
void w_uint(struct wire *w, unsigned field, uint64_t v);
void w_bytes(struct wire *w, unsigned field, const void *p, size_t len);
/* Appends as field `field` of `to` a pl.Preset{id, name (len bytes as they
 * are), 500 um, speed level 2, cheek}. */
void w_preset(struct wire *to, unsigned field, uint32_t id, const char *name,
              size_t len);

#endif
