"""Each unit's responsible leader and contact person (the notice asks for them by a deadline), and who is missing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from minsheng_core.http import error_responses
from minsheng_core.phones import Phone
from minsheng_core.staff import StaffMember
from minsheng_store.access import DistrictReader, Editor, Reader, unit_scope

router = APIRouter(prefix="/api/v1/units", tags=["staff"], responses=error_responses(404))
UnitCode = Annotated[str, Path(max_length=50, pattern=r"^[a-z_]+$")]


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=50)
    post: str = Field(min_length=1, max_length=50, description="职务")
    phone: Phone


class ContactsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    leader: Person = Field(description="责任领导")
    contact: Person = Field(description="联络员")


class ContactsRead(ContactsUpdate):
    unit: str
    registered_at: datetime
    registered_by: str


class MissingContacts(BaseModel):
    deadline: str
    late: bool = Field(description="the deadline has passed (campaign time zone)")
    units: list[dict[str, str]]


def _unit_in_scope(request: Request, member: StaffMember, unit: str) -> None:
    registry = request.app.state.units
    scope = unit_scope(member)
    if registry.unit(unit) is None or (scope is not None and scope != unit):
        raise HTTPException(status_code=404, detail="no such unit in your scope")


@router.put("/{unit}/contacts", response_model=ContactsRead)
async def register_contacts(unit: UnitCode, update: ContactsUpdate, request: Request, member: Editor) -> ContactsRead:
    """Register (or change) the unit's responsible leader and contact person."""
    _unit_in_scope(request, member, unit)
    document = {**update.model_dump(), "registered_at": datetime.now(UTC), "registered_by": member.username}
    await request.app.state.db.unit_contacts.update_one({"_id": unit}, {"$set": document}, upsert=True)
    await request.app.state.audit.record(member, "register_unit_contacts", unit)
    return ContactsRead(unit=unit, **document)


@router.get("/{unit}/contacts", response_model=ContactsRead)
async def unit_contacts(unit: UnitCode, request: Request, member: Reader) -> ContactsRead:
    _unit_in_scope(request, member, unit)
    document = await request.app.state.db.unit_contacts.find_one({"_id": unit})
    if document is None:
        raise HTTPException(status_code=404, detail="this unit has not registered its contacts yet")
    return ContactsRead(unit=unit, **{k: v for k, v in document.items() if k != "_id"})


async def missing_contacts_of(state: Any) -> MissingContacts:
    """Units that have not registered their contacts; after the deadline they are late."""
    campaign = state.campaign
    registered = {doc["_id"] async for doc in state.db.unit_contacts.find({}, {"_id": 1})}
    missing: list[dict[str, Any]] = [{"unit": u.code, "name": u.name} for u in state.units.units if u.code not in registered]
    today = datetime.now(campaign.zone).date()
    deadline = campaign.deadlines.contacts_registered
    return MissingContacts(deadline=deadline.isoformat(), late=today > deadline, units=missing)


@router.get("/contacts/missing", response_model=MissingContacts)
async def missing_contacts(request: Request, member: DistrictReader) -> MissingContacts:
    """Units that have not registered their contacts; after the deadline they are late."""
    return await missing_contacts_of(request.app.state)
