/*
 * The central PostgreSQL archive, the part penlinkd and penctl share:
 * connection strings (checked the same way in penlinkd.conf and on penctl's
 * command line), the schema's versioned migrations (central/schema/NNN_name.sql,
 * compiled in) and the runner that applies them.
 *
 * Functions return PL_OK or a negative enum pl_return (penlink.h) with the
 * detail in pl_error_message().  Nothing here logs or prints; nothing here
 * ever puts a connection string's secrets into a message.
 */
#ifndef PENLINK_CENTRAL_H
#define PENLINK_CENTRAL_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <penlink.h>

/* One migration: takes the schema from version - 1 to version. */
struct pc_migration {
	int version;
	const char *name;  /* "001_initial" */
	const char *sql;   /* several statements */
};
extern const struct pc_migration pc_migrations[];
/* The newest version this build knows (= the number of migrations). */
extern const int pc_schema_version;

/*
 * Checks a libpq connection string (key=value pairs or a postgresql:// URI)
 * for use by penlink: it must parse, and must not carry a password (those
 * belong in a passfile, ~/.pgpass or passfile=, or a service file, never in
 * a configuration file, a command line or a log).  PL_ERR_ARG with a message
 * naming the problem (never the secret) otherwise.
 */
int pc_conninfo_check(const char *conninfo);

/*
 * What a connection string points at, for logs and status, without
 * secrets: "host=/run/pg port=5432 dbname=central user=site_a" (only those
 * four keys, whichever it sets).  Cut to fit cap (cap > 0).  A string that
 * does not parse gives "(unparsable connection string)".
 */
void pc_conninfo_describe(const char *conninfo, char *out, size_t cap);

/*
 * Connects (blocking) and applies the migrations the database lacks, each
 * with its row in penlink.schema_version, all in one transaction under an
 * advisory lock (two concurrent runs serialize).  *from: the version found
 * (0: none), *to: the version after.  A database whose schema is newer
 * than pc_schema_version is refused (PL_ERR_VERSION) and left untouched;
 * one with a `penlink` schema that penctl did not create (no
 * schema_version table) is refused (PL_ERR_CONFLICT).  Connection and SQL
 * failures are PL_ERR_IO with PostgreSQL's message.
 */
int pc_init(const char *conninfo, int *from, int *to);

/* PostgreSQL's error text as one line (trailing newlines and the
 * "ERROR:  " prefix dropped, inner newlines as "; "), into out. */
void pc_one_line(const char *msg, char *out, size_t cap);

#endif
