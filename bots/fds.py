"""Room for every connection the bot may hold at once, made before the event loop starts.

Each reply streaming from Kamiya holds a socket, and so does each Bot API call in flight.
Two things stand in the way of a thousand at once:

- The open-files limit: many systems start services with a soft limit of 1,024, which a bot
  with ``[bot] max_concurrent_streams = 1000`` passes (``EMFILE``: replies fail). The soft limit
  is raised as far as the hard limit allows, as a service manager's ``LimitNOFILE`` would.
- Linux's table of open files grows by doubling (256, 512, 1,024, ...), and in a process with
  threads (aiosqlite's, the resolver's) each growth waits for an RCU grace period while holding
  the event loop: 5-15 ms, measured up to 100 ms on a loaded machine, at the moment the 256th,
  512th and 1,024th sockets open, which is when a crowd of chats starts streaming
  (``python -m bench.load --chats 1000``: the worst lags of a run; p99 lag, median of 5 runs,
  30 → 13 ms once the table is grown ahead). Duplicating a file descriptor to the highest
  number needed grows it once, before any thread exists; the table never shrinks, and costs
  16 bytes a slot.
"""

from __future__ import annotations

import logging
import os
import sys

if sys.platform != "win32":
    import fcntl
    import resource

__all__ = ["HEADROOM", "prepare"]

log = logging.getLogger(__name__)

# Beside Kamiya's streams: the Bot API's pool (256), Discord's, the database, logs, listening
# sockets.
HEADROOM = 512


def prepare(connections: int) -> int:
    """Make room for ``connections`` streams to Kamiya plus ``HEADROOM``; return how many files the
    process may now open (``-1``: no limit, or not a POSIX system)."""
    if sys.platform == "win32":
        return -1
    needed = connections + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    if soft != unlimited and soft < needed:
        raised = needed if hard == unlimited else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (OSError, ValueError) as exc:
            log.debug("open files: cannot raise the soft limit: %s", exc)
        if soft < needed:
            log.warning(
                "open files are limited to %d, but %d connections at once need about %d:"
                " raise the limit (ulimit -n, or LimitNOFILE= for systemd)",
                soft,
                connections,
                needed,
            )
    _grow_table(needed if soft == unlimited else min(needed, soft))
    return -1 if soft == unlimited else soft


def _grow_table(size: int) -> None:
    """Open, then close, a descriptor numbered ``size - 1`` or higher. ``F_DUPFD`` takes the
    lowest free number from there, so no open file is touched (``dup2`` would close one)."""
    if sys.platform == "win32":
        return
    try:
        base = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        log.debug("open files: cannot open %s: %s", os.devnull, exc)
        return
    try:
        os.close(fcntl.fcntl(base, fcntl.F_DUPFD_CLOEXEC, max(size - 1, 0)))
    except OSError as exc:
        log.debug("open files: cannot grow the table to %d: %s", size, exc)
    finally:
        os.close(base)
