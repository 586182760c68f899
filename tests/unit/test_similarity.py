"""Duplicate and same-thing detection between two suggestions (pure functions)."""

from minsheng_classifier.similarity import Comparer, named_objects

TOWNS = ("双塔山镇", "滦河镇", "元宝山街道", "双塔山")
VILLAGES = ("西山村", "石佛村")
COMPARER = Comparer(TOWNS, VILLAGES, ["村里的路该修了", "希望安装路灯", "小区物业费太贵"])


def fp(text, unit="u1", village=None, person=None, category=None):
    return COMPARER.fingerprint(text, unit, village, person, category)


def test_named_objects_are_the_names_of_concrete_things():
    assert named_objects("希望把幸福路修一下，幸福路上坑太多", TOWNS) == {"幸福路"}
    assert "锦绣小区" in named_objects("元宝山街道锦绣小区南门停车场", TOWNS)
    assert named_objects("双塔山镇西山村卫生室没有医生", TOWNS) == {"西山村卫生室"}
    assert named_objects("二中门口太堵", TOWNS) == {"二中"}
    assert named_objects("这条路太烂了，我们村的水泥路该修了", TOWNS) == set()
    assert named_objects("建议把石佛村幸福路拓宽", TOWNS, VILLAGES) == {"石佛村幸福路", "幸福路"}


def test_the_village_comes_from_the_text_when_not_given():
    assert fp("石佛村的路灯坏了").village == "石佛村"
    assert fp("路灯坏了", village="西山村").village == "西山村"


def test_the_same_text_from_anyone_is_a_duplicate():
    text = "建议在新华路与迎宾路交叉口安装红绿灯，上下班时间太危险了"
    assert COMPARER.relation(fp(text, person="a"), fp(text + "！！", person="b")) == "duplicate"


def test_the_same_person_rewording_is_a_duplicate_but_not_a_different_ask():
    first = fp("锦绣小区3号楼屋顶漏水，希望纳入老旧小区改造", person="p1")
    assert COMPARER.relation(first, fp("我家锦绣小区3号楼顶漏雨好几年了 请尽快修", person="p1")) == "duplicate"
    assert COMPARER.relation(first, fp("孩子上学的二中门口没有红绿灯", person="p1")) == "different"


def test_different_people_about_the_same_named_thing_share_a_cluster():
    a = fp("幸福路坑洼不平，晚上骑车摔了好几次，希望重新铺设", person="p1")
    b = fp("建议把幸福路拓宽，再加上路灯", person="p2")
    assert COMPARER.relation(a, b) == "same_thing"


def test_same_village_and_topic_in_other_words_is_the_same_thing_but_another_topic_is_not():
    a = fp("西山村村口的桥护栏被水冲走了", person="p1", category="road_traffic")
    b = fp("西山村村口那个桥护栏没了 孩子过桥危险", person="p2", category="road_traffic")
    c = fp("西山村卫生室没有医生", person="p3", category="health")
    assert COMPARER.relation(a, b) == "same_thing"
    assert COMPARER.relation(a, c) == "different"


def test_same_kind_of_thing_in_another_place_is_different():
    a = fp("西山村的路灯坏了", person="p1", category="rural")
    b = fp("石佛村的路灯坏了", person="p2", category="rural")
    assert COMPARER.relation(a, b) == "different"
    assert COMPARER.relation(fp("幸福路该修了", unit="u1"), fp("幸福路该修了一下吧", unit="u2")) != "same_thing"
