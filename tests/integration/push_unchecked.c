/*
 * push_unchecked PORT ID NAME DEPTH_UM SPEED: writes one preset (replacing
 * the one with that id, or adding it) with pl_pen_put_presets_unchecked(),
 * so t_presets.sh can prove the pen refuses bad presets on its own.  The
 * host-side checks are what it skips, so this hook is a test program's, not
 * penctl's.  Exit 0 when the pen took it, 4 when the pen refused it
 * (validation), 1 for anything else; the library's message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "penlink.h"
#include "penlink_test.h"

static unsigned long num(const char *what, const char *text)
{
	char *end;
	unsigned long v = strtoul(text, &end, 10);
	if (!*text || *end || v > UINT32_MAX) {
		fprintf(stderr, "push_unchecked: %s: '%s' is not a number\n", what,
		        text);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: push_unchecked PORT ID NAME DEPTH_UM SPEED\n");
		return 2;
	}
	struct pl_preset p = {
		.id = (uint32_t)num("ID", argv[2]),
		.depth_um = (uint32_t)num("DEPTH_UM", argv[4]),
		.speed_level = (uint32_t)num("SPEED", argv[5]),
		.area = PL_AREA_OTHER,
	};
	snprintf(p.name, sizeof p.name, "%s", argv[3]);

	struct pl_pen *pen;
	static struct pl_preset_set set, result;
	int rc = pl_pen_open(argv[1], NULL, &pen);
	if (rc == PL_OK) {
		rc = pl_pen_get_presets(pen, &set);
		if (rc == PL_OK) {
			size_t i = 0;
			while (i < set.count && set.presets[i].id != p.id)
				i++;
			if (i == PL_MAX_PRESETS) {
				rc = pl_error_set(PL_ERR_ARG, "the pen holds %d presets "
				                  "already", PL_MAX_PRESETS);
			} else {
				if (i == set.count)
					set.count++;
				set.presets[i] = p;
				rc = pl_pen_put_presets_unchecked(pen, &set, &result);
			}
		}
		pl_pen_close(pen);
	}
	if (rc == PL_OK)
		return 0;
	fprintf(stderr, "push_unchecked: %s: %s\n", pl_error_name(rc),
	        pl_error_message());
	return rc == PL_ERR_VALIDATION ? 4 : 1;
}
