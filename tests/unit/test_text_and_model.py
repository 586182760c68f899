"""Normalisation, bad input to the model, model integrity and the command line (on the session's trained model)."""

import io
import json
import shutil
import sys

import pytest

from minsheng_classifier import cli
from minsheng_classifier.model import MODEL_FILE, ModelUnavailable, TextClassifier
from minsheng_classifier.text import MODEL_MAX_CHARS, has_content, normalise


def test_normalise_simplifies_traditional_and_full_width_and_truncates():
    assert normalise("希望儘快修復這條馬路") == "希望尽快修复这条马路"
    assert normalise("ＡＢＣ１２３") == "ABC123"
    assert len(normalise("路" * (MODEL_MAX_CHARS + 50))) == MODEL_MAX_CHARS
    assert normalise("占道施工\u3000西湖建筑_x000D_集团") == "占道施工\n西湖建筑\n集团"


@pytest.mark.parametrize(
    ("text", "expected"), [("", False), ("   ", False), ("！？。…", False), ("😀🙏👍", False), ("修路", True), ("ok bus", True)]
)
def test_has_content(text, expected):
    assert has_content(text) is expected


def test_model_answers_every_hostile_text_without_crashing(model_dir):
    model = TextClassifier.load(model_dir)
    texts = ["路" * 20000, "Bus 站 too far 公交站太远", "希望儘快修復這條馬路，坑太多了", "<script>alert(1)</script>", "x"]
    predictions = model.predict(texts)
    assert len(predictions) == len(texts)
    assert all(p.category in model.categories and 0 <= p.confidence <= 1 for p in predictions)
    assert predictions[2].category == "road_traffic"


def test_the_model_records_the_data_it_learnt_from(model_dir):
    meta = TextClassifier.read_meta(model_dir)
    assert len(meta["data_sha256"]) == 64 and meta["version"].endswith(meta["data_sha256"][:12])
    assert meta["examples"] >= 150 * 11


def test_a_missing_or_corrupt_model_is_refused_with_a_clear_message(model_dir, tmp_path):
    with pytest.raises(ModelUnavailable, match="no model in"):
        TextClassifier.load(tmp_path / "nothing")
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    with (copy / MODEL_FILE).open("r+b") as handle:
        handle.seek(100)
        handle.write(b"garbage")
    with pytest.raises(ModelUnavailable, match="does not match its metadata"):
        TextClassifier.load(copy)


def test_cli_predict_keeps_ids_and_order(model_dir, monkeypatch, capsys):
    lines = [{"id": 7, "text": "村里的小学缺老师"}, {"id": "b", "text": "小区物业费太贵了"}, {"id": None, "text": ""}]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(json.dumps(line, ensure_ascii=False) for line in lines)))
    assert cli.main(["predict", "--model", str(model_dir)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["id"] for o in out] == [7, "b", None]
    assert out[0]["category"] == "education_sports" and out[1]["category"] == "community"


def test_cli_predict_rejects_a_bad_line_with_its_number(model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"id": 1, "text": "修路"}\n{"id": 2}\n'))
    assert cli.main(["predict", "--model", str(model_dir)]) == 2
    assert "line 2" in capsys.readouterr().err
