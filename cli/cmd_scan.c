/* penctl scan: the pens on USB, found on this host without penlinkd and
 * without opening a port (like mmcli -L or sigrok-cli --scan). */
#include <stdlib.h>
#include <string.h>

#include "penctl.h"

enum { SC_ALL = 1 };

struct scan_args {
	bool all;
};

static const struct optdef scan_opts[] = {
	OPT("--all", 0, NULL, SC_ALL,
	    "every USB serial port, not only pens (VID:PID 1209:0001)", OPT_FLAG,
	    struct scan_args, all),
	OPT_TABLE_END,
};

/* "busy (penlinkd, pid 812)", "busy", "free" or "?" (cannot tell). */
static const char *use_text(const struct pl_port_holder *h, bool known,
                            char *buf, size_t cap)
{
	if (!known)
		snprintf(buf, cap, "?");
	else if (!h->busy)
		snprintf(buf, cap, "free");
	else if (h->pid && h->name[0])
		snprintf(buf, cap, "busy (%s, pid %d)", h->name, h->pid);
	else if (h->pid)
		snprintf(buf, cap, "busy (pid %d)", h->pid);
	else
		snprintf(buf, cap, "busy");
	return buf;
}

static json_object *port_json(const struct pl_port_info *p,
                              const struct pl_port_holder *h, bool known)
{
	json_object *o = json_object_new_object();
	char id[16];
	snprintf(id, sizeof id, "%04x:%04x", p->vid, p->pid);
	json_object_object_add(o, "vid_pid", json_object_new_string(id));
	json_object_object_add(o, "vid", json_object_new_int(p->vid));
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	json_object_object_add(o, "serial", json_object_new_string(p->serial));
	json_object_object_add(o, "port", json_object_new_string(p->path));
	json_object_object_add(o, "product", json_object_new_string(p->description));
	json_object_object_add(o, "bus", p->bus >= 0 ? json_object_new_int(p->bus)
	                                             : NULL);
	json_object_object_add(o, "address", p->address >= 0
	                                         ? json_object_new_int(p->address)
	                                         : NULL);
	json_object_object_add(o, "state", known ? json_object_new_string(
	                                               h->busy ? "busy" : "free")
	                                         : NULL);
	json_object_object_add(o, "holder_pid",
	                       known && h->busy && h->pid ? json_object_new_int(h->pid)
	                                                  : NULL);
	json_object_object_add(o, "holder",
	                       known && h->busy && h->name[0]
	                           ? json_object_new_string(h->name)
	                           : NULL);
	return o;
}

static int scan_run(struct ctl *c, struct opt_iter *it)
{
	struct scan_args a = {false};
	int rc = opt_parse(c, it, &a, NULL);
	if (rc != PX_OK)
		return rc;
	bool all = a.all;
	/* Tests point this at a fake sysfs tree (README, penctl scan). */
	const char *root = getenv("PENLINK_SYSFS_ROOT");
	struct pl_port_info *ports;
	size_t n;
	int e = pl_ports_find_in(root, all ? 0 : PL_USB_VID, all ? 0 : PL_USB_PID,
	                         &ports, &n);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);

	json_object *list = json_object_new_array();
	struct table *t = NULL;
	if (!c->json) {
		static const char *const hdr[] = {"vid:pid", "serial", "port",
		                                  "state", "product", "usb"};
		t = table_new(6, hdr, "llllll");
	}
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		const struct pl_port_info *p = &ports[i];
		/* -s: only that pen. */
		if (c->serial && strcmp(c->serial, p->serial) != 0)
			continue;
		struct pl_port_holder h;
		bool known = pl_port_holder(p->path, &h) == PL_OK;
		shown++;
		if (c->json) {
			json_object_array_add(list, port_json(p, &h, known));
			continue;
		}
		char idb[16], use[96], usb[32];
		snprintf(idb, sizeof idb, "%04x:%04x", p->vid, p->pid);
		if (p->bus >= 0 && p->address >= 0)
			snprintf(usb, sizeof usb, "%03d/%03d", p->bus, p->address);
		else
			snprintf(usb, sizeof usb, "-");
		const char *row[] = {idb, p->serial[0] ? p->serial : "-", p->path,
		                     use_text(&h, known, use, sizeof use),
		                     p->description[0] ? p->description : "-", usb};
		table_row(t, row);
	}
	free(ports);

	if (shown == 0) {
		table_free(t);
		ctl_partial(c, "pens", list);
		char what[64];
		if (all)
			snprintf(what, sizeof what, "serial ports");
		else
			snprintf(what, sizeof what, "pens (%04x:%04x)", PL_USB_VID,
			         PL_USB_PID);
		if (c->serial)
			return ctl_fail_exit(c, PX_NOT_FOUND, "not_found", "not found",
			                     "no pen with serial %s on USB", c->serial);
		return ctl_fail_exit(c, PX_NOT_FOUND, "not_found", "not found",
		                     "no %s found on USB", what);
	}
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "pens", list);
		return ctl_emit_json(c, o);
	}
	json_object_put(list);
	table_print(t, stdout, "");
	table_free(t);
	return PX_OK;
}

CMD_SINGLE(scan, "scan", "[--all]",
           "list the pens on USB (VID:PID, serial, port, busy or free)",
           CMD_LOCAL, scan_opts,
           "Reads sysfs on this host: needs neither penlinkd nor --port, and "
           "opens no\nport.  A port is busy when a program holds its lock "
           "(penlinkd, penctl --port),\nand then names it.  -s SERIAL shows "
           "only that pen.\nExit 3 when no pen is found.\n",
           scan_run);
