#include "exit_codes.h"
#include "penlink.h"

int exit_code_for(int pl_code)
{
	switch (pl_code) {
	case PL_OK:
		return PX_OK;
	case PL_ERR_NO_PORT:
	case PL_ERR_NOT_FOUND:
		return PX_NOT_FOUND;
	case PL_ERR_VALIDATION:
	case PL_ERR_POLICY:
	case PL_ERR_PARSE: /* a malformed input file is refused, like a bad value */
		return PX_REFUSED;
	case PL_ERR_ACCESS:
		return PX_PERM;
	case PL_ERR_IO:
	case PL_ERR_UNPLUGGED:
	case PL_ERR_TIMEOUT:
		return PX_IO;
	case PL_ERR_PORT_BUSY:
	case PL_ERR_CONFLICT:
	case PL_ERR_BUSY:
		return PX_BUSY;
	case PL_ERR_DIGEST:
	case PL_ERR_VERIFY:
		return PX_INTEGRITY;
	case PX_ERR_DAEMON:
		return PX_DAEMON;
	case PL_ERR_ARG:
	case PL_ERR_MEM:
	case PL_ERR_PROTOCOL:
	case PL_ERR_VERSION:
	case PL_ERR_DEVICE:
	case PL_ERR_BAD_REQUEST:
	case PL_ERR_UNSUPPORTED:
	case PL_ERR_CANCELLED:
	default:
		return PX_FAIL;
	}
}

const char *error_slug_for(int pl_code)
{
	switch (pl_code) {
	case PL_OK: return "ok";
	case PL_ERR_ARG: return "invalid_argument";
	case PL_ERR_MEM: return "out_of_memory";
	case PL_ERR_NO_PORT: return "no_port";
	case PL_ERR_PORT_BUSY: return "port_busy";
	case PL_ERR_ACCESS: return "permission_denied";
	case PL_ERR_IO: return "io";
	case PL_ERR_UNPLUGGED: return "unplugged";
	case PL_ERR_TIMEOUT: return "timeout";
	case PL_ERR_PROTOCOL: return "protocol";
	case PL_ERR_VERSION: return "version";
	case PL_ERR_VALIDATION: return "validation";
	case PL_ERR_CONFLICT: return "conflict";
	case PL_ERR_BUSY: return "busy";
	case PL_ERR_NOT_FOUND: return "not_found";
	case PL_ERR_DEVICE: return "device";
	case PL_ERR_BAD_REQUEST: return "bad_request";
	case PL_ERR_DIGEST: return "digest";
	case PL_ERR_VERIFY: return "verify";
	case PL_ERR_UNSUPPORTED: return "unsupported";
	case PL_ERR_CANCELLED: return "cancelled";
	case PL_ERR_PARSE: return "parse";
	case PL_ERR_POLICY: return "policy";
	case PX_ERR_DAEMON: return "daemon_not_running";
	default: return "error";
	}
}

const char *error_label_for(int pl_code)
{
	if (pl_code == PX_ERR_DAEMON)
		return NULL;
	return pl_error_name(pl_code);
}
