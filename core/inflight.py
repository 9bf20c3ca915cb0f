"""Replies in flight, recorded so a crash loses nothing the user can see.

A frontend records a reply before its first platform call, notes its messages (and the text they
show) as they change, and forgets it once the reply is settled. After a crash (``kill -9``) the
next start finds what is left and marks those messages interrupted, asking the user to resend;
the stored conversation was never advanced for such a turn, so it is as it was before.

Recording is best effort: a database hiccup is logged and the reply goes on, since failing a
reply that Kamiya is already streaming to protect its crash record would be the worse trade.
Writes happen at the pace of platform calls (a few a second per chat, capped bot-wide by the
platform's own limits), never per token.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from core.frontend import ChatKey
    from storage.protocol import ConversationStore

__all__ = ["InflightLog", "Leftover"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Leftover:
    """A reply a stopped process left unfinished: where it was, and what it showed."""

    reply_id: str
    chat_key: str
    target: dict[str, Any]
    message_ids: tuple[str, ...]
    language: str | None
    shown: str = ""  # what the last message showed


class InflightLog:
    def __init__(self, store: ConversationStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    async def begin(
        self, chat: ChatKey, target: Mapping[str, object], language: str | None
    ) -> str:
        """Record a reply about to be shown; returns its id for ``messages`` and ``end``."""
        reply_id = uuid.uuid4().hex
        try:
            await self._store.begin_reply(
                reply_id,
                str(chat),
                platform=chat.platform,
                target=json.dumps(dict(target), separators=(",", ":")),
                language=language,
                at=self._clock(),
            )
        except Exception:
            log.warning("chat %s: could not record a reply in flight", chat, exc_info=True)
        return reply_id

    async def messages(
        self, reply_id: str, message_ids: Sequence[str | int], shown: str = ""
    ) -> None:
        """The reply's messages so far, and the text its last one shows (as the platform
        shows it: after formatting), so a new process can mark that text interrupted."""
        try:
            await self._store.note_reply_messages(reply_id, [str(m) for m in message_ids], shown)
        except Exception:
            log.warning("could not note the messages of reply %s", reply_id, exc_info=True)

    async def end(self, reply_id: str) -> None:
        try:
            await self._store.end_reply(reply_id)
        except Exception:
            log.warning("could not settle reply %s", reply_id, exc_info=True)

    async def leftovers(self, platform: str) -> list[Leftover]:
        """What a previous process left in flight on ``platform``; ``[]`` if unreadable."""
        try:
            records = await self._store.open_replies(platform)
        except Exception:
            log.warning("%s: could not read replies left in flight", platform, exc_info=True)
            return []
        found = []
        for record in records:
            try:
                target = json.loads(record.target)
            except ValueError:
                target = None
            if not isinstance(target, dict):
                log.warning("reply %s: unreadable target, dropped", record.reply_id)
                await self.end(record.reply_id)
                continue
            found.append(
                Leftover(
                    record.reply_id,
                    record.chat_key,
                    target,
                    record.message_ids,
                    record.language,
                    record.shown,
                )
            )
        return found
