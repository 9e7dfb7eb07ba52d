/*
 * A pen for the fuzz targets: the real firmware endpoint (pl_fw) over
 * storage in memory, as tests/unit/support/fake_pen does for the unit tests
 * but without cmocka.  Its storage callbacks check what only a correct
 * endpoint guarantees: reads stay inside a session, only presets that pass
 * the endpoint's own validation are stored, each store has a new revision.
 *
 * Two presets (revision 1) and three sessions: ids 3, 7, 11 of 0, 301 and
 * 601 bytes (byte k = k * 31 + id, real SHA-256), the second without clock.
 */
#ifndef PL_FUZZ_FAKEPEN_H
#define PL_FUZZ_FAKEPEN_H

#include "fuzz_common.h"

#include <stdbool.h>

#include "penlink.h"
#include "pl_fw.h"

#define FAKEPEN_SESSIONS 3

struct fakepen {
	struct pl_fw fw;
	struct pl_fw_ops ops;
	/* Where the endpoint's frames go; must take all of them. */
	int (*send)(void *ud, const uint8_t *data, size_t len);
	void *send_ud;
	struct pl_fw_device_info info;
	struct pl_fw_preset presets[PL_FW_MAX_PRESETS];
	size_t npresets;
	uint32_t revision;
	struct pl_session_info sessions[FAKEPEN_SESSIONS];
	uint8_t data[FAKEPEN_SESSIONS][700];
	int64_t rtc;
	bool rtc_set;
};

static void fp_info(void *ctx, struct pl_fw_device_info *out)
{
	struct fakepen *p = ctx;
	*out = p->info;
}

static int fp_presets_load(void *ctx, struct pl_fw_preset *out, size_t max,
                           size_t *count, uint32_t *revision)
{
	struct fakepen *p = ctx;
	FUZZ_CHECK(p->npresets <= max, "load into %zu of %zu", max, p->npresets);
	memcpy(out, p->presets, p->npresets * sizeof *out);
	*count = p->npresets;
	*revision = p->revision;
	return PL_FW_OK;
}

static int fp_presets_store(void *ctx, const struct pl_fw_preset *in,
                            size_t count, uint32_t revision)
{
	struct fakepen *p = ctx;
	struct pl_fw_refusal why;
	FUZZ_CHECK(count <= PL_FW_MAX_PRESETS, "storing %zu presets", count);
	FUZZ_CHECK(pl_fw_validate_presets(&p->info, in, count, &why) == PL_FW_OK,
	           "the endpoint stored presets it should refuse: %s: %s",
	           why.field, why.message);
	FUZZ_CHECK(revision != p->revision, "stored without a new revision");
	memcpy(p->presets, in, count * sizeof *in);
	p->npresets = count;
	p->revision = revision;
	return PL_FW_OK;
}

static struct pl_session_info *fp_find(struct fakepen *p, uint32_t id)
{
	for (size_t i = 0; i < FAKEPEN_SESSIONS; i++)
		if (p->sessions[i].id == id)
			return &p->sessions[i];
	return NULL;
}

static int fp_session_next(void *ctx, uint32_t after,
                           struct pl_session_info *out)
{
	struct fakepen *p = ctx;
	for (size_t i = 0; i < FAKEPEN_SESSIONS; i++)
		if (p->sessions[i].id > after) {
			*out = p->sessions[i];
			return PL_FW_OK;
		}
	return PL_FW_NOT_FOUND;
}

static int fp_session_get(void *ctx, uint32_t id, struct pl_session_info *out)
{
	struct pl_session_info *s = fp_find(ctx, id);
	if (!s)
		return PL_FW_NOT_FOUND;
	*out = *s;
	return PL_FW_OK;
}

static int fp_session_read(void *ctx, uint32_t id, uint64_t offset,
                           uint8_t *buf, size_t len)
{
	struct fakepen *p = ctx;
	struct pl_session_info *s = fp_find(p, id);
	FUZZ_CHECK(s != NULL, "read of unknown session %u", id);
	FUZZ_CHECK(offset <= s->size && len <= s->size - offset,
	           "read of %zu bytes at %llu of session %u (%llu bytes)", len,
	           (unsigned long long)offset, id, (unsigned long long)s->size);
	memcpy(buf, p->data[s - p->sessions] + offset, len);
	return PL_FW_OK;
}

static int fp_session_archive(void *ctx, uint32_t id)
{
	struct pl_session_info *s = fp_find(ctx, id);
	FUZZ_CHECK(s != NULL, "archive of unknown session %u", id);
	s->archived = true;
	return PL_FW_OK;
}

static uint64_t fp_uptime(void *ctx)
{
	(void)ctx;
	return 123456;
}

static int64_t fp_rtc_get(void *ctx, bool *is_set)
{
	struct fakepen *p = ctx;
	*is_set = p->rtc_set;
	return p->rtc;
}

static void fp_rtc_set(void *ctx, int64_t utc)
{
	struct fakepen *p = ctx;
	p->rtc = utc;
	p->rtc_set = true;
}

static void fp_log(void *ctx, const char *line)
{
	(void)ctx;
	FUZZ_CHECK(fuzz_strnlen(line, 512) < 512, "log line not terminated");
}

static int fp_send(void *ctx, const uint8_t *data, size_t len)
{
	struct fakepen *p = ctx;
	FUZZ_CHECK(len > 0 && data[len - 1] == 0, "send of a partial frame");
	return p->send(p->send_ud, data, len);
}

/* The two presets every fake pen starts with, revision 1. */
static void fakepen_reset_presets(struct fakepen *p)
{
	static const struct pl_fw_preset defaults[2] = {
		{1, "Forehead fine", 500, 4, 1, 12, 600},
		{2, "Cheek", 1000, 3, 5, 24, 900},
	};
	memcpy(p->presets, defaults, sizeof defaults);
	p->npresets = 2;
	p->revision = 1;
}

/* Storage as described above; the endpoint initialised. */
static void fakepen_init(struct fakepen *p,
                         int (*send)(void *ud, const uint8_t *data, size_t len),
                         void *ud)
{
	static const uint32_t rates[6] = {50, 70, 90, 110, 130, 150};

	memset(p, 0, sizeof *p);
	p->send = send;
	p->send_ud = ud;
	p->info.serial = "PEN-FUZZ";
	p->info.model = "PL-Pen 1";
	p->info.hw_revision = "B";
	p->info.fw_version = "1.0.0";
	p->info.capabilities = PL_CAP_RTC | PL_CAP_TRACE | PL_CAP_TELEMETRY;
	p->info.depth_min_um = 250;
	p->info.depth_max_um = 2500;
	p->info.depth_step_um = 250;
	p->info.speed_levels = 6;
	memcpy(p->info.stroke_rate_hz, rates, sizeof rates);
	p->info.slow_lock_depth_um = 2000;
	p->info.max_presets = 16;
	fakepen_reset_presets(p);
	for (uint32_t i = 0; i < FAKEPEN_SESSIONS; i++) {
		struct pl_session_info *s = &p->sessions[i];
		s->id = 3 + 4 * i;
		s->seq = 100 + i;
		s->size = i == 0 ? 0 : 300 * i + 1;
		for (size_t k = 0; k < 16; k++)
			s->uuid[k] = (uint8_t)(s->id * 7 + k);
		for (size_t k = 0; k < s->size; k++)
			p->data[i][k] = (uint8_t)(k * 31 + s->id);
		pl_sha256(p->data[i], (size_t)s->size, s->sha256);
		s->start_ms = 1700000000000 + i;
		s->end_ms = s->start_ms + 1800000;
		s->rtc_time = i != 1;
	}
	p->ops.send = fp_send;
	p->ops.get_info = fp_info;
	p->ops.presets_load = fp_presets_load;
	p->ops.presets_store = fp_presets_store;
	p->ops.session_next = fp_session_next;
	p->ops.session_get = fp_session_get;
	p->ops.session_read = fp_session_read;
	p->ops.session_archive = fp_session_archive;
	p->ops.uptime_ms = fp_uptime;
	p->ops.rtc_get = fp_rtc_get;
	p->ops.rtc_set = fp_rtc_set;
	p->ops.log = fp_log;
	pl_fw_init(&p->fw, &p->ops, p);
}

#endif
