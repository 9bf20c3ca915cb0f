"""SQLite under many replies at once: writers take turns in the process, none waits on the file.

Found by ``bench.load`` at 1,000 chats: every pooled connection that met SQLite's write lock
slept in ``busy_timeout`` while holding its pool slot, the pool ran dry, and writes failed with
"database is locked" or a QueuePool timeout (replies lost their stored ``conversationId``).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from storage import SqlStore

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


class _Writers:
    """Counts write transactions open at once on the engine's connections."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0
        self._lock = threading.Lock()  # the events fire on aiosqlite's threads

    def began(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            info = conn.info
            if not info.get("writing"):
                info["writing"] = True
                with self._lock:
                    self.open += 1
                    self.most = max(self.most, self.open)

    def ended(self, conn: Any) -> None:
        if conn.info.pop("writing", False):
            with self._lock:
                self.open -= 1


async def test_concurrent_replies_write_one_at_a_time_and_all_land(tmp_path: Path) -> None:
    store = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    writers = _Writers()
    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", writers.began)
    event.listen(sync_engine, "commit", writers.ended)
    event.listen(sync_engine, "rollback", writers.ended)
    now = datetime.now(UTC)

    async def reply(i: int) -> None:
        key = f"telegram:{i}"
        await store.begin_reply(
            f"r{i}", key, platform="telegram", target="{}", language=None, at=now
        )
        await store.note_reply_messages(f"r{i}", [str(i)], "partial")
        await store.record_reply(key, f"c{i}", user_id="u", billed_chars=3, at=now)
        await store.end_reply(f"r{i}")

    try:
        await asyncio.gather(*(reply(i) for i in range(200)))
        assert writers.most == 1
        for i in range(0, 200, 17):
            assert await store.current(f"telegram:{i}") == f"c{i}"
        assert await store.open_replies("telegram") == []
    finally:
        await store.aclose()


_OPS = st.lists(
    st.tuples(st.sampled_from(["begin", "note", "end"]), st.integers(0, 3), st.booleans()),
    max_size=25,
)


@settings(max_examples=30, deadline=None)
@given(ops=_OPS)
def test_batched_crash_records_end_as_if_written_one_by_one(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, bool]]
) -> None:
    """Replies' begins, notes and ends, submitted together (some yielding between, so batches
    split anywhere), leave exactly the rows that writing them one at a time would."""
    folder = tmp_path_factory.mktemp("batch")
    now = datetime.now(UTC)
    expected: dict[str, tuple[str, ...]] = {}
    for n, (kind, reply, _) in enumerate(ops):
        rid = f"r{reply}"
        if kind == "begin":
            expected[rid] = ()
        elif kind == "note" and rid in expected:
            expected[rid] = (str(n),)
        elif kind == "end":
            expected.pop(rid, None)

    async def run() -> dict[str, tuple[str, ...]]:
        store = await SqlStore.open(f"sqlite+aiosqlite:///{folder / 'b.db'}")
        try:

            async def one(n: int, kind: str, reply: int, pause: bool) -> None:
                rid = f"r{reply}"
                if kind == "begin":
                    await store.begin_reply(
                        rid, "telegram:1", platform="telegram", target="{}", language=None, at=now
                    )
                elif kind == "note":
                    await store.note_reply_messages(rid, [str(n)], f"text {n}")
                else:
                    await store.end_reply(rid)

            tasks = []
            for n, (kind, reply, pause) in enumerate(ops):
                tasks.append(asyncio.create_task(one(n, kind, reply, pause)))
                await asyncio.sleep(0)  # the task submits its operation, in this order
                if pause:
                    await asyncio.gather(*tasks)  # a batch boundary here
            await asyncio.gather(*tasks)
            return {r.reply_id: r.message_ids for r in await store.open_replies("telegram")}
        finally:
            await store.aclose()

    assert asyncio.run(run()) == expected
