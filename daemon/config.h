/*
 * /etc/penlink/penlinkd.conf (INI, parsed with inih).  Every key is
 * documented in penlinkd.conf.example; a bad value is refused with the file,
 * line and key named.
 */
#ifndef PLD_CONFIG_H
#define PLD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_MAX_USB_IDS 16
#define CONFIG_MAX_CAPS 16

struct usb_id { uint16_t vid, pid; };

struct depth_cap {
	char group[64];        /* Unix group */
	uint32_t max_depth_um; /* presets deeper than this are refused for it */
};

struct config {
	/* [daemon] */
	char socket_path[256];     /* socket = /run/penlink/penlinkd.sock */
	char db_path[256];         /* database = /var/lib/penlink/archive.db */
	char socket_group[64];     /* socket_group = penlink ("" = the daemon's) */
	mode_t socket_mode;        /* socket_mode = 0660 (octal) */
	int log_level;             /* log_level = info (err|warn|notice|info|debug) */
	/* [usb] */
	bool usb_enabled;          /* enabled = yes */
	struct usb_id usb_ids[CONFIG_MAX_USB_IDS]; /* ids = 1209:0001, ... */
	int n_usb_ids;
	/* [access] */
	char logs_group[64];       /* logs_group = penlink-logs: may read and export sessions */
	char presets_group[64];    /* presets_group = penlink-tech: may change presets */
	/* [policy] */
	uint32_t confirm_above_um; /* confirm_above_mm = 1.5: deeper needs --confirm */
	struct depth_cap caps[CONFIG_MAX_CAPS]; /* depth_cap.GROUP = MM */
	int n_caps;
	/* [pens] */
	int timeout_ms;            /* request_timeout_ms = 1000 */
	int handshake_ms;          /* handshake_timeout_ms = 5000 */
	int window;                /* download_window = 0 (as many as the pen allows) */
};

/* Compiled-in defaults (system paths). */
void config_defaults(struct config *c);
/* Reads path over the defaults.  A missing file is fine when !required.
 * On error returns -1 with "FILE:LINE: [section] key: why" in err. */
int config_load(struct config *c, const char *path, bool required, char *err,
                size_t errlen);

#endif
