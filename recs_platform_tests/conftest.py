"""Shared fixtures: S3 and Firehose on moto, Snowflake on fakesnow, local servers on 127.0.0.1.

The servers start once per test session; each test gets its own bucket and its own database.
`make test` runs the tests on parallel workers (pytest-xdist); the tests marked `slow` start first,
the longest first, so that no worker is left with a long test at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from recs_platform_tests.fakes import (
    FAKE_AWS_ENV,
    LOCAL_ONLY_ENV,
    create_unique_bucket,
    fakesnow_server,
    firehose_client_for,
    moto_s3_server,
    s3_client_for,
    snowflake_resource_for,
    unique_database_name,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow(minutes): runs for about that many minutes alone; started before the others",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, the longest first, each followed by a quick one; the others keep
    their order. `make test`'s workers take the tests two at a time from the front
    (`--maxschedchunk 2`), so each worker starts with a long test and none gets two."""

    def minutes(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return float(marker.kwargs.get("minutes", 1)) if marker else 0.0

    estimates = {item: minutes(item) for item in items}
    slow = sorted((item for item in items if estimates[item]), key=estimates.get, reverse=True)
    quick = [item for item in items if not estimates[item]]
    paired = [item for pair in zip(slow, quick, strict=False) for item in pair]
    items[:] = paired + slow[len(quick) :] + quick[len(slow) :]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture
def local_only_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LOCAL_ONLY_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, local_only_env: None) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_client(moto_endpoint: str, fake_aws_env: None) -> Any:
    return s3_client_for(moto_endpoint)


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    return create_unique_bucket(s3_client)


@pytest.fixture
def firehose_client(moto_endpoint: str, fake_aws_env: None) -> Any:
    return firehose_client_for(moto_endpoint)


@pytest.fixture(scope="session")
def fakesnow_kwargs() -> Iterator[dict[str, Any]]:
    """`snowflake.connector.connect` kwargs for the fakesnow server (add a `database`)."""
    with fakesnow_server() as connection_kwargs:
        yield connection_kwargs


@pytest.fixture
def snowflake_database() -> str:
    return unique_database_name()


@pytest.fixture
def snowflake_conn(
    fakesnow_kwargs: dict[str, Any], snowflake_database: str, local_only_env: None
) -> Iterator[Any]:
    """A real `snowflake.connector` connection to this test's database on the fake."""
    import snowflake.connector

    with closing(
        snowflake.connector.connect(**fakesnow_kwargs, database=snowflake_database)
    ) as conn:
        yield conn


@pytest.fixture
def snowflake_resource(
    fakesnow_kwargs: dict[str, Any], snowflake_database: str, local_only_env: None
) -> Any:
    """A dagster-snowflake `SnowflakeResource` for this test's database on the fake."""
    return snowflake_resource_for(fakesnow_kwargs, snowflake_database)


@pytest.fixture(autouse=True)
def mlflow_outside_the_repo(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """MLflow's default store is ./mlflow.db: a test that forgets to choose one writes there.

    mlflow.set_tracking_uri() also sets (or, for None, removes) MLFLOW_TRACKING_URI in the
    environment, so the stray store is chosen again after each test.
    """
    import mlflow

    stray = f"sqlite:///{tmp_path_factory.getbasetemp() / 'stray-mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stray)
    yield
    mlflow.set_tracking_uri(stray)
    mlflow.set_registry_uri(stray)
