-- recs-platform on Snowflake, 4 of 5: the stage on the landing zone's events, the file format
-- of what Firehose writes (gzipped JSON lines, one event per line), and Snowpipe. Run it after
-- the SAM stack has the Snowflake role (03). Then give SHOW PIPES' notification_channel to
-- `sam deploy` as SnowpipeQueueArn: S3 announces every new events/ object to Snowpipe.
-- See 02_raw_tables.sql for how Snowpipe relates to the Dagster raw_events loader: the
-- loader is primary, the pipe a secondary, unvalidated copy.

USE ROLE SYSADMIN;

CREATE FILE FORMAT IF NOT EXISTS recs.raw.landing_jsonl_gz
  TYPE = JSON
  COMPRESSION = GZIP
  STRIP_OUTER_ARRAY = FALSE
  COMMENT = 'Firehose landing files: gzipped JSON lines (.jsonl.gz)';

-- Firehose writes <prefix>events/date=YYYY-MM-DD/<name>.jsonl.gz (deployments/lambda/template.yaml).
CREATE STAGE IF NOT EXISTS recs.raw.landing
  STORAGE_INTEGRATION = recs_landing_s3
  URL = 's3://{{LANDING_BUCKET}}/{{LANDING_PREFIX}}events/'
  FILE_FORMAT = (FORMAT_NAME = 'recs.raw.landing_jsonl_gz')
  COMMENT = 'recs-platform: the landing zone events, partitioned date=YYYY-MM-DD/';

-- Every line of every new file; a line that is not JSON is skipped, not the whole file (the
-- Dagster loader records such lines in raw.rejected_events).
CREATE PIPE IF NOT EXISTS recs.raw.events_landing_pipe
  AUTO_INGEST = TRUE
  COMMENT = 'recs-platform: landing files into raw.events_landing (secondary path)'
  AS
  COPY INTO recs.raw.events_landing (payload, source_file, file_row_number, file_last_modified)
  FROM (
    SELECT $1, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, METADATA$FILE_LAST_MODIFIED
    FROM @recs.raw.landing
  )
  FILE_FORMAT = (FORMAT_NAME = 'recs.raw.landing_jsonl_gz')
  PATTERN = '.*[.]jsonl[.]gz'
  ON_ERROR = CONTINUE;

-- notification_channel: the SQS queue ARN for the SAM parameter SnowpipeQueueArn.
SHOW PIPES LIKE 'EVENTS_LANDING_PIPE' IN SCHEMA recs.raw;
