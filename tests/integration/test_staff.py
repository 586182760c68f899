"""Staff accounts and sessions on the real store: hashed passwords, hashed session tokens, roles, the CLI."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from minsheng_core.staff import AccountExists, Role, StaffDirectory, main

pytestmark = pytest.mark.integration
PASSWORD = "a long enough password"


@pytest.fixture
async def staff(mongo_db):
    client = AsyncMongoClient(mongo_db[0], tz_aware=True)
    directory = StaffDirectory(client[mongo_db[1]])
    await directory.ensure_indexes()
    yield directory, client[mongo_db[1]]
    await client.close()


async def test_sign_in_with_the_password_only_and_nothing_secret_is_stored(staff):
    directory, db = staff
    await directory.create("op-li", PASSWORD, Role.OPERATOR, "李接线")
    assert await directory.authenticate("op-li", "wrong password!") is None
    assert await directory.authenticate("nobody", PASSWORD) is None
    member = await directory.authenticate("op-li", PASSWORD)
    assert (member.username, member.role, member.display_name) == ("op-li", Role.OPERATOR, "李接线")
    token = await directory.open_session(member)
    assert (await directory.member_for(token)).username == "op-li"
    stored = json.dumps([d async for d in db.staff_accounts.find()] + [d async for d in db.staff_sessions.find()], default=str)
    assert PASSWORD not in stored and token not in stored and "$argon2id$" in stored
    await directory.close_session(token)
    assert await directory.member_for(token) is None


async def test_expired_sessions_and_inactive_accounts_let_no_one_in(staff):
    directory, db = staff
    member = await directory.create("sup", PASSWORD, Role.SUPERVISOR, "督查员")
    token = await directory.open_session(member)
    await db.staff_sessions.update_many({}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}})
    assert await directory.member_for(token) is None
    fresh = await directory.open_session(member)
    await db.staff_accounts.update_one({"_id": "sup"}, {"$set": {"active": False}})
    assert await directory.member_for(fresh) is None and await directory.authenticate("sup", PASSWORD) is None
    assert await directory.member_for("x" * 500) is None and await directory.member_for(None) is None


async def test_rules_for_new_accounts(staff):
    directory, _ = staff
    await directory.create("unit-a", PASSWORD, Role.UNIT_STAFF, "甲", unit="xidi")
    with pytest.raises(AccountExists):
        await directory.create("unit-a", PASSWORD, Role.ADMIN, "乙")
    with pytest.raises(ValueError, match="need a unit"):
        await directory.create("unit-b", PASSWORD, Role.UNIT_STAFF, "丙")
    with pytest.raises(ValueError, match="at least 10"):
        await directory.create("short", "short", Role.ADMIN, "丁")


def test_the_cli_creates_the_first_administrator(mongo_db, monkeypatch, capsys):
    monkeypatch.setenv("MONGO_URL", mongo_db[0])
    monkeypatch.setenv("MONGO_DATABASE", mongo_db[1])
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["create", "admin", "--role", "admin", "--name", "区办管理员", "--password-stdin"]) == 0
    assert "created admin admin" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["create", "admin", "--name", "又一个", "--password-stdin"]) == 1
    assert "exists already" in capsys.readouterr().err
