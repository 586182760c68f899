"""Rules of decisions and projects without I/O: the campaign's templates and approval steps, what a release needs,
decision ids, the steps a project may take, the outcomes report's arithmetic, and what the status page is told."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from minsheng_core.campaign import DEFAULT_CAMPAIGN_FILE, CampaignFileError, load_campaign, render_explanation
from minsheng_core.events import Outcome, Reason
from minsheng_core.intake import Tracked, TrackedDecision
from minsheng_core.staff import Role
from minsheng_core.units import load_units
from minsheng_store.decisions import DecisionContent, decision_id_for, misplaced, release_problems
from minsheng_store.outcomes import assemble_outcomes
from minsheng_store.projects import transition_problem
from minsheng_store.schemas import DecisionCreate

CAMPAIGN = load_campaign()


def content(**changes) -> DecisionContent:
    base = {
        "outcome": Outcome.NOT_ADOPTED,
        "project_id": None,
        "merged_into": None,
        "referred_to": None,
        "reason": Reason.BEYOND_MEANS,
        "explanation": "超出本年度财力。",
    }
    return DecisionContent(**(base | changes))


def test_the_campaign_file_has_a_template_for_every_outcome_and_reason():
    templates = CAMPAIGN.decision_templates
    assert templates is not None
    for reason in Reason:
        assert "{tracking_code}" in templates.template_for(Outcome.NOT_ADOPTED, reason)
    assert templates.template_for(Outcome.NOT_ADOPTED, None) is None
    assert "{project_title}" in templates.template_for(Outcome.ADOPTED, None)
    assert "{referred_to}" in templates.template_for(Outcome.REFERRED, None)
    steps = CAMPAIGN.project_steps
    assert [s.code for s in steps.steps] == ["proposed", "unit_reviewed", "office_reviewed", "approved"]
    assert [s.name for s in steps.steps] == ["拟定", "单位审核", "民心办审核", "区政府审定"]
    assert steps.rejected.code == "rejected"


def test_mistakes_in_templates_and_steps_are_named(tmp_path):
    good = yaml.safe_load(DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8"))
    reasons = dict(good["decision_templates"]["not_adopted"])
    without_other = {k: v for k, v in reasons.items() if k != "other"}
    cases = [
        ({"adopted": "您的建议{tracking_code}已采纳，项目{project_name}"}, "unknown placeholder"),
        ({"not_adopted": without_other}, "no template for reason"),
        ({"not_adopted": reasons | {"too_expensive": "x"}}, "too_expensive"),
        ({"merged": "   "}, "template is empty"),
        ({"referred": "转" * 1001}, "longer than 1000"),
    ]
    path = tmp_path / "campaign.yaml"
    for change, message in cases:
        data = good | {"decision_templates": good["decision_templates"] | change}
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        with pytest.raises(CampaignFileError, match=message):
            load_campaign(path)
    repeated = {"steps": [{"code": "proposed", "name": "拟定"}, {"code": "rejected", "name": "x"}]}
    steps = [
        (repeated, "unique"),
        ({"steps": [{"code": "proposed", "name": "拟定"}]}, "project_steps.steps"),
        (
            {"steps": good["project_steps"]["steps"][:2] + [{"code": "x", "name": "x", "entered_by": ["supervisor"]}]},
            "entered_by",
        ),
    ]
    for change, message in steps:
        path.write_text(yaml.safe_dump(good | {"project_steps": change}, allow_unicode=True), encoding="utf-8")
        with pytest.raises(CampaignFileError, match=message):
            load_campaign(path)
    # A campaign without templates still loads: staff then write every explanation themselves.
    path.write_text(yaml.safe_dump({k: v for k, v in good.items() if k != "decision_templates"}, allow_unicode=True))
    assert load_campaign(path).decision_templates is None


def test_explanations_fill_known_placeholders_only_and_never_reach_attributes():
    values = {"tracking_code": "7KQ2M-9XD4A", "project_title": "幸福路硬化", "unit_name": "滦河镇"}
    assert render_explanation("查询码{tracking_code}：纳入“{project_title}”", values) == "查询码7KQ2M-9XD4A：纳入“幸福路硬化”"
    assert render_explanation("由{referred_to}办理", values) == "由办理"  # known, but not given: empty
    assert (
        render_explanation("{tracking_code.__class__}{0}{unknown}{{x}}", values) == "{tracking_code.__class__}{0}{unknown}{{x}}"
    )


def test_what_a_release_needs():
    assert release_problems(content()) == []
    assert release_problems(content(reason=None, explanation="")) == [
        "a suggestion not adopted needs a reason",
        "the explanation is empty",
    ]
    assert release_problems(content(explanation="  \n ")) == ["the explanation is empty"]
    assert release_problems(content(outcome=Outcome.ADOPTED, reason=None)) == ["an adopted suggestion names its project"]
    assert release_problems(content(outcome=Outcome.ADOPTED, reason=None, project_id="p1")) == []
    assert release_problems(content(outcome=Outcome.MERGED, reason=None)) == [
        "a merged suggestion names the suggestion or project it was merged into"
    ]
    assert release_problems(content(outcome=Outcome.MERGED, reason=None, merged_into="s2")) == []
    assert release_problems(content(outcome=Outcome.REFERRED, reason=None)) == ["a referred suggestion names the department"]
    assert misplaced(DecisionCreate(outcome=Outcome.ADOPTED, reason=Reason.OTHER, referred_to="区交通局")) == [
        "referred_to does not go with outcome adopted",
        "reason does not go with outcome adopted",
    ]
    assert misplaced(DecisionCreate(outcome=Outcome.MERGED, project_id="p1", merged_into="s2")) == []


def test_the_same_draft_on_the_same_previous_decision_is_the_same_decision():
    first = content()
    same = decision_id_for("s1", first.fingerprint(), None)
    assert same == decision_id_for("s1", content().fingerprint(), None) and len(same) <= 64
    changed = content(explanation="另一个说明。")
    assert decision_id_for("s1", changed.fingerprint(), same) != same
    back = decision_id_for("s1", first.fingerprint(), decision_id_for("s1", changed.fingerprint(), same))
    assert back not in (same, decision_id_for("s1", changed.fingerprint(), same))  # changed back: a new decision again
    assert decision_id_for("s2", first.fingerprint(), None) != same


def test_a_project_moves_one_step_forward_or_to_rejected_by_the_roles_allowed():
    steps = CAMPAIGN.project_steps
    assert transition_problem(steps, "proposed", "unit_reviewed", Role.UNIT_STAFF) is None
    assert transition_problem(steps, "proposed", "unit_reviewed", Role.ADMIN) is None
    assert transition_problem(steps, "unit_reviewed", "office_reviewed", Role.UNIT_STAFF)[0] == 403
    assert transition_problem(steps, "unit_reviewed", "office_reviewed", Role.ADMIN) is None
    assert transition_problem(steps, "proposed", "approved", Role.ADMIN)[0] == 409
    assert transition_problem(steps, "office_reviewed", "unit_reviewed", Role.ADMIN)[0] == 409  # never back
    assert transition_problem(steps, "office_reviewed", "rejected", Role.ADMIN) is None
    assert transition_problem(steps, "proposed", "rejected", Role.UNIT_STAFF)[0] == 403
    assert transition_problem(steps, "approved", "rejected", Role.ADMIN)[0] == 409
    assert transition_problem(steps, "rejected", "proposed", Role.ADMIN)[0] == 409
    assert transition_problem(steps, "proposed", "done", Role.ADMIN)[0] == 422


def test_the_outcomes_report_counts_per_unit_category_and_reason():
    units = load_units()
    rows = [
        {"unit": "luanhe", "category": "road_traffic", "outcome": "adopted", "count": 3},
        {"unit": "luanhe", "category": "road_traffic", "outcome": "not_adopted", "reason": "beyond_means", "count": 2},
        {"unit": "xidi", "category": "education_sports", "outcome": "not_adopted", "reason": "duplicate", "count": 1},
        {"unit": "xidi", "outcome": "referred", "reason": None, "count": 1},
    ]
    told = [
        {"unit": "luanhe", "channel": "sms", "count": 3},
        {"unit": "xidi", "channel": "sms", "count": 1},
        {"unit": "xidi", "channel": "wechat_message", "count": 1},
    ]
    report = assemble_outcomes(CAMPAIGN, units, None, rows, told)
    assert (report.overall.adopted, report.overall.not_adopted, report.overall.referred, report.overall.total) == (3, 3, 1, 7)
    assert report.overall.not_adopted_by_reason == {r.value: 0 for r in Reason} | {"beyond_means": 2, "duplicate": 1}
    assert [(u.unit, u.name, u.total) for u in report.units] == [("luanhe", "滦河镇", 5), ("xidi", "西地镇", 2)]
    assert [(c.category, c.total) for c in report.categories] == [
        ("road_traffic", 5),
        ("education_sports", 1),
        ("unclassified", 1),
    ]
    assert {n.channel: n.count for n in report.notifications} == {"wechat_message": 1, "wechat_template": 0, "sms": 4, "web": 0}
    assert report.notifications_total == 5 and report.reason_names["beyond_means"] == "超出本年度财力"
    xidi = assemble_outcomes(CAMPAIGN, units, "xidi", rows, told)
    assert [u.unit for u in xidi.units] == ["xidi"] and xidi.overall.total == 2 and xidi.notifications_total == 2


def test_the_status_says_what_was_decided():
    submitted = datetime(2019, 10, 20, tzinfo=UTC)
    tracked = Tracked("s1", "7KQ2M-9XD4A", "classified", "road_traffic", None, "修路", submitted, None)
    assert tracked.status_text == "已分类，等待责任单位梳理"
    decision = TrackedDecision("not_adopted", "未采纳", "beyond_means", "超出本年度财力", "说明", None, submitted)
    assert Tracked(**vars(tracked) | {"decision": decision}).status_text == "已答复（未采纳）"
