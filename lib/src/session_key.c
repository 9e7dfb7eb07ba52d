/* A session's identity: its pen's serial and its UUID, together. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Canonical 8-4-4-4-12 text (either case) to 16 bytes. */
static bool uuid_parse(const char *s, uint8_t out[16])
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0, b = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
			continue;
		}
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[b++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return true;
}

int pl_session_key_parse(const char *text, struct pl_session_key *out)
{
	if (!text || !out)
		return pl__fail(PL_ERR_ARG, "pl_session_key_parse: missing argument");
	const char *slash = strrchr(text, '/');
	if (!slash)
		return pl__fail(PL_ERR_PARSE,
		                "\"%.80s\" names no pen: a session is SERIAL/UUID", text);
	size_t serial_len = (size_t)(slash - text);
	struct pl_session_key k;
	memset(&k, 0, sizeof k);
	if (serial_len == 0 || serial_len >= sizeof k.serial)
		return pl__fail(PL_ERR_PARSE,
		                "\"%.80s\": the serial before '/' must be 1 to %zu "
		                "bytes, not %zu",
		                text, sizeof k.serial - 1, serial_len);
	if (!uuid_parse(slash + 1, k.uuid))
		return pl__fail(PL_ERR_PARSE,
		                "\"%.80s\": \"%.40s\" is not a UUID "
		                "(8-4-4-4-12 hexadecimal digits)",
		                text, slash + 1);
	memcpy(k.serial, text, serial_len);
	*out = k;
	return PL_OK;
}

size_t pl_session_key_format(const struct pl_session_key *key,
                             enum pl_text_target target, char *out, size_t cap)
{
	char uuid[37], whole[sizeof key->serial + sizeof uuid + 1];

	pl_uuid_format(key->uuid, uuid);
	snprintf(whole, sizeof whole, "%.*s/%s", (int)strnlen(key->serial, sizeof key->serial - 1),
	         key->serial, uuid);
	return pl_text_clean(target, whole, out, cap);
}

bool pl_session_key_equal(const struct pl_session_key *a,
                          const struct pl_session_key *b)
{
	return a && b && strncmp(a->serial, b->serial, sizeof a->serial) == 0 &&
	       memcmp(a->uuid, b->uuid, sizeof a->uuid) == 0;
}

size_t pl_session_file_name(const struct pl_session_key *key, uint32_t seq,
                            char *out, size_t cap)
{
	char serial[sizeof key->serial], uuid[37];
	char whole[sizeof serial + sizeof uuid + 32];

	if (key->serial[0])
		pl_text_clean(PL_TEXT_FILENAME, key->serial, serial, sizeof serial);
	else
		snprintf(serial, sizeof serial, "pen");
	pl_uuid_format(key->uuid, uuid);
	snprintf(whole, sizeof whole, "%s-%06u-%s.plrec", serial, seq, uuid);
	return pl_text_clean(PL_TEXT_FILENAME, whole, out, cap);
}
