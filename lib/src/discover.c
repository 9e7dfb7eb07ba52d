/* Finding pens: USB serial ports by VID/PID, read from sysfs (Linux), and
 * whether a program holds one, read from /proc/locks.
 *
 * The walk reads what libserialport's enumeration reads (the tty class,
 * each tty's device link, the USB device's attributes above it), but from
 * a root that tests can point at a fake tree, so what penctl scan prints
 * is tested on machines without USB. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "internal.h"

/* Levels above a tty's device link where its USB device may be: one for
 * cdc_acm (the interface, then the device), two for usb-serial adapters
 * (ttyUSB0 -> port -> interface -> device). */
#define USB_DEVICE_MAX_UP 4

/* The first line of dir/name, without its newline; "" if unreadable. */
static void read_attr(const char *dir, const char *name, char *out, size_t cap)
{
	char path[PATH_MAX];
	out[0] = '\0';
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(out, (int)cap, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
}

static bool read_hex16(const char *dir, const char *name, uint16_t *v)
{
	char text[16], *end;
	read_attr(dir, name, text, sizeof text);
	if (!isxdigit((unsigned char)text[0]))
		return false;
	unsigned long n = strtoul(text, &end, 16);
	if (*end || n > 0xffff)
		return false;
	*v = (uint16_t)n;
	return true;
}

static int read_int(const char *dir, const char *name)
{
	char text[16], *end;
	read_attr(dir, name, text, sizeof text);
	if (!isdigit((unsigned char)text[0]))
		return -1;
	long n = strtol(text, &end, 10);
	return *end || n > INT_MAX ? -1 : (int)n;
}

/* The USB device directory above a tty's device (a directory with
 * idVendor and idProduct), in dev (PATH_MAX bytes); false if the tty is
 * not on USB. */
static bool usb_device_of(const char *tty_dir, char *dev)
{
	char link[PATH_MAX];
	if (snprintf(link, sizeof link, "%s/device", tty_dir) >= (int)sizeof link)
		return false;
	if (!realpath(link, dev))
		return false; /* virtual ttys (pts, console) have no device */
	for (int up = 0; up <= USB_DEVICE_MAX_UP; up++) {
		char probe[PATH_MAX + 16];
		struct stat st;
		snprintf(probe, sizeof probe, "%s/idVendor", dev);
		if (stat(probe, &st) == 0) {
			snprintf(probe, sizeof probe, "%s/idProduct", dev);
			if (stat(probe, &st) == 0)
				return true;
		}
		char *slash = strrchr(dev, '/');
		if (!slash || slash == dev)
			return false;
		*slash = '\0';
	}
	return false;
}

static int by_path(const void *a, const void *b)
{
	const struct pl_port_info *x = a, *y = b;
	/* ttyACM2 before ttyACM10: shorter names first, then bytes. */
	size_t lx = strlen(x->path), ly = strlen(y->path);
	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->path, y->path);
}

int pl_ports_find_in(const char *root, uint16_t vid, uint16_t pid,
                     struct pl_port_info **out, size_t *count)
{
	if (!out || !count)
		return pl__fail(PL_ERR_ARG, "pl_ports_find: NULL argument");
	*out = NULL;
	*count = 0;
	if (!root || !*root)
		root = "";
	else if (strcmp(root, "/") == 0)
		root = "";

	char class_dir[PATH_MAX];
	if (snprintf(class_dir, sizeof class_dir, "%s/sys/class/tty", root) >=
	    (int)sizeof class_dir)
		return pl__fail(PL_ERR_ARG, "pl_ports_find: root too long");
	DIR *d = opendir(class_dir);
	if (!d) {
		/* No tty class at all (a container without sysfs): no ports. */
		if (errno == ENOENT)
			return PL_OK;
		return pl__fail(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_IO,
		                "cannot list serial ports in %s: %s", class_dir,
		                strerror(errno));
	}

	struct pl_port_info *ports = NULL;
	size_t n = 0, cap = 0;
	int rc = PL_OK;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char tty_dir[PATH_MAX], dev[PATH_MAX], node[PATH_MAX];
		/* A name that does not fit a pl_port_info is no port to open. */
		int len = snprintf(node, sizeof node, "%s/dev/%s", root, e->d_name);
		if (len < 0 || (size_t)len >= sizeof ports->path ||
		    snprintf(tty_dir, sizeof tty_dir, "%s/%s", class_dir, e->d_name) >=
		        (int)sizeof tty_dir ||
		    !usb_device_of(tty_dir, dev))
			continue;
		uint16_t pvid, ppid;
		if (!read_hex16(dev, "idVendor", &pvid) ||
		    !read_hex16(dev, "idProduct", &ppid))
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
		memcpy(pi->path, node, (size_t)len + 1);
		read_attr(dev, "serial", pi->serial, sizeof pi->serial);
		/* What libserialport calls the description: the product string. */
		read_attr(dev, "product", pi->description, sizeof pi->description);
		pi->vid = pvid;
		pi->pid = ppid;
		pi->bus = read_int(dev, "busnum");
		pi->address = read_int(dev, "devnum");
	}
	closedir(d);

	if (rc != PL_OK || n == 0) {
		free(ports);
		return rc;
	}
	qsort(ports, n, sizeof *ports, by_path);
	*out = ports;
	*count = n;
	return PL_OK;
}

int pl_ports_find(uint16_t vid, uint16_t pid, struct pl_port_info **out,
                  size_t *count)
{
	return pl_ports_find_in(NULL, vid, pid, out, count);
}

/* ------------------------------------------------------------------ busy */

int pl_port_holder(const char *path, struct pl_port_holder *out)
{
	if (!path || !out)
		return pl__fail(PL_ERR_ARG, "pl_port_holder: NULL argument");
	memset(out, 0, sizeof *out);
	struct stat st;
	if (stat(path, &st) != 0)
		return pl__fail(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_NO_PORT,
		                "no such port: %s: %s", path, strerror(errno));
	FILE *f = fopen("/proc/locks", "re");
	if (!f)
		return pl__fail(PL_ERR_IO, "cannot read /proc/locks: %s",
		                strerror(errno));
	/* "1: FLOCK  ADVISORY  WRITE 812 00:05:87 0 EOF"; waiters are
	 * "1: -> FLOCK ..." and hold nothing. */
	char line[256];
	while (fgets(line, sizeof line, f)) {
		char kind[16], mode[16], rw[16];
		int pid;
		unsigned maj, min;
		unsigned long long ino;
		if (strstr(line, "->") ||
		    sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%llu", kind, mode, rw,
		           &pid, &maj, &min, &ino) != 7)
			continue;
		if (strcmp(kind, "FLOCK") != 0 || ino != (unsigned long long)st.st_ino ||
		    maj != major(st.st_dev) || min != minor(st.st_dev))
			continue;
		out->busy = true;
		out->pid = pid > 0 ? pid : 0;
		if (out->pid) {
			char comm_path[64];
			snprintf(comm_path, sizeof comm_path, "/proc/%d", out->pid);
			read_attr(comm_path, "comm", out->name, sizeof out->name);
		}
		break;
	}
	fclose(f);
	return PL_OK;
}
