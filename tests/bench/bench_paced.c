/*
 * Session download over a paced link (brief §6: >= 0.97 of the link's rate).
 *
 * penemu paces its side of a pty like a real USB link (--link-rate: its
 * bytes leave at that rate, one frame per transfer; --link-latency: they
 * reach the host that much later, and the host's requests reach the pen that
 * much later too).  The pty itself moves far faster, so the link is the
 * limit, as it is with a real pen; the figure is the download's throughput
 * over the link's rate.  Reaching it means the pipeline keeps enough
 * requests in flight to hide the round trip and the pen's own time, which a
 * raw copy never has to.
 *
 *   full speed: 1.2 MB/s, 1 ms latency (a USB frame), 2 MiB
 *   high speed: 40 MB/s, 250 us latency (two microframes), 16 MiB
 *
 * Each is downloaded `rounds` times (default 5); the median counts.
 *
 *   bench_paced [rounds]
 */
#include <penlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

#define MAX_ROUNDS 15

struct profile {
	const char *name;
	unsigned long rate;       /* bytes a second */
	unsigned long latency_us; /* each way */
	unsigned long bytes;
};

static int count(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	uint64_t *n = ud;
	(void)offset;
	(void)data;
	*n += len;
	return PL_OK;
}

/* The median fraction of the link's rate the download reached, or -1. */
static double run(const struct profile *p, int rounds)
{
	char rate[32], lat[32], bytes[32];
	snprintf(rate, sizeof rate, "%lu", p->rate);
	snprintf(lat, sizeof lat, "%lu", p->latency_us);
	snprintf(bytes, sizeof bytes, "%lu", p->bytes);
	const char *args[] = {"--sessions", "1", "--session-bytes", bytes, "--seed", "5",
	                      "--link-rate", rate, "--link-latency", lat, NULL};
	struct emu emu;
	if (emu_start(&emu, args) != 0)
		return -1;
	struct pl_pen *pen;
	struct pl_session_info *s = NULL;
	size_t n = 0;
	/* As many requests in flight as the pen takes (penemu: 64), so the
	 * window covers the round trip whatever the host's scheduling adds. */
	struct pl_open_options oo;
	pl_open_options_init(&oo);
	oo.max_in_flight = 64;
	if (pl_pen_open(emu.port, &oo, &pen) != PL_OK ||
	    pl_pen_list_sessions(pen, &s, &n) != PL_OK || n != 1) {
		fprintf(stderr, "bench_paced: %s\n", pl_error_message());
		emu_stop(&emu);
		return -1;
	}
	double frac[MAX_ROUNDS];
	for (int r = 0; r < rounds; r++) {
		uint64_t got = 0;
		struct pl_download_options o = {.sink = count, .ud = &got};
		long long t0 = emu_now_ns();
		int rc = pl_pen_download_session(pen, &s[0], 0, &o);
		long long t1 = emu_now_ns();
		if (rc != PL_OK || got != s[0].size) {
			fprintf(stderr, "bench_paced: download failed: %s\n", pl_error_message());
			pl_pen_close(pen);
			emu_stop(&emu);
			free(s);
			return -1;
		}
		double mb_s = (double)got / 1e6 / ((double)(t1 - t0) / 1e9);
		frac[r] = mb_s * 1e6 / (double)p->rate;
		printf("  %s round %d: %llu bytes at %.3f MB/s = %.3f of %.1f MB/s\n",
		       p->name, r + 1, (unsigned long long)got, mb_s, frac[r],
		       (double)p->rate / 1e6);
	}
	printf("  %s: window %u requests of up to %u bytes\n", p->name,
	       pl_pen_max_in_flight(pen), pl_pen_max_frame(pen));
	pl_pen_close(pen);
	emu_stop(&emu);
	free(s);
	return emu_median(frac, rounds);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	if (rounds <= 0 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: bench_paced [rounds (1..%d)]\n", MAX_ROUNDS);
		return 2;
	}
	static const struct profile fs = {"full speed", 1200000, 1000, 2u << 20};
	static const struct profile hs = {"high speed", 40000000, 250, 16u << 20};
	double f = run(&fs, rounds);
	double h = run(&hs, rounds);
	if (f < 0 || h < 0)
		return 1;
	printf("paced link: download at %.3f of a full-speed link (1.2 MB/s, 1 ms) "
	       "and %.3f of a high-speed link (40 MB/s, 250 us), median of %d "
	       "(target >= 0.97 each): %s\n",
	       f, h, rounds, f >= 0.97 && h >= 0.97 ? "PASS" : "FAIL");
	return 0;
}
