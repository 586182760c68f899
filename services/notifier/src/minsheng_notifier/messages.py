"""What a submitter reads: short Chinese texts with the tracking code, the outcome and the explanation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from minsheng_core.events import Outcome

OUTCOME_SHORT = {
    Outcome.ADOPTED: "已采纳",
    Outcome.MERGED: "已合并办理",
    Outcome.REFERRED: "已转交办理",
    Outcome.NOT_ADOPTED: "暂未采纳",
}
ELLIPSIS = "…"


@dataclass(frozen=True)
class DecisionText:
    """The parts of a decision a message is made of (no personal data)."""

    tracking_code: str
    outcome: Outcome
    explanation: str
    referred_to: str | None
    released_at: datetime
    status_url: str

    @property
    def outcome_text(self) -> str:
        """The outcome as a sentence ending, e.g. 已被采纳，纳入民心工程项目."""
        if self.outcome is Outcome.ADOPTED:
            return "已被采纳，纳入民心工程项目"
        if self.outcome is Outcome.MERGED:
            return "已与同类建议合并办理"
        if self.outcome is Outcome.REFERRED:
            return f"已转交{self.referred_to}办理" if self.referred_to else "已转交有关部门办理"
        return "经研究暂未采纳"


def status_link(base: str, tracking_code: str) -> str:
    """The status page with the tracking code filled in (the submitter adds their access code)."""
    return base + ("&" if "?" in base else "?") + urlencode({"tracking_code": tracking_code})


def trim(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when it was longer."""
    text = " ".join(text.split())
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def sms_text(d: DecisionText, signature: str, max_chars: int) -> str:
    """The SMS: signature, code, outcome, as much of the explanation as fits, and the status page."""
    head = f"【{signature}】您的建议（查询码{d.tracking_code}）{d.outcome_text}。"
    tail = f"详情：{d.status_url}"
    room = max_chars - len(head) - len(tail) - 1
    explanation = trim(d.explanation, room) if room >= 10 else ""  # a few words cut short help nobody
    return head + (explanation + " " if explanation else "") + tail


def wechat_text(d: DecisionText, max_chars: int) -> str:
    """The customer-service message: the whole explanation unless it is very long."""
    head = f"您的建议（查询码 {d.tracking_code}）{d.outcome_text}。\n"
    tail = f"\n查看详情：{d.status_url}"
    return head + trim(d.explanation, max_chars - len(head) - len(tail)) + tail


def template_data(d: DecisionText, zone: ZoneInfo) -> dict[str, str]:
    """The fields of the decision template message (first, keyword1..3, remark: the classic template layout)."""
    return {
        "first": "您提交的民心工程建议有了处理结果",
        "keyword1": d.tracking_code,
        "keyword2": OUTCOME_SHORT[d.outcome],
        "keyword3": d.released_at.astimezone(zone).strftime("%Y年%m月%d日"),
        "remark": trim(d.explanation, 100) + "\n点击查看详情",
    }
