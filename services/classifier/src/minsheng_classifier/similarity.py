"""Whether two suggestions repeat each other or concern the same concrete thing (pure functions, no I/O)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from minsheng_classifier.text import compact, normalise

Relation = Literal["duplicate", "same_thing", "different"]

# Chosen on the even lines of evaluation/pairs.jsonl, checked on the odd ones (see the README's figures).
NEAR_IDENTICAL = 0.85  # weighted cosine: the same text from anyone (copy-paste, forwarded messages)
SAME_PERSON_REWORDED = 0.35  # containment: the same person saying it again in other words
SAME_PERSON_TOPIC = 0.15  # containment, for the same person, place and category
SAME_PLACE_SIMILAR = 0.2  # containment, for someone else in the same place and category without a shared name

# What ends the name of a concrete thing people ask about: roads, bridges, schools, compounds, clinics …
_SUFFIXES = (
    "大街", "大道", "胡同", "路", "街", "巷", "桥", "小学", "中学", "幼儿园", "学校", "小区", "家属院", "家属楼",
    "公园", "广场", "医院", "卫生院", "卫生室", "诊所", "市场", "河", "渠", "水库", "沟", "站", "厂", "矿", "楼",
    "停车场", "球场", "体育场", "游园", "菜市场", "超市", "服务中心", "服务站", "活动室", "书屋", "养老院", "敬老院",
)  # fmt: skip
_SUFFIX = re.compile("|".join(sorted(_SUFFIXES, key=len, reverse=True)))
_SCHOOL_ORDINAL = re.compile(r"[一二三四五六七八九十]{1,2}[中小]")
# Characters that never belong to a proper name: particles, pronouns, measure words, verbs of asking.
_NOT_IN_NAMES = set(
    "的了着过条个座所家这那哪些里在到从向往给让把被将修建盖搞弄是有没无不也都就还又很太更最要想望请求"
    "我你他她它们咱啊呀吧呢吗嘛哦哈和与及或等一下"
)
_MAX_NAME = 6
# Names too generic to identify one thing.
_GENERIC = {
    "水泥路", "柏油路", "马路", "公路", "道路", "土路", "小路", "大路", "主路", "村路", "出村路", "进村路", "乡村路",
    "老旧小区", "居民小区", "农贸市场", "菜市场", "卫生院", "卫生室", "幼儿园", "小学", "中学", "学校", "医院", "大街",
    "公园", "广场", "停车场", "垃圾站", "公交站", "汽车站", "体育场", "活动场", "文化广场", "健身广场", "小区", "超市",
    "中心小学", "中心校", "村卫生室", "乡卫生院", "镇卫生院", "村小学", "村小", "小区门口", "十字路",
}  # fmt: skip


def bigrams(text: str) -> Counter[str]:
    """Character bigrams of the compacted text (single characters for one-character texts)."""
    t = compact(text)
    return Counter(t[i : i + 2] for i in range(len(t) - 1)) if len(t) > 1 else Counter(t)


def named_objects(text: str, unit_names: tuple[str, ...] = (), place_names: tuple[str, ...] = ()) -> set[str]:
    """Names of concrete things (幸福路, 锦绣小区, 西山村卫生室, 二中): the longest run of name characters before a
    thing's suffix. Unit names (towns, sub-districts) are cut out first: they qualify, they do not identify. A name
    that starts with a village's name also counts without it (石佛村幸福路 is 幸福路), unless what is left is generic."""
    t = normalise(text)
    for unit_name in sorted(unit_names, key=len, reverse=True):
        t = t.replace(unit_name, "|")
    names = {m.group() for m in _SCHOOL_ORDINAL.finditer(t)}
    for match in _SUFFIX.finditer(t):
        start = match.start()
        while start > 0 and match.start() - start < _MAX_NAME and _name_char(t[start - 1]):
            start -= 1
        name = t[start : match.end()]
        if match.start() - start >= 2 and name not in _GENERIC:
            names.add(name)
            for place in place_names:
                rest = name[len(place) :]
                if name.startswith(place) and len(rest) > 2 and rest not in _GENERIC:
                    names.add(rest)
    return names


def _name_char(c: str) -> bool:
    return ("\u4e00" <= c <= "\u9fff" or c.isalnum()) and c not in _NOT_IN_NAMES


@dataclass(frozen=True)
class Fingerprint:
    """What comparison needs of a suggestion; stored by the classifier, never holds personal data in clear."""

    text: str
    unit: str | None = None
    village: str | None = None
    person: str | None = None
    category: str | None = None
    grams: Counter[str] = field(default_factory=Counter, compare=False)
    objects: frozenset[str] = frozenset()


class Comparer:
    """Builds fingerprints with the district's place names and the corpus's bigram weights, and compares two."""

    def __init__(self, unit_names: tuple[str, ...] = (), place_names: tuple[str, ...] = (), texts: list[str] | None = None):
        self.unit_names = unit_names
        self.place_names = place_names
        self._village_pattern = re.compile("|".join(re.escape(n) for n in sorted(place_names, key=len, reverse=True)) or "$^")
        documents = [set(bigrams(t)) for t in texts or []]
        frequency = Counter(gram for grams in documents for gram in grams)
        self._idf = {gram: math.log((len(documents) + 1) / (df + 1)) + 1 for gram, df in frequency.items()}
        self._unseen = math.log(len(documents) + 1) + 1  # a bigram the corpus never had: as rare as can be

    def fingerprint(
        self,
        text: str,
        unit: str | None = None,
        village: str | None = None,
        person: str | None = None,
        category: str | None = None,
    ) -> Fingerprint:
        """A suggestion's fingerprint; without a village given, the first village or community its text names."""
        if village is None and (found := self._village_pattern.search(normalise(text))):
            village = found.group()
        objects = frozenset(named_objects(text, self.unit_names, self.place_names))
        return Fingerprint(text, unit, village, person, category, bigrams(text), objects)

    def _weight(self, grams: Counter[str]) -> dict[str, float]:
        return {g: c * self._idf.get(g, self._unseen) for g, c in grams.items()}

    def similarity(self, a: Fingerprint, b: Fingerprint) -> tuple[float, float]:
        """(cosine, containment) of the weighted bigrams: containment is how much of the shorter the longer holds."""
        wa, wb = self._weight(a.grams), self._weight(b.grams)
        if not wa or not wb:
            return 0.0, 0.0
        dot = sum(w * wb[g] for g, w in wa.items() if g in wb)
        cos = dot / math.sqrt(sum(w * w for w in wa.values()) * sum(w * w for w in wb.values()))
        shorter, longer = (wa, wb) if sum(wa.values()) <= sum(wb.values()) else (wb, wa)
        contained = sum(w for g, w in shorter.items() if g in longer) / sum(shorter.values())
        return cos, contained

    def relation(self, a: Fingerprint, b: Fingerprint) -> Relation:
        """duplicate: the same text, or the same person about the same thing again; same_thing: the same concrete
        object from someone else; different: anything else, and always when the places differ."""
        cos, contained = self.similarity(a, b)
        if cos >= NEAR_IDENTICAL:
            return "duplicate"
        same_object = bool(a.objects & b.objects)
        same_place = bool(a.village and a.village == b.village) or bool(not a.village and not b.village and a.unit == b.unit)
        same_topic = a.category is not None and a.category == b.category
        if a.person and a.person == b.person and not _places_conflict(a, b):
            if same_object or contained >= SAME_PERSON_REWORDED or (same_place and same_topic and contained >= SAME_PERSON_TOPIC):
                return "duplicate"
        if _places_conflict(a, b):
            return "different"
        if same_object:
            return "same_thing"
        if same_place and same_topic and contained >= SAME_PLACE_SIMILAR:
            return "same_thing"
        return "different"


def _places_conflict(a: Fingerprint, b: Fingerprint) -> bool:
    return bool((a.unit and b.unit and a.unit != b.unit) or (a.village and b.village and a.village != b.village))
