"""Event contract v1."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from minsheng_core.bus import parse_event
from minsheng_core.events import Channel, Classification, SuggestionClassified, SuggestionContent, SuggestionReceived
from minsheng_core.schemas import main as schemas_main

CONTENT = dict(
    channel="wechat",
    channel_ref="msg-1",
    campaign="2020",
    text="修路",
    tracking_code="ABCDE-FGHJK",
    submitted_at="2019-10-20T10:00:00+08:00",
)


def test_received_event_round_trips_and_names_its_route():
    event = SuggestionReceived(suggestion_id="s", body=SuggestionContent(**CONTENT))
    again = parse_event(event.model_dump_json().encode())
    assert again == event
    assert event.routing_key() == "suggestion.received.wechat"
    assert event.schema_version == 1
    assert event.body.channel is Channel.WECHAT


def test_unknown_fields_are_rejected_everywhere():
    with pytest.raises(ValidationError, match="extra"):
        SuggestionReceived(suggestion_id="s", body=SuggestionContent(**CONTENT), extra=1)
    with pytest.raises(ValidationError, match="extra"):
        SuggestionContent(**CONTENT, phone="13800000000")  # contact data belongs in the personal part


def test_occurred_at_is_kept_in_utc_and_must_be_aware():
    event = SuggestionReceived(
        suggestion_id="s",
        occurred_at=datetime(2019, 10, 20, 8, tzinfo=timezone(timedelta(hours=8))),
        body=SuggestionContent(**CONTENT),
    )
    assert event.occurred_at == datetime(2019, 10, 20, 0, tzinfo=UTC) and event.occurred_at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError):
        SuggestionReceived(suggestion_id="s", occurred_at=datetime(2019, 10, 20), body=SuggestionContent(**CONTENT))


def test_classified_routes_by_category_and_bounds_confidence():
    body = Classification(
        category="rural", confidence=0.7, needs_review=False, model_version="m", classified_at=datetime.now(UTC)
    )
    assert SuggestionClassified(suggestion_id="s", body=body).routing_key() == "suggestion.classified.rural"
    with pytest.raises(ValidationError):
        Classification(category="rural", confidence=1.5, needs_review=False, model_version="m", classified_at=datetime.now(UTC))


def test_wrong_event_type_is_invalid():
    with pytest.raises(ValidationError):
        parse_event(b'{"event_type": "suggestion.deleted", "suggestion_id": "s"}')
    with pytest.raises(ValidationError):
        parse_event(b"\xff not json")


def test_checked_in_json_schemas_match_the_models():
    assert schemas_main(["--check", "--out", "docs/schemas"]) == 0


def test_schema_check_detects_drift(tmp_path):
    assert schemas_main(["--out", str(tmp_path)]) == 0
    path = tmp_path / "SuggestionReceived.v1.json"
    path.write_text(path.read_text().replace('"suggestion_id"', '"id"'))
    assert schemas_main(["--check", "--out", str(tmp_path)]) == 1
