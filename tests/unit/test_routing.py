"""Responsible unit from location, text, WeChat account and submitter group (the registry in config/)."""

import pytest

from minsheng_classifier.routing import resolve_unit
from minsheng_core.events import Location, SubmitterGroup
from minsheng_core.units import load_units

UNITS = load_units()


def resolve(text="", town=None, village=None, account=None, group=SubmitterGroup.RESIDENT):
    return resolve_unit(UNITS, Location(town=town, village=village), text, account, group)


def test_location_given_decides_first_even_against_text_and_account():
    decision = resolve("滦河镇那边的路也不好", town="双塔山镇", village="西山村", account="luanhe")
    assert (decision.unit, decision.source) == ("shuangtashan", "location")


def test_villages_typed_in_any_form_have_one_name():
    assert UNITS.canonical_place("西山") == "西山村"
    assert UNITS.canonical_place(" 不在册村 ") == "不在册村"
    assert UNITS.canonical_place("") is None


def test_a_village_alone_and_an_alias_resolve_to_its_unit():
    assert resolve(village="大贵口村").unit == "shuangtashan"
    assert resolve(town="双塔山", village="老虎沟").unit == "shuangtashan"


def test_a_village_name_shared_by_two_units_needs_the_town():
    assert resolve(village="东营子村", town="滦河镇").unit == "luanhe"
    assert resolve(village="东营子村", town="西地镇").unit == "xidi"
    assert resolve("我是西地镇的", village="东营子村").unit == "xidi"
    assert resolve(village="东营子村").source != "location"  # ambiguous alone: falls through


def test_place_names_in_the_text_come_next():
    decision = resolve("我们石佛村到镇上的路坑坑洼洼")
    assert (decision.unit, decision.source) == ("luanhe", "text")


def test_then_the_account_then_the_group_then_the_district_office():
    assert resolve("路灯坏了", account="damiao").source == "account"
    deputy = resolve("建议增加公交线路", group=SubmitterGroup.NPC_DEPUTY)
    assert (deputy.unit, deputy.source) == ("npc_office", "group")
    assert resolve("建议增加公交线路", group=SubmitterGroup.RETIRED_CADRE).unit == "organisation_dept"
    assert resolve("建议增加公交线路").unit == "district_office"
    assert resolve("路灯坏了", account="no_such_unit").unit == "district_office"


def test_place_beats_group_for_a_deputy_who_names_a_village():
    assert resolve("关于硬化石佛村道路的建议", group=SubmitterGroup.NPC_DEPUTY).unit == "luanhe"


@pytest.mark.parametrize("text", ["希望区人大常委会办公室督促落实", "赤峰元宝山区的经验值得学习"])
def test_offices_and_other_areas_are_not_places(text):
    assert resolve(text).unit == "district_office"
