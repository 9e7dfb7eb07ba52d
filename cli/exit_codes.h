/* penctl's exit codes: part of its documented interface (penctl --help,
 * README.md), so scripts can branch on them.  Never renumber. */
#ifndef PENCTL_EXIT_CODES_H
#define PENCTL_EXIT_CODES_H

enum penctl_exit {
	/* PX_ because stdlib.h owns EXIT_* and sysexits.h owns EX_*. */
	PX_OK = 0,
	PX_FAIL = 1,      /* failure reported by the pen, or any other error */
	PX_USAGE = 2,     /* bad command line */
	PX_NOT_FOUND = 3, /* no such port, session, file or serial */
	PX_REFUSED = 4,   /* refused by validation (host or pen) or policy */
	PX_PERM = 5,      /* permission denied */
	PX_IO = 6,        /* timeout, I/O error, pen unplugged */
	PX_BUSY = 7,      /* port busy, pen busy, revision changed meanwhile */
	PX_INTEGRITY = 8, /* digest mismatch, read-back mismatch, corrupt record */
};

/* The exit code for a libpenlink return code (enum pl_return). */
int exit_code_for(int pl_code);

/* A stable machine name for a libpenlink return code, for --json errors
 * ("timeout", "validation", ...). */
const char *error_slug_for(int pl_code);

#endif
