"""The accounts file: the repository's development accounts load; mistakes are named; production refuses dev tokens."""

from __future__ import annotations

import pytest
import yaml

from minsheng_core.paths import REPO_ROOT
from minsheng_core.units import load_units
from minsheng_wechat.accounts import AccountsFileError, load_accounts

GOOD = {"appid": "wx5e1a0c3d7b9f2468", "name": "同心双滦", "token": "abc123", "encoding_aes_key": "A" * 43}


def write(tmp_path, *accounts):
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"accounts": list(accounts)}, allow_unicode=True), encoding="utf-8")
    return path


def test_the_repositorys_development_accounts_load_with_their_units():
    accounts = load_accounts(REPO_ROOT / "config" / "wechat" / "accounts.yaml", load_units().codes())
    assert {a.name: a.unit for a in accounts.values()} == {"同心双滦": None, "双塔山镇": "shuangtashan"}
    with pytest.raises(AccountsFileError, match="development token"):
        load_accounts(REPO_ROOT / "config" / "wechat" / "accounts.yaml", production=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"appid": "not-an-appid"}, "accounts.0.appid"),
        ({"token": "has space"}, "3 to 32 letters or digits"),
        ({"encoding_aes_key": "short"}, "43 characters"),
        ({"unit": "atlantis"}, "unknown unit 'atlantis'"),
        ({"nickname": "x"}, "accounts.0.nickname"),
    ],
)
def test_mistakes_in_the_file_are_named(tmp_path, change, message):
    with pytest.raises(AccountsFileError, match=message):
        load_accounts(write(tmp_path, GOOD | change), load_units().codes())


def test_an_appid_twice_is_refused_and_secrets_never_show(tmp_path):
    with pytest.raises(AccountsFileError, match="appears twice"):
        load_accounts(write(tmp_path, GOOD, GOOD))
    account = load_accounts(write(tmp_path, GOOD | {"app_secret": "s3cret"}))[GOOD["appid"]]
    assert "abc123" not in repr(account) and "s3cret" not in repr(account)
    assert account.credentials().secret == "s3cret"
