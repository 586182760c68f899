"""The Official Accounts one deployment serves (the district's and the towns'), from a YAML file."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from minsheng_wechat.client import ApiCredentials
from minsheng_wechat.crypto import MessageCipher

DEV_TOKEN_PREFIX = "devonly"  # tokens of the repository's development accounts; refused in production


class AccountsFileError(ValueError):
    """The accounts file cannot be used; the message says where and why."""


class WechatAccount(BaseModel):
    """One Official Account as configured on the WeChat platform's server settings page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    appid: str = Field(pattern=r"^wx[0-9A-Za-z]{16}$")
    name: str = Field(min_length=1, max_length=50, description="display name, e.g. 同心双滦")
    token: SecretStr = Field(description="the Token field: 3–32 letters or digits")
    encoding_aes_key: SecretStr = Field(description="the EncodingAESKey field: 43 characters")
    app_secret: SecretStr | None = Field(default=None, description="AppSecret, for the message API (later replies)")
    unit: str | None = Field(default=None, description="unit code: the default unit of what arrives on this account")
    decision_template_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="template message for decisions once the 48-hour window is over"
    )

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if not (3 <= len(token) <= 32 and token.isascii() and token.isalnum()):
            raise ValueError("a WeChat token has 3 to 32 letters or digits")
        return value

    @field_validator("encoding_aes_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        MessageCipher(value.get_secret_value(), "wx0000000000000000")  # raises ValueError with the reason
        return value

    def cipher(self) -> MessageCipher:
        return MessageCipher(self.encoding_aes_key.get_secret_value(), self.appid)

    def credentials(self) -> ApiCredentials | None:
        """What the message API needs, when the AppSecret is configured."""
        return ApiCredentials(self.appid, self.app_secret.get_secret_value()) if self.app_secret else None


class _AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[WechatAccount] = Field(min_length=1)


def load_accounts(path: Path, known_units: Collection[str] = (), production: bool = False) -> dict[str, WechatAccount]:
    """Accounts by appid; raises AccountsFileError naming the file and the field at fault."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        accounts = _AccountsFile.model_validate(raw).accounts
    except (OSError, yaml.YAMLError) as exc:
        raise AccountsFileError(f"{path}: cannot read: {exc}") from exc
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise AccountsFileError(f"{path}: {where}") from exc
    by_appid: dict[str, WechatAccount] = {}
    for account in accounts:
        if account.appid in by_appid:
            raise AccountsFileError(f"{path}: appid {account.appid} appears twice")
        if account.unit is not None and known_units and account.unit not in known_units:
            raise AccountsFileError(f"{path}: account {account.appid} names unknown unit {account.unit!r}")
        if production and account.token.get_secret_value().startswith(DEV_TOKEN_PREFIX):
            raise AccountsFileError(f"{path}: account {account.appid} still has a development token")
        by_appid[account.appid] = account
    return by_appid
