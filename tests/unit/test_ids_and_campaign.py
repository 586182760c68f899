"""Identifiers and the campaign window."""

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from minsheng_core.campaign import load_campaign
from minsheng_core.ids import access_code_for, access_code_matches, normalise_tracking_code, suggestion_id_for, tracking_code_for

SECRET = b"k"


def test_suggestion_id_is_derived_from_the_channel_reference():
    assert suggestion_id_for("wechat", "123") == suggestion_id_for("wechat", "123")
    assert suggestion_id_for("wechat", "123") != suggestion_id_for("hotline", "123")


def test_tracking_code_is_stable_formatted_and_depends_on_the_secret():
    code = tracking_code_for(SECRET, "s-1")
    assert code == tracking_code_for(SECRET, "s-1")
    assert len(code) == 11 and code[5] == "-"
    assert code != tracking_code_for(b"other", "s-1")
    assert normalise_tracking_code(code.lower().replace("-", " ")) == code
    assert normalise_tracking_code("abc") is None
    assert normalise_tracking_code("UUUUU-UUUUU") is None  # U is not in the Crockford alphabet


def test_access_code_is_six_digits_and_checked():
    code = access_code_for(SECRET, "s-1")
    assert len(code) == 6 and code.isdigit()
    assert access_code_matches(SECRET, "s-1", code)
    assert not access_code_matches(SECRET, "s-2", code)


def test_default_campaign_window_is_inclusive_in_shanghai_time():
    campaign = load_campaign()
    assert (campaign.opens_on, campaign.closes_on) == (date(2019, 10, 15), date(2019, 11, 15))
    assert not campaign.is_open(datetime(2019, 10, 14, 15, 59, tzinfo=UTC))  # 23:59 on the 14th in Shanghai
    assert campaign.is_open(datetime(2019, 10, 14, 16, 0, tzinfo=UTC))  # midnight of the 15th
    assert campaign.is_open(datetime(2019, 11, 15, 15, 59, tzinfo=UTC))
    assert not campaign.is_open(datetime(2019, 11, 15, 16, 0, tzinfo=UTC))
    assert "other" in campaign.category_codes() and len(campaign.category_codes()) == 11
    assert campaign.category_name("road_traffic") == "道路交通"


def test_window_override_and_bad_files(tmp_path):
    assert load_campaign(opens_on=date(2026, 1, 1), closes_on=date(2026, 12, 31)).is_open(datetime(2026, 6, 1, tzinfo=UTC))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "code: x\nname: x\nopens_on: 2019-11-15\ncloses_on: 2019-10-15\ncategories: [{code: a, name: A}, {code: b, name: B}]\n"
    )
    with pytest.raises(ValidationError, match="closes_on is before opens_on"):
        load_campaign(bad)
    categories = "categories: [{code: a, name: A}, {code: b, name: B}]\n"
    bad.write_text("code: x\nname: x\ntimezone: Mars/Base\nopens_on: 2019-10-15\ncloses_on: 2019-11-15\n" + categories)
    with pytest.raises(ValidationError):
        load_campaign(bad)
