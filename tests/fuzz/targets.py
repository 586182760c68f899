"""Every HTTP service the fuzz suite knows, in one place: a service whose package is not there yet is skipped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml

# How an authenticated fuzz run signs its requests: with an administrator's staff token (the staff API of the store,
# survey, notifier, webhooks…), with the service's own static bearer token (the call centre's transcripts API), or
# not at all (public or signed callbacks: the web form, the classifier, WeChat and Twilio webhooks).
Auth = Literal["staff", "transcripts", "none"]

# The WeChat accounts the fuzzed intake-wechat serves (tokens and keys of the tests, never real ones).
WECHAT_ACCOUNTS = [
    {
        "appid": "wx5e1a0c3d7b9f2468",
        "name": "同心双滦",
        "token": "fuzztoken1",
        "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    },
]
TRANSCRIPTS_TOKEN = "fuzz-transcripts-token"


@dataclass(frozen=True)
class Target:
    """One service: where its app and settings live, how to configure it for a fuzz run, how it authenticates."""

    name: str
    package: str  # the Python package; the app is ``<package>.app:create_app``
    settings_class: str  # in ``<package>.settings``
    auth: Auth
    extra_settings: Callable[[Path, dict[str, Any]], dict[str, Any]] = lambda _dir, _ctx: {}
    needs_model: bool = False  # the classifier loads a trained model
    # Operations (method path) whose bearer token is not declared as an OpenAPI security scheme but still required.
    secured_without_scheme: frozenset[str] = field(default_factory=frozenset)
    # Values that mean something to the service ("path.unit": real unit codes, "body.text": words a resident would
    # write), drawn for that parameter half the time, so that fuzz cases also get past the first check.
    known_values: dict[str, list[Any]] = field(default_factory=dict)


def _outbox(name: str) -> Callable[[Path, dict[str, Any]], dict[str, Any]]:
    return lambda directory, _ctx: {"outbox_path": directory / f"{name}-outbox.sqlite3", "drain_interval_seconds": 0.5}


def _web(directory: Path, ctx: dict[str, Any]) -> dict[str, Any]:
    # Every fuzz case comes from the same address: limits high enough never to answer 429 to the fuzzer.
    return {**_outbox("web")(directory, ctx), "submissions_rate": "100000/minute", "lookups_rate": "100000/minute"}


def _wechat(directory: Path, ctx: dict[str, Any]) -> dict[str, Any]:
    accounts = directory / "wechat-accounts.yaml"
    accounts.write_text(yaml.safe_dump({"accounts": WECHAT_ACCOUNTS}, allow_unicode=True), encoding="utf-8")
    return {**_outbox("wechat")(directory, ctx), "accounts_file": accounts}


def _hotline(directory: Path, ctx: dict[str, Any]) -> dict[str, Any]:
    return {
        **_outbox("hotline")(directory, ctx),
        "public_url": "http://hotline",
        "twilio_auth_token": "fuzz-twilio-auth-token",
        "transcripts_token": TRANSCRIPTS_TOKEN,
        # No classifier runs next to it: the console's prediction gives up at once.
        "classifier_url": "http://127.0.0.1:9",
    }


def _classifier(_directory: Path, ctx: dict[str, Any]) -> dict[str, Any]:
    return {"model_dir": ctx["model_dir"]}


def _notifier(_directory: Path, _ctx: dict[str, Any]) -> dict[str, Any]:
    # Nothing must leave the machine: no SMS sender configured, WeChat's API on a closed port.
    return {"wechat_api_base": "http://127.0.0.1:9", "sms_from": None}


def _unit_codes() -> list[str]:
    from minsheng_core.units import DEFAULT_UNITS_FILE, load_units

    return sorted(load_units(DEFAULT_UNITS_FILE).codes())


UNIT_CODES = _unit_codes()


SUGGESTION_TEXTS = [
    "村里到镇上的路一下雨就是泥，希望硬化",
    "希望在社区增设老年食堂",
    "路灯坏了 <script>alert(1)</script>",
    '{"$gt": ""}',
]

TARGETS: list[Target] = [
    Target("intake-web", "minsheng_intake_web", "WebSettings", "none", _web, known_values={"body.text": SUGGESTION_TEXTS}),
    Target("classifier", "minsheng_classifier", "ClassifierSettings", "none", _classifier, needs_model=True),
    Target(
        "intake-wechat",
        "minsheng_intake_wechat",
        "WechatSettings",
        "none",
        _wechat,
        known_values={"path.appid": [a["appid"] for a in WECHAT_ACCOUNTS]},
    ),
    Target(
        "intake-hotline",
        "minsheng_intake_hotline",
        "HotlineSettings",
        "transcripts",
        _hotline,
        secured_without_scheme=frozenset({"POST /api/v1/transcripts"}),
    ),
    Target(
        "intake-survey",
        "minsheng_intake_survey",
        "SurveySettings",
        "staff",
        _outbox("survey"),
        known_values={
            "query.unit": UNIT_CODES,
            "body.held_on": [date.today().isoformat()],  # inside the fuzz run's campaign window
            "body.suggestions[*].text": SUGGESTION_TEXTS,
        },
    ),
    Target("notifier", "minsheng_notifier", "NotifierSettings", "staff", _notifier),
    Target("webhooks", "minsheng_webhooks", "WebhookSettings", "staff"),
    # The store last: the largest API, and the one still growing.
    Target(
        "store",
        "minsheng_store",
        "StoreSettings",
        "staff",
        known_values={"path.unit": UNIT_CODES, "query.unit": UNIT_CODES, "body.unit": UNIT_CODES},
    ),
]
