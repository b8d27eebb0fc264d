"""A real, throw-away PostgreSQL server for the tests of workers on a server storage: one
cluster per session (see `postgres.cluster`), a fresh database per test; where no server
can be started the tests skip with the reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.execute import postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL (no database) of a PostgreSQL cluster running for this test session."""
    try:
        with postgres.cluster() as base:
            yield base
    except postgres.Unavailable as e:
        pytest.skip(f"PostgreSQL: {e}")


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's server: its SQLAlchemy URL."""
    return postgres.new_database(postgres_server)
