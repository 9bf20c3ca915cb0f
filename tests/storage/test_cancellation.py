"""A cancelled caller never cuts a database operation in half (shutdown, stopped replies)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from storage import SqlStore
from tests.waiting import until


async def test_cancelling_the_caller_lets_the_write_finish_cleanly(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    store = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    now = datetime.now(UTC)
    writes = [
        asyncio.create_task(
            store.record_reply(f"chat:{i}", f"c{i}", user_id="u", billed_chars=1, at=now)
        )
        for i in range(20)
    ]
    await asyncio.sleep(0)  # let them start, then cut every caller
    for task in writes:
        task.cancel()
    await asyncio.gather(*writes, return_exceptions=True)
    await until(lambda: not store._work)
    for i in range(20):
        assert await store.current(f"chat:{i}") == f"c{i}"
    await store.aclose()
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
