/* The fake pen shared by the unit tests; see fake_pen.h. */
#include "fake_pen.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

const struct pl_fw_preset fake_pen_default_presets[2] = {
	{1, "Forehead fine", 500, 4, 1, 12, 600},
	{2, "Cheek", 1000, 3, 5, 24, 900},
};

void fake_pen_default_info(struct pl_fw_device_info *out)
{
	static const uint32_t rates[6] = {50, 70, 90, 110, 130, 150};

	memset(out, 0, sizeof *out);
	out->serial = "PEN-LINK";
	out->model = "PL-Pen 1";
	out->hw_revision = "B";
	out->fw_version = "1.0.0";
	out->capabilities = PL_CAP_RTC | PL_CAP_TRACE | PL_CAP_TELEMETRY;
	out->depth_min_um = 250;
	out->depth_max_um = 2500;
	out->depth_step_um = 250;
	out->speed_levels = 6;
	memcpy(out->stroke_rate_hz, rates, sizeof rates);
	out->slow_lock_depth_um = 2000;
	out->max_presets = 16;
	out->total_strokes = 987654;
	out->motor_seconds = 3600;
	out->battery_percent = 64;
	out->battery_mv = 3850;
}

/* ------------------------------------------------------------------ callbacks */

static void fp_info(void *ctx, struct pl_fw_device_info *out)
{
	struct fake_pen *p = ctx;
	*out = p->info;
}

static int fp_presets_load(void *ctx, struct pl_fw_preset *out, size_t max,
                           size_t *count, uint32_t *revision)
{
	struct fake_pen *p = ctx;
	if (p->strict)
		assert_true(p->npresets <= max);
	if (p->npresets > max)
		return PL_FW_INTERNAL;
	memcpy(out, p->presets, p->npresets * sizeof *out);
	*count = p->npresets;
	*revision = p->revision;
	return PL_FW_OK;
}

static int fp_presets_store(void *ctx, const struct pl_fw_preset *in,
                            size_t count, uint32_t revision)
{
	struct fake_pen *p = ctx;
	memcpy(p->presets, in, count * sizeof *in);
	p->npresets = count;
	p->revision = revision;
	p->stores++;
	return PL_FW_OK;
}

static struct fake_session *find(struct fake_pen *p, uint32_t id)
{
	for (size_t i = 0; i < p->nsessions; i++)
		if (p->sessions[i].meta.id == id)
			return &p->sessions[i];
	return NULL;
}

static int fp_session_next(void *ctx, uint32_t after, struct pl_session_info *out)
{
	struct fake_pen *p = ctx;
	for (size_t i = 0; i < p->nsessions; i++)
		if (p->sessions[i].meta.id > after) {
			*out = p->sessions[i].meta;
			return PL_FW_OK;
		}
	return PL_FW_NOT_FOUND;
}

static int fp_session_get(void *ctx, uint32_t id, struct pl_session_info *out)
{
	struct fake_session *s = find(ctx, id);
	if (!s)
		return PL_FW_NOT_FOUND;
	*out = s->meta;
	return PL_FW_OK;
}

static int fp_session_read(void *ctx, uint32_t id, uint64_t off, uint8_t *buf,
                           size_t len)
{
	struct fake_pen *p = ctx;
	struct fake_session *s = find(p, id);
	if (p->strict) {
		assert_non_null(s);
		assert_true(off + len <= s->meta.size);
	}
	if (!s || off + len > s->meta.size)
		return PL_FW_INTERNAL;
	memcpy(buf, s->data + off, len);
	return PL_FW_OK;
}

static int fp_session_archive(void *ctx, uint32_t id)
{
	struct fake_pen *p = ctx;
	struct fake_session *s = find(p, id);
	if (p->strict)
		assert_non_null(s);
	if (!s)
		return PL_FW_NOT_FOUND;
	s->meta.archived = true;
	p->archives++;
	return PL_FW_OK;
}

static uint64_t fp_uptime(void *ctx)
{
	struct fake_pen *p = ctx;
	return p->uptime_ms;
}

static int64_t fp_rtc_get(void *ctx, bool *is_set)
{
	struct fake_pen *p = ctx;
	*is_set = p->rtc_set;
	return p->rtc;
}

static void fp_rtc_set(void *ctx, int64_t utc)
{
	struct fake_pen *p = ctx;
	p->rtc = utc;
	p->rtc_set = true;
}

static void fp_log(void *ctx, const char *line)
{
	struct fake_pen *p = ctx;
	snprintf(p->last_log, sizeof p->last_log, "%s", line);
	if (p->log_to_trace)
		pl_fw_trace(&p->fw, 2, line);
}

static int fp_send(void *ctx, const uint8_t *data, size_t len)
{
	struct fake_pen *p = ctx;
	while (len) {
		int n = pl_transport_write(p->pen_end, data, len);
		if (n <= 0)
			return PL_FW_INTERNAL;
		data += n;
		len -= (size_t)n;
	}
	return PL_FW_OK;
}

/* ------------------------------------------------------------------ API */

void fake_pen_init(struct fake_pen *p)
{
	memset(p, 0, sizeof *p);
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
	fake_pen_default_info(&p->info);
	p->uptime_ms = 99000;
	memcpy(p->presets, fake_pen_default_presets, sizeof fake_pen_default_presets);
	p->npresets = 2;
	p->revision = 1;
	pl_fw_init(&p->fw, &p->ops, p);
}

static struct fake_session *new_session(struct fake_pen *p, uint32_t id,
                                        size_t size)
{
	struct fake_session *s;

	assert_true(p->nsessions < FAKE_PEN_MAX_SESSIONS);
	/* session_next walks in array order, so ids must ascend. */
	if (p->nsessions)
		assert_true(p->sessions[p->nsessions - 1].meta.id < id);
	s = &p->sessions[p->nsessions++];
	memset(s, 0, sizeof *s);
	s->meta.id = id;
	s->meta.size = size;
	s->meta.rtc_time = true;
	s->data = malloc(size ? size : 1);
	assert_non_null(s->data);
	return s;
}

struct fake_session *fake_pen_add_session(struct fake_pen *p, uint32_t id,
                                          size_t size)
{
	struct fake_session *s = new_session(p, id, size);

	s->meta.seq = id + 100;
	for (int i = 0; i < 16; i++)
		s->meta.uuid[i] = (uint8_t)(id * 7 + i);
	for (int i = 0; i < 32; i++)
		s->meta.sha256[i] = (uint8_t)(id * 13 + i);
	s->meta.start_ms = 1700000000000LL + id;
	s->meta.end_ms = s->meta.start_ms + 1800000;
	for (size_t i = 0; i < size; i++)
		s->data[i] = (uint8_t)(i * 31 + id);
	return s;
}

struct fake_session *fake_pen_add_random_session(struct fake_pen *p,
                                                 uint32_t id, size_t size,
                                                 uint32_t seed)
{
	struct fake_session *s = new_session(p, id, size);
	unsigned int n = 32;

	s->meta.seq = id;
	for (int i = 0; i < 16; i++)
		s->meta.uuid[i] = (uint8_t)(seed + i);
	s->meta.start_ms = 1780000000000LL + id * 86400000LL;
	s->meta.end_ms = s->meta.start_ms + 2400000;
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1664525u + 1013904223u;
		s->data[i] = (uint8_t)(seed >> 24);
	}
	assert_true(EVP_Digest(s->data, size, s->meta.sha256, &n, EVP_sha256(), NULL));
	return s;
}

void fake_pen_clear_sessions(struct fake_pen *p)
{
	for (size_t i = 0; i < p->nsessions; i++)
		free(p->sessions[i].data);
	p->nsessions = 0;
}

static void pump_cb(void *ud)
{
	fake_pen_pump(ud);
}

void fake_pen_connect(struct fake_pen *p, struct pl_transport **host,
                      bool auto_pump)
{
	assert_null(p->pen_end);
	assert_int_equal(pl_transport_memory_pair(host, &p->pen_end), PL_OK);
	p->ops.send = fp_send;
	if (auto_pump)
		pl_transport_memory_set_pump(*host, pump_cb, p);
}

void fake_pen_pump(struct fake_pen *p)
{
	uint32_t before = pl_fw_get_stats(&p->fw)->requests;
	uint32_t handled;
	int n;

	while ((n = pl_transport_read(p->pen_end, p->rx_chunk, sizeof p->rx_chunk)) > 0) {
		if (p->fw_down)
			p->bytes_lost += (size_t)n;
		else
			pl_fw_rx(&p->fw, p->rx_chunk, (size_t)n);
	}
	handled = pl_fw_get_stats(&p->fw)->requests - before;
	if (handled > p->max_requests_per_pump)
		p->max_requests_per_pump = handled;
}

void fake_pen_disconnect(struct fake_pen *p)
{
	pl_transport_close(p->pen_end);
	p->pen_end = NULL;
	pl_fw_reset(&p->fw);
}

void fake_pen_free(struct fake_pen *p)
{
	fake_pen_clear_sessions(p);
	if (p->pen_end) {
		pl_transport_close(p->pen_end);
		p->pen_end = NULL;
	}
}
