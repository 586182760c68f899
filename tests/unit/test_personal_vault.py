"""The personal-data vault: sealing, opening, rotation, look-up hashes, masks and phone numbers in texts."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from minsheng_core.personal import (
    DEV_KEYS,
    PersonalDataError,
    PersonalDataVault,
    is_sealed,
    mask_name,
    mask_openid,
    mask_phone,
    masked_fields,
    new_key,
    opened_fields,
    parse_key_ring,
    redact_phone_numbers,
    sealed_fields,
)
from minsheng_core.settings import ServiceSettings

OLD, NEW = new_key(), new_key()
LOOKUP = "a look-up key of enough length"


def vault(ring: str, lookup: str = LOOKUP) -> PersonalDataVault:
    return PersonalDataVault.from_secrets(ring, lookup)


def test_a_sealed_value_opens_to_itself_and_shows_nothing_of_it():
    v = vault(f"k1:{OLD}")
    token = v.seal("phone", "13812345678")
    assert token.startswith("gcm1.k1.") and is_sealed(token)
    assert "13812345678" not in token and "13812345678" not in base64.urlsafe_b64decode(token.split(".")[2]).decode("latin-1")
    assert v.open("phone", token) == "13812345678"
    assert v.seal("phone", "13812345678") != token  # a fresh nonce each time: equal values do not look equal


def test_a_tampered_value_does_not_open():
    v = vault(f"k1:{OLD}")
    token = v.seal("phone", "13812345678")
    raw = bytearray(base64.urlsafe_b64decode(token.split(".")[2]))
    raw[-1] ^= 1
    tampered = "gcm1.k1." + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(PersonalDataError, match="does not open"):
        v.open("phone", tampered)
    with pytest.raises(PersonalDataError, match="does not open"):
        v.open("phone", token[:-4])
    with pytest.raises(PersonalDataError, match="not a sealed value"):
        v.open("phone", "13812345678")


def test_a_value_sealed_for_one_field_does_not_open_as_another():
    v = vault(f"k1:{OLD}")
    token = v.seal("phone", "13812345678")
    with pytest.raises(PersonalDataError):
        v.open("wechat_openid", token)


def test_rotation_keeps_old_values_readable_and_reseals_them_under_the_new_key():
    before = vault(f"k1:{OLD}")
    old_token = before.seal("name", "张三")
    during = vault(f"k2:{NEW},k1:{OLD}")  # the new key first: it seals; the old one still opens
    assert during.current == "k2"
    assert during.open("name", old_token) == "张三"
    assert during.needs_resealing(old_token)
    fresh = during.reseal("name", old_token)
    assert fresh.startswith("gcm1.k2.") and not during.needs_resealing(fresh)
    assert during.reseal("name", fresh) == fresh  # idempotent
    after = vault(f"k2:{NEW}")  # the old key removed once everything is resealed
    assert after.open("name", fresh) == "张三"
    with pytest.raises(PersonalDataError, match="no longer in the key ring"):
        after.open("name", old_token)


def test_an_unknown_key_id_is_named_in_the_error():
    token = vault(f"k9:{OLD}").seal("phone", "13812345678")
    with pytest.raises(PersonalDataError, match="'k9'"):
        vault(f"k1:{OLD}").open("phone", token)


@pytest.mark.parametrize(
    ("ring", "message"),
    [
        ("", "empty"),
        (" , ", "empty"),
        (OLD, "<id>:"),
        (f"a.b:{OLD}", "without dots"),
        (f"k1:{OLD},k1:{NEW}", "twice"),
        ("k1:" + base64.urlsafe_b64encode(b"too short").decode(), "32 bytes"),
        ("k1:not base64!!", "base64url"),
    ],
)
def test_a_bad_key_ring_is_refused_with_a_reason(ring, message):
    with pytest.raises(PersonalDataError, match=message):
        parse_key_ring(ring)


def test_a_short_look_up_key_is_refused():
    with pytest.raises(PersonalDataError, match="16 characters"):
        vault(f"k1:{OLD}", "short")


def test_look_up_hashes_depend_on_value_kind_and_key_but_not_on_the_encryption_keys():
    one = vault(f"k1:{OLD}")
    rotated = vault(f"k2:{NEW},k1:{OLD}")
    assert one.lookup("phone", "13812345678") == rotated.lookup("phone", "13812345678")
    assert one.lookup("phone", "13812345678") != one.lookup("phone", "13812345679")
    assert one.lookup("phone", "x") != one.lookup("wechat_openid", "x")
    assert one.lookup("phone", "13812345678") != vault(f"k1:{OLD}", LOOKUP + "!").lookup("phone", "13812345678")


def test_a_personal_data_document_holds_sealed_values_and_hashes_only():
    v = vault(f"k1:{OLD}")
    doc = sealed_fields(v, {"name": "张三", "phone": "13812345678", "wechat_openid": None})
    assert set(doc) == {"name", "phone", "phone_hash"}
    assert "13812345678" not in str(doc) and "张三" not in str(doc)
    assert doc["phone_hash"] == v.lookup("phone", "13812345678")
    assert opened_fields(v, doc) == {"name": "张三", "phone": "13812345678", "wechat_openid": None}
    assert opened_fields(v, {"phone": "13812345678"})["phone"] == "13812345678"  # a legacy plain value reads as it is


def test_masks():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("03142345678") == "031****5678"
    assert mask_phone("12345") == "****"
    assert mask_openid("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o") == "o****S6o"
    assert mask_name("张三") == "张*" and mask_name("欧阳修") == "欧*" and mask_name("张") == "*"
    assert masked_fields({"name": "李四", "phone": "13900001111", "wechat_openid": None}) == {
        "name": "李*",
        "phone": "139****1111",
        "wechat_openid": None,
    }


@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        ("请打我电话13812345678回复", "请打我电话[号码已删除]回复", 1),
        ("电话 +86 138-1234-5678，或 0314-2345678", "电话 [号码已删除]，或 [号码已删除]", 2),
        ("（0314）2345678", "[号码已删除]", 1),
        ("全角１３８１２３４５６７８", "全角[号码已删除]", 1),
        ("订单号 2013812345678900 金额 1380 元", "订单号 2013812345678900 金额 1380 元", 0),
        ("希望修路", "希望修路", 0),
    ],
)
def test_phone_numbers_typed_into_a_text_are_redacted(text, expected, count):
    assert redact_phone_numbers(text) == (expected, count)


def test_settings_give_a_vault_and_refuse_the_development_keys_in_production():
    assert ServiceSettings().vault.current == DEV_KEYS.split(":")[0]
    ring = f"prod1:{NEW}"
    settings = ServiceSettings(
        environment="production",
        personal_data_keys=SecretStr(ring),
        personal_lookup_key=SecretStr(LOOKUP),
        amqp_url=SecretStr("amqp://u:p@rabbit/"),
    )
    assert settings.vault.current == "prod1"
    with pytest.raises(ValidationError, match="personal_data_keys"):
        ServiceSettings(environment="production", personal_lookup_key=SecretStr(LOOKUP))
