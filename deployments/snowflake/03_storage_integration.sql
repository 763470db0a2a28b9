-- recs-platform on Snowflake, 3 of 5: the storage integration, Snowflake's IAM identity for
-- the landing bucket. It may only read the events prefix of the landing zone.
--
-- The role it names is created by the SAM stack (deployments/lambda/template.yaml, resource
-- SnowflakeStorageRole, parameter SnowflakeStorageRoleName) once this integration exists: run
-- DESC INTEGRATION below and pass STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID to
-- `sam deploy` as SnowflakeIamUserArn and SnowflakeExternalId.

USE ROLE ACCOUNTADMIN;

CREATE STORAGE INTEGRATION IF NOT EXISTS recs_landing_s3
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::{{AWS_ACCOUNT_ID}}:role/recs-snowflake-landing-reader'
  STORAGE_ALLOWED_LOCATIONS = ('s3://{{LANDING_BUCKET}}/{{LANDING_PREFIX}}events/')
  COMMENT = 'recs-platform: read the landing zone events (stage recs.raw.landing)';

-- SYSADMIN creates the stage on it (04).
GRANT USAGE ON INTEGRATION recs_landing_s3 TO ROLE SYSADMIN;

DESC INTEGRATION recs_landing_s3;
