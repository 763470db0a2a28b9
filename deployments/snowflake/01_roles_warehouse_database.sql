-- recs-platform on Snowflake, 1 of 5: roles, the service user, the warehouse, the database and
-- its schemas. Run the files in order (01 to 05) as a user who may use ACCOUNTADMIN; each file
-- switches to the role it needs. Replace the {{...}} placeholders first (README, "Production
-- set-up"). Nothing secret is in these files: the service user's password is set by hand.
--
-- Roles (functional roles under SYSADMIN, as Snowflake recommends):
--   recs_loader       writes raw (the Dagster raw_events loader; operates the Snowpipe)
--   recs_transformer  reads raw, builds analytics (dbt)
--   recs_reader       reads analytics (analysts, dashboards)
--   recs_pipeline     loader + transformer: the one role Dagster connects with. The platform
--                     reads a single SNOWFLAKE_ROLE for both the raw_events loader and the dbt
--                     `prod` target, so it runs with the two roles' privileges together.

USE ROLE SECURITYADMIN;

CREATE ROLE IF NOT EXISTS recs_loader COMMENT = 'recs-platform: loads raw.events and raw.rejected_events';
CREATE ROLE IF NOT EXISTS recs_transformer COMMENT = 'recs-platform: dbt, from raw into analytics';
CREATE ROLE IF NOT EXISTS recs_reader COMMENT = 'recs-platform: reads analytics';
CREATE ROLE IF NOT EXISTS recs_pipeline COMMENT = 'recs-platform: what Dagster runs as (SNOWFLAKE_ROLE)';

GRANT ROLE recs_loader TO ROLE recs_pipeline;
GRANT ROLE recs_transformer TO ROLE recs_pipeline;
GRANT ROLE recs_pipeline TO ROLE SYSADMIN;
GRANT ROLE recs_reader TO ROLE SYSADMIN;

-- Dagster's user (SNOWFLAKE_USER). The platform signs in with a password (SNOWFLAKE_PASSWORD),
-- which Snowflake allows only for LEGACY_SERVICE users; set it in a worksheet, never in a file:
--   ALTER USER recs_dagster SET PASSWORD = '...';
CREATE USER IF NOT EXISTS recs_dagster
  TYPE = LEGACY_SERVICE
  DEFAULT_ROLE = recs_pipeline
  DEFAULT_WAREHOUSE = recs_wh
  COMMENT = 'recs-platform: Dagster (raw_events loader, dbt prod target)';
GRANT ROLE recs_pipeline TO USER recs_dagster;

USE ROLE SYSADMIN;

-- SNOWFLAKE_WAREHOUSE. X-Small suspends after a minute idle: the daily loads and dbt runs are
-- short.
CREATE WAREHOUSE IF NOT EXISTS recs_wh
  WAREHOUSE_SIZE = 'XSMALL'
  AUTO_SUSPEND = 60
  AUTO_RESUME = TRUE
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'recs-platform: loads, dbt, training queries';

-- SNOWFLAKE_DATABASE.
CREATE DATABASE IF NOT EXISTS recs COMMENT = 'recs-platform';
-- raw: what landed, one row per line (recs_platform/warehouse/schema.py); the stage and the pipe.
CREATE SCHEMA IF NOT EXISTS recs.raw COMMENT = 'recs-platform: raw events as landed';
-- analytics: dbt's models (dbt_project, target prod, schema analytics).
CREATE SCHEMA IF NOT EXISTS recs.analytics COMMENT = 'recs-platform: dbt models';
