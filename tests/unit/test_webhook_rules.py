"""The webhook relay's rules without I/O: signatures, backoff, subscriber URLs, what a payload may carry."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from minsheng_core.events import Channel, HouseholdVisited, PersonalData, SuggestionContent, SuggestionReceived, Visit
from minsheng_core.personal import DEV_KEYS, DEV_LOOKUP_KEY, PersonalDataVault
from minsheng_webhooks import sign, verify_signature
from minsheng_webhooks.deliveries import delivery_id
from minsheng_webhooks.payloads import encode, outgoing
from minsheng_webhooks.settings import WebhookSettings
from minsheng_webhooks.subscriptions import SubscriptionCreate, private_target, url_problem

VAULT = PersonalDataVault.from_secrets(DEV_KEYS, DEV_LOOKUP_KEY)
NOW = datetime(2019, 10, 20, 8, tzinfo=UTC)


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac

    body = '{"a":"民声"}'.encode()
    expected = "sha256=" + hmac.new(b"whsec_x", b"1571558400." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_x", "1571558400", body) == expected
    assert verify_signature("whsec_x", body, "1571558400", expected, now=1571558400 + 299)
    assert not verify_signature("whsec_x", body, "1571558400", expected, now=1571558400 + 301)  # a replay, later
    assert not verify_signature("whsec_x", body, "1571558400", expected.upper(), now=1571558400)
    assert not verify_signature("whsec_x", body, None, expected)
    assert not verify_signature("whsec_x", body, "-1", expected)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://partner.example.org/hook?x=1", None),
        ("http://10.0.0.5:8080/hook", None),
        ("ftp://partner.example.org/", "only http"),
        ("file:///etc/passwd", "only http"),
        ("https://a:b@partner.example.org/", "credentials"),
        ("https://token@partner.example.org/", "credentials"),
        ("https:///x", "no host"),
        ("https://partner.example.org/#frag", "fragment"),
        ("https://partner.example.org:99999/", "not a valid URL"),
    ],
)
def test_subscriber_urls(url, problem):
    found = url_problem(url)
    assert (found is None) if problem is None else (problem in found)


def test_private_targets_are_refused_in_production_only():
    for url in ("http://127.0.0.1/x", "http://localhost:8080/", "http://10.1.2.3/", "http://[::1]/", "http://169.254.169.254/"):
        assert private_target(url), url
    assert not private_target("https://partner.example.org/")
    assert not private_target("https://8.8.8.8/")
    assert WebhookSettings(environment="test").private_targets_allowed
    assert not WebhookSettings(environment="test", allow_private_targets=False).private_targets_allowed


def test_subscription_patterns_are_deduplicated_and_checked():
    create = SubscriptionCreate(url="https://x.example/", events=["suggestion.#", " suggestion.# ", "visit.#"])
    assert create.events == ["suggestion.#", "visit.#"]
    with pytest.raises(ValueError, match="matches no event"):
        SubscriptionCreate(url="https://x.example/", events=["suggestion.deleted"])


def test_outgoing_payload_carries_no_personal_data():
    event = SuggestionReceived(
        suggestion_id="s1",
        body=SuggestionContent(
            channel=Channel.HOTLINE,
            channel_ref="CA1",
            campaign="2020",
            title="回电13700001234",
            text="路灯坏了，请打 +8613812345678 找我",
            tracking_code="ABCDE",
            submitted_at=NOW,
        ),
        personal=PersonalData(name="王大山", phone="13812345678", wechat_openid="o-abc"),
    )
    text = encode(outgoing(event, VAULT))
    assert "personal" not in json.loads(text)
    for secret in ("王大山", "13812345678", "13700001234", "o-abc"):
        assert secret not in text
    assert "+86138****5678" in text and "137****1234" in text
    assert SuggestionReceived.model_validate_json(text).body.tracking_code == "ABCDE"
    visit = HouseholdVisited(
        visit_id="v1", body=Visit(unit="u", place="西山村", household="王大山家", visited_on=date(2019, 10, 20), visitor="张")
    )
    first, second = outgoing(visit, VAULT), outgoing(visit, VAULT)
    assert first["body"]["household"] == second["body"]["household"] != "王大山家"  # a stable pseudonym
    assert HouseholdVisited.model_validate(first).visit_id == "v1"


def test_a_delivery_is_one_per_subscription_and_event():
    assert delivery_id("whs_a", "e1") == delivery_id("whs_a", "e1")
    assert len({delivery_id("whs_a", "e1"), delivery_id("whs_b", "e1"), delivery_id("whs_a", "e2")}) == 3
