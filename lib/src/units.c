/* Depths and times as text, one rule each, for every output of penlink. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

const char *pl_depth_format_mm(uint32_t um, enum pl_mm_style style,
                               char out[PL_MM_TEXT_MAX])
{
	snprintf(out, PL_MM_TEXT_MAX, "%" PRIu32 ".%03" PRIu32, um / 1000,
	         um % 1000);
	/* Trailing zeros go, down to two decimals for people (they read
	 * depths as 0.25, 1.50) or one for numbers; never a digit that
	 * carries value, so nothing is ever rounded. */
	size_t keep = style == PL_MM_SHORT ? 1 : 2;
	size_t n = strlen(out), dot = (size_t)(strchr(out, '.') - out);
	while (n - dot - 1 > keep && out[n - 1] == '0')
		out[--n] = '\0';
	return out;
}

/* ms as whole seconds and a non-negative millisecond part. */
static void split_ms(int64_t ms, int64_t *secs, int *frac)
{
	*secs = ms / 1000;
	*frac = (int)(ms % 1000);
	if (*frac < 0) {
		*frac += 1000;
		(*secs)--;
	}
}

/* The calendar fields of utc_ms, in UTC or local time; false when the C
 * library cannot represent that instant. */
static bool broken_down(int64_t utc_ms, bool local, struct tm *tm, int *frac)
{
	int64_t secs;
	split_ms(utc_ms, &secs, frac);
	time_t t = (time_t)secs;
	if ((int64_t)t != secs)
		return false;
	return local ? localtime_r(&t, tm) != NULL : gmtime_r(&t, tm) != NULL;
}

const char *pl_time_format_utc(int64_t utc_ms, char out[PL_TIME_TEXT_MAX])
{
	struct tm tm;
	int frac;

	if (!broken_down(utc_ms, false, &tm, &frac) ||
	    strftime(out, PL_TIME_TEXT_MAX, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		out[0] = '\0';
		return out;
	}
	size_t n = strlen(out);
	snprintf(out + n, PL_TIME_TEXT_MAX - n, ".%03dZ", frac);
	return out;
}

const char *pl_time_format_local(int64_t utc_ms, char out[PL_TIME_TEXT_MAX])
{
	struct tm tm;
	int frac;

	char zone[16];
	/* %z is "+0200" (or "+053045" on a few historical zones, or "" where
	 * the C library knows no offset): people read "+02:00". */
	if (!broken_down(utc_ms, true, &tm, &frac) ||
	    strftime(out, PL_TIME_TEXT_MAX, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
		snprintf(out, PL_TIME_TEXT_MAX, "@%" PRId64 " ms", utc_ms);
		return out;
	}
	size_t n = strlen(out), z = strftime(zone, sizeof zone, "%z", &tm);
	if (z == 5)
		snprintf(out + n, PL_TIME_TEXT_MAX - n, " %.3s:%.2s", zone, zone + 3);
	else if (z > 0)
		snprintf(out + n, PL_TIME_TEXT_MAX - n, " %s", zone);
	return out;
}

uint64_t pl_time_span_ms(int64_t start_ms, int64_t end_ms)
{
	return end_ms > start_ms ? (uint64_t)end_ms - (uint64_t)start_ms : 0;
}

int64_t pl_time_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pl_time_utc_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
