"""minsheng-webhooks: look at webhook subscriptions and replay failed deliveries from the command line.

Works on the database directly (settings from MINSHENG_WEBHOOKS_*); the running relay picks replayed deliveries up
within its dispatch interval. Replays are recorded in the audit log as ``cli:<user>``. The service itself runs with
``uvicorn --factory minsheng_webhooks.app:create_app --port 8007``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from minsheng_core.audit import AuditLog
from minsheng_core.mongo import mongo_client
from minsheng_core.staff import Role, StaffMember
from minsheng_webhooks.deliveries import Deliveries
from minsheng_webhooks.settings import WebhookSettings
from minsheng_webhooks.subscriptions import Subscriptions


async def _run(args: argparse.Namespace, settings: WebhookSettings) -> int:
    client = mongo_client(settings.mongo_url.get_secret_value())
    try:
        db = client[settings.mongo_database]
        subscriptions, deliveries = Subscriptions(db, settings.vault), Deliveries(db)
        if args.command == "list":
            for s in await subscriptions.all():
                counts = await deliveries.counts(s.id)
                state = "active" if s.active else "disabled"
                tally = " ".join(f"{k}={v}" for k, v in counts.items())
                print(f"{s.id}  {state:8}  {s.host}  {','.join(s.events)}  {tally}")
            return 0
        if await subscriptions.get(args.subscription) is None:
            print(f"no such subscription: {args.subscription}", file=sys.stderr)
            return 2
        actor = StaffMember(f"cli:{getpass.getuser()}", "command line", Role.ADMIN, None)
        replayed = await deliveries.replay(args.subscription, args.delivery, actor.username, datetime.now(UTC))
        audit = AuditLog(db)
        await audit.record(actor, "replay_webhook_deliveries", args.subscription, delivery=args.delivery, replayed=replayed)
        print(f"replayed {replayed} failed deliveries")
        return 0
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    parser = argparse.ArgumentParser(prog="minsheng-webhooks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="subscriptions with their deliveries counted by state")
    replay = commands.add_parser("replay", help="send failed (given-up) deliveries again, oldest event first")
    replay.add_argument("--subscription", required=True, help="subscription id (whs_…)")
    replay.add_argument("--delivery", help="only this delivery (whd_…); default: every failed one of the subscription")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args, WebhookSettings()))


if __name__ == "__main__":
    sys.exit(main())
