"""Personal data never reaches the logs."""

import json
import logging

import structlog

from minsheng_core.logging import configure_logging, redact_personal_data


def test_redaction_drops_personal_fields_and_masks_phone_numbers():
    out = redact_personal_data(
        None, "info", {"event": "x", "phone": "13812345678", "note": "call 13812345678 back", "text": "我的电话"}
    )
    assert out["phone"] == "[redacted]" and out["text"] == "[redacted]"
    assert out["note"] == "call 138****5678 back"
    request_id = "03c325170622414291b9da549d568802"
    assert redact_personal_data(None, "info", {"request_id": request_id})["request_id"] == request_id


def test_json_logs_carry_bound_ids_and_no_phone(capsys):
    configure_logging("unit", "json")
    with structlog.contextvars.bound_contextvars(suggestion_id="s-1", request_id="r-1"):
        structlog.get_logger("t").info("accepted", detail="来自 15900001111")
    logging.getLogger("other").warning("plain 13700001111")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    first = next(line for line in lines if line["event"] == "accepted")
    assert (first["suggestion_id"], first["request_id"], first["service"]) == ("s-1", "r-1", "unit")
    assert "15900001111" not in json.dumps(lines) and "13700001111" not in json.dumps(lines)
