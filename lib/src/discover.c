/* Finding pens: USB serial ports by VID/PID, through libserialport's
 * enumeration (sysfs on Linux). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libserialport.h>

#include "internal.h"

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/*
 * With no matching port: PL_OK, *count 0 and *out NULL (free(NULL) is
 * fine, so callers free unconditionally).
 */
int pl_ports_find(uint16_t vid, uint16_t pid, struct pl_port_info **out,
                  size_t *count)
{
	if (!out || !count)
		return pl__fail(PL_ERR_ARG, "pl_ports_find: NULL argument");
	*out = NULL;
	*count = 0;

	struct sp_port **list = NULL;
	enum sp_return r = sp_list_ports(&list);
	if (r == SP_ERR_MEM)
		return pl__fail(PL_ERR_MEM, "out of memory listing serial ports");
	if (r != SP_OK)
		return pl__fail(PL_ERR_IO, "cannot list serial ports (libserialport error %d)",
		                (int)r);

	struct pl_port_info *ports = NULL;
	size_t n = 0, cap = 0;
	int rc = PL_OK;
	for (size_t i = 0; list[i]; i++) {
		struct sp_port *p = list[i];
		if (sp_get_port_transport(p) != SP_TRANSPORT_USB)
			continue;
		int pvid = 0, ppid = 0;
		if (sp_get_port_usb_vid_pid(p, &pvid, &ppid) != SP_OK)
			continue;
		if (vid != 0 && (pvid != vid || ppid != pid))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct pl_port_info *np = realloc(ports, ncap * sizeof *np);
			if (!np) {
				rc = pl__fail(PL_ERR_MEM, "out of memory listing serial ports");
				break;
			}
			ports = np;
			cap = ncap;
		}
		struct pl_port_info *pi = &ports[n++];
		memset(pi, 0, sizeof *pi);
		copy_str(pi->path, sizeof pi->path, sp_get_port_name(p));
		copy_str(pi->serial, sizeof pi->serial, sp_get_port_usb_serial(p));
		copy_str(pi->description, sizeof pi->description,
		         sp_get_port_description(p));
		pi->vid = (uint16_t)pvid;
		pi->pid = (uint16_t)ppid;
		int bus = -1, addr = -1;
		if (sp_get_port_usb_bus_address(p, &bus, &addr) != SP_OK)
			bus = addr = -1;
		pi->bus = bus;
		pi->address = addr;
	}
	sp_free_port_list(list);

	if (rc != PL_OK) {
		free(ports);
		return rc;
	}
	if (n == 0) {
		free(ports);
		ports = NULL;
	}
	*out = ports;
	*count = n;
	return PL_OK;
}
