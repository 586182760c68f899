"""POST /api/v1/transcripts: the call centre's system sends a batch of transcribed calls (CSV or JSON lines)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from minsheng_intake_hotline.settings import HotlineSettings
from minsheng_intake_hotline.transcripts import (
    MEDIA_TYPES,
    BatchRejected,
    Format,
    ImportInterrupted,
    import_batch,
    read_batch,
)

log = structlog.get_logger(__name__)
router = APIRouter(tags=["transcripts"])

_FORMATS: dict[str, Format] = {media_type: fmt for fmt, media_type in MEDIA_TYPES.items()}


class TranscriptRowRead(BaseModel):
    row: int
    call_id: str | None
    outcome: Literal["accepted", "duplicate", "rejected"]
    tracking_code: str | None = None
    reason: str | None = None


class TranscriptBatchRead(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    rows: list[TranscriptRowRead]


class ErrorRead(BaseModel):
    error: str


def _authorised(request: Request, settings: HotlineSettings) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.transcripts_token.get_secret_value().encode()
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), expected)


def _format_of(content_type: str | None) -> Format | None:
    """The batch format of a Content-Type; None for anything else, or a charset other than UTF-8."""
    media_type, *params = (content_type or "").split(";")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return None
    return _FORMATS.get(media_type.strip().lower())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@router.post(
    "/api/v1/transcripts",
    summary="Import a batch of call transcripts",
    responses={
        200: {"model": TranscriptBatchRead, "description": "every row's outcome; a bad row never stops the good ones"},
        401: {"model": ErrorRead},
        415: {"model": ErrorRead},
        422: {"model": ErrorRead, "description": "the file as a whole is unusable; nothing was imported"},
        503: {"model": ErrorRead},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {media_type: {"schema": {"type": "string"}} for media_type in MEDIA_TYPES.values()},
        }
    },
)
async def import_transcripts(request: Request) -> JSONResponse:
    """One suggestion per call, idempotent by call id: sending a batch again changes nothing."""
    settings: HotlineSettings = request.app.state.settings
    if not _authorised(request, settings):
        log.warning("transcripts_unauthorized")
        return _error(401, "a valid transcripts token is required (Authorization: Bearer …)", {"WWW-Authenticate": "Bearer"})
    fmt = _format_of(request.headers.get("content-type"))
    if fmt is None:
        log.info("transcripts_batch_rejected", code="media_type")
        return _error(415, "send the batch as text/csv or application/x-ndjson, encoded in UTF-8")
    try:
        items = read_batch(await request.body(), fmt, now=datetime.now(UTC))
    except BatchRejected as exc:
        log.info("transcripts_batch_rejected", code=exc.code, format=fmt)
        return _error(422, exc.message)
    try:
        report = await import_batch(request.app.state.hotline, items)
    except ImportInterrupted as exc:
        log.error(
            "transcripts_import_interrupted",
            format=fmt,
            row=exc.row,
            accepted=exc.report.accepted,
            error=type(exc.__cause__).__name__,
        )
        message = (
            f"could not store row {exc.row}; the rows before it are stored, the others are not."
            " Send the batch again: it is idempotent by call id."
        )
        return _error(503, message, {"Retry-After": "30"})
    log.info(
        "transcripts_imported",
        format=fmt,
        rows=len(report.rows),
        accepted=report.accepted,
        duplicates=report.duplicates,
        rejected=report.rejected,
    )
    return JSONResponse(report.as_json())
