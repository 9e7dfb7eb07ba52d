/*
 * Shared by the libFuzzer targets in this folder (see README.md).
 *
 * A broken invariant must be a crash libFuzzer records with its input, so
 * FUZZ_CHECK prints what was wrong and aborts; it is never compiled out.
 */
#ifndef PL_FUZZ_COMMON_H
#define PL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                              \
	do {                                                                   \
		if (!(cond)) {                                                     \
			fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ",       \
			        __FILE__, __LINE__, #cond);                            \
			fprintf(stderr, __VA_ARGS__);                                  \
			fputc('\n', stderr);                                           \
			abort();                                                       \
		}                                                                  \
	} while (0)

/* Reads the fuzz input front to back; past its end every read yields 0, so
 * a harness can take what it needs without checking lengths each time. */
struct fuzz_in {
	const uint8_t *p;
	size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t lo = fuzz_u8(in);
	return (uint16_t)(lo | (uint16_t)fuzz_u8(in) << 8);
}

/* Up to n bytes; *len gets how many there were. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t n,
                                        size_t *len)
{
	const uint8_t *p = in->p;
	if (n > in->left)
		n = in->left;
	in->p += n;
	in->left -= n;
	*len = n;
	return p;
}

/* xorshift32: a split pattern derived from the input, the same on every run. */
static inline uint32_t fuzz_rand(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

/* strnlen without relying on _GNU_SOURCE in every harness. */
static inline size_t fuzz_strnlen(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n])
		n++;
	return n;
}

/* Text meant for a terminal must not carry control bytes. */
static inline int fuzz_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

#endif
