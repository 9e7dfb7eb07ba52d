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
	PX_DAEMON = 9,    /* penlinkd is not running, or went away */
	/* Ctrl-C stopped a pull (after saying what was kept), as a shell
	 * reports a command killed by SIGINT. */
	PX_INTERRUPTED = 130,
};

/* Not a libpenlink code: penctl's own, for "penlinkd is not running or went
 * away", so the daemon backend can fail the way the library does (a code
 * plus pl_error_message()) and still map to PX_DAEMON.  Far below the
 * library's range so it can never collide with a future pl_return. */
#define PX_ERR_DAEMON (-1000)

/* The exit code for a libpenlink return code (enum pl_return). */
int exit_code_for(int pl_code);

/* A stable machine name for a libpenlink return code, for --json errors
 * ("timeout", "validation", ...). */
const char *error_slug_for(int pl_code);

/* The "<what>" of "penctl: <what>: <detail>" for a code; NULL when the
 * detail says it all. */
const char *error_label_for(int pl_code);

#endif
