"""The intake-web application: JSON API and Chinese HTML form over the same submission logic."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from minsheng_core.events import SubmitterGroup
from minsheng_core.http import error_responses, field_errors, install_common
from minsheng_core.ids import normalise_tracking_code
from minsheng_core.intake import open_intake
from minsheng_core.logging import configure_logging
from minsheng_core.outbox import SubmissionKeyConflict
from minsheng_intake_web.schemas import SuggestionAcceptedRead, SuggestionCreate, SuggestionStatusRead
from minsheng_intake_web.settings import WebSettings
from minsheng_intake_web.submissions import CollectionClosed, Receipt, WebIntake
from minsheng_intake_web.throttle import Throttle

log = structlog.get_logger(__name__)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,200}$"
NOT_FOUND = "未找到该查询码对应的建议，或验证码不正确。"
GROUP_LABELS = {
    SubmitterGroup.RESIDENT: "居民群众",
    SubmitterGroup.NPC_DEPUTY: "人大代表",
    SubmitterGroup.CPPCC_MEMBER: "政协委员",
    SubmitterGroup.PARTY_DELEGATE: "党代表",
    SubmitterGroup.RETIRED_CADRE: "离退休老干部",
    SubmitterGroup.DEMOCRATIC_PARTY: "民主党派、工商联、无党派人士",
}


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """Build the app; connections open in the lifespan."""
    settings = settings or WebSettings()
    configure_logging("intake-web", settings.log_format, settings.log_level)
    campaign = settings.campaign

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            runtime = await open_intake(stack, app, settings, "intake-web")
            app.state.intake = WebIntake(campaign, settings.secret_key.get_secret_value().encode(), runtime)
            log.info("intake_web_started", campaign=campaign.code)
            yield

    app = FastAPI(title="Minsheng intake-web", version="1", lifespan=lifespan)

    install_common(app, settings.max_body_bytes)
    throttle = Throttle(settings.submissions_rate, settings.lookups_rate, settings.trust_forwarded_for)

    def intake(request: Request) -> WebIntake:
        return request.app.state.intake

    @app.post(
        "/api/v1/suggestions",
        status_code=202,
        response_model=SuggestionAcceptedRead,
        tags=["suggestions"],
        dependencies=[Depends(throttle.submission)],
        responses=error_responses(403, 409, 429),
    )
    async def submit_suggestion(
        create: SuggestionCreate,
        request: Request,
        idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY_PATTERN)] = None,
    ) -> JSONResponse | SuggestionAcceptedRead:
        """Accept a suggestion; the same Idempotency-Key always gives the same suggestion."""
        try:
            receipt = await intake(request).submit(create, idempotency_key, datetime.now(UTC))
        except CollectionClosed as exc:
            return JSONResponse({"error": str(exc)}, status_code=403)
        except SubmissionKeyConflict:
            return JSONResponse({"error": "该 Idempotency-Key 已用于另一条内容不同的建议。"}, status_code=409)
        log.info("suggestion_accepted", suggestion_id=receipt.suggestion_id, published=receipt.published)
        return SuggestionAcceptedRead(
            suggestion_id=receipt.suggestion_id,
            tracking_code=receipt.tracking_code,
            access_code=receipt.access_code,
            message=_receipt_message(receipt),
        )

    @app.get(
        "/api/v1/suggestions/{tracking_code}",
        response_model=SuggestionStatusRead,
        tags=["suggestions"],
        dependencies=[Depends(throttle.lookup)],
        responses=error_responses(404, 429),
    )
    async def suggestion_status(
        tracking_code: str, request: Request, access_code: Annotated[str, Query(min_length=1, max_length=10)]
    ) -> JSONResponse | SuggestionStatusRead:
        """Status by tracking code and the access code shown at submission."""
        status = await _lookup(intake(request), tracking_code, access_code)
        return status if status is not None else JSONResponse({"error": NOT_FOUND}, status_code=404)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def form_page(request: Request) -> HTMLResponse:
        return _form(request, campaign_open=campaign.is_open(datetime.now(UTC)))

    @app.post("/submit", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(throttle.submission)])
    async def form_submit(request: Request, form_token: Annotated[str, Form(pattern=IDEMPOTENCY_KEY_PATTERN)]) -> HTMLResponse:
        form = await request.form()
        values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        data = {
            "title": values.get("title") or None,
            "text": values.get("text", ""),
            "location": {k: values.get(k) or None for k in ("town", "village", "detail")},
            "submitter_group": values.get("submitter_group") or SubmitterGroup.RESIDENT.value,
            "contact": {"name": values.get("name") or None, "phone": values.get("phone") or None},
        }
        try:
            create = SuggestionCreate.model_validate(data)
            receipt = await intake(request).submit(create, form_token, datetime.now(UTC))
        except ValidationError as exc:
            return _form(request, True, values, errors=field_errors(list(exc.errors())), status_code=422)
        except CollectionClosed:
            return _form(request, campaign_open=False, status_code=403)
        except SubmissionKeyConflict:
            return _form(request, True, values, errors=[{"field": "body", "message": "请刷新页面后重新提交"}], status_code=409)
        return templates.TemplateResponse(
            request,
            "receipt.html",
            {"campaign": campaign, "receipt": receipt, "message": _receipt_message(receipt)},
            status_code=202,
        )

    @app.get("/status", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(throttle.lookup)])
    async def status_page(request: Request, tracking_code: str = "", access_code: str = "") -> HTMLResponse:
        status = None
        error = None
        if tracking_code or access_code:
            status = await _lookup(intake(request), tracking_code[:20], access_code[:10])
            error = None if status else NOT_FOUND
        return templates.TemplateResponse(
            request,
            "status.html",
            {"campaign": campaign, "status": status, "error": error, "tracking_code": tracking_code[:20]},
            status_code=200 if error is None else 404,
        )

    def _form(
        request: Request,
        campaign_open: bool,
        values: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        context = {
            "campaign": campaign,
            "open": campaign_open,
            "values": values or {},
            "errors": {e["field"].split(".")[-1]: e["message"] for e in errors or []},
            "groups": GROUP_LABELS,
            "form_token": (values or {}).get("form_token") or uuid.uuid4().hex,
        }
        return templates.TemplateResponse(request, "form.html", context, status_code=status_code)

    return app


async def _lookup(intake: WebIntake, tracking_code: str, access_code: str) -> SuggestionStatusRead | None:
    code = normalise_tracking_code(tracking_code)
    if code is None or not access_code.strip().isdigit():
        return None
    return await intake.status(code, access_code)


def _receipt_message(receipt: Receipt) -> str:
    return (
        f"您的建议已收到，查询码 {receipt.tracking_code}，验证码 {receipt.access_code}。"
        "请妥善保存，凭查询码和验证码可查询办理情况。"
    )
