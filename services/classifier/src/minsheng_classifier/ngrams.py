"""TF-IDF over character and word n-grams computed with numpy over a whole batch, without a loop per character.

The values match scikit-learn's TfidfVectorizer (smooth idf, optional sublinear tf) for each n on its own:
analyzer="char" on text without whitespace, and tokenizer=str.split for words; each n is its own l2-normalised
block. Predicting with TfidfVectorizer costs a Python call per n-gram, which made our recipes several times slower
than the benchmark's baseline; here every n-gram of the batch becomes a 64-bit id at once and is looked up in a
hash table built when fitting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

# What Python's \s matches among code points, i.e. what recipes.chars() removes before character n-grams.
_WHITESPACE = np.array(
    [9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000],
    dtype=np.uint32,
)
_CODE_BITS = np.uint64(21)  # every Unicode code point fits in 21 bits, so three of them pack into one uint64
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0x632BE59BD9B4E019)
_WORD_BASE = np.uint64(1000003)
_EMPTY = (np.zeros(0, np.uint64), np.zeros(0, np.int64))


def _code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The code points of all texts, each text followed by a line break, and the text each code point belongs to."""
    if not texts:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    lengths = np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer(("\n".join(texts) + "\n").encode("utf-32-le"), dtype=np.uint32)
    return codes, np.repeat(np.arange(len(texts)), lengths)


def _char_ngrams(codes: np.ndarray, doc: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the character n-grams of each text with whitespace removed, and the text of each."""
    keep = ~np.isin(codes, _WHITESPACE)
    chars, doc = codes[keep].astype(np.uint64), doc[keep]
    m = len(chars) - n + 1
    if m <= 0:
        return _EMPTY
    ids = chars[:m].copy()
    for k in range(1, n):
        if k < 3:
            # Packed, not hashed, up to trigrams: the ids sort like the strings, as TfidfVectorizer's columns do.
            ids = (ids << _CODE_BITS) | chars[k : k + m]
        else:
            ids = _mix(ids * _MIX + chars[k : k + m])
    within = doc[:m] == doc[n - 1 :]  # n-grams never span two texts
    return ids[within], doc[:m][within]


def _word_ngrams(codes: np.ndarray, doc: np.ndarray, n_max: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ids of the word 1..n_max-grams (words are separated by whitespace), and the text of each, per n."""
    inside = np.flatnonzero(~np.isin(codes, _WHITESPACE))
    if len(inside) == 0:
        return [_EMPTY] * n_max
    starts_word = np.ones(len(inside), bool)
    starts_word[1:] = inside[1:] != inside[:-1] + 1
    starts = np.flatnonzero(starts_word)
    position = np.arange(len(inside)) - np.repeat(starts, np.diff(np.append(starts, len(inside))))
    powers = np.cumprod(np.full(int(position.max()) + 1, _WORD_BASE, dtype=np.uint64))
    # A polynomial hash of each word's code points (wrapping uint64 arithmetic), then mixed: 64-bit ids whose
    # collisions are negligible for vocabularies of millions.
    word = _mix(np.add.reduceat(codes[inside].astype(np.uint64) * powers[position], starts) * _MIX)
    word_doc = doc[inside[starts]]
    out, gram = [(word, word_doc)], word
    for n in range(2, n_max + 1):
        m = len(word) - n + 1
        if m <= 0:
            out.append(_EMPTY)
            continue
        gram = _mix((gram[:m] * _MIX + _MIX2) ^ word[n - 1 :])
        within = word_doc[:m] == word_doc[n - 1 :]
        out.append((gram[within], word_doc[:m][within]))
    return out


def _mix(ids: np.ndarray) -> np.ndarray:
    ids = ids * _MIX
    return ids ^ (ids >> np.uint64(31))


class _HashIndex:
    """Column of each vocabulary id, by open addressing: one or two random reads per lookup, a binary search ~20."""

    def __init__(self, vocabulary: np.ndarray) -> None:
        self.bits = max(4, int(np.ceil(np.log2(2 * len(vocabulary) + 1))))  # load factor at most one half
        self.keys = np.zeros(1 << self.bits, np.uint64)
        self.columns = np.full(1 << self.bits, -1, np.int32)
        slot = self._slots(vocabulary)
        pending = np.arange(len(vocabulary))
        while len(pending):
            # Each round, one of the ids that want a free slot takes it; the others move on to the next slot.
            wanted = slot[pending]
            free = self.columns[wanted] == -1
            _, first = np.unique(wanted[free], return_index=True)
            winners = pending[free][first]
            self.columns[slot[winners]] = winners
            self.keys[slot[winners]] = vocabulary[winners]
            placed = np.zeros(len(vocabulary), bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & ((1 << self.bits) - 1)

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        return ((ids * _MIX) >> np.uint64(64 - self.bits)).astype(np.int64)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The column of each id, -1 for ids outside the vocabulary."""
        out = np.full(len(ids), -1, np.int64)
        pending, slot = np.arange(len(ids)), self._slots(ids)
        while len(pending):
            column = self.columns[slot]
            occupied = column >= 0
            hit = occupied & (self.keys[slot] == ids[pending])
            out[pending[hit]] = column[hit]
            probe = occupied & ~hit
            pending, slot = pending[probe], (slot[probe] + 1) & ((1 << self.bits) - 1)
        return out


class FastNgramTfidf(TransformerMixin, BaseEstimator):
    """TF-IDF of character n-grams (whitespace removed) and word n-grams, each n an l2-normalised block × weight."""

    def __init__(
        self,
        char_ngrams: tuple[int, int] | None = (1, 3),
        word_ngrams: tuple[int, int] | None = (1, 2),
        min_df: int = 1,
        sublinear_tf: bool = True,
        weight: float = 1.0,
    ) -> None:
        self.char_ngrams = char_ngrams
        self.word_ngrams = word_ngrams
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.weight = weight

    def _blocks(self, texts: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
        codes, doc = _code_points(texts)
        blocks = []
        if self.char_ngrams:
            low, high = self.char_ngrams
            blocks += [(f"char{n}", *_char_ngrams(codes, doc, n)) for n in range(low, high + 1)]
        if self.word_ngrams:
            low, high = self.word_ngrams
            grams = _word_ngrams(codes, doc, high)
            blocks += [(f"word{n}", *grams[n - 1]) for n in range(low, high + 1)]
        return blocks

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's names
        """Learn each block's vocabulary (sorted ids) and smooth idf."""
        X = list(X)
        self.vocabulary_: dict[str, np.ndarray] = {}
        self.idf_: dict[str, np.ndarray] = {}
        for name, ids, doc in self._blocks(X):
            order = np.lexsort((doc, ids))
            ids, doc = ids[order], doc[order]
            first_in_doc = np.ones(len(ids), bool)  # each n-gram counted once per text for the document frequency
            first_in_doc[1:] = (ids[1:] != ids[:-1]) | (doc[1:] != doc[:-1])
            vocabulary, df = np.unique(ids[first_in_doc], return_counts=True)
            keep = df >= self.min_df
            self.vocabulary_[name] = vocabulary[keep]
            self.idf_[name] = np.log((1 + len(X)) / (1 + df[keep])) + 1
        self._index()
        return self

    def _index(self) -> None:
        self.index_ = {name: _HashIndex(vocabulary) for name, vocabulary in self.vocabulary_.items()}

    def transform(self, X):  # noqa: N803
        """One sparse row per text: the blocks side by side, in the order char n-grams then word n-grams."""
        X = list(X)
        blocks = []
        for name, ids, doc in self._blocks(X):
            vocabulary = self.vocabulary_[name]
            column = self.index_[name].lookup(ids)
            known = column >= 0
            rows = doc[known]  # already in text order, so the counts go straight into CSR form
            indptr = np.searchsorted(rows, np.arange(len(X) + 1))
            counts = sp.csr_matrix((np.ones(len(rows)), column[known], indptr), shape=(len(X), len(vocabulary)))
            counts.sum_duplicates()
            if self.sublinear_tf:
                np.log(counts.data, out=counts.data)
                counts.data += 1
            counts.data *= self.idf_[name][counts.indices]
            row_of_value = np.repeat(np.arange(len(X)), np.diff(counts.indptr))
            norms = np.sqrt(np.bincount(row_of_value, weights=counts.data**2, minlength=len(X)))
            counts.data *= self.weight / np.maximum(norms, 1e-12)[row_of_value]
            blocks.append(counts)
        if not blocks:
            return sp.csr_matrix((len(X), 0))
        return sp.hstack(blocks, format="csr")

    def __getstate__(self) -> dict[str, Any]:
        # The hash tables are three times the vocabulary's size and rebuilt in a second: not worth saving.
        return {key: value for key, value in super().__getstate__().items() if key != "index_"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if hasattr(self, "vocabulary_"):
            self._index()
