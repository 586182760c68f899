"""Identifiers and the campaign window."""

from datetime import UTC, date, datetime

import pytest

from minsheng_core.campaign import CampaignFileError, load_campaign
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
    rest = "categories: [{code: a, name: A}, {code: b, name: B}]\n"
    rest += "deadlines: {contacts_registered: 2019-11-16, summary_tables: 2019-11-16}\n"
    bad.write_text("code: x\nname: x\nopens_on: 2019-11-15\ncloses_on: 2019-10-15\n" + rest)
    with pytest.raises(CampaignFileError, match="closes_on is before opens_on"):
        load_campaign(bad)
    bad.write_text("code: x\nname: x\ntimezone: Mars/Base\nopens_on: 2019-10-15\ncloses_on: 2019-11-15\n" + rest)
    with pytest.raises(CampaignFileError):
        load_campaign(bad)


def test_the_campaign_file_carries_targets_deadlines_and_the_report_day():
    from datetime import date

    from minsheng_core.campaign import load_campaign

    campaign = load_campaign()
    assert campaign.coverage_targets.for_place(True) == 0.95 and campaign.coverage_targets.for_place(False) == 0.90
    assert (campaign.deadlines.contacts_registered, campaign.deadlines.summary_tables) == (date(2019, 10, 18), date(2019, 11, 15))
    assert campaign.weekly_report_day == "friday" and campaign.weekly_report_weekday == 4
    live = load_campaign(opens_on=date(2026, 3, 2), closes_on=date(2026, 4, 1))
    assert live.deadlines.contacts_registered == date(2026, 3, 5)  # three days after opening, as in the file


def test_mistakes_in_a_campaign_file_are_named(tmp_path):
    import pytest
    import yaml

    from minsheng_core.campaign import DEFAULT_CAMPAIGN_FILE, CampaignFileError, load_campaign

    good = yaml.safe_load(DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8"))
    cases = [
        ({"coverage_targets": {"other": 1.5}}, "coverage_targets.other"),
        ({"deadlines": {"contacts_registered": "2019-10-01", "summary_tables": "2019-11-15"}}, "before the campaign opens"),
        ({"deadlines": {"summary_tables": "2019-11-15"}}, "deadlines.contacts_registered"),
        ({"weekly_report_day": "funday"}, "weekly_report_day"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ]
    for change, message in cases:
        path = tmp_path / "campaign.yaml"
        path.write_text(yaml.safe_dump(good | change, allow_unicode=True), encoding="utf-8")
        with pytest.raises(CampaignFileError, match=message) as raised:
            load_campaign(path)
        assert str(path) in str(raised.value)
