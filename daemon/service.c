/* systemd readiness, status and watchdog (service.h). */
#include "service.h"

#include "log.h"
#include "loop.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

static struct loop *watchdog_loop;
static int64_t watchdog_half_ms;

static void notify(const char *state)
{
	int rc = sd_notify(0, state);
	/* 0 means "not under systemd": nothing to say.  A failure to reach
	 * the manager is worth one line, never a stop. */
	if (rc < 0)
		log_warn("cannot notify the service manager (%s): %s", state,
		         strerror(-rc));
}

static void watchdog_ping(void *ud)
{
	(void)ud;
	notify("WATCHDOG=1");
	if (!loop_add_timer(watchdog_loop, watchdog_half_ms, watchdog_ping, NULL))
		log_err("cannot re-arm the watchdog timer; systemd will "
		        "restart penlinkd when WatchdogSec= runs out");
}

static void status_line(char *buf, size_t cap, size_t pens)
{
	snprintf(buf, cap, "STATUS=%zu pen%s attached", pens, pens == 1 ? "" : "s");
}

int service_ready(struct loop *l, size_t pens)
{
	char state[64];
	status_line(state, sizeof state, pens);
	char msg[96];
	snprintf(msg, sizeof msg, "READY=1\n%s", state);
	notify(msg);

	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	watchdog_loop = l;
	watchdog_half_ms = (int64_t)(usec / 2000u);
	if (watchdog_half_ms < 1)
		watchdog_half_ms = 1;
	if (!loop_add_timer(l, watchdog_half_ms, watchdog_ping, NULL))
		return -ENOMEM;
	log_info("watchdog: pinging systemd every %" PRId64 " ms", watchdog_half_ms);
	return 0;
}

void service_pens(size_t pens)
{
	char state[64];
	status_line(state, sizeof state, pens);
	notify(state);
}

void service_reloading(void)
{
	notify("RELOADING=1");
}

void service_reloaded(size_t pens)
{
	char state[64];
	status_line(state, sizeof state, pens);
	char msg[96];
	snprintf(msg, sizeof msg, "READY=1\n%s", state);
	notify(msg);
}

void service_stopping(void)
{
	notify("STOPPING=1");
}
