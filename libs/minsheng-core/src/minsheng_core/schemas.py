"""Generate the JSON Schema of every event model and the AsyncAPI document of the bus, for downstream subscribers."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from minsheng_core.events import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    Channel,
    HouseholdVisited,
    NotificationChannel,
    NotificationSent,
    Outcome,
    SuggestionAttachmentAdded,
    SuggestionClassified,
    SuggestionCorrected,
    SuggestionDecided,
    SuggestionReceived,
    SymposiumHeld,
)
from minsheng_core.topology import EVENTS_EXCHANGE

ASYNCAPI_FILE = "asyncapi.yaml"
AMQP_BINDING_VERSION = "0.3.0"
_WORD = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Parameter:
    """A variable word of a routing key: one of ``values``, or any word when there is no list."""

    description: str
    values: tuple[str, ...] | None = None

    @classmethod
    def of(cls, description: str, enum: type[StrEnum]) -> Parameter:
        return cls(description, tuple(member.value for member in enum))


@dataclass(frozen=True)
class EventChannel:
    """The routing keys one event model is published with, e.g. ``suggestion.received.{channel}``."""

    model: type
    address: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Channel id in the AsyncAPI document (camelCase of the model name)."""
        return self.model.__name__[0].lower() + self.model.__name__[1:]

    def words(self) -> list[tuple[str, ...] | None]:
        """Per word of the address: the words it can be, or None for any word."""
        out: list[tuple[str, ...] | None] = []
        for word in self.address.split("."):
            if word.startswith("{"):
                out.append(self.parameters[word.strip("{}")].values)
            else:
                out.append((word,))
        return out

    def matches(self, routing_key: str) -> bool:
        """Whether a concrete routing key is one of this channel's."""
        words = routing_key.split(".")
        return len(words) == len(self.words()) and all(
            allowed is None or word in allowed for word, allowed in zip(words, self.words(), strict=True)
        )


# One entry per event model; a model without one fails the generator, and a unit test checks the routing keys
# that sample events really get against these addresses.
EVENT_CHANNELS: tuple[EventChannel, ...] = (
    EventChannel(
        SuggestionReceived,
        "suggestion.received.{channel}",
        {"channel": Parameter.of("the channel the suggestion came in through", Channel)},
    ),
    EventChannel(
        SuggestionClassified,
        "suggestion.classified.{category}",
        {"category": Parameter("category code of the campaign's taxonomy, e.g. road_traffic (see the campaign file)")},
    ),
    EventChannel(SuggestionCorrected, "suggestion.corrected"),
    EventChannel(SuggestionAttachmentAdded, "suggestion.attachment_added"),
    EventChannel(
        SuggestionDecided, "suggestion.decided.{outcome}", {"outcome": Parameter.of("what became of the suggestion", Outcome)}
    ),
    EventChannel(
        NotificationSent,
        "notification.sent.{channel}",
        {"channel": Parameter.of("how the submitter was told", NotificationChannel)},
    ),
    EventChannel(HouseholdVisited, "visit.recorded.door_to_door"),
    EventChannel(SymposiumHeld, "symposium.held"),
)


def channel_of(model: type) -> EventChannel:
    """The channel entry of an event model."""
    for channel in EVENT_CHANNELS:
        if channel.model is model:
            return channel
    raise LookupError(f"{model.__name__} has no entry in EVENT_CHANNELS: add its routing-key address")


def _topic_match(pattern: list[str], key: list[tuple[str, ...] | None]) -> bool:
    """AMQP topic matching of a binding pattern against a key whose words may be sets (None: any word)."""
    if not pattern:
        return not key
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_topic_match(rest, key[i:]) for i in range(len(key) + 1))
    if not key:
        return False
    allowed = key[0]
    if head == "*" or allowed is None or head in allowed:
        return _topic_match(rest, key[1:])
    return False


def pattern_problem(pattern: str) -> str | None:
    """Why a binding pattern is unusable (malformed, or matching no event published here), or None if it is fine."""
    words = pattern.split(".")
    if not pattern or len(pattern) > 200 or any(w not in ("*", "#") and not _WORD.match(w) for w in words):
        return f"{pattern!r} is not a routing-key pattern: words of a-z, 0-9 and _ separated by dots, * (one word), # (any words)"
    if not any(_topic_match(words, channel.words()) for channel in EVENT_CHANNELS):
        known = ", ".join(c.address for c in EVENT_CHANNELS)
        return f"{pattern!r} matches no event published on {EVENTS_EXCHANGE} (routing keys: {known})"
    return None


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic semantics: ``*`` is exactly one word, ``#`` zero or more words."""
    return _topic_match(pattern.split("."), [(word,) for word in routing_key.split(".")])


def event_schemas() -> dict[str, dict]:
    """Return file name → JSON Schema for each published event model."""
    return {f"{model.__name__}.v1.json": model.model_json_schema(mode="serialization") for model in EVENT_MODELS}


def component_schemas() -> dict[str, dict]:
    """Every event model and every model or enum inside them, once, referring to each other by components/schemas."""
    _, top = models_json_schema([(model, "serialization") for model in EVENT_MODELS], ref_template="#/components/schemas/{model}")
    return dict(sorted(top["$defs"].items()))


def _title(model: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", model.__name__).capitalize()


def _exchange() -> dict[str, Any]:
    """The exchange as the AMQP channel binding describes it (a fresh dict each time: no YAML anchors)."""
    return {"name": EVENTS_EXCHANGE, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the events exchange, built from the event models and EVENT_CHANNELS."""
    for model in EVENT_MODELS:
        channel_of(model)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in EVENT_CHANNELS:
        name = channel.model.__name__
        event_type = channel.model.model_fields["event_type"].default
        entry: dict[str, Any] = {
            "address": channel.address,
            "title": _title(channel.model),
            "description": f"Routing key `{channel.address}` on the topic exchange `{EVENTS_EXCHANGE}`.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        if channel.parameters:
            entry["parameters"] = {
                key: {"description": p.description, **({"enum": list(p.values)} if p.values else {})}
                for key, p in channel.parameters.items()
            }
        entry["bindings"] = {"amqp": {"is": "routingKey", "exchange": _exchange(), "bindingVersion": AMQP_BINDING_VERSION}}
        channels[channel.name] = entry
        operations[f"receive{name}"] = {
            "action": "receive",
            "title": f"Receive {name}",
            "summary": f"Bind your own queue to `{EVENTS_EXCHANGE}` with `{channel.address}` (or a wider pattern).",
            "channel": {"$ref": f"#/channels/{channel.name}"},
            "messages": [{"$ref": f"#/channels/{channel.name}/messages/{name}"}],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }
        messages[name] = {
            "name": name,
            "title": _title(channel.model),
            "summary": (channel.model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {"schema_version": {"type": "integer", "const": SCHEMA_VERSION}},
            },
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"amqp": {"messageType": event_type, "bindingVersion": AMQP_BINDING_VERSION}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Minsheng events",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Every step of a residents' suggestion, published as a persistent JSON message on the durable topic exchange "
                f"`{EVENTS_EXCHANGE}` (AMQP message id = `event_id`, type = `event_type`, header `schema_version`). "
                "Delivery is at least once: deduplicate by `event_id`. Unknown fields are rejected within a "
                "`schema_version`. `SuggestionReceived.personal` (contact data) is for internal subscribers only; "
                "webhook deliveries never carry it. Guide: docs/subscribers.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "{host}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The deployment's RabbitMQ; subscribers declare their own durable quorum queue and bind it.",
                "variables": {"host": {"default": "127.0.0.1:5672", "description": "host:port of the broker"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": component_schemas()},
    }


def render(schema: dict) -> str:
    """Serialise a schema the way it is checked in: stable keys, UTF-8, final newline."""
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


@cache
def asyncapi_yaml() -> str:
    """The AsyncAPI document as it is checked in (and served by the store)."""
    header = "# Generated from the event models by `uv run minsheng-schemas`; do not edit by hand.\n"
    return header + yaml.safe_dump(asyncapi_document(), allow_unicode=True, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    """Write the schemas and the AsyncAPI document, or with --check report whether they are stale."""
    parser = argparse.ArgumentParser(prog="minsheng-schemas", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/schemas"))
    parser.add_argument("--asyncapi", type=Path, help=f"the AsyncAPI document (default: {ASYNCAPI_FILE} next to --out)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in files differ")
    args = parser.parse_args(argv)
    files = {args.out / name: render(schema) for name, schema in event_schemas().items()}
    files[args.asyncapi or args.out.parent / ASYNCAPI_FILE] = asyncapi_yaml()
    stale = []
    for path, text in files.items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale event schemas, run `uv run minsheng-schemas`: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
