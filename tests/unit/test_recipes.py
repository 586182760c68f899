"""The model recipes: title and token handling, and that each recipe trains and gives calibrated probabilities."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from minsheng_classifier.corpus import CAMPAIGN_CORPUS, load_examples
from minsheng_classifier.model import TextClassifier
from minsheng_classifier.ngrams import FastNgramTfidf
from minsheng_classifier.recipes import NBSVM, RECIPES, DedupStratifiedKFold, body_and_title, build_pipeline, chars, title, words
from minsheng_classifier.text import normalise


def test_words_keep_a_given_segmentation_and_segment_plain_text():
    assert words("市 西湖 建筑 集团 占 道 施工") == ["市", "西湖", "建筑", "集团", "占", "道", "施工"]
    assert "路灯" in words("小区的路灯坏了 晚上很黑")


def test_title_is_the_first_line_or_what_comes_before_an_ideographic_space():
    assert title(normalise("村里的路该修了\n一下雨就是泥")) == "村里的路该修了"
    assert title(normalise("占道施工\u3000西湖建筑集团在人行道上施工")) == "占道施工"
    assert title("希望修路") == "希望 修路"


def test_the_fast_recipe_segments_body_and_title_once():
    text = normalise("占道施工\u3000西湖建筑集团在人行道上施工")
    assert body_and_title(text) == (" ".join(words(text)), " ".join(words("占道施工")))
    assert body_and_title("市 西湖 建筑 集团 占 道 施工") == ("市 西湖 建筑 集团 占 道 施工",) * 2
    assert body_and_title("") == ("", "")


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


_CORPUS = ["市 西湖 建筑 集团 占 道 施工", "村里的路该修了\n一下雨就是泥", "😀🙏👍", "", "路 路 路 修 路", "ABC abc 123 西湖"]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_fast_character_ngrams_equal_scikit_learn_tfidf(n):
    ours = FastNgramTfidf((n, n), None).fit(_CORPUS)
    theirs = TfidfVectorizer(analyzer="char", preprocessor=chars, ngram_range=(n, n), sublinear_tf=True).fit(_CORPUS)
    # Packed character ids sort like the strings, so even the column order is scikit-learn's.
    assert len(ours.vocabulary_[f"char{n}"]) == len(theirs.vocabulary_)
    np.testing.assert_allclose(ours.transform(_CORPUS).toarray(), theirs.transform(_CORPUS).toarray(), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2])
def test_fast_word_ngrams_equal_scikit_learn_tfidf_up_to_column_order(n):
    ours = FastNgramTfidf(None, (n, n)).fit(_CORPUS)
    theirs = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, ngram_range=(n, n), sublinear_tf=True)
    theirs.fit(_CORPUS)
    a, b = ours.transform(_CORPUS).toarray(), theirs.transform(_CORPUS).toarray()
    assert a.shape == b.shape
    np.testing.assert_allclose(a @ a.T, b @ b.T, atol=1e-12)  # word ids are hashes: compare what a linear model sees
    np.testing.assert_allclose(np.sort(a, axis=1), np.sort(b, axis=1), atol=1e-12)


def test_fast_ngrams_keep_blocks_apart_and_survive_pickling_and_empty_input():
    tfidf = FastNgramTfidf((1, 3), (1, 2), weight=0.5).fit(_CORPUS)
    matrix = tfidf.transform(_CORPUS + ["嗯嗯"])
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    assert norms[0] == pytest.approx(0.5 * np.sqrt(5))  # five blocks, each l2-normalised, times the weight
    assert norms[3] == 0 and norms[-1] == 0  # empty and unseen text: no features, no crash
    copy = pickle.loads(pickle.dumps(tfidf))
    assert (copy.transform(_CORPUS) != tfidf.transform(_CORPUS)).nnz == 0
    assert tfidf.transform([]).shape == (0, matrix.shape[1])


def test_fast_recipe_saves_loads_and_answers_empty_and_emoji_texts(tmp_path):
    examples = load_examples(CAMPAIGN_CORPUS)
    model = TextClassifier.train([e.text for e in examples], [e.label for e in examples], "0" * 64, recipe="fast")
    texts = ["", "😀🙏👍", "！？。", "村村通公路坑太多了，希望重新铺设", "小区物业费太贵\u3000物业服务差，电梯常坏"]
    model.save(tmp_path)
    loaded = TextClassifier.load(tmp_path)
    before, after = model.predict(texts), loaded.predict(texts)
    assert after == before
    assert all(p.category in model.categories and 0 < p.confidence <= 1 for p in after)
    assert after[3].category == "road_traffic" and after[4].category == "community"


def test_blend_recipe_is_reproducible_with_a_seed_and_its_probabilities_rank_like_its_predictions():
    examples = load_examples(CAMPAIGN_CORPUS)[::3]
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    queries = ["村里到镇上的土路希望硬化", "小区物业费太贵\u3000物业服务差，电梯常坏", "医院挂号排队太久"]
    first, second = build_pipeline("blend", seed=7).fit(texts, labels), build_pipeline("blend", seed=7).fit(texts, labels)
    np.testing.assert_array_equal(first.predict_proba(queries), second.predict_proba(queries))
    assert list(first.predict(queries)) == list(first.classes_[first.predict_proba(queries).argmax(1)])
    assert set(first.named_steps["classifier"].named_estimators_) == {"svm", "nbsvm", "cnb"}


def test_nbsvm_folds_its_ratios_into_one_weight_matrix():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.random((40, 30)) * (rng.random((40, 30)) < 0.3))  # noqa: N806
    y = np.repeat(["a", "b", "c", "d"], 10)
    model = NBSVM(C=0.5).fit(X, y)
    binary = (X != 0).astype(float)
    for column, label in enumerate(model.classes_):
        p = np.asarray(binary[y == label].sum(0)).ravel() + 1
        q = np.asarray(binary[y != label].sum(0)).ravel() + 1
        ratio = np.log((p / p.sum()) / (q / q.sum()))
        svm = LinearSVC(C=0.5, random_state=0).fit(binary.multiply(ratio).tocsr(), y == label)
        np.testing.assert_allclose(model.decision_function(X)[:, column], svm.decision_function(binary.multiply(ratio).tocsr()))


def test_dedup_folds_keep_identical_feature_rows_together():
    X = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1], [2, 0]] * 6, dtype=float))  # noqa: N806 - four distinct rows
    y = np.array(["a", "b"] * 12)
    for train, test in DedupStratifiedKFold(3, random_state=0).split(X, y):
        rows = {X[i].toarray().tobytes() for i in test}
        assert not rows & {X[i].toarray().tobytes() for i in train}
