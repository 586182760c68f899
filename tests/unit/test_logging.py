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


def test_the_suite_wide_log_scanner_sees_every_record_and_would_fail_the_run_on_a_phone_number():
    import logging

    from tests.conftest import LOG_SCANNER

    seen = LOG_SCANNER.records
    logging.getLogger("minsheng.test").warning("caller %s said hello", "13912345678")  # masked on the way out
    logging.getLogger("minsheng.test").warning("request %s", "a1b2c3d4e5f613912345678abc")  # inside an id: not a phone
    logging.getLogger("minsheng.test").warning("openid %s", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")  # nothing masks this
    assert LOG_SCANNER.records == seen + 3
    assert len(LOG_SCANNER.leaks) >= 1 and "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" in LOG_SCANNER.leaks[-1]
    assert not any("13912345678" in leak for leak in LOG_SCANNER.leaks)
    LOG_SCANNER.leaks.pop()  # planted here on purpose; any other leak fails the run at the end
