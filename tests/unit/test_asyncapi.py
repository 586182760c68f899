"""The AsyncAPI document: generated from the event models, checked in, served by the store, and structurally sound."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from minsheng_core.events import (
    EVENT_MODELS,
    Attachment,
    Channel,
    Classification,
    Correction,
    Decision,
    HouseholdVisited,
    Notification,
    NotificationChannel,
    NotificationSent,
    Outcome,
    Reason,
    SuggestionAttachmentAdded,
    SuggestionClassified,
    SuggestionContent,
    SuggestionCorrected,
    SuggestionDecided,
    SuggestionReceived,
    Symposium,
    SymposiumHeld,
    Visit,
)
from minsheng_core.paths import REPO_ROOT
from minsheng_core.schemas import (
    EVENT_CHANNELS,
    asyncapi_yaml,
    channel_of,
    event_schemas,
    main,
    pattern_problem,
    render,
    topic_matches,
)
from minsheng_core.topology import EVENTS_EXCHANGE

DOC_FILE = REPO_ROOT / "docs" / "asyncapi.yaml"
NOW = datetime(2019, 10, 20, 8, 30, tzinfo=UTC)


def samples() -> list[Any]:
    """One event of every model, several for the models whose routing key varies."""
    content = dict(channel_ref="r1", campaign="2020", text="修路", tracking_code="ABCDE-FGHJK", submitted_at=NOW)
    decision = dict(decision_id="d1", explanation="已纳入", decided_by="a", released_by="b", released_at=NOW)
    events: list[Any] = [
        SuggestionReceived(suggestion_id="s1", body=SuggestionContent(channel=channel, **content)) for channel in Channel
    ]
    events += [
        SuggestionClassified(
            suggestion_id="s1",
            body=Classification(
                category="road_traffic", confidence=0.9, needs_review=False, model_version="m", classified_at=NOW
            ),
        ),
        SuggestionCorrected(suggestion_id="s1", body=Correction(category="rural", corrected_by="a", corrected_at=NOW)),
        SuggestionAttachmentAdded(suggestion_id="s1", body=Attachment(kind="image", channel_ref="m1")),
        SuggestionDecided(suggestion_id="s1", body=Decision(outcome=Outcome.ADOPTED, project_id="p1", **decision)),
        SuggestionDecided(suggestion_id="s1", body=Decision(outcome=Outcome.NOT_ADOPTED, reason=Reason.BEYOND_MEANS, **decision)),
        HouseholdVisited(
            visit_id="v1",
            body=Visit(unit="shuangtashan", place="西山村", household="王家", visited_on=date(2019, 10, 20), visitor="张"),
        ),
        SymposiumHeld(
            symposium_id="y1",
            body=Symposium(unit="shuangtashan", held_on=date(2019, 10, 20), place="镇政府", host="李", participants=12),
        ),
    ]
    events += [
        NotificationSent(suggestion_id="s1", body=Notification(decision_id="d1", channel=c, attempts=1, sent_at=NOW))
        for c in NotificationChannel
    ]
    return events


def resolve(document: dict, ref: str) -> Any:
    """Follow a local JSON pointer ($ref) in the document."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def check(instance: Any, schema: dict, document: dict) -> None:
    """A small JSON Schema check (the keywords pydantic emits), enough to show the payload schemas fit real events."""
    if "$ref" in schema:
        check(instance, resolve(document, schema["$ref"]), document)
        return
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                check(instance, option, document)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"no anyOf option fits {instance!r}: {errors}")
    if "const" in schema:
        assert instance == schema["const"]
    if "enum" in schema:
        assert instance in schema["enum"], (instance, schema["enum"])
    kind = schema.get("type")
    python = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
    if kind == "null":
        assert instance is None
    elif kind:
        assert isinstance(instance, python[kind]), (instance, kind)
    if kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in instance, f"missing {name}"
        if schema.get("additionalProperties") is False:
            assert set(instance) <= set(properties), f"unexpected fields {set(instance) - set(properties)}"
        for name, value in instance.items():
            if name in properties:
                check(value, properties[name], document)
    if kind == "array":
        for item in instance:
            check(item, schema.get("items", {}), document)
    if kind == "string":
        assert len(instance) <= schema.get("maxLength", 10**9)


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(DOC_FILE.read_text(encoding="utf-8"))


def test_checked_in_asyncapi_document_is_generated_from_the_models():
    assert DOC_FILE.read_text(encoding="utf-8") == asyncapi_yaml()
    assert main(["--check", "--out", str(REPO_ROOT / "docs" / "schemas")]) == 0


def test_schema_check_detects_a_stale_asyncapi_document(tmp_path):
    out, doc = tmp_path / "schemas", tmp_path / "asyncapi.yaml"
    assert main(["--out", str(out), "--asyncapi", str(doc)]) == 0
    assert main(["--check", "--out", str(out), "--asyncapi", str(doc)]) == 0
    doc.write_text(doc.read_text(encoding="utf-8").replace("suggestion.received.{channel}", "suggestion.new.{channel}"))
    assert main(["--check", "--out", str(out), "--asyncapi", str(doc)]) == 1


def test_document_structure_and_every_reference_resolves(document):
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    server = document["servers"]["rabbitmq"]
    assert server["protocol"] == "amqp" and server["host"]
    all_refs = refs(document)
    assert len(all_refs) >= 4 * len(EVENT_MODELS)  # channel → message, operation → channel and message, message → payload
    for ref in all_refs:
        resolve(document, ref)
    for name, operation in document["operations"].items():
        assert operation["action"] == "receive", name
        channel = resolve(document, operation["channel"]["$ref"])
        for message_ref in operation["messages"]:
            assert message_ref["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            assert resolve(document, message_ref["$ref"]) in channel["messages"].values()
    for name, channel in document["channels"].items():
        placeholders = {w.strip("{}") for w in channel["address"].split(".") if w.startswith("{")}
        assert placeholders == set(channel.get("parameters", {})), name
        binding = channel["bindings"]["amqp"]
        assert binding["is"] == "routingKey" and binding["exchange"]["name"] == EVENTS_EXCHANGE


def test_every_event_model_has_a_channel_a_message_and_its_schema(document):
    messages, schemas = document["components"]["messages"], document["components"]["schemas"]
    addressed = {message["$ref"] for channel in document["channels"].values() for message in channel["messages"].values()}
    for model in EVENT_MODELS:
        name = model.__name__
        assert f"#/components/messages/{name}" in addressed, name
        payload = resolve(document, messages[name]["payload"]["$ref"])
        assert payload is schemas[name]
        assert payload["additionalProperties"] is False
        assert {"event_id", "event_type", "schema_version", "occurred_at", "body"} <= set(payload["properties"])
        assert messages[name]["bindings"]["amqp"]["messageType"] == model.model_fields["event_type"].default
        # the same schema as the per-event file in docs/schemas, with its $defs moved into components/schemas
        alone = event_schemas()[f"{name}.v1.json"]
        text = json.dumps({k: v for k, v in alone.items() if k != "$defs"}, sort_keys=True)
        assert text.replace("#/$defs/", "#/components/schemas/") == json.dumps(payload, sort_keys=True)
        for definition, schema in alone.get("$defs", {}).items():
            assert json.dumps(schema, sort_keys=True).replace("#/$defs/", "#/components/schemas/") == json.dumps(
                schemas[definition], sort_keys=True
            )


def test_real_events_fit_their_channel_and_payload_schema(document):
    by_address = {c["address"]: c for c in document["channels"].values()}
    seen = set()
    for event in samples():
        channel = channel_of(type(event))
        assert channel.matches(event.routing_key()), (channel.address, event.routing_key())
        assert channel.address in by_address
        message = next(iter(by_address[channel.address]["messages"].values()))
        payload = resolve(document, resolve(document, message["$ref"])["payload"]["$ref"])
        data = json.loads(event.model_dump_json())
        check(data, payload, document)
        with pytest.raises(AssertionError, match="unexpected fields"):
            check({**data, "surprise": 1}, payload, document)
        seen.add(type(event))
    assert seen == set(EVENT_MODELS)
    assert {c.model for c in EVENT_CHANNELS} == set(EVENT_MODELS)


def test_exchange_binding_agrees_with_the_broker_definitions(document):
    definitions = json.loads((REPO_ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
    exchange = next(e for e in definitions["exchanges"] if e["name"] == EVENTS_EXCHANGE)
    for channel in document["channels"].values():
        described = channel["bindings"]["amqp"]["exchange"]
        assert (described["type"], described["durable"], described["autoDelete"]) == (
            exchange["type"],
            exchange["durable"],
            exchange["auto_delete"],
        )


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("suggestion.#", "suggestion.received.web", True),
        ("suggestion.*", "suggestion.received.web", False),
        ("suggestion.*.web", "suggestion.received.web", True),
        ("#", "symposium.held", True),
        ("#.held", "symposium.held", True),
        ("suggestion.#.web", "suggestion.web", True),
        ("suggestion.received", "suggestion.received.web", False),
        ("*.received.*", "suggestion.received.hotline", True),
    ],
)
def test_topic_matching_follows_amqp(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


def test_patterns_are_checked_against_the_published_routing_keys():
    for good in ("#", "suggestion.#", "suggestion.classified.*", "suggestion.classified.road_traffic", "visit.#", "*.held"):
        assert pattern_problem(good) is None, good
    assert "matches no event" in pattern_problem("suggestion.deleted")
    assert "matches no event" in pattern_problem("suggestion.received.fax")
    assert "matches no event" in pattern_problem("foo.#")
    assert "not a routing-key pattern" in pattern_problem("suggestion..x")
    assert "not a routing-key pattern" in pattern_problem("Suggestion.#")
    assert "not a routing-key pattern" in pattern_problem("")


async def test_store_serves_the_checked_in_contract(tmp_path: Path):
    """The routes need no connection: the app is called without its lifespan."""
    from minsheng_store.app import create_app
    from minsheng_store.settings import StoreSettings

    app = create_app(StoreSettings(environment="test", log_format="json"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://store") as client:
        response = await client.get("/asyncapi.yaml")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/yaml")
        assert response.text == DOC_FILE.read_text(encoding="utf-8")
        for name in ("SuggestionReceived.v1.json", "SuggestionReceived", "SymposiumHeld.v1"):
            response = await client.get(f"/schemas/{name}")
            assert response.status_code == 200, name
            stem = name.split(".")[0]
            assert response.text == (REPO_ROOT / "docs" / "schemas" / f"{stem}.v1.json").read_text(encoding="utf-8")
            assert response.text == render(event_schemas()[f"{stem}.v1.json"])
        assert (await client.get("/schemas/Nothing.v1.json")).status_code == 404
        assert (await client.get("/schemas/..%2Fsecrets")).status_code in (404, 422)
