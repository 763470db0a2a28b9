-- recs-platform on Snowflake, 5 of 5: what each role may do, and nothing more.
-- SECURITYADMIN holds MANAGE GRANTS, which future grants need.

USE ROLE SECURITYADMIN;

-- Everyone computes on the one warehouse, in the one database.
GRANT USAGE ON WAREHOUSE recs_wh TO ROLE recs_loader;
GRANT USAGE ON WAREHOUSE recs_wh TO ROLE recs_transformer;
GRANT USAGE ON WAREHOUSE recs_wh TO ROLE recs_reader;
GRANT USAGE ON DATABASE recs TO ROLE recs_loader;
GRANT USAGE ON DATABASE recs TO ROLE recs_transformer;
GRANT USAGE ON DATABASE recs TO ROLE recs_reader;

-- recs_loader: the raw_events loader. Before each load it runs CREATE SCHEMA IF NOT EXISTS raw
-- and CREATE TABLE IF NOT EXISTS for both tables (recs_platform/warehouse/snowflake_raw.py),
-- hence CREATE SCHEMA on the database; it stages rows in transient tables of its own in raw
-- (CREATE TABLE), then deletes and inserts one day.
GRANT CREATE SCHEMA ON DATABASE recs TO ROLE recs_loader;
GRANT USAGE, CREATE TABLE ON SCHEMA recs.raw TO ROLE recs_loader;
GRANT SELECT, INSERT, DELETE ON TABLE recs.raw.events TO ROLE recs_loader;
GRANT SELECT, INSERT, DELETE ON TABLE recs.raw.rejected_events TO ROLE recs_loader;
-- ...and looks after the secondary path: list the stage, see and refresh the pipe, read its table.
GRANT USAGE ON FILE FORMAT recs.raw.landing_jsonl_gz TO ROLE recs_loader;
GRANT USAGE ON STAGE recs.raw.landing TO ROLE recs_loader;
GRANT MONITOR, OPERATE ON PIPE recs.raw.events_landing_pipe TO ROLE recs_loader;
GRANT SELECT ON TABLE recs.raw.events_landing TO ROLE recs_loader;

-- recs_transformer: dbt reads the raw source and builds (and rebuilds) the analytics models.
GRANT USAGE ON SCHEMA recs.raw TO ROLE recs_transformer;
GRANT SELECT ON TABLE recs.raw.events TO ROLE recs_transformer;
GRANT SELECT ON TABLE recs.raw.rejected_events TO ROLE recs_transformer;
GRANT USAGE, CREATE TABLE, CREATE VIEW ON SCHEMA recs.analytics TO ROLE recs_transformer;

-- recs_reader: every model dbt has built and will build.
GRANT USAGE ON SCHEMA recs.analytics TO ROLE recs_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA recs.analytics TO ROLE recs_reader;
GRANT SELECT ON ALL VIEWS IN SCHEMA recs.analytics TO ROLE recs_reader;
GRANT SELECT ON FUTURE TABLES IN SCHEMA recs.analytics TO ROLE recs_reader;
GRANT SELECT ON FUTURE VIEWS IN SCHEMA recs.analytics TO ROLE recs_reader;
