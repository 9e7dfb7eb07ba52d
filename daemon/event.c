/* Monitor events, shared by every module that reports something. */
#include "daemon.h"

void event_init(Plctl__Event *ev, Plctl__EventKind kind, const char *serial)
{
	plctl__event__init(ev);
	ev->utc_ms = pl_time_utc_ms();
	ev->kind = kind;
	/* Never NULL: handlers print and compare it before packing. */
	ev->serial = (char *)(serial ? serial : "");
}
