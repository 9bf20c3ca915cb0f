"""The line of a chat's turns across processes sharing PostgreSQL (``storage.pg_order``).

Each ``SqlStore`` opened on the same schema stands in for one bot process: it has its own
engine and its own lock session, as a process would. A store closed without finishing its
places plays a process that died: its session is gone, and its locks with it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from storage import StorageError
from storage.pg_order import LOCK_CLASS, POLL_S
from tests.waiting import until, until_async

if TYPE_CHECKING:
    from storage import SqlStore
    from storage.protocol import Place
    from tests.pg import SqlTarget


@dataclass
class Turn:
    """A place and its wait, as a task."""

    place: Place
    going: asyncio.Task[None]

    def went(self) -> bool:
        return self.going.done() and self.going.exception() is None


async def join(store: SqlStore, chat: str = "tg:1") -> Turn:
    """A turn of ``chat`` in ``store``'s process; returns once its place is recorded."""
    place = store.chat_order().place(chat)
    await place.recorded()
    return Turn(place, asyncio.create_task(place.wait()))


async def hold(store: SqlStore, chat: str = "tg:1") -> Turn:
    """A turn of ``chat`` in ``store``'s process, once it has gone (holds the chat)."""
    turn = await join(store, chat)
    await asyncio.wait_for(turn.going, 5)
    return turn


async def settle(store: SqlStore) -> None:
    """Let every waiter look at the line again: a probe turn of another chat on ``store``
    goes through the same session, after every statement already queued on it."""
    probe = await hold(store, "probe")
    probe.place.done()
    await asyncio.sleep(0)


async def test_turns_go_one_at_a_time_in_arrival_order_across_processes(
    postgresql_target: SqlTarget,
) -> None:
    async with await postgresql_target.open() as a, await postgresql_target.open() as b:
        first, second, third = await join(a), await join(b), await join(a)
        await asyncio.wait_for(first.going, 5)
        await settle(a)
        await settle(b)
        assert not second.going.done()
        assert not third.going.done()

        first.place.done()  # the other process' turn is next, not this process' own
        await asyncio.wait_for(second.going, 5)
        await settle(a)
        assert not third.going.done()

        second.place.done()
        await asyncio.wait_for(third.going, 5)
        third.place.done()


async def test_other_chats_never_wait(postgresql_target: SqlTarget) -> None:
    async with await postgresql_target.open() as a, await postgresql_target.open() as b:
        busy = await hold(a, "tg:1")
        others = [await join((a, b)[n % 2], f"tg:{n}") for n in range(2, 12)]
        await asyncio.wait_for(asyncio.gather(*(t.going for t in others)), 5)
        for turn in (busy, *others):
            turn.place.done()


async def test_a_dead_process_releases_its_chat_and_its_waiting_places(
    postgresql_target: SqlTarget,
) -> None:
    async with await postgresql_target.open() as b:
        a = await postgresql_target.open()
        await hold(a)  # and never done: the process "dies" holding the chat
        queued_in_a = await join(a)  # a place that will never be done either
        waiting = await join(b)
        await settle(b)
        assert not waiting.going.done()

        await a.aclose()  # "dies": its session ends without finishing anything
        await asyncio.wait_for(waiting.going, 5 + POLL_S)
        waiting.place.done()
        queued_in_a.going.cancel()

        # The dead process' places were swept: the line is empty once the turn is done.
        async with b.engine.connect() as conn:

            async def empty() -> bool:
                return bool(await conn.scalar(text("SELECT count(*) FROM chat_queue")) == 0)

            await until_async(empty)


async def test_a_cancelled_waiter_leaves_the_line(postgresql_target: SqlTarget) -> None:
    async with await postgresql_target.open() as a, await postgresql_target.open() as b:
        first = await hold(a)
        given_up = await join(b)
        last = await join(a)
        given_up.going.cancel()
        given_up.place.done()  # what core does in ``finally``
        first.place.done()
        await asyncio.wait_for(last.going, 5)
        last.place.done()


async def test_the_chat_lock_is_held_during_a_turn_and_freed_after(
    postgresql_target: SqlTarget,
) -> None:
    async with await postgresql_target.open() as a, await postgresql_target.open() as b:
        turn = await hold(a)

        async def locked_elsewhere() -> bool:
            async with b.engine.connect() as conn:
                got = await conn.scalar(
                    text("SELECT pg_try_advisory_lock(:c, hashtext('tg:1'))"), {"c": LOCK_CLASS}
                )
                if got:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:c, hashtext('tg:1'))"), {"c": LOCK_CLASS}
                    )
                return not got

        assert await locked_elsewhere()
        turn.place.done()

        async def free() -> bool:
            return not await locked_elsewhere()

        await until_async(free)


async def test_a_lost_session_fails_the_waiters_it_held(postgresql_target: SqlTarget) -> None:
    async with await postgresql_target.open() as a, await postgresql_target.open() as b:
        first = await hold(b)
        waiting = await join(a)
        owner = a.chat_order().owner  # type: ignore[attr-defined]
        pid = int(owner.split(":")[0])
        async with b.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            await conn.commit()
        first.place.done()
        with pytest.raises(StorageError, match="lost the database connection"):
            await asyncio.wait_for(waiting.going, 5 + POLL_S)
        waiting.place.done()

        # The process goes on with a new session: later turns are served.
        again = await hold(a)
        again.place.done()
        await until(lambda: a.chat_order().owner not in (None, owner))  # type: ignore[attr-defined]


async def test_a_burst_of_places_keeps_arrival_order(postgresql_target: SqlTarget) -> None:
    # Places a process takes together go in one statement: their numbers must follow the
    # calls' order. (Across processes, order is what the database recorded first: a platform
    # update is acknowledged only once its place is recorded.)
    async with await postgresql_target.open() as a, await postgresql_target.open() as b:
        holder = await hold(b, "tg:burst")
        places = [a.chat_order().place("tg:burst") for _ in range(40)]
        went: list[int] = []

        async def turn(n: int) -> None:
            await places[n].wait()
            went.append(n)
            places[n].done()

        turns = asyncio.gather(*(turn(n) for n in reversed(range(40))))
        await asyncio.gather(*(p.recorded() for p in places))
        holder.place.done()
        await asyncio.wait_for(turns, 20)
    assert went == list(range(40))
