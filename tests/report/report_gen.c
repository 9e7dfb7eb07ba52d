/*
 * report_gen: writes one session record (.plrec) for the report tier, of
 * any length and with any text: what penemu's generator (30-60 minute
 * sessions, sane text) does not produce.
 *
 *   report_gen --out FILE [--minutes M] [--interval-ms I] [--seq N]
 *              [--serial S] [--hostile] [--spike] [--uptime]
 *
 * --hostile puts markup, script and control characters into the serial,
 * the preset name, the cartridge lot and the firmware version; --spike
 * sets one motor-current sample to 950 mA (the rest stay near 300) and one
 * depth sample 0.40 mm above the set depth, so a test can see that peaks
 * survive the drawing's reduction; --uptime marks the times as pen uptime.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.pb-c.h"

static Pl__Event **events;
static size_t n_events, cap_events;

static void event(uint32_t t, Pl__EventKind kind, int32_t value)
{
	if (n_events == cap_events) {
		cap_events = cap_events ? cap_events * 2 : 64;
		events = realloc(events, cap_events * sizeof *events);
		if (!events)
			abort();
	}
	Pl__Event *e = malloc(sizeof *e);
	if (!e)
		abort();
	pl__event__init(e);
	e->offset_ms = t;
	e->kind = kind;
	e->value = value;
	events[n_events++] = e;
}

int main(int argc, char **argv)
{
	const char *out = NULL, *serial = "PEN-0001";
	double minutes = 45;
	uint32_t interval_ms = 10, seq = 1;
	int hostile = 0, spike = 0, uptime = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--out") && v)
			out = v, i++;
		else if (!strcmp(a, "--minutes") && v)
			minutes = atof(v), i++;
		else if (!strcmp(a, "--interval-ms") && v)
			interval_ms = (uint32_t)atoi(v), i++;
		else if (!strcmp(a, "--seq") && v)
			seq = (uint32_t)atoi(v), i++;
		else if (!strcmp(a, "--serial") && v)
			serial = v, i++;
		else if (!strcmp(a, "--hostile"))
			hostile = 1;
		else if (!strcmp(a, "--spike"))
			spike = 1;
		else if (!strcmp(a, "--uptime"))
			uptime = 1;
		else {
			fprintf(stderr, "report_gen: bad argument %s\n", a);
			return 2;
		}
	}
	if (!out || interval_ms == 0 || minutes <= 0) {
		fprintf(stderr, "usage: report_gen --out FILE [--minutes M] ...\n");
		return 2;
	}
	const char *name = "Cheek fine";
	const char *lot = "L24-0815";
	const char *fw = "1.2.3";
	if (hostile) {
		serial = "PEN<script>alert(1)</script>\x1b[31m\x07";
		name = "\"><svg onload=alert(2)>";
		lot = "<img src=x onerror=alert(3)>\x01";
		fw = "1.0<b>x</b>\r\n";
	}
	uint32_t dur = (uint32_t)(minutes * 60000.0);
	uint32_t depth = 1000;

	/* a treatment: start, then every 3 minutes something happens */
	event(0, PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_IN, 12);
	event(500, PL__EVENT_KIND__EVENT_KIND_START, 3);
	uint32_t k = 0;
	for (uint32_t t = 60000; t + 60000 < dur; t += 60000, k++) {
		switch (k % 6) {
		case 0:
			depth = depth == 1000 ? 1250 : 1000;
			event(t, PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE, (int32_t)depth);
			break;
		case 1:
			event(t, PL__EVENT_KIND__EVENT_KIND_PAUSE, 0);
			event(t + 20000, PL__EVENT_KIND__EVENT_KIND_RESUME, 0);
			break;
		case 2:
			event(t, PL__EVENT_KIND__EVENT_KIND_AREA_CHANGE,
			      (int32_t)(1 + k % 13));
			break;
		case 3:
			event(t, PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE, (int32_t)(1 + k % 5));
			break;
		case 4:
			if (k < 12)
				event(t, PL__EVENT_KIND__EVENT_KIND_ERROR, (int32_t)(1 + k % 4));
			break;
		default:
			break;
		}
	}
	event(dur - 30000 > 600 ? dur - 30000 : 600,
	      PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW, 3550);
	event(dur - 5000 > 700 ? dur - 5000 : 700, PL__EVENT_KIND__EVENT_KIND_STOP, 0);

	size_t n = dur / interval_ms;
	uint32_t *d = malloc(n * sizeof *d), *c = malloc(n * sizeof *c),
	         *b = malloc(n * sizeof *b);
	if (!d || !c || !b)
		abort();
	uint64_t x = 88172645463325252ull, run_ms = 0;
	uint32_t max_depth = 0;
	size_t ei = 0;
	int run = 0;
	uint32_t set = 1000;
	for (size_t i = 0; i < n; i++) {
		uint32_t t = (uint32_t)(i * interval_ms);
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* the state the events up to t leave */
		for (; ei < n_events && events[ei]->offset_ms <= t; ei++) {
			switch (events[ei]->kind) {
			case PL__EVENT_KIND__EVENT_KIND_START:
			case PL__EVENT_KIND__EVENT_KIND_RESUME: run = 1; break;
			case PL__EVENT_KIND__EVENT_KIND_PAUSE:
			case PL__EVENT_KIND__EVENT_KIND_STOP: run = 0; break;
			case PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE:
				set = (uint32_t)events[ei]->value;
				break;
			default: break;
			}
		}
		d[i] = run ? set - (uint32_t)(x % 20) : 0;
		c[i] = run ? 280 + (uint32_t)(x % 40) : 10;
		b[i] = 4150 - (uint32_t)((uint64_t)t * 550 / dur) - (run ? 30 : 0);
		if (run)
			run_ms += interval_ms;
		if (d[i] > max_depth)
			max_depth = d[i];
	}
	if (spike && n > 10) {
		c[n / 3] = 950;
		d[n / 2] = 1000 + 400;
		if (d[n / 2] > max_depth)
			max_depth = d[n / 2];
	}

	Pl__SessionRecord rec = PL__SESSION_RECORD__INIT;
	Pl__Preset p = PL__PRESET__INIT;
	Pl__Cartridge cart = PL__CARTRIDGE__INIT;
	Pl__Telemetry tel = PL__TELEMETRY__INIT;
	Pl__Summary sum = PL__SUMMARY__INIT;
	uint8_t uuid[16], uid[7] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
	for (int i = 0; i < 16; i++)
		uuid[i] = (uint8_t)(0x10 * (i % 16) + seq + (uint32_t)minutes);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
	p.id = 3;
	p.name = (char *)name;
	p.depth_um = 1000;
	p.speed_level = 3;
	p.area = PL__AREA__AREA_CHEEK;
	p.needle_count = 12;
	p.max_duration_s = 3600;
	cart.needle_count = 12;
	cart.needle_length_um = 2500;
	cart.lot = (char *)lot;
	cart.uid.data = uid;
	cart.uid.len = sizeof uid;
	tel.interval_us = interval_ms * 1000;
	tel.n_depth_um = tel.n_current_ma = tel.n_battery_mv = n;
	tel.depth_um = d;
	tel.current_ma = c;
	tel.battery_mv = b;
	sum.run_time_s = (uint32_t)(run_ms / 1000);
	sum.strokes = run_ms / 10;
	sum.max_depth_um = max_depth;
	sum.errors = 0;
	for (size_t i = 0; i < n_events; i++)
		sum.errors += events[i]->kind == PL__EVENT_KIND__EVENT_KIND_ERROR;
	rec.format = 1;
	rec.uuid.data = uuid;
	rec.uuid.len = 16;
	rec.seq = seq;
	rec.serial = (char *)serial;
	/* 2026-03-29 00:30 UTC: a daylight-saving night in Europe */
	rec.start_ms = uptime ? 5000 : 1774744200000LL + (int64_t)seq * 3600000LL;
	rec.end_ms = rec.start_ms + dur;
	rec.time_source = uptime ? PL__TIME_SOURCE__TIME_SOURCE_UPTIME
	                         : PL__TIME_SOURCE__TIME_SOURCE_RTC;
	rec.preset = &p;
	rec.preset_revision = 7;
	rec.cartridge = &cart;
	rec.n_events = n_events;
	rec.events = events;
	rec.telemetry = &tel;
	rec.summary = &sum;
	rec.fw_version = (char *)fw;
	size_t len = pl__session_record__get_packed_size(&rec);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	pl__session_record__pack(&rec, buf);
	FILE *f = fopen(out, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(out);
		return 1;
	}
	printf("%s %zu bytes, %zu samples, %zu events\n", out, len, n, n_events);
	for (size_t i = 0; i < n_events; i++)
		free(events[i]);
	free(events);
	free(buf);
	free(d);
	free(c);
	free(b);
	return 0;
}
