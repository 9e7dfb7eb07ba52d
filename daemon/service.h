/*
 * What penlinkd tells its service manager (sd_notify(3)): READY once the
 * socket and the archive are open, STATUS as pens come and go, RELOADING and
 * STOPPING around a reload and the shutdown, and WATCHDOG pings when the unit
 * sets WatchdogSec=.  Outside systemd ($NOTIFY_SOCKET unset) every call does
 * nothing, so penlinkd behaves the same when started by hand.
 */
#ifndef PENLINKD_SERVICE_H
#define PENLINKD_SERVICE_H

#include <stddef.h>

struct loop;

/* READY=1 with a first STATUS; starts the watchdog pings if the manager
 * asked for them (a loop timer at half the interval, so an event loop that
 * hangs stops pinging and systemd restarts the daemon).  Returns 0, or a
 * negative errno if the watchdog timer cannot be added. */
int service_ready(struct loop *l, size_t pens);
/* STATUS=<n> pens attached; called when that number changes. */
void service_pens(size_t pens);
/* RELOADING=1 before a configuration re-read, READY=1 after it. */
void service_reloading(void);
void service_reloaded(size_t pens);
/* STOPPING=1 as the shutdown starts. */
void service_stopping(void);

#endif
