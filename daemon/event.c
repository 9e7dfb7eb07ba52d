/* Monitor events, shared by every module that reports something. */
#include <time.h>

#include "daemon.h"

void event_init(Plctl__Event *ev, Plctl__EventKind kind, const char *serial)
{
	plctl__event__init(ev);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ev->utc_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	ev->kind = kind;
	/* Never NULL: handlers print and compare it before packing. */
	ev->serial = (char *)(serial ? serial : "");
}
