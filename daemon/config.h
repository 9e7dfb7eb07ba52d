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

#include <penlink.h>

#define CONFIG_MAX_USB_IDS 16

struct usb_id { uint16_t vid, pid; };

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
	/* [policy]: every key goes to pl_policy_set() (confirm_above_mm,
	 * depth_cap.GROUP), so penlinkd and penctl --policy read the same
	 * section the same way.  Owned; never NULL after config_defaults(). */
	struct pl_policy *policy;
	/* [pens] */
	int timeout_ms;            /* request_timeout_ms = 1000 */
	int handshake_ms;          /* handshake_timeout_ms = 5000 */
	int window;                /* download_window = 0 (as many as the pen allows) */
	/* [central]: the clinic's central PostgreSQL archive (issue 12).  No
	 * section: central_url is "" and penlinkd never replicates. */
	char central_url[1024];    /* url = libpq conninfo or URI, no password */
	char central_site[64];     /* site = this site's name */
	int central_retry_max_s;   /* retry_max_s = 60: backoff cap */
	int central_batch_kib;     /* batch_kib = 8192: most record bytes a batch */
};

/* Compiled-in defaults (system paths, the library's default policy).
 * PL_OK or PL_ERR_MEM; free with config_free() either way. */
int config_defaults(struct config *c);
void config_free(struct config *c);
/*
 * Reads path over what c holds.  A missing file is fine when !required.  A
 * [policy] section, when the file has one, replaces c's policy as a whole
 * (keys it leaves out take the library's defaults).  On error returns -1
 * with "FILE:LINE: [section] key: why" in err, and c is unchanged.
 */
int config_load(struct config *c, const char *path, bool required, char *err,
                size_t errlen);

#endif
