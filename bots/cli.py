"""``kamiya-bot``: the one console script. Wires config, storage, the Kamiya client and frontends.

Exit codes: 0 done (or stopped by SIGTERM/SIGINT); 1 a check, a migration or a scripted message
failed; 2 unusable configuration, a database schema behind or ahead of the code, or nothing to
run. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from rich.console import Console

from bots import fds, loop
from bots.check import run_checks
from bots.logs import configure_logging
from bots.metrics import PrometheusObserver
from bots.migrate import migrate, refusal, schema_of
from bots.ops import OpsServer
from bots.runner import NoFrontend, StartFailed, select_frontends, serve, stop_on_signals
from bots.terminal import HELP, chat_loop, piped_lines, prompt_lines
from core import (
    MAX_CONNECTIONS,
    NULL_OBSERVER,
    ConfigError,
    Conversations,
    KamiyaClient,
    build_http_client,
    conversations_from_config,
    load_config,
)
from core.config import ENV_CONFIG, config_path, secrets_in_file
from core.fake_kamiya import FakeKamiya
from storage import SchemaMismatch, SqlStore, StorageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from core import Config, Observer
    from storage import ConversationStore

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Fatal(Exception):
    """A one-line reason to stop before doing anything."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kamiya-bot`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    # Opt in to python-telegram-bot's future timedelta retry_after instead of a warning.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    args.config = config_path(args.config, os.environ)
    if args.config is None and args.command == "run":
        return _fail(f"no config file: pass --config FILE or set {ENV_CONFIG}")
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        return _fail(str(exc))
    quiet = args.command == "chat"
    configure_logging(
        "WARNING" if quiet else config.log.level, config.secrets(), config.log.format
    )
    if args.config:
        _warn_if_exposed(args.config)
    if args.command == "run":
        fds.prepare(min(config.bot.max_concurrent_streams, MAX_CONNECTIONS))
    try:
        return loop.run(_COMMANDS[args.command](args, config))
    except (Fatal, NoFrontend, StartFailed) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:  # a second Ctrl-C before our handlers were installed
        return EXIT_OK


_DEFAULT_CONFIG = f"TOML config file (default: ${ENV_CONFIG}, else built-in)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kamiya-bot",
        description="The Kamiya LLM relay in Telegram, Discord and the terminal.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run every bot that has a token configured")
    run.add_argument("--config", metavar="FILE", help=f"TOML config file (default: ${ENV_CONFIG})")
    chat = sub.add_parser("chat", help="chat in the terminal", description=HELP)
    chat.add_argument("--config", metavar="FILE", help=_DEFAULT_CONFIG)
    chat.add_argument(
        "--offline", action="store_true", help="talk to a built-in fake Kamiya; no key needed"
    )
    check = sub.add_parser("check", help="validate the config and reach every component")
    check.add_argument("--config", metavar="FILE", help=_DEFAULT_CONFIG)
    upgrade = sub.add_parser("migrate", help="upgrade the database schema to this version's")
    upgrade.add_argument("--config", metavar="FILE", help=_DEFAULT_CONFIG)
    return parser


async def _run(args: argparse.Namespace, config: Config) -> int:
    factories = select_frontends(config)
    if not config.kamiya.api_key.get_secret_value():
        raise Fatal("no Kamiya API key: set KAMIYA_API_KEY or [kamiya] api_key")
    stop = asyncio.Event()
    address = config.metrics.address
    registry = CollectorRegistry()  # ours, not prometheus-client's global one
    observer = NULL_OBSERVER if address is None else PrometheusObserver(registry)
    async with contextlib.AsyncExitStack() as stack:
        conversations, store = await _open_core(
            stack, args, config, config.kamiya.base_url, observer=observer
        )
        frontends = [factory(config, conversations) for factory in factories]
        if address is not None:
            ops = OpsServer(*address, registry, ping=store.ping, components=frontends)
            try:
                await stack.enter_async_context(ops)
            except OSError as exc:
                raise Fatal(
                    f"[metrics] listen = {config.metrics.listen!r}: {exc.strerror}"
                ) from None
        with stop_on_signals(stop.set):
            await serve(frontends, stop, grace_s=config.bot.shutdown_grace_s)
    return EXIT_OK


async def _chat(args: argparse.Namespace, config: Config) -> int:
    async with contextlib.AsyncExitStack() as stack:
        if args.offline:
            fake = await stack.enter_async_context(
                FakeKamiya(api_key=None, accept_unknown_ids=True, demo=True)
            )
            base_url = fake.base_url
        elif config.kamiya.api_key.get_secret_value():
            base_url = config.kamiya.base_url
        else:
            raise Fatal(
                "no Kamiya API key: set KAMIYA_API_KEY or [kamiya] api_key, "
                "or try `kamiya-bot chat --offline`"
            )
        conversations, _ = await _open_core(stack, args, config, base_url, offline=args.offline)
        user = _user()
        if sys.stdin.isatty():
            console = Console()
            where = "offline demo: a fake Kamiya on this machine" if args.offline else base_url
            console.print(f"[bold]kamiya-bot[/bold] chat ({where}). {HELP}", style="dim")
            job: Awaitable[int] = chat_loop(conversations, user, prompt_lines(), console=console)
        else:
            job = chat_loop(conversations, user, piped_lines(sys.stdin))
        task = asyncio.ensure_future(job)
        with stop_on_signals(task.cancel):
            try:
                code = await task
            except asyncio.CancelledError:
                return EXIT_OK
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):  # let a title being written finish
                await conversations.wait_background()
        return code


async def _check(args: argparse.Namespace, config: Config) -> int:
    print(f"{'config':<9} {'ok':<5} {args.config or 'built-in defaults'}")  # noqa: T201
    probes = await run_checks(config, config_file=args.config)
    for probe in probes:
        print(probe.line())  # noqa: T201
    return EXIT_FAILED if any(p.status == "fail" for p in probes) else EXIT_OK


async def _migrate(args: argparse.Namespace, config: Config) -> int:
    try:
        print(await migrate(config))  # noqa: T201
    except StorageError as exc:
        print(f"kamiya-bot: storage: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILED
    return EXIT_OK


_COMMANDS = {"run": _run, "chat": _chat, "check": _check, "migrate": _migrate}


async def _open_core(
    stack: contextlib.AsyncExitStack,
    args: argparse.Namespace,
    config: Config,
    base_url: str,
    *,
    offline: bool = False,
    observer: Observer = NULL_OBSERVER,
) -> tuple[Conversations, ConversationStore]:
    try:
        # A new database is created; one behind (or ahead of) this code is refused, with the
        # command that upgrades it: a restart must not change a deployment's schema by itself.
        store = await SqlStore.open(config.storage.url, schema=schema_of(config), upgrade=False)
    except SchemaMismatch as exc:
        raise Fatal(f"storage: {refusal(exc, args.config)}") from None
    except StorageError as exc:
        raise Fatal(f"storage: {exc}") from None
    stack.push_async_callback(store.aclose)
    http = await stack.enter_async_context(build_http_client(config.kamiya))
    key = "offline" if offline else config.kamiya.api_key.get_secret_value()
    client = KamiyaClient(http, base_url=base_url, api_key=key)
    conversations = await stack.enter_async_context(
        conversations_from_config(client, store, config, observer=observer)
    )
    return conversations, store


def _warn_if_exposed(path: str) -> None:
    """Secrets in a file that other users may read: say so once, at start (not fatal)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o077 and (keys := secrets_in_file(path)):
        logging.getLogger("kamiya_bot").warning(
            "%s holds %s but other users may read it; run: chmod 600 %s",
            path,
            " and ".join(keys),
            path,
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def _fail(message: str) -> int:
    print(f"kamiya-bot: {message}", file=sys.stderr)  # noqa: T201
    return EXIT_USAGE
