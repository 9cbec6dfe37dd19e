"""Fixtures of the scale-out suite: one PostgreSQL cluster and one nats-server per session.

Every test under ``tests/scale/`` is marked ``scale``: ``make test`` runs them after the rest,
serially (they start several real processes each and measure recovery times), never beside
other xdist workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale.services import NatsServer, Postgres

_HERE = Path(__file__).resolve().parent
_databases = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.scale)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster for the session (tests that restart it put it back up)."""
    cluster = Postgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """A fresh, empty database of the session's cluster: one registry per test."""
    if postgres.pid is None:
        postgres.start()
    return postgres.create_database(f"er_test_{next(_databases)}")


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A nats-server with JetStream for one test (its streams start empty)."""
    server = NatsServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
