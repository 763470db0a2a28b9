-- recs-platform on Snowflake, 2 of 5: the raw tables.
--
-- raw.events and raw.rejected_events are exactly what recs_platform/warehouse/schema.py
-- declares (RAW_EVENT_COLUMNS, REJECTED_EVENT_COLUMNS, their Snowflake types; a test compares
-- them column by column). The loader creates them itself if they are missing (CREATE TABLE IF
-- NOT EXISTS); creating them here first gives them their owner (SYSADMIN), clustering and
-- comments.
--
-- Two ways into Snowflake, and which one is primary:
--   * PRIMARY: the Dagster asset `raw_events` (recs_platform/warehouse/snowflake_raw.py) lists a
--     day's files on S3, reads them itself, validates every line against the event contract,
--     stages good rows and rejections in transient tables and then, in ONE transaction, deletes
--     that day from raw.events and raw.rejected_events and inserts the staged rows. dbt reads
--     raw.events and nothing else; loading a day twice leaves the tables as loading it once.
--   * SECONDARY: Snowpipe (04_stage_and_pipe.sql) copies every new file, as Firehose lands it,
--     into raw.events_landing: one VARIANT per line, unvalidated, append-only, minutes after
--     arrival. It is for near-real-time looks (events in the last hour, what a new tracker
--     sends) and an audit of what arrived; nothing downstream reads it, and dropping the pipe
--     changes nothing else.

USE ROLE SYSADMIN;

CREATE TABLE IF NOT EXISTS recs.raw.events (
  event_id VARCHAR NOT NULL,
  session_id VARCHAR NOT NULL,
  user_id VARCHAR,
  event_type VARCHAR NOT NULL,
  product_action VARCHAR,
  product_sku VARCHAR,
  url VARCHAR,
  client_ts NUMBER(19, 0) NOT NULL,
  server_ts NUMBER(19, 0) NOT NULL,
  source VARCHAR NOT NULL,
  event_date DATE NOT NULL,
  payload VARIANT NOT NULL,
  source_file VARCHAR NOT NULL,
  line_number NUMBER(19, 0) NOT NULL
)
-- Every load deletes and inserts one event_date; dbt reads date windows.
CLUSTER BY (event_date)
COMMENT = 'One row per landed line (recs_platform raw_events); the day replaced in one transaction';

CREATE TABLE IF NOT EXISTS recs.raw.rejected_events (
  event_date DATE NOT NULL,
  source_file VARCHAR NOT NULL,
  line_number NUMBER(19, 0) NOT NULL,
  reason VARCHAR NOT NULL,
  raw_line VARCHAR
)
COMMENT = 'Lines that broke the event contract, with file, line and reason (recs_platform raw_events)';

-- Snowpipe's target (the secondary path above). Not read by dbt.
CREATE TABLE IF NOT EXISTS recs.raw.events_landing (
  payload VARIANT,
  source_file VARCHAR NOT NULL,
  file_row_number NUMBER(19, 0) NOT NULL,
  file_last_modified TIMESTAMP_NTZ,
  loaded_at TIMESTAMP_LTZ NOT NULL DEFAULT CURRENT_TIMESTAMP()
)
COMMENT = 'Snowpipe copy of every landed line, unvalidated and append-only; not read by dbt';
