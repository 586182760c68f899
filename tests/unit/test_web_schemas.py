"""Validation of what residents submit on the web (no I/O)."""

import pytest
from pydantic import ValidationError

from minsheng_core.http import field_errors
from minsheng_intake_web.schemas import SuggestionCreate


def test_minimal_and_full_submissions_are_accepted():
    assert SuggestionCreate.model_validate({"text": " 修路 "}).text == "修路"
    full = SuggestionCreate.model_validate(
        {
            "title": "t",
            "text": "希望增设路灯",
            "location": {"town": "西地镇"},
            "submitter_group": "npc_deputy",
            "contact": {"phone": "0314-2345678"},
        }
    )
    assert full.submitter_group.value == "npc_deputy"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "text", "必填"),
        ({"text": "x" * 5001}, "text", "不能超过 5000 个字"),
        ({"text": 5}, "text", "应为文字"),
        ({"text": "x", "contact": {"phone": "123"}}, "contact.phone", "格式不正确"),
        ({"text": "x", "nickname": "y"}, "nickname", "不是可接受的字段"),
    ],
)
def test_errors_name_the_field_in_chinese(data, field, message):
    with pytest.raises(ValidationError) as info:
        SuggestionCreate.model_validate(data)
    assert {"field": field, "message": message} in field_errors(info.value.errors())


def test_a_text_of_only_emoji_or_punctuation_is_refused_in_chinese():
    from pydantic import ValidationError

    from minsheng_core.http import field_errors
    from minsheng_intake_web.schemas import SuggestionCreate

    for text in ("👍👍🙏", "？？？！！", "。。。"):
        try:
            SuggestionCreate.model_validate({"text": text})
            raise AssertionError(f"{text!r} must be refused")
        except ValidationError as exc:
            expected = [{"field": "text", "message": "请用文字写下您的建议，不能只有表情或标点符号。"}]
            assert field_errors(list(exc.errors())) == expected
    assert SuggestionCreate.model_validate({"text": "修路👍"}).text == "修路👍"
