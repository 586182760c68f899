"""The model recipes: title and token handling, and that each recipe trains and gives calibrated probabilities."""

import pytest

from minsheng_classifier.corpus import CAMPAIGN_CORPUS, load_examples
from minsheng_classifier.recipes import RECIPES, build_pipeline, title, words
from minsheng_classifier.text import normalise


def test_words_keep_a_given_segmentation_and_segment_plain_text():
    assert words("市 西湖 建筑 集团 占 道 施工") == ["市", "西湖", "建筑", "集团", "占", "道", "施工"]
    assert "路灯" in words("小区的路灯坏了 晚上很黑")


def test_title_is_the_first_line_or_what_comes_before_an_ideographic_space():
    assert title(normalise("村里的路该修了\n一下雨就是泥")) == "村里的路该修了"
    assert title(normalise("占道施工\u3000西湖建筑集团在人行道上施工")) == "占道施工"
    assert title("希望修路") == "希望 修路"


def test_an_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="unknown recipe"):
        build_pipeline("magic")


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_learns_and_gives_probabilities(recipe):
    examples = load_examples(CAMPAIGN_CORPUS)
    pipeline = build_pipeline(recipe).fit([e.text for e in examples], [e.label for e in examples])
    probabilities = pipeline.predict_proba(["村里到镇上的土路希望硬化", "小区物业费太贵，物业服务差"])
    assert probabilities.shape == (2, len({e.label for e in examples}))
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-6
    assert list(pipeline.predict(["村村通公路坑太多了，希望重新铺设"])) == ["road_traffic"]
