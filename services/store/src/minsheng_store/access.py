"""Who may read and change what through the staff API: roles and the unit a member of staff belongs to.

administrator: everything; supervisor: reads everything, changes nothing; unit staff: their own unit's
suggestions only (another unit's answer 404, as if they did not exist); operators: the hotline console only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException

from minsheng_core.staff import Role, StaffMember
from minsheng_core.staff_pages import token_member


async def reader(member: Annotated[StaffMember, Depends(token_member)]) -> StaffMember:
    """A member of staff who may read suggestions (not an operator)."""
    if member.has(Role.OPERATOR):
        raise HTTPException(status_code=403, detail="operators work in the hotline console")
    return member


async def editor(member: Annotated[StaffMember, Depends(reader)]) -> StaffMember:
    """A member of staff who may change things (not a supervisor)."""
    if member.has(Role.SUPERVISOR):
        raise HTTPException(status_code=403, detail="supervisors read, they do not change")
    return member


async def administrator(member: Annotated[StaffMember, Depends(token_member)]) -> StaffMember:
    if not member.has(Role.ADMIN):
        raise HTTPException(status_code=403, detail="for the district office's administrators")
    return member


async def district_reader(member: Annotated[StaffMember, Depends(token_member)]) -> StaffMember:
    """The district office and its supervisors: what spans every unit."""
    if not member.has(Role.ADMIN, Role.SUPERVISOR):
        raise HTTPException(status_code=403, detail="for the district office and its supervisors")
    return member


def unit_scope(member: StaffMember) -> str | None:
    """The only unit the member may see, or None for all of them."""
    return member.unit if member.has(Role.UNIT_STAFF) else None


class OutOfScope(LookupError):
    """Unit staff asked for another unit's records (answered as if that unit did not exist)."""


def scoped_unit(member: StaffMember, unit: str | None) -> str | None:
    """The unit a list is filtered by: unit staff always their own (another one raises OutOfScope), others as asked."""
    scope = unit_scope(member)
    if scope is None:
        return unit
    if unit not in (None, "", scope):
        raise OutOfScope("no such unit in your scope")
    return scope


def may_see(member: StaffMember, suggestion: dict) -> bool:
    scope = unit_scope(member)
    return scope is None or suggestion.get("unit") == scope


Reader = Annotated[StaffMember, Depends(reader)]
Editor = Annotated[StaffMember, Depends(editor)]
Administrator = Annotated[StaffMember, Depends(administrator)]
DistrictReader = Annotated[StaffMember, Depends(district_reader)]
