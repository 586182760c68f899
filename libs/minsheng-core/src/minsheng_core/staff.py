"""Staff accounts, roles and sessions, shared by every service with a staff page (operator console, staff console).

Passwords are hashed with Argon2id; a session is a random token whose SHA-256 is kept, so a copy of the database
does not let anyone in. Accounts live in ``staff_accounts``, sessions in ``staff_sessions``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

SESSION_LIFETIME = timedelta(hours=12)
_HASHER = PasswordHasher()
# Verifying against a real hash when the user does not exist keeps the answer time the same either way.
_DUMMY_HASH = _HASHER.hash("no such user")
USERNAME_PATTERN = r"^[a-z0-9_.-]{3,40}$"


class Role(StrEnum):
    ADMIN = "admin"  # district administrator: everything
    UNIT_STAFF = "unit_staff"  # sees and edits only its own unit
    OPERATOR = "operator"  # TV hotline operator: enters callers' suggestions
    SUPERVISOR = "supervisor"  # reads everything, changes nothing


class AccountExists(Exception):
    """The username is taken."""


@dataclass(frozen=True)
class StaffMember:
    """Who is signed in, as the pages and APIs see them."""

    username: str
    display_name: str
    role: Role
    unit: str | None

    def has(self, *roles: Role) -> bool:
        return self.role in roles


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaffDirectory:
    """Accounts and sessions in the database."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._accounts = db.staff_accounts
        self._sessions = db.staff_sessions

    async def ensure_indexes(self) -> None:
        await self._sessions.create_index("username")

    async def create(self, username: str, password: str, role: Role, display_name: str, unit: str | None = None) -> StaffMember:
        """Create an account; raises AccountExists, or ValueError for a unit role without a unit or a weak password."""
        if role is Role.UNIT_STAFF and not unit:
            raise ValueError("unit staff need a unit")
        if len(password) < 10:
            raise ValueError("a password has at least 10 characters")
        document = {
            "_id": username,
            "display_name": display_name,
            "role": role.value,
            "unit": unit,
            "password_hash": _HASHER.hash(password),
            "active": True,
            "created_at": datetime.now(UTC),
        }
        try:
            await self._accounts.insert_one(document)
        except DuplicateKeyError:
            raise AccountExists(username) from None
        return StaffMember(username, display_name, role, unit)

    async def authenticate(self, username: str, password: str) -> StaffMember | None:
        """The member whose password this is, or None (unknown user, wrong password, inactive account)."""
        account = await self._accounts.find_one({"_id": username})
        stored = account["password_hash"] if account else _DUMMY_HASH
        try:
            await asyncio.to_thread(_HASHER.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if account is None or not account.get("active", True):
            return None
        return _member(account)

    async def open_session(self, member: StaffMember) -> str:
        """A new session token for the member (the cookie's value)."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        await self._sessions.insert_one(
            {"_id": _digest(token), "username": member.username, "created_at": now, "expires_at": now + SESSION_LIFETIME}
        )
        return token

    async def member_for(self, token: str | None) -> StaffMember | None:
        """The member a session token belongs to, while it is valid and the account active."""
        if not token or len(token) > 100:
            return None
        session = await self._sessions.find_one({"_id": _digest(token)})
        if session is None or session["expires_at"].replace(tzinfo=UTC) <= datetime.now(UTC):
            return None
        account = await self._accounts.find_one({"_id": session["username"]})
        return _member(account) if account and account.get("active", True) else None

    async def close_session(self, token: str) -> None:
        await self._sessions.delete_one({"_id": _digest(token)})


def _member(account: dict) -> StaffMember:
    return StaffMember(account["_id"], account["display_name"], Role(account["role"]), account.get("unit"))


def main(argv: list[str] | None = None) -> int:
    """``minsheng-staff create``: create a staff account (the first administrator, operators, unit staff)."""
    from minsheng_core.mongo import mongo_client
    from minsheng_core.settings import ServiceSettings

    parser = argparse.ArgumentParser(prog="minsheng-staff", description="Staff accounts of Minsheng.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create an account; the password is asked for, or read from stdin")
    create.add_argument("username")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.ADMIN.value)
    create.add_argument("--name", required=True, help="display name, e.g. 张敏")
    create.add_argument("--unit", help="unit code (unit staff)")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    if not __import__("re").fullmatch(USERNAME_PATTERN, args.username):
        parser.error("a username has 3–40 lower-case letters, digits, '.', '_' or '-'")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")

    async def run() -> StaffMember:
        settings = ServiceSettings()
        client = mongo_client(settings.mongo_url.get_secret_value())
        try:
            directory = StaffDirectory(client[settings.mongo_database])
            return await directory.create(args.username, password, Role(args.role), args.name, args.unit)
        finally:
            await client.close()

    try:
        member = asyncio.run(run())
    except (AccountExists, ValueError) as exc:
        print(f"minsheng-staff: {exc if isinstance(exc, ValueError) else f'{exc} exists already'}", file=sys.stderr)
        return 1
    print(f"created {member.role.value} {member.username}")
    return 0
