from __future__ import annotations

from collections.abc import Iterator

import pytest

from recs_platform_tests.deployments.postgres import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on a free port of 127.0.0.1, for the whole session."""
    with postgres_server() as server:
        yield server
