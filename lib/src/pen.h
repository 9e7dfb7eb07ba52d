/* The pen handle, shared by pen.c, pen_presets.c and pen_sessions.c. */
#ifndef PL_PEN_H
#define PL_PEN_H

#include "engine.h"
#include "penlink.h"

struct pl_pen {
	struct pl_transport *t;
	struct pl__engine *e;
	struct pl_open_options opts;
	char serial[64];
	uint32_t version, max_frame, max_in_flight, caps;
	bool have_info; /* info holds the pen's limits */
	struct pl_device_info info;
	pl_event_fn ev;
	void *ev_ud;
};

/* The pen's limits: the cached device info, fetched on first use. */
int pl__pen_limits(struct pl_pen *pen, const struct pl_device_info **out);

/* Copies a string from the pen, truncating to cap and replacing control
 * bytes, so nothing a pen sends can garble a terminal or overflow. */
void pl__copy_text(char *dst, size_t cap, const char *src);

#endif
