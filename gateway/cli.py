"""The ``gateway`` command: up, serve, worker, relay, migrate, agents, kb (``--help`` on each)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from aiohttp import web
from pydantic import ValidationError

from gateway.logs import configure_logging
from gateway.settings import Settings, describe_errors

if TYPE_CHECKING:
    from gateway.store import Store

REDIS_HINT = "start it with: redis-server --daemonize yes --port 6379 (or set GATEWAY_REDIS_URL)"


def load_settings() -> Settings:
    """The settings, or exit 2 with one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(f"configuration error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def require_redis(settings: Settings) -> None:
    """Exit 1 with one clear line if Redis does not answer."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(
            f"error: Redis is not reachable at {settings.redis_url} ({exc}); {REDIS_HINT}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    finally:
        client.close()


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    require_redis(settings)
    from gateway.migrate import upgrade
    from gateway.supervisor import supervise

    upgrade(settings.database_url)
    print(f"gateway: http://{settings.host}:{settings.port}/  (Ctrl-C stops)", file=sys.stderr)
    return asyncio.run(supervise())


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.app import create_app
    from gateway.collector import settle_after_startup

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    app = create_app(settings)
    app.on_startup.append(settle_after_startup)
    web.run_app(
        app,
        host=host,
        port=port,
        # The access log halves throughput on the hot path: off unless asked for.
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    require_redis(settings)
    from workers.runner import WORKER_CLASSES, work

    work(
        settings,
        worker_class=WORKER_CLASSES[args.worker_class],
        burst=args.burst,
        logging_level=settings.log_level,
    )
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.store import Store
    from workers.relay import OutboxRelay

    async def run() -> None:
        store = Store(settings.database_url)
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        try:
            relay = OutboxRelay(store, client)
            await relay.run(asyncio.Event(), poll_seconds=settings.outbox_poll_seconds)
        finally:
            client.close()
            await store.close()

    asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.migrate import upgrade

    upgrade(settings.database_url, args.revision)
    print(f"database at {args.revision}", file=sys.stderr)
    return 0


def cmd_agents_create(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.accounts import AccountError, create_agent
    from gateway.models import AgentRole
    from gateway.store import Store

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")

    async def run() -> int:
        store = Store(settings.database_url)
        try:
            return await create_agent(
                store,
                email=args.email,
                name=args.name,
                role=AgentRole(args.role),
                password=password,
            )
        finally:
            await store.close()

    try:
        agent_id = asyncio.run(run())
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"agent {agent_id} created: {args.email} ({args.role}); password change at first login")
    return 0


def cmd_kb_match(args: argparse.Namespace) -> int:
    from knowledge_base.evaluate import run_match

    if args.out is None:
        return run_match(args.kb, args.queries, sys.stdout)
    with args.out.open("w", encoding="utf-8") as out:
        return run_match(args.kb, args.queries, out)


def cmd_kb_import(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.knowledge import count_entries, import_entries
    from gateway.store import Store
    from knowledge_base.loaders import KBFormatError, load_entries

    try:
        entries = load_entries(args.file)
    except (KBFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def run() -> tuple[int, int] | None:
        store = Store(settings.database_url)
        try:
            if args.if_empty and await count_entries(store):
                return None
            return await import_entries(store, entries)
        finally:
            await store.close()

    done = asyncio.run(run())
    if done is None:
        print("knowledge base not empty: nothing imported", file=sys.stderr)
    else:
        print(f"imported {args.file}: {done[0]} added, {done[1]} updated", file=sys.stderr)
    return 0


def cmd_kb_export(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.knowledge import export_records, render
    from gateway.store import Store

    async def run() -> str:
        store = Store(settings.database_url)
        try:
            return render(await export_records(store), args.format)
        finally:
            await store.close()

    text = asyncio.run(run())
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


def cmd_cron(args: argparse.Namespace) -> int:
    settings = load_settings()
    require_redis(settings)
    from workers.cron import cron_scheduler

    cron_scheduler(settings).start()  # type: ignore[no-untyped-call]
    return 0


def cmd_attachments_sweep(args: argparse.Namespace) -> int:
    settings = load_settings()
    from channels.attachment_store import store_directories
    from gateway.store import Store
    from workers.attachment_sweep import sweep_attachments

    async def run() -> str:
        store = Store(settings.database_url)
        try:
            report = await sweep_attachments(
                store, store_directories(settings), older_than=timedelta(hours=args.older_than)
            )
        finally:
            await store.close()
        return (
            f"removed {report.removed} files ({report.freed_bytes} bytes);"
            f" kept {report.kept} old files that messages name"
        )

    print(asyncio.run(run()))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.outbox_admin import HandedToEmail, failed_rows, retry_row
    from gateway.store import Store

    async def run() -> int:
        store = Store(settings.database_url)
        try:
            if args.outbox_command == "failed":
                for row in await failed_rows(store):
                    print("\t".join(str(v) for v in row))
                return 0
            try:
                retried = await retry_row(store, args.id)
            except HandedToEmail as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            if retried:
                print(f"outbox row {args.id} queued again", file=sys.stderr)
                return 0
            print(f"error: no failed outbox row {args.id}", file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_inbound(args: argparse.Namespace) -> int:
    settings = load_settings()
    from gateway.inbound_admin import drop_parked, parked_inputs, parked_raw
    from gateway.store import Store

    async def run() -> int:
        store = Store(settings.database_url)
        try:
            if args.inbound_command == "replay":
                return await _replay(settings, store, args.id)
            if args.inbound_command == "parked":
                for parked in await parked_inputs(store):
                    print(parked.line())
                return 0
            if args.inbound_command == "raw":
                raw = await parked_raw(store, args.id)
                if raw:
                    sys.stdout.buffer.write(raw)
                    sys.stdout.flush()
                    return 0
                if raw is not None:  # a mail the server would not hand over: none were kept
                    print(f"error: parked input {args.id} has no bytes kept", file=sys.stderr)
                    return 1
            elif await drop_parked(store, args.id):
                print(f"parked input {args.id} dropped", file=sys.stderr)
                return 0
            print(f"error: no parked input {args.id}", file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(run())


async def _replay(settings: Settings, store: Store, parked_id: int) -> int:
    from gateway.inbound_replay import NotReplayed, replay

    try:
        done = await replay(settings, store, parked_id)
    except NotReplayed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"parked input {parked_id} replayed ({done.channel}: {done.outcome})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Customer-service messaging gateway."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.set_defaults(func=func)
        return sub

    add(
        "up",
        cmd_up,
        "Check Redis, migrate, then run serve, worker and cron, supervised (one machine).",
    )
    serve = add("serve", cmd_serve, "Run the web server (and the outbox relay, unless disabled).")
    serve.add_argument("--host", help="listen address (default GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default GATEWAY_PORT)")
    worker = add(
        "worker", cmd_worker, "Run an RQ worker for the sla, replies, notices, surveys queues."
    )
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.add_argument(
        "--class",
        dest="worker_class",
        choices=("fork", "simple"),
        default="fork",
        help="fork a work horse per job (RQ's default) or run jobs in this process (faster)",
    )
    add("relay", cmd_relay, "Run the outbox relay alone (when GATEWAY_OUTBOX_RELAY=false).")
    add(
        "cron",
        cmd_cron,
        "Run RQ's cron scheduler: the SLA sweep every 30 seconds, the attachment and"
        " channel-state sweeps every 6 hours.",
    )
    attachments = commands.add_parser("attachments", help="The attachment store.")
    attachments_commands = attachments.add_subparsers(
        dest="attachments_command", required=True, metavar="COMMAND"
    )
    attachments_sweep = attachments_commands.add_parser(
        "sweep",
        help="Remove stored files no message names (abandoned uploads), once old enough.",
        description="Remove files of the attachment store that no message names and that are"
        " older than --older-than hours, and temporary files left by a crash.",
    )
    attachments_sweep.add_argument(
        "--older-than",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="grace period in hours (default 24: an upload kept that long unsent is abandoned)",
    )
    attachments_sweep.set_defaults(func=cmd_attachments_sweep)
    outbox = commands.add_parser("outbox", help="Deliveries that failed for good.")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True, metavar="COMMAND")
    outbox_commands.add_parser(
        "failed",
        help="List parked deliveries: id, channel, template, ticket, attempts, reason.",
        description="List parked deliveries (tab-separated), oldest first. A notice handed to"
        " email is not listed: its email row is, if that fails.",
    ).set_defaults(func=cmd_outbox)
    retry = outbox_commands.add_parser(
        "retry",
        help="Send a parked delivery again.",
        description="Send a parked delivery again (not one handed to email: retry its email row).",
    )
    retry.add_argument("id", type=int)
    retry.set_defaults(func=cmd_outbox)
    inbound = commands.add_parser("inbound", help="Input a channel gave up on (parked).")
    inbound_commands = inbound.add_subparsers(
        dest="inbound_command", required=True, metavar="COMMAND"
    )
    inbound_commands.add_parser(
        "parked",
        help="List parked input: id, channel, external id, reason, attempts, parked at, error.",
        description="List Telegram updates and mails parked after failing for a reason of their"
        " own (tab-separated), oldest first.",
    ).set_defaults(func=cmd_inbound)
    raw = inbound_commands.add_parser(
        "raw",
        help="Print a parked input's bytes as they came.",
        description="Print a parked input's bytes as they came: a Telegram update's JSON, a"
        " mail's RFC 5322 bytes (`gateway inbound replay ID` feeds one in again).",
    )
    raw.add_argument("id", type=int)
    raw.set_defaults(func=cmd_inbound)
    drop = inbound_commands.add_parser(
        "drop",
        help="Remove a parked input from the list, once dealt with.",
        description="Remove a parked input from the list, once dealt with.",
    )
    drop.add_argument("id", type=int)
    drop.set_defaults(func=cmd_inbound)
    replay = inbound_commands.add_parser(
        "replay",
        help="Feed a parked input in again, once its cause is fixed; dropped if that succeeds.",
        description="Run a parked Telegram update or mail through its channel again (stored,"
        " answered or escalated as the gateway would; its replies leave through the running"
        " gateway's outbox). Taken off the list once that succeeds; it stays parked, with the"
        " error printed, if it fails again. Stores nothing twice.",
    )
    replay.add_argument("id", type=int)
    replay.set_defaults(func=cmd_inbound)
    migrate = add("migrate", cmd_migrate, "Apply the database migrations.")
    migrate.add_argument("revision", nargs="?", default="head", help="target (default: head)")

    agents = commands.add_parser("agents", help="Manage agent accounts.")
    agents_commands = agents.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    create = agents_commands.add_parser(
        "create",
        help="Create an agent (the first admin, too); password from stdin or prompted.",
        description="Create an agent; the password is read from stdin, or prompted on a terminal.",
    )
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=["agent", "supervisor", "admin"], default="agent")
    create.set_defaults(func=cmd_agents_create)

    kb = commands.add_parser("kb", help="Knowledge base tools.")
    kb_commands = kb.add_subparsers(dest="kb_command", required=True, metavar="COMMAND")
    match = kb_commands.add_parser(
        "match",
        help="Match queries against a KB file with the product's default threshold.",
        description="Match each query of Q.jsonl against KB.jsonl; write one result line each.",
    )
    match.add_argument(
        "--kb", type=Path, required=True, help="KB.jsonl: {id,title,examples,answer}"
    )
    match.add_argument("--queries", type=Path, required=True, help="Q.jsonl: {id,text}")
    match.add_argument("--out", type=Path, help="R.jsonl (default: stdout)")
    match.set_defaults(func=cmd_kb_match)
    kb_import = kb_commands.add_parser(
        "import",
        help="Add or update entries from a YAML, CSV or JSONL file (by id).",
        description="Add or update knowledge-base entries from FILE (.yaml, .csv or .jsonl).",
    )
    kb_import.add_argument("file", type=Path)
    kb_import.add_argument(
        "--if-empty", action="store_true", help="only when the knowledge base has no entries"
    )
    kb_import.set_defaults(func=cmd_kb_import)
    kb_export = kb_commands.add_parser(
        "export",
        help="Write every entry as YAML, JSONL or CSV.",
        description="Write every knowledge-base entry in a format `gateway kb import` reads.",
    )
    kb_export.add_argument("--format", choices=["yaml", "jsonl", "csv"], default="yaml")
    kb_export.add_argument("--out", type=Path, help="file (default: stdout)")
    kb_export.set_defaults(func=cmd_kb_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in {"up", "serve", "worker", "relay", "cron"}:
        configure_logging()
    result: int = args.func(args)
    return result
