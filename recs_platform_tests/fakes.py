"""Stand-ins for the production services, all on 127.0.0.1: S3 (moto in server mode) and
Snowflake (fakesnow's HTTP server, which the real `snowflake.connector` talks to).

The fixtures in `conftest.py` wrap these; use them directly where a fixture does not fit. The
heavy imports happen on first use, so test sessions that need no fake do not pay for them.
"""

from __future__ import annotations

import logging
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
