/*
 * Connection strings: parsed by libpq's own parser (PQconninfoParse), so
 * penlink accepts exactly what libpq does, and looked at for what must not
 * be there (a password) and what may be shown (where it points).
 */
#include <stdio.h>
#include <string.h>

#include "penlink_central.h"

int pc_conninfo_check(const char *conninfo)
{
	if (!conninfo || !*conninfo)
		return pl_error_set(PL_ERR_ARG, "no connection string");
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	if (!opts) {
		char line[256];
		pc_one_line(err ? err : "out of memory", line, sizeof line);
		PQfreemem(err);
		/* libpq's message quotes at most a keyword, never a value. */
		return pl_error_set(PL_ERR_ARG, "not a valid connection string: %s", line);
	}
	int rc = PL_OK;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, "password") && o->val && *o->val)
			rc = pl_error_set(PL_ERR_ARG,
			                  "the connection string holds a password; put "
			                  "it in a passfile (~/.pgpass, or passfile=FILE) "
			                  "or a service file (service=NAME), never in "
			                  "the configuration or on a command line");
	PQconninfoFree(opts);
	return rc;
}

void pc_conninfo_describe(const char *conninfo, char *out, size_t cap)
{
	static const char *const shown[] = {"service", "host", "hostaddr", "port",
	                                    "dbname", "user"};
	if (!cap)
		return;
	out[0] = '\0';
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
	if (!opts) {
		snprintf(out, cap, "(unparsable connection string)");
		return;
	}
	size_t len = 0;
	for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
		for (PQconninfoOption *o = opts; o->keyword; o++) {
			if (strcmp(o->keyword, shown[i]) || !o->val || !*o->val)
				continue;
			char val[128];
			pl_text_clean(PL_TEXT_LOG, o->val, val, sizeof val);
			int n = snprintf(out + len, cap - len, "%s%s=%s", len ? " " : "",
			                 o->keyword, val);
			if (n < 0 || (size_t)n >= cap - len) {
				out[cap - 1] = '\0';
				PQconninfoFree(opts);
				return;
			}
			len += (size_t)n;
		}
	if (!len)
		snprintf(out, cap, "(libpq defaults)");
	PQconninfoFree(opts);
}

void pc_one_line(const char *msg, char *out, size_t cap)
{
	if (!cap)
		return;
	if (!msg)
		msg = "";
	if (!strncmp(msg, "ERROR:  ", 8))
		msg += 8;
	else if (!strncmp(msg, "FATAL:  ", 8))
		msg += 8;
	size_t len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	char buf[1024];
	size_t o = 0;
	for (size_t i = 0; i < len && o + 3 < sizeof buf; i++) {
		if (msg[i] == '\n') {
			buf[o++] = ';';
			buf[o++] = ' ';
			while (i + 1 < len && (msg[i + 1] == ' ' || msg[i + 1] == '\t'))
				i++;
		} else {
			buf[o++] = msg[i] == '\t' ? ' ' : msg[i];
		}
	}
	buf[o] = '\0';
	pl_text_clean(PL_TEXT_LOG, buf, out, cap);
}
