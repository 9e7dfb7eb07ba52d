-- penlink central archive, schema version 1: sessions, their events, the
-- sites' audit trails and the conflicts penlinkd refused, in schema
-- `penlink`, plus the two roles that use them.  Applied by
-- `penctl central init URL` in one transaction with the others it lacks;
-- never edit a released migration, append a new file instead.

CREATE SCHEMA penlink;
COMMENT ON SCHEMA penlink IS 'penlink central archive (penctl central init)';

CREATE TABLE penlink.schema_version (
  version integer PRIMARY KEY,
  description text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per session, named by (serial, uuid) as everywhere in penlink.
-- `record` is the pen's record byte for byte; the constraints make central
-- refuse bytes that do not match their own digest or size.
CREATE TABLE penlink.sessions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  site text NOT NULL,                -- the site that delivered it first
  serial text NOT NULL,
  uuid uuid NOT NULL,
  seq bigint NOT NULL,
  size bigint NOT NULL CHECK (size >= 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  rtc_time boolean NOT NULL,         -- start/end are UTC (else pen uptime)
  start_ms bigint NOT NULL,
  end_ms bigint NOT NULL,
  start_utc timestamptz,             -- NULL when the pen's clock was never set
  end_utc timestamptz,
  archived_at timestamptz NOT NULL,  -- committed in the site's archive
  received_at timestamptz NOT NULL DEFAULT now(),
  n_events integer NOT NULL,
  n_samples integer NOT NULL,
  decode_error text,                 -- NULL: the record decoded
  summary jsonb,                     -- pl_record_to_json without samples
  record bytea NOT NULL,
  CONSTRAINT sessions_key UNIQUE (serial, uuid),
  CONSTRAINT sessions_record_size CHECK (octet_length(record) = size),
  CONSTRAINT sessions_record_digest
    CHECK (sha256 = encode(sha256(record), 'hex'))
);
CREATE INDEX sessions_site_start ON penlink.sessions (site, start_ms);
CREATE INDEX sessions_serial_start ON penlink.sessions (serial, start_ms);
CREATE INDEX sessions_start_utc ON penlink.sessions (start_utc);

CREATE TABLE penlink.events (
  session_id bigint NOT NULL REFERENCES penlink.sessions (id),
  idx integer NOT NULL,
  offset_ms bigint NOT NULL,
  kind integer NOT NULL,             -- record.proto EventKind
  kind_name text,                    -- "start", ...; NULL if unknown
  value integer NOT NULL,
  PRIMARY KEY (session_id, idx)
);

-- Each site's audit trail (who changed which pen's presets, refusals),
-- chained per site: hash = sha256 of the previous hash and this row.
CREATE TABLE penlink.audit (
  site text NOT NULL,
  local_id bigint NOT NULL,          -- the row's id in the site's archive
  utc_ms bigint NOT NULL,
  uid bigint NOT NULL,
  "user" text NOT NULL,
  pen text NOT NULL,
  action text NOT NULL,
  old_value text NOT NULL,
  new_value text NOT NULL,
  result text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  prev_hash text,
  hash text NOT NULL,
  PRIMARY KEY (site, local_id)
);

-- A different record offered under a (serial, uuid) central already holds:
-- refused, kept at the site, and recorded here.
CREATE TABLE penlink.conflicts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  site text NOT NULL,
  serial text NOT NULL,
  uuid uuid NOT NULL,
  central_sha256 text NOT NULL,
  offered_sha256 text NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only for everyone, owner included (only dropping the triggers
-- gets round them).
CREATE FUNCTION penlink.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'penlink.% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE FUNCTION penlink.audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  SELECT a.hash INTO NEW.prev_hash FROM penlink.audit a
    WHERE a.site = NEW.site AND a.local_id < NEW.local_id
    ORDER BY a.local_id DESC LIMIT 1;
  NEW.hash := encode(sha256(convert_to(concat_ws(E'\x1f',
    coalesce(NEW.prev_hash, ''), NEW.site, NEW.local_id::text,
    NEW.utc_ms::text, NEW.uid::text, NEW."user", NEW.pen, NEW.action,
    NEW.old_value, NEW.new_value, NEW.result), 'UTF8')), 'hex');
  RETURN NEW;
END
$$;

CREATE TRIGGER audit_chain BEFORE INSERT ON penlink.audit
  FOR EACH ROW EXECUTE FUNCTION penlink.audit_chain();

-- Each table T gets T_append_only (UPDATE, DELETE) and T_no_truncate.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['sessions', 'events', 'audit', 'conflicts'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON penlink.%I '
                   'FOR EACH ROW EXECUTE FUNCTION penlink.refuse_change()',
                   t || '_append_only', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON penlink.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION penlink.refuse_change()',
                   t || '_no_truncate', t);
  END LOOP;
END
$$;

-- The roles (cluster-wide; created once, kept if they exist).  Neither
-- logs in: give each site's login role penlink_ingest, and each reader's
-- penlink_read (README, "The central archive").
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'penlink_ingest') THEN
    CREATE ROLE penlink_ingest NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'penlink_read') THEN
    CREATE ROLE penlink_read NOLOGIN;
  END IF;
END
$$;

REVOKE ALL ON SCHEMA penlink FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA penlink FROM PUBLIC;
REVOKE ALL ON FUNCTION penlink.audit_chain() FROM PUBLIC;
GRANT USAGE ON SCHEMA penlink TO penlink_ingest, penlink_read;

-- penlinkd inserts what it sends and reads back only what it checks: the
-- schema version, each session's key, digest and first site, and the keys
-- of the audit entries.
GRANT SELECT ON penlink.schema_version TO penlink_ingest;
GRANT INSERT ON penlink.sessions, penlink.events, penlink.audit,
  penlink.conflicts TO penlink_ingest;
GRANT SELECT (id, site, serial, uuid, sha256) ON penlink.sessions
  TO penlink_ingest;
-- ON CONFLICT needs SELECT on the key it checks.
GRANT SELECT (site, local_id) ON penlink.audit TO penlink_ingest;

GRANT SELECT ON penlink.schema_version, penlink.sessions, penlink.events,
  penlink.audit, penlink.conflicts TO penlink_read;
