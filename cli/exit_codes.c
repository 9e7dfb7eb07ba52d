#include "exit_codes.h"
#include "penlink.h"

#include <stddef.h>

/* Each code's exit code and --json slug in one row, so the two cannot
 * disagree about which codes exist.  A code not here: PX_FAIL, "error". */
static const struct {
	int code;
	int exit_code;
	const char *slug;
} codes[] = {
	{PL_OK, PX_OK, "ok"},
	{PL_ERR_ARG, PX_FAIL, "invalid_argument"},
	{PL_ERR_MEM, PX_FAIL, "out_of_memory"},
	{PL_ERR_NO_PORT, PX_NOT_FOUND, "no_port"},
	{PL_ERR_PORT_BUSY, PX_BUSY, "port_busy"},
	{PL_ERR_ACCESS, PX_PERM, "permission_denied"},
	{PL_ERR_IO, PX_IO, "io"},
	{PL_ERR_UNPLUGGED, PX_IO, "unplugged"},
	{PL_ERR_TIMEOUT, PX_IO, "timeout"},
	{PL_ERR_PROTOCOL, PX_FAIL, "protocol"},
	{PL_ERR_VERSION, PX_FAIL, "version"},
	{PL_ERR_VALIDATION, PX_REFUSED, "validation"},
	{PL_ERR_CONFLICT, PX_BUSY, "conflict"},
	{PL_ERR_BUSY, PX_BUSY, "busy"},
	{PL_ERR_NOT_FOUND, PX_NOT_FOUND, "not_found"},
	{PL_ERR_DEVICE, PX_FAIL, "device"},
	{PL_ERR_BAD_REQUEST, PX_FAIL, "bad_request"},
	{PL_ERR_DIGEST, PX_INTEGRITY, "digest"},
	{PL_ERR_VERIFY, PX_INTEGRITY, "verify"},
	{PL_ERR_UNSUPPORTED, PX_FAIL, "unsupported"},
	{PL_ERR_CANCELLED, PX_FAIL, "cancelled"},
	/* a malformed input file is refused, like a bad value */
	{PL_ERR_PARSE, PX_REFUSED, "parse"},
	{PL_ERR_POLICY, PX_REFUSED, "policy"},
	{PX_ERR_DAEMON, PX_DAEMON, "daemon_not_running"},
};

static size_t code_row(int pl_code)
{
	size_t i = 0;
	while (i < sizeof codes / sizeof codes[0] && codes[i].code != pl_code)
		i++;
	return i;
}

int exit_code_for(int pl_code)
{
	size_t i = code_row(pl_code);
	return i < sizeof codes / sizeof codes[0] ? codes[i].exit_code : PX_FAIL;
}

const char *error_slug_for(int pl_code)
{
	size_t i = code_row(pl_code);
	return i < sizeof codes / sizeof codes[0] ? codes[i].slug : "error";
}

const char *error_label_for(int pl_code)
{
	if (pl_code == PX_ERR_DAEMON)
		return NULL;
	return pl_error_name(pl_code);
}
