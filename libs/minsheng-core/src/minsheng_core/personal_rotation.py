"""Key rotation of personal data at rest: every sealed value made under an older key is sealed again under the
current one, so that the older key can leave the ring. Also seals legacy plain values (and adds their look-up
hashes). Idempotent and resumable: what is current already is left alone, documents are walked by ``_id`` in
batches and each is rewritten on its own (no multi-document update: FerretDB hangs on large ones), only if it
has not changed since it was read.

``python -m minsheng_core.personal_rotation rotate`` (the store's settings: ``MINSHENG_STORE_MONGO_URL``,
``MINSHENG_STORE_PERSONAL_DATA_KEYS``, ``MINSHENG_STORE_PERSONAL_LOOKUP_KEY``…); ``new-key`` prints a fresh key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from pydantic_settings import SettingsConfigDict
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.personal import (
    LOOKUP_FIELDS,
    SEALED_FIELDS,
    PersonalDataError,
    PersonalDataVault,
    is_sealed,
    new_key,
)
from minsheng_core.settings import ServiceSettings

log = structlog.get_logger(__name__)
DEFAULT_COLLECTION = "personal_data"


@dataclass
class RotationReport:
    """What a rotation run did."""

    scanned: int = 0
    resealed: int = 0
    unreadable: list[str] = field(default_factory=list)  # ids whose values no key in the ring opens
    last_id: str | None = None

    def line(self) -> str:
        return f"scanned {self.scanned}, resealed {self.resealed}, unreadable {len(self.unreadable)}" + (
            f" (last id {self.last_id})" if self.last_id is not None else ""
        )


def _kinds(fields: Sequence[str]) -> dict[str, str]:
    """``name`` (sealed with its own name as the kind) or ``name=kind``, e.g. the notifier's ``openid=wechat_openid``."""
    kinds = {}
    for spec in fields:
        name, _, kind = spec.partition("=")
        kinds[name.strip()] = kind.strip() or name.strip()
    return kinds


def _rewritten(vault: PersonalDataVault, doc: dict, kinds: dict[str, str]) -> dict[str, str]:
    """The fields of ``doc`` that must change: sealed again under the current key, or sealed for the first time."""
    changes: dict[str, str] = {}
    for name, kind in kinds.items():
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            continue
        if not is_sealed(value):  # a legacy plain value: sealed now, with its look-up hash
            changes[name] = vault.seal(kind, value)
            if name == kind and name in LOOKUP_FIELDS:
                changes[LOOKUP_FIELDS[name]] = vault.lookup(name, value)
        elif vault.needs_resealing(value):
            changes[name] = vault.reseal(kind, value)
    return changes


async def rotate(
    db: AsyncDatabase,
    vault: PersonalDataVault,
    collection: str = DEFAULT_COLLECTION,
    fields: Sequence[str] = SEALED_FIELDS,
    batch: int = 100,
    after: str | None = None,
) -> RotationReport:
    """Re-seal every document of ``collection`` under the current key; ``after`` resumes past that ``_id``."""
    report = RotationReport()
    coll = db[collection]
    kinds = _kinds(fields)
    while True:
        query = {"_id": {"$gt": after}} if after is not None else {}
        docs = await coll.find(query, dict.fromkeys(kinds, 1)).sort("_id", ASCENDING).limit(batch).to_list(None)
        if not docs:
            return report
        for doc in docs:
            report.scanned += 1
            try:
                changes = _rewritten(vault, doc, kinds)
            except PersonalDataError:
                report.unreadable.append(str(doc["_id"]))
                continue
            if changes:
                # Only if unchanged since read: a concurrent write (sealed under the current key) must not be undone.
                unchanged = {"_id": doc["_id"], **{name: doc.get(name) for name in kinds if name in changes}}
                result = await coll.update_one(unchanged, {"$set": changes})
                report.resealed += result.modified_count
        after = report.last_id = docs[-1]["_id"]
        log.info("personal_data_rotation_progress", collection=collection, scanned=report.scanned, resealed=report.resealed)


class RotationSettings(ServiceSettings):
    """The store's settings: the database and the key ring the store seals with."""

    model_config = SettingsConfigDict(env_prefix="MINSHENG_STORE_", extra="ignore", frozen=True, env_ignore_empty=True)


def main(argv: list[str] | None = None) -> int:
    """``minsheng-personal rotate`` / ``new-key``."""
    from minsheng_core.logging import configure_logging
    from minsheng_core.mongo import mongo_client

    parser = argparse.ArgumentParser(prog="minsheng-personal", description="Personal data at rest: key rotation.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("rotate", help="seal every personal-data value again under the current (first) key")
    run.add_argument("--collection", default=DEFAULT_COLLECTION, help="collection of sealed contact documents")
    run.add_argument(
        "--fields", default=",".join(SEALED_FIELDS), help="comma-separated sealed fields: name, or name=kind when they differ"
    )
    run.add_argument("--batch", type=int, default=100, help="documents read per round (each is updated on its own)")
    run.add_argument("--after", help="resume after this _id (printed by an interrupted run)")
    commands.add_parser("new-key", help="print a fresh random key for the ring")
    args = parser.parse_args(argv)
    if args.command == "new-key":
        print(new_key())
        return 0

    settings = RotationSettings()
    configure_logging("personal-rotation", settings.log_format, settings.log_level)
    vault = settings.vault

    async def go() -> RotationReport:
        client = mongo_client(settings.mongo_url.get_secret_value())
        try:
            fields = [name.strip() for name in args.fields.split(",") if name.strip()]
            return await rotate(client[settings.mongo_database], vault, args.collection, fields, args.batch, args.after)
        finally:
            await client.close()

    report = asyncio.run(go())
    print(f"minsheng-personal: current key {vault.current}: {report.line()}")
    for unreadable in report.unreadable[:20]:
        print(f"  unreadable: {unreadable} (sealed with a key no longer in the ring)", file=sys.stderr)
    return 1 if report.unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
