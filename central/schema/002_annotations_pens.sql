-- penlink central archive, schema version 2: the sites' session
-- annotations, the pens as each site saw them, and each audit row's hashes
-- in its site's own chain.  Applied by `penctl central init URL` after 001
-- in the same transaction; never edit it once released.

-- One row per annotation a site's penlinkd recorded (penctl sessions
-- annotate), named by the site and its id there; the session by (serial,
-- uuid) as everywhere.  Sent only once central holds the session with the
-- site's digest (an annotation of a session in conflict stays at the site).
-- Append-only like the site's own table: a correction is a new row, and a
-- session's client reference is that of its latest annotation giving one.
CREATE TABLE penlink.annotations (
  site text NOT NULL,
  local_id bigint NOT NULL,          -- the annotation's id in the site's archive
  serial text NOT NULL,
  uuid uuid NOT NULL,
  utc_ms bigint NOT NULL,            -- when it was written (the site's clock)
  uid bigint NOT NULL,
  "user" text NOT NULL,              -- who wrote it (the Unix user at the site)
  client_ref text NOT NULL,          -- '' when this annotation gives none
  operator text NOT NULL,
  note text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT annotations_key PRIMARY KEY (site, local_id),
  CONSTRAINT annotations_session FOREIGN KEY (serial, uuid)
    REFERENCES penlink.sessions (serial, uuid)
);
CREATE INDEX annotations_session_time
  ON penlink.annotations (serial, uuid, utc_ms);
CREATE INDEX annotations_client ON penlink.annotations (client_ref)
  WHERE client_ref <> '';

-- The pens as the sites saw them at attach: append-only history, one row
-- each time a site saw a pen's model, hardware revision or firmware change
-- (and the first time it saw the pen), never an update.  So a site's role
-- keeps INSERT as its only write here too, and a firmware update leaves a
-- trace.  penlink.pens_latest is what a site's own `pens` table holds: the
-- latest row per (site, serial).
CREATE TABLE penlink.pens (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  site text NOT NULL,
  serial text NOT NULL,
  model text NOT NULL,
  hw_revision text NOT NULL,
  fw_version text NOT NULL,
  seen_at timestamptz NOT NULL,      -- when the site saw the pen so
  received_at timestamptz NOT NULL DEFAULT now(),
  -- A resend (penlinkd stopped before it recorded central's answer) is
  -- the same row.
  CONSTRAINT pens_key UNIQUE (site, serial, seen_at)
);
CREATE INDEX pens_serial_seen ON penlink.pens (serial, seen_at);

CREATE VIEW penlink.pens_latest AS
  SELECT DISTINCT ON (site, serial) site, serial, model, hw_revision,
    fw_version, seen_at
  FROM penlink.pens ORDER BY site, serial, seen_at DESC, id DESC;

-- Each audit row's hashes in its site's own chain (control/penlink_audit.h;
-- the site's `audit.prev_hash` and `audit.hash`), beside central's chain
-- (prev_hash, hash), so central's copy can be checked against the site's
-- trail: `penctl --central URL audit verify`.  NULL for rows sent by a
-- penlinkd that did not send them (schema version 1).
ALTER TABLE penlink.audit ADD COLUMN local_prev_hash text
  CHECK (local_prev_hash ~ '^[0-9a-f]{64}$');
ALTER TABLE penlink.audit ADD COLUMN local_hash text
  CHECK (local_hash ~ '^[0-9a-f]{64}$');

CREATE TRIGGER annotations_append_only BEFORE UPDATE OR DELETE ON penlink.annotations
  FOR EACH ROW EXECUTE FUNCTION penlink.refuse_change();
CREATE TRIGGER annotations_no_truncate BEFORE TRUNCATE ON penlink.annotations
  FOR EACH STATEMENT EXECUTE FUNCTION penlink.refuse_change();
CREATE TRIGGER pens_append_only BEFORE UPDATE OR DELETE ON penlink.pens
  FOR EACH ROW EXECUTE FUNCTION penlink.refuse_change();
CREATE TRIGGER pens_no_truncate BEFORE TRUNCATE ON penlink.pens
  FOR EACH STATEMENT EXECUTE FUNCTION penlink.refuse_change();

REVOKE ALL ON penlink.annotations, penlink.pens, penlink.pens_latest
  FROM PUBLIC;
-- penlinkd inserts; ON CONFLICT needs SELECT on the key it checks.
GRANT INSERT ON penlink.annotations, penlink.pens TO penlink_ingest;
GRANT SELECT (site, local_id) ON penlink.annotations TO penlink_ingest;
GRANT SELECT (site, serial, seen_at) ON penlink.pens TO penlink_ingest;
GRANT SELECT ON penlink.annotations, penlink.pens, penlink.pens_latest
  TO penlink_read;
