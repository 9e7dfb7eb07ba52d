/* --since DATE and session UUIDs on the command line. */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "penctl.h"

/* n decimal digits at *p, advancing it; -1 if they are not all digits. */
static int digits(const char **p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)(*p)[i];
		if (ch < '0' || ch > '9')
			return -1;
		v = v * 10 + (ch - '0');
	}
	*p += n;
	return v;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : d[m - 1];
}

static int bad_date(struct ctl *c, const char *opt, const char *text,
                    const char *why)
{
	return ctl_usage(c, "%s: '%.60s' is not a date%s%s (use YYYY-MM-DD or "
	                 "YYYY-MM-DDTHH:MM[:SS][Z])", opt, text, why ? ": " : "",
	                 why ? why : "");
}

int parse_date(struct ctl *c, const char *opt, const char *text, int64_t *ms)
{
	const char *p = text;
	int y = digits(&p, 4);
	if (y < 0 || *p++ != '-')
		return bad_date(c, opt, text, NULL);
	int mo = digits(&p, 2);
	if (mo < 0 || *p++ != '-')
		return bad_date(c, opt, text, NULL);
	int d = digits(&p, 2);
	if (d < 0)
		return bad_date(c, opt, text, NULL);
	/* Before the epoch nothing was recorded, and mktime's -1 would be
	 * ambiguous there. */
	if (y < 1970)
		return bad_date(c, opt, text, "before 1970");
	if (mo < 1 || mo > 12)
		return bad_date(c, opt, text, "no such month");
	if (d < 1 || d > days_in(y, mo))
		return bad_date(c, opt, text, "no such day");
	int h = 0, mi = 0, s = 0;
	bool zoned = false;
	long offset_s = 0;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		h = digits(&p, 2);
		if (h < 0 || *p++ != ':')
			return bad_date(c, opt, text, NULL);
		mi = digits(&p, 2);
		if (mi < 0)
			return bad_date(c, opt, text, NULL);
		if (*p == ':') {
			p++;
			s = digits(&p, 2);
			if (s < 0)
				return bad_date(c, opt, text, NULL);
		}
		if (h > 23 || mi > 59 || s > 59)
			return bad_date(c, opt, text, "no such time");
		if (*p == 'Z' || *p == 'z') {
			p++;
			zoned = true;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1;
			int oh = digits(&p, 2);
			if (oh < 0)
				return bad_date(c, opt, text, NULL);
			if (*p == ':')
				p++;
			int om = digits(&p, 2);
			if (om < 0 || oh > 23 || om > 59)
				return bad_date(c, opt, text, "bad zone offset");
			zoned = true;
			offset_s = sign * (oh * 3600L + om * 60L);
		}
	}
	if (*p != '\0')
		return bad_date(c, opt, text, NULL);

	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	time_t t;
	if (zoned) {
		t = timegm(&tm);
		if (t == (time_t)-1)
			return bad_date(c, opt, text, "out of range");
		t -= offset_s;
	} else {
		tm.tm_isdst = -1; /* let the zone rules say */
		t = mktime(&tm);
		if (t == (time_t)-1)
			return bad_date(c, opt, text, "out of range");
	}
	*ms = (int64_t)t * 1000;
	return PX_OK;
}

bool parse_uuid(const char *text, uint8_t out[16])
{
	/* 8-4-4-4-12 hex; the dashes are where the canonical form has them. */
	size_t n = 0;
	const char *p = text;
	for (int i = 0; i < 36; i++, p++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (*p != '-')
				return false;
			continue;
		}
		if (!isxdigit((unsigned char)*p))
			return false;
		int v = isdigit((unsigned char)*p)
		            ? *p - '0'
		            : tolower((unsigned char)*p) - 'a' + 10;
		if (n % 2 == 0)
			out[n / 2] = (uint8_t)(v << 4);
		else
			out[n / 2] |= (uint8_t)v;
		n++;
	}
	return *p == '\0';
}
