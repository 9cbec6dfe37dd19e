"""The services fixture itself: both services answer, and come back after a restart."""

from __future__ import annotations

import asyncio
import signal

import nats
import psycopg

from tests.scale.services import NatsServer, Postgres


def test_postgres_answers_and_restarts(postgres: Postgres, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
    postgres.stop("kill")
    postgres.start()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (pg_url.rsplit("/", 1)[1],)


def test_nats_keeps_jetstream_data_across_a_restart(nats_server: NatsServer) -> None:
    async def publish() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        await js.publish("t.a", b"kept")
        await nc.close()

    async def read() -> bytes:
        nc = await nats.connect(nats_server.url)
        msg = await nc.jetstream().get_last_msg("T", "t.a")
        await nc.close()
        return bytes(msg.data or b"")

    asyncio.run(publish())
    nats_server.stop(signal.SIGKILL)
    nats_server.start()
    assert asyncio.run(read()) == b"kept"
