"""structlog set-up: JSON in production, console in a terminal, personal data masked on the way out."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Keys whose values are personal data or free text that may contain it.
_REDACTED_KEYS = frozenset({"name", "phone", "wechat_openid", "openid", "personal", "text", "title", "access_code", "body"})
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub(r"\1****\2", value)
    return value


def redact_personal_data(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop personal fields and mask anything that looks like a mobile number."""
    for key in list(event_dict):
        if key in _REDACTED_KEYS:
            event_dict[key] = "[redacted]"
        elif not key.endswith("_id"):  # ids are hex or uuids: digits in them are no phone number
            event_dict[key] = _mask(event_dict[key])
    return event_dict


def configure_logging(service: str, fmt: str = "auto", level: str = "info") -> None:
    """Configure structlog and the standard library once per process."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False) if fmt == "json" else structlog.dev.ConsoleRenderer()

    def add_service(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    # Replace only our own handler: others on the root (a test's log scanner, pytest's capture) stay.
    handler._minsheng = True  # type: ignore[attr-defined]
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_minsheng", False)] + [handler]
    root.setLevel(level.upper())
    # Access logs carry query strings (status look-ups); our middleware logs paths only.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request URLs: query strings carry tokens
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
