"""The notifier's pure rules: quiet hours, backoff, and the texts a submitter reads."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from minsheng_core.events import Outcome
from minsheng_notifier.messages import DecisionText, sms_text, status_link, template_data, trim, wechat_text
from minsheng_notifier.schedule import QuietHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUIET = QuietHours(time(21, 0), time(8, 0), SHANGHAI)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2019, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def test_quiet_hours_run_overnight_in_the_campaign_zone():
    assert not QUIET.is_quiet(local(20, 20, 59))
    assert QUIET.is_quiet(local(20, 21))
    assert QUIET.is_quiet(local(21, 3))
    assert QUIET.is_quiet(local(21, 7, 59))
    assert not QUIET.is_quiet(local(21, 8))
    # 13:30 UTC is 21:30 in Shanghai.
    assert QUIET.is_quiet(datetime(2019, 11, 20, 13, 30, tzinfo=UTC))


def test_a_message_due_at_night_waits_for_eight_the_next_morning():
    assert QUIET.next_allowed(local(20, 22, 15)) == local(21, 8)
    assert QUIET.next_allowed(local(21, 2)) == local(21, 8)
    assert QUIET.next_allowed(local(21, 12)) == local(21, 12)
    assert QUIET.next_allowed(local(20, 22, 15)).tzinfo is UTC


def test_quiet_hours_within_one_day_and_none_at_all():
    lunch = QuietHours(time(12, 0), time(14, 0), SHANGHAI)
    assert lunch.is_quiet(local(20, 13)) and not lunch.is_quiet(local(20, 22))
    assert lunch.next_allowed(local(20, 12, 30)) == local(20, 14)
    never = QuietHours(time(0, 0), time(0, 0), SHANGHAI)
    assert not never.is_quiet(local(20, 3))


def decision(
    outcome: Outcome = Outcome.NOT_ADOPTED, explanation: str = "该路段已列入明年市级改造计划，将统一施工。"
) -> DecisionText:
    return DecisionText(
        tracking_code="K7Q2M9",
        outcome=outcome,
        explanation=explanation,
        referred_to=None,
        released_at=local(20, 10),
        status_url=status_link("https://minsheng.example/status", "K7Q2M9"),
    )


def test_the_status_link_carries_the_tracking_code():
    assert status_link("https://minsheng.example/status", "K7Q2M9") == "https://minsheng.example/status?tracking_code=K7Q2M9"
    assert status_link("https://x.example/s?lang=zh", "AB") == "https://x.example/s?lang=zh&tracking_code=AB"


def test_an_sms_keeps_code_outcome_and_link_and_trims_the_explanation_to_fit():
    long = decision(explanation="经研究，" + "该项目所需资金较大，" * 30 + "明年再议。")
    text = sms_text(long, "民心工程", 134)
    assert len(text) <= 134
    assert text.startswith("【民心工程】您的建议（查询码K7Q2M9）经研究暂未采纳。")
    assert text.endswith("详情：https://minsheng.example/status?tracking_code=K7Q2M9")
    assert "…" in text
    short = sms_text(decision(), "民心工程", 134)
    assert "该路段已列入明年市级改造计划，将统一施工。" in short and "…" not in short


def test_wechat_texts_and_template_fields():
    text = wechat_text(decision(Outcome.ADOPTED), 600)
    assert "查询码 K7Q2M9" in text and "已被采纳" in text and text.endswith("?tracking_code=K7Q2M9")
    assert len(wechat_text(decision(explanation="字" * 1000), 600)) <= 600
    data = template_data(decision(), SHANGHAI)
    assert data["keyword1"] == "K7Q2M9" and data["keyword2"] == "暂未采纳" and data["keyword3"] == "2019年11月20日"
    assert trim("  a  b ", 10) == "a b" and trim("abcdef", 4) == "abc…"
