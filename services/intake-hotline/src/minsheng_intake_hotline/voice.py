"""Twilio Programmable Voice: greeting, speech capture, a recording when the words were unclear, the code read out.

Every request is checked with Twilio's RequestValidator against the configured public URL (behind a reverse proxy
the URL the app sees is not the one Twilio signed). A call is one suggestion, keyed by its CallSid.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from minsheng_core.http import error_responses
from minsheng_core.outbox import SubmissionKeyConflict
from minsheng_core.phones import PHONE_PATTERN, canonical_phone, is_mobile
from minsheng_intake_hotline.suggestions import CallWords, CollectionClosed, HotlineIntake

log = structlog.get_logger(__name__)
router = APIRouter(
    prefix="/twilio/voice",
    tags=["twilio"],
    default_response_class=Response,
    responses={
        200: {"description": "TwiML", "content": {"application/xml": {"schema": {"type": "string"}}}},
        **error_responses(400, 403),  # missing or oversized parameters; not signed by Twilio
    },
)

GREETING = "您好，这里是{campaign}热线。请在提示后说出您希望明年办的实事，以及具体的乡镇、村或社区。说完请稍等。"
RETRY = "抱歉，没有听清楚。请在提示音后再说一遍您的建议，说完请按井号键，或直接挂机。"
RECEIVED = "您的建议已收到，谢谢您！您的查询码是：{code}。再说一遍：{code}。"
RECEIPT_SMS = "【{campaign}】您的建议已收到，查询码 {code}。可在区政府网站或微信公众号查询办理情况。"
NOTHING_HEARD = "没有录到您的声音。欢迎稍后再次来电，谢谢！"
TROUBLE = "系统繁忙，您的来电已记录，谢谢！"


class CallParams(BaseModel):
    """The Twilio callback parameters Minsheng reads; sizes bounded, the rest ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    CallSid: str = Field(pattern=r"^CA[0-9a-fA-F]{32}$")
    From: str | None = Field(default=None, max_length=32)
    SpeechResult: str | None = Field(default=None, max_length=5000)
    Confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    RecordingUrl: str | None = Field(default=None, max_length=1000, pattern=r"^https?://")

    def caller(self) -> str | None:
        """The caller's number in canonical form, or None (withheld, anonymous, not a Chinese number)."""
        phone = canonical_phone(self.From or "")
        return phone if re.fullmatch(PHONE_PATTERN, phone) else None


async def signed_params(request: Request) -> CallParams:
    """The callback's parameters, once the X-Twilio-Signature proves that Twilio sent them."""
    settings = request.app.state.settings
    form = await request.form()
    params = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    query = f"?{request.url.query}" if request.url.query else ""
    url = settings.public_url.rstrip("/") + request.url.path + query
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not validator.validate(url, params, request.headers.get("X-Twilio-Signature", "")):
        log.warning("twilio_request_rejected", reason="bad signature", path=request.url.path)
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    try:
        return CallParams.model_validate(params)
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors()})
        log.warning("twilio_request_rejected", reason="invalid parameters", fields=fields)
        raise HTTPException(status_code=400, detail=f"invalid or missing Twilio parameters: {', '.join(fields)}") from None


Signed = Annotated[CallParams, Depends(signed_params)]


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def _say(request: Request, response: VoiceResponse | Gather, text: str) -> None:
    settings = request.app.state.settings
    response.say(text, voice=settings.say_voice, language=settings.say_language)


def _spoken(code: str) -> str:
    """A tracking code as the voice should read it: one character at a time, a pause at the dash."""
    return "，".join(" ".join(part) for part in code.split("-"))


@router.post("")
async def incoming_call(request: Request, params: Signed) -> Response:
    """The number's voice webhook: greet, then listen."""
    hotline: HotlineIntake = request.app.state.hotline
    settings = request.app.state.settings
    response = VoiceResponse()
    if not hotline.campaign.is_open(datetime.now(UTC)):
        _say(request, response, hotline.campaign.closed_notice())
        response.hangup()
        return _twiml(response)
    gather = Gather(
        input="speech",
        language=settings.speech_language,
        action="/twilio/voice/speech",
        method="POST",
        speech_timeout="auto",
        timeout=6,
        action_on_empty_result=True,
    )
    _say(request, gather, GREETING.format(campaign=hotline.campaign.name))
    response.append(gather)
    log.info("hotline_call_answered", call_sid=params.CallSid)
    return _twiml(response)


@router.post("/speech")
async def speech_heard(request: Request, params: Signed, background: BackgroundTasks) -> Response:
    """What the recogniser heard: clear words become the suggestion; otherwise ask again and record."""
    words = CallWords(params.SpeechResult or "", params.Confidence)
    if words.clear(request.app.state.settings.min_speech_confidence):
        return await _accept(request, background, params, words, None)
    response = VoiceResponse()
    _say(request, response, RETRY)
    # What was heard (if anything) rides along, so that the operator who completes it sees it too.
    action = "/twilio/voice/recording?" + urlencode({"heard": words.text[:500], "confidence": words.confidence or ""})
    response.record(action=action, method="POST", max_length=120, finish_on_key="#", play_beep=True, timeout=5)
    log.info("hotline_speech_unclear", call_sid=params.CallSid, confidence=params.Confidence)
    return _twiml(response)


@router.post("/recording")
async def recording_made(
    request: Request, params: Signed, background: BackgroundTasks, heard: str = "", confidence: str = ""
) -> Response:
    """The recording after unclear words: kept with whatever was heard, flagged for an operator."""
    if not params.RecordingUrl and not heard.strip():
        response = VoiceResponse()
        _say(request, response, NOTHING_HEARD)
        response.hangup()
        return _twiml(response)
    try:
        score = float(confidence) if confidence else None
    except ValueError:
        score = None
    return await _accept(request, background, params, CallWords(heard[:5000], score), params.RecordingUrl)


async def _accept(
    request: Request, background: BackgroundTasks, params: CallParams, words: CallWords, recording_url: str | None
) -> Response:
    hotline: HotlineIntake = request.app.state.hotline
    response = VoiceResponse()
    caller = params.caller()
    try:
        accepted = await hotline.take_call(params.CallSid, caller, words, recording_url, datetime.now(UTC))
    except CollectionClosed as exc:
        _say(request, response, str(exc))
        response.hangup()
        return _twiml(response)
    except SubmissionKeyConflict:
        log.warning("hotline_call_conflict", call_sid=params.CallSid)
        _say(request, response, TROUBLE)
        response.hangup()
        return _twiml(response)
    code = accepted.tracking_code or ""
    _say(request, response, RECEIVED.format(code=_spoken(code)))
    response.hangup()
    log.info("hotline_call_accepted", call_sid=params.CallSid, suggestion_id=accepted.suggestion_id, new=accepted.new)
    sms = getattr(request.app.state, "sms", None)
    if sms is not None and accepted.new and caller and is_mobile(caller):
        background.add_task(sms.send, caller, RECEIPT_SMS.format(campaign=hotline.campaign.name, code=code))
    return _twiml(response)
