"""HARCLIP_REDIS__PASSWORD: the Redis client logs in with it, and a password in the URL wins
(nothing connects: the pool is lazy)."""

from __future__ import annotations

import asyncio

from harclip.config import RedisSettings
from harclip.io.store import make_redis


async def _password(s: RedisSettings) -> object:
    client = make_redis(s)
    try:
        return client.connection_pool.connection_kwargs.get("password")
    finally:
        await client.aclose()


def test_the_password_setting_reaches_the_client() -> None:
    s = RedisSettings(url="redis://redis:6379/0", password="s3cret")  # type: ignore[arg-type]
    assert asyncio.run(_password(s)) == "s3cret"
    assert "s3cret" not in repr(s)


def test_no_password_and_a_password_in_the_url() -> None:
    assert asyncio.run(_password(RedisSettings(url="redis://redis:6379/0"))) is None
    s = RedisSettings(url="redis://:inurl@redis:6379/0", password="other")  # type: ignore[arg-type]
    assert asyncio.run(_password(s)) == "inurl"
