#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "internal.h"

static _Thread_local char last_message[1024] = "no error";

static const char *const names[] = {
	[0] = "ok",
	[-PL_ERR_ARG] = "invalid argument",
	[-PL_ERR_MEM] = "out of memory",
	[-PL_ERR_NO_PORT] = "no such port",
	[-PL_ERR_PORT_BUSY] = "port busy",
	[-PL_ERR_ACCESS] = "permission denied",
	[-PL_ERR_IO] = "I/O error",
	[-PL_ERR_UNPLUGGED] = "pen unplugged",
	[-PL_ERR_TIMEOUT] = "timeout",
	[-PL_ERR_PROTOCOL] = "protocol error",
	[-PL_ERR_VERSION] = "incompatible protocol version",
	[-PL_ERR_VALIDATION] = "refused by validation",
	[-PL_ERR_CONFLICT] = "conflict",
	[-PL_ERR_BUSY] = "pen busy",
	[-PL_ERR_NOT_FOUND] = "not found",
	[-PL_ERR_DEVICE] = "pen failure",
	[-PL_ERR_BAD_REQUEST] = "request rejected by the pen",
	[-PL_ERR_DIGEST] = "digest mismatch",
	[-PL_ERR_VERIFY] = "read-back mismatch",
	[-PL_ERR_UNSUPPORTED] = "not supported by the pen",
	[-PL_ERR_CANCELLED] = "cancelled",
	[-PL_ERR_PARSE] = "malformed input",
	[-PL_ERR_POLICY] = "refused by policy",
};

const char *pl_error_name(int code)
{
	if (code > 0 || -code >= (int)(sizeof names / sizeof names[0]) ||
	    !names[-code])
		return "unknown error";
	return names[-code];
}

const char *pl_error_message(void)
{
	return last_message;
}

int pl_error_set(int code, const char *fmt, ...)
{
	/* Messages quote pens and clients (serials, names, their own error
	 * text): cleaned once here, every caller gets a printable line. */
	char raw[sizeof last_message] = "";
	va_list ap;
	va_start(ap, fmt);
	if (fmt)
		vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	pl_text_clean(PL_TEXT_LOG, raw, last_message, sizeof last_message);
	return code;
}
