"""What the account says to residents, in Chinese; one place, so that the wording can be reviewed as a whole."""

from __future__ import annotations

from minsheng_core.campaign import Campaign
from minsheng_core.intake import Tracked
from minsheng_core.text import NO_WORDS

HOW_TO = "直接发送文字或语音，说明您希望办的实事和具体地点（乡镇、村或社区）；可以再补发一张图片。"
HOW_TO_QUERY = "发送“查询 查询码”（例如：查询 7KQ2M-9XD4A）可查看办理情况。"


def welcome(account_name: str, campaign: Campaign) -> str:
    return (
        f"欢迎关注{account_name}！{campaign.name}正在征集意见建议，征集时间为{campaign.window_text()}。"
        f"{HOW_TO}我们会回复查询码。{HOW_TO_QUERY}"
    )


def help_text(campaign: Campaign) -> str:
    return f"{campaign.name}（征集时间{campaign.window_text()}）：{HOW_TO}{HOW_TO_QUERY}"


def received(tracking_code: str) -> str:
    return f"您的建议已收到，感谢参与！查询码：{tracking_code}。{HOW_TO_QUERY}"


def voice_awaiting_transcription(tracking_code: str) -> str:
    return f"您的语音已收到，暂未识别出文字，工作人员将根据录音整理。查询码：{tracking_code}。如方便，也可以再发一条文字说明。"


def image_awaiting_text(tracking_code: str) -> str:
    return f"图片已收到，查询码：{tracking_code}。请再发一条文字，说明图片反映的问题和具体地点。"


def image_attached(tracking_code: str) -> str:
    return f"图片已补充到您刚才提交的建议（查询码：{tracking_code}）。"


def no_words() -> str:
    return NO_WORDS + HOW_TO


def status(tracked: Tracked, campaign: Campaign) -> str:
    sorted_as = f"，归入“{campaign.category_name(tracked.category)}”" if tracked.category else ""
    submitted = tracked.submitted_at.astimezone(campaign.zone)
    return f"查询码 {tracked.tracking_code}：{tracked.status_text}{sorted_as}。提交时间 {submitted:%Y-%m-%d %H:%M}。"


def not_found(code: str) -> str:
    return f"没有找到您提交的、查询码为 {code} 的建议。请核对查询码；只能查询本微信号提交的建议。"


def bad_code() -> str:
    return f"查询码格式不正确。{HOW_TO_QUERY}"


def lookup_unavailable() -> str:
    return "查询暂时不可用，请稍后再试。您的建议不会丢失。"
