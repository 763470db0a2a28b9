"""Stand-ins for the production services, all on 127.0.0.1: S3 and Firehose (moto in server mode)
and Snowflake (fakesnow's HTTP server, which the real `snowflake.connector` talks to).

The fixtures in `conftest.py` wrap these; use them directly where a fixture does not fit. The
heavy imports happen on first use, so test sessions that need no fake do not pay for them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource
    from dagster_snowflake import SnowflakeResource

FAKE_AWS_REGION = "us-east-1"
# Never real credentials: moto accepts anything, and these keep boto3 from looking elsewhere.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": FAKE_AWS_REGION,
    "AWS_REGION": FAKE_AWS_REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
# The fakes listen on 127.0.0.1; a proxy configured for the machine must not get their traffic.
LOCAL_ONLY_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client_for(endpoint_url: str) -> Any:
    """A boto3 S3 client for the moto server (credentials come from `FAKE_AWS_ENV`)."""
    import boto3
    from botocore.config import Config

    timeouts = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=FAKE_AWS_REGION, config=timeouts
    )


def s3_resource_for(endpoint_url: str) -> S3Resource:
    """A dagster-aws `S3Resource` whose `get_client()` talks to the moto server."""
    from dagster_aws.s3 import S3Resource

    return S3Resource(
        endpoint_url=endpoint_url,
        region_name=FAKE_AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        max_attempts=2,
    )


def create_unique_bucket(s3_client: Any) -> str:
    """A new empty bucket; one per test keeps tests independent on a shared server."""
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=bucket)
    return bucket


@contextmanager
def fakesnow_server() -> Iterator[dict[str, Any]]:
    """fakesnow's server on a free port of 127.0.0.1; yields `snowflake.connector.connect` kwargs.

    Every server in a process shares one in-memory DuckDB (a module global of fakesnow.server),
    so give each test its own database (`unique_database_name`) rather than its own server.
    """
    import fakesnow

    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    with fakesnow.server() as connection_kwargs:
        yield connection_kwargs


def unique_database_name() -> str:
    return f"TEST_{uuid.uuid4().hex[:16].upper()}"


def snowflake_resource_for(
    server_kwargs: dict[str, Any], database: str, **fields: Any
) -> SnowflakeResource:
    """A dagster-snowflake `SnowflakeResource` whose `get_connection()` reaches the fake.

    The resource has no host/port/protocol fields; `additional_snowflake_connection_args` passes
    them straight to `snowflake.connector.connect`.
    """
    from dagster_snowflake import SnowflakeResource

    return SnowflakeResource(
        account=server_kwargs["account"],
        user=server_kwargs["user"],
        password=server_kwargs["password"],
        database=database,
        login_timeout=10,
        additional_snowflake_connection_args={
            "host": server_kwargs["host"],
            "port": server_kwargs["port"],
            "protocol": server_kwargs["protocol"],
            "session_parameters": server_kwargs["session_parameters"],
            "network_timeout": server_kwargs["network_timeout"],
        },
        **fields,
    )


# The delivery stream configuration of production: an ExtendedS3 destination whose objects are
# finalized landing files, `<landing prefix>events/date=YYYY-MM-DD/<object name>.jsonl.gz`.
FIREHOSE_EVENTS_PREFIX = "events/date=!{timestamp:yyyy-MM-dd}/"
FIREHOSE_ERRORS_PREFIX = "errors/!{firehose:error-output-type}/date=!{timestamp:yyyy-MM-dd}/"
FIREHOSE_FILE_EXTENSION = ".jsonl.gz"
# moto's key below the Prefix it was given, unevaluated: `YYYY/MM/DD/HH/<object name>`, where the
# name is `<stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid>`, as real Firehose names objects.
_MOTO_FIREHOSE_KEY = re.compile(
    r"^\d{4}/\d{2}/\d{2}/\d{2}/"
    r"(?P<name>.+-\d+-(?P<written>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-[0-9a-f-]{36})$"
)
_JAVA_DATE_TOKENS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_TIMESTAMP_EXPRESSION = re.compile(r"!\{timestamp:([^}]*)\}")


def firehose_client_for(endpoint_url: str) -> Any:
    """A boto3 Firehose client for the moto server (credentials come from `FAKE_AWS_ENV`)."""
    import boto3
    from botocore.config import Config

    timeouts = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
    return boto3.client(
        "firehose", endpoint_url=endpoint_url, region_name=FAKE_AWS_REGION, config=timeouts
    )


def create_landing_delivery_stream(
    firehose_client: Any, bucket: str, landing_prefix: str, *, events_prefix: str | None = None
) -> str:
    """A new delivery stream to `bucket` configured as in production; returns its name.

    `landing_prefix` is the landing zone's root in the bucket ("" or ending in "/");
    `events_prefix` replaces `FIREHOSE_EVENTS_PREFIX` (for a stream of rejections, say).
    """
    if landing_prefix and not landing_prefix.endswith("/"):
        raise ValueError(f"landing prefix {landing_prefix!r} must be empty or end in '/'")
    stream_name = f"test-{uuid.uuid4().hex[:16]}"
    firehose_client.create_delivery_stream(
        DeliveryStreamName=stream_name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-delivery",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": landing_prefix + (events_prefix or FIREHOSE_EVENTS_PREFIX),
            "ErrorOutputPrefix": landing_prefix + FIREHOSE_ERRORS_PREFIX,
            "CompressionFormat": "GZIP",
            "FileExtension": FIREHOSE_FILE_EXTENSION,
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 300},
        },
    )
    return stream_name


def _render_timestamp_expressions(prefix: str, arrival: dt.datetime) -> str:
    if "!{" in _TIMESTAMP_EXPRESSION.sub("", prefix):
        raise ValueError(f"only !{{timestamp:...}} expressions are rendered, not those in {prefix}")

    def render(expression: re.Match) -> str:
        java_format = expression.group(1)
        strftime_format = re.sub(
            "|".join(_JAVA_DATE_TOKENS), lambda token: _JAVA_DATE_TOKENS[token.group()], java_format
        )
        return arrival.strftime(strftime_format)

    return _TIMESTAMP_EXPRESSION.sub(render, prefix)


def settle_moto_firehose_objects(
    s3_client: Any, firehose_client: Any, stream_name: str
) -> list[str]:
    """Move what moto's Firehose delivered to where real Firehose puts it; returns the keys.

    moto 5.2 (`moto/firehose/models.py`, `put_s3_records`) writes every PutRecordBatch call at
    once (no buffering) as one object at `<Prefix as given>YYYY/MM/DD/HH/<name>`: it does not
    evaluate `!{timestamp:...}` expressions in the Prefix, appends its own hour folders (real
    Firehose does that only to a Prefix without a timestamp expression), and ignores
    CompressionFormat and FileExtension. Real Firehose, with the same configuration, writes
    `<Prefix evaluated at the arrival time><name><FileExtension>`, compressed. This renders that
    key (moto's write time standing in for the arrival time), gzips the body and deletes moto's
    object. The records and their bytes are left exactly as moto received them. (moto also never
    reports a failed record; tests of partial failures wrap the client.)
    """
    description = firehose_client.describe_delivery_stream(DeliveryStreamName=stream_name)
    destination = description["DeliveryStreamDescription"]["Destinations"][0]
    extended_s3 = destination["ExtendedS3DestinationDescription"]
    bucket = extended_s3["BucketARN"].split(":::", 1)[1]
    prefix_template = extended_s3.get("Prefix", "")
    if not _TIMESTAMP_EXPRESSION.search(prefix_template):
        raise ValueError(f"Prefix {prefix_template!r} has no !{{timestamp:...}}: not production's")
    if extended_s3.get("CompressionFormat") != "GZIP":
        raise ValueError("the bridge renders GZIP delivery only, the production configuration")
    extension = extended_s3.get("FileExtension") or ".gz"
    paginator = s3_client.get_paginator("list_objects_v2")
    settled = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix_template):
        for entry in page.get("Contents", []):
            moto_key = entry["Key"]
            match = _MOTO_FIREHOSE_KEY.match(moto_key[len(prefix_template) :])
            if match is None:
                raise ValueError(f"{moto_key}: not moto's Firehose layout; revisit this bridge")
            written = dt.datetime.strptime(match["written"], "%Y-%m-%d-%H-%M-%S")
            key = (
                _render_timestamp_expressions(prefix_template, written) + match["name"] + extension
            )
            body = s3_client.get_object(Bucket=bucket, Key=moto_key)["Body"].read()
            s3_client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body, mtime=0))
            s3_client.delete_object(Bucket=bucket, Key=moto_key)
            settled.append(key)
    return settled
