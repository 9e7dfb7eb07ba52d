/*
 * fuzz_config: penlinkd's configuration file (daemon/config.c over inih).
 *
 * Input: the file's bytes.  config_load() reads only from a path, so the
 * input goes into a memfd opened through /proc/self/fd/N.  Invariants:
 *  - it returns 0 or -1; -1 comes with a message that names the file and,
 *    when it names a line, one the file has;
 *  - a refused file changes nothing in the configuration;
 *  - an accepted one leaves every field in the range config.h documents
 *    (absolute NUL-terminated paths, at most 16 USB ids and 16 depth caps,
 *    a known log level, a socket mode within 0777, ...).
 */
#include "fuzz_common.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define MAX_FILE (1u << 16)

static int memfd = -1;
static char path[64];

static void check_str(const char *s, size_t cap, const char *what)
{
	FUZZ_CHECK(fuzz_strnlen(s, cap) < cap, "%s is not NUL-terminated", what);
}

static void check_accepted(const struct config *c)
{
	check_str(c->socket_path, sizeof c->socket_path, "socket_path");
	check_str(c->db_path, sizeof c->db_path, "db_path");
	check_str(c->socket_group, sizeof c->socket_group, "socket_group");
	check_str(c->logs_group, sizeof c->logs_group, "logs_group");
	check_str(c->presets_group, sizeof c->presets_group, "presets_group");
	FUZZ_CHECK(c->socket_path[0] == '/', "socket path \"%s\"", c->socket_path);
	FUZZ_CHECK(c->db_path[0] == '/', "database path \"%s\"", c->db_path);
	FUZZ_CHECK(c->socket_mode <= 0777, "socket mode %o", (unsigned)c->socket_mode);
	FUZZ_CHECK(c->log_level >= LOG_ERR && c->log_level <= LOG_DEBUG,
	           "log level %d", c->log_level);
	FUZZ_CHECK(c->n_usb_ids >= 1 && c->n_usb_ids <= CONFIG_MAX_USB_IDS,
	           "%d usb ids", c->n_usb_ids);
	FUZZ_CHECK(c->policy != NULL, "no policy");
	const char *group;
	uint32_t um;
	size_t i = 0;
	for (; pl_policy_cap(c->policy, i, &group, &um) == PL_OK; i++) {
		FUZZ_CHECK(group[0] != '\0', "cap %zu has no group", i);
		FUZZ_CHECK(um <= 10000, "cap %zu: %u um", i, um);
	}
	FUZZ_CHECK(i <= 16, "%zu caps", i);
	FUZZ_CHECK(pl_policy_confirm_above_um(c->policy) <= 10000,
	           "confirm above %u um", pl_policy_confirm_above_um(c->policy));
	FUZZ_CHECK(c->timeout_ms >= 10 && c->timeout_ms <= 600000, "timeout %d",
	           c->timeout_ms);
	FUZZ_CHECK(c->handshake_ms >= 10 && c->handshake_ms <= 600000,
	           "handshake %d", c->handshake_ms);
	FUZZ_CHECK(c->window >= 0 && c->window <= 1024, "window %d", c->window);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, before;
	char err[1024];
	size_t lines = 1;
	int rc;

	if (size > MAX_FILE)
		return 0;
	if (memfd < 0) {
		memfd = memfd_create("penlinkd.conf", MFD_CLOEXEC);
		FUZZ_CHECK(memfd >= 0, "memfd_create: %s", strerror(errno));
		snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
		log_set_level(LOG_ERR);
	}
	FUZZ_CHECK(ftruncate(memfd, 0) == 0, "ftruncate: %s", strerror(errno));
	FUZZ_CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size, "pwrite: %s",
	           strerror(errno));
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';

	FUZZ_CHECK(config_defaults(&c) == PL_OK, "config_defaults");
	/* An earlier config (not the defaults) must survive a refusal too. */
	if (size && (data[0] & 1)) {
		snprintf(c.socket_group, sizeof c.socket_group, "staff");
		FUZZ_CHECK(pl_policy_set(c.policy, "depth_cap.nurse", "1.0") == PL_OK,
		           "pl_policy_set");
	}
	memcpy(&before, &c, sizeof c);
	memset(err, 'x', sizeof err);
	rc = config_load(&c, path, true, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == -1, "config_load returned %d", rc);
	FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL, "message not terminated");
	if (rc) {
		const char *at = err + strlen(path);
		FUZZ_CHECK(!strncmp(err, path, strlen(path)),
		           "message does not name the file: %s", err);
		FUZZ_CHECK(!memcmp(&c, &before, sizeof c),
		           "a refused file changed the configuration (%s)", err);
		if (*at == ':' && at[1] >= '0' && at[1] <= '9') {
			long line = strtol(at + 1, NULL, 10);
			FUZZ_CHECK(line >= 1 && (size_t)line <= lines,
			           "message names line %ld of a %zu-line file: %s", line,
			           lines, err);
		}
	} else {
		FUZZ_CHECK(err[0] == '\0', "accepted with a message: %s", err);
		check_accepted(&c);
	}
	config_free(&c);
	return 0;
}
