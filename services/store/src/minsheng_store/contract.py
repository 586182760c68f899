"""The event contract for downstream subscribers: the AsyncAPI document and the JSON Schemas, public like any contract."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import PlainTextResponse, Response

from minsheng_core.http import error_responses
from minsheng_core.schemas import asyncapi_yaml, event_schemas, render

router = APIRouter(tags=["contract"])


@router.get(
    "/asyncapi.yaml", response_class=Response, responses={200: {"content": {"application/yaml": {"schema": {"type": "object"}}}}}
)
async def asyncapi() -> PlainTextResponse:
    """The AsyncAPI 3.0 document of the events exchange, generated from the event models (docs/asyncapi.yaml)."""
    return PlainTextResponse(asyncapi_yaml(), media_type="application/yaml; charset=utf-8")


@router.get(
    "/schemas/{name}",
    response_class=Response,
    responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}}}, **error_responses(404)},
)
async def schema(name: Annotated[str, Path(max_length=80, pattern=r"^[A-Za-z]+(\.v1)?(\.json)?$")]) -> Response:
    """The JSON Schema of one event, e.g. /schemas/SuggestionReceived.v1.json (docs/schemas/)."""
    schemas = event_schemas()
    stem = name.removesuffix(".json").removesuffix(".v1")
    found = schemas.get(f"{stem}.v1.json")
    if found is None:
        raise HTTPException(status_code=404, detail=f"no such event schema; known: {', '.join(sorted(schemas))}")
    return Response(render(found), media_type="application/schema+json")
