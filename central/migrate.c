/*
 * `penctl central init URL`: brings a database's `penlink` schema to the
 * version this build knows, blocking (a command-line tool), in one
 * transaction: either every missing migration is applied and recorded, or
 * nothing changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "penlink_central.h"

/* Serializes concurrent `central init` runs on one database. */
#define PC_INIT_LOCK "7061696e6c696e6b" /* any constant bigint */

static int pq_fail(PGconn *conn, const PGresult *res, const char *doing)
{
	char line[768];
	pc_one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), line,
	            sizeof line);
	return pl_error_set(PL_ERR_IO, "%s: %s", doing, line);
}

/* Runs sql (no parameters); PL_OK if it returned status want. */
static int exec(PGconn *conn, const char *sql, ExecStatusType want,
                const char *doing, PGresult **keep)
{
	PGresult *res = PQexec(conn, sql);
	int rc = PL_OK;
	if (!res || PQresultStatus(res) != want)
		rc = pq_fail(conn, res, doing);
	if (keep && rc == PL_OK)
		*keep = res;
	else
		PQclear(res);
	return rc;
}

/* The version the database holds: 0 without a `penlink` schema. */
static int current_version(PGconn *conn, int *version)
{
	PGresult *res = NULL;
	int rc = exec(conn,
	              "SELECT to_regnamespace('penlink') IS NOT NULL, "
	              "to_regclass('penlink.schema_version') IS NOT NULL",
	              PGRES_TUPLES_OK, "look for the penlink schema", &res);
	if (rc)
		return rc;
	bool schema = !strcmp(PQgetvalue(res, 0, 0), "t");
	bool table = !strcmp(PQgetvalue(res, 0, 1), "t");
	PQclear(res);
	*version = 0;
	if (!schema)
		return PL_OK;
	if (!table)
		return pl_error_set(PL_ERR_CONFLICT,
		                    "the database has a schema \"penlink\" without "
		                    "penlink.schema_version: it was not created by "
		                    "penctl central init; refusing to touch it");
	rc = exec(conn, "SELECT coalesce(max(version), 0) FROM penlink.schema_version",
	          PGRES_TUPLES_OK, "read penlink.schema_version", &res);
	if (rc)
		return rc;
	*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return PL_OK;
}

static int apply(PGconn *conn, const struct pc_migration *m)
{
	char doing[128];
	snprintf(doing, sizeof doing, "migration %s", m->name);
	int rc = exec(conn, m->sql, PGRES_COMMAND_OK, doing, NULL);
	if (rc)
		return rc;
	char version[16];
	snprintf(version, sizeof version, "%d", m->version);
	const char *params[2] = {version, m->name};
	PGresult *res = PQexecParams(conn,
	                             "INSERT INTO penlink.schema_version "
	                             "(version, description) VALUES ($1, $2)",
	                             2, NULL, params, NULL, NULL, 0);
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = pq_fail(conn, res, "record the schema version");
	PQclear(res);
	return rc;
}

static void ignore_notice(void *ud, const char *msg)
{
	(void)ud;
	(void)msg;
}

int pc_init(const char *conninfo, int *from, int *to)
{
	int rc = pc_conninfo_check(conninfo);
	if (rc)
		return rc;
	*from = *to = 0;
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {conninfo, "penctl central init", NULL};
	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	if (!conn)
		return pl_error_set(PL_ERR_MEM, "out of memory connecting");
	if (PQstatus(conn) != CONNECTION_OK) {
		char where[256];
		pc_conninfo_describe(conninfo, where, sizeof where);
		char line[768];
		pc_one_line(PQerrorMessage(conn), line, sizeof line);
		PQfinish(conn);
		return pl_error_set(PL_ERR_IO, "cannot connect to %s: %s", where, line);
	}
	/* Notices (e.g. "schema exists, skipping") are not for the user. */
	PQsetNoticeProcessor(conn, ignore_notice, NULL);
	rc = exec(conn, "BEGIN", PGRES_COMMAND_OK, "begin", NULL);
	if (!rc)
		rc = exec(conn, "SELECT pg_advisory_xact_lock(x'" PC_INIT_LOCK "'::bigint)",
		          PGRES_TUPLES_OK, "take the migration lock", NULL);
	int v = 0;
	if (!rc)
		rc = current_version(conn, &v);
	if (!rc && v > pc_schema_version)
		rc = pl_error_set(PL_ERR_VERSION,
		                  "the central database has schema version %d, newer "
		                  "than this penctl knows (%d); use a newer penctl",
		                  v, pc_schema_version);
	*from = v;
	for (int i = v; !rc && i < pc_schema_version; i++)
		rc = apply(conn, &pc_migrations[i]);
	if (!rc)
		rc = exec(conn, "COMMIT", PGRES_COMMAND_OK, "commit", NULL);
	if (rc) {
		char msg[1024];
		snprintf(msg, sizeof msg, "%s", pl_error_message());
		PQclear(PQexec(conn, "ROLLBACK"));
		PQfinish(conn);
		return pl_error_set(rc, "%s", msg);
	}
	*to = v > pc_schema_version ? v : pc_schema_version;
	PQfinish(conn);
	return PL_OK;
}
