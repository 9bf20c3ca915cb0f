"""Which completions models the chat may switch to, checked against the key's permissions.

Kamiya answers 403 for a model the key may not use. Finding that out on the user's next message
would leave the chat on a model that cannot answer, so a switch first sends a one-token probe;
a 403 refuses the switch and the chat stays where it was. Other probe failures (a busy relay)
let the switch through: the permission is unknown, not denied. Granted models are remembered
for a while so repeated switches cost nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from typing import TYPE_CHECKING, Literal

from core.errors import KamiyaError, NoPermission

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.client import KamiyaClient

__all__ = ["DEFAULT", "ModelAccess", "Verdict"]

log = logging.getLogger(__name__)

#: What users pick to return to Kamiya's server-side conversation.
DEFAULT = "default"
GRANTED_FOR_S = 600.0
PROBE_TIMEOUT_S = 20.0

Verdict = Literal["ok", "unknown", "forbidden"]


class ModelAccess:
    def __init__(self, client: KamiyaClient, models: Sequence[str]) -> None:
        self._client = client
        self.models = tuple(models)
        self._granted: dict[str, float] = {}

    def resolve(self, name: str) -> str | None:
        """The configured model ``name`` means (case-insensitive; the bare name after the
        provider prefix works when it is unambiguous), ``DEFAULT``, or ``None``."""
        wanted = name.strip().lower()
        if wanted in {DEFAULT, "", "conversation"}:
            return DEFAULT
        exact = [m for m in self.models if m.lower() == wanted]
        if exact:
            return exact[0]
        bare = [m for m in self.models if m.rsplit(":", 1)[-1].lower() == wanted]
        return bare[0] if len(bare) == 1 else None

    async def check(self, model: str) -> Verdict:
        if model not in self.models:
            return "unknown"
        granted = self._granted.get(model)
        if granted is not None and time.monotonic() - granted < GRANTED_FOR_S:
            return "ok"
        try:
            await self._probe(model)
        except NoPermission:
            return "forbidden"
        except (KamiyaError, TimeoutError) as exc:
            log.info("model %s: permission probe inconclusive (%r); allowing", model, exc)
            return "ok"
        self._granted[model] = time.monotonic()
        return "ok"

    async def _probe(self, model: str) -> None:
        messages = [{"role": "user", "content": "ping"}]
        stream = self._client.stream_completion(messages, model, max_tokens=1)
        async with asyncio.timeout(PROBE_TIMEOUT_S), aclosing(stream) as deltas:
            async for _ in deltas:
                break  # the first token proves the permission; closing ends the request
