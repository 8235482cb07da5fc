import pytest

from learnerprobe.cefr import CefrScheme, get_scheme, parse_cefr


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("B1", "B1"), ("b1+", "B1+"), ("B1-", "B1"), ("A2.ii", "A2+"), ("A2.i", "A2"),
        ("C1/C2", "C1+"), ("C2/C1", "C1+"), (3, "B1"), ("3.5", "B1+"), (6.0, "C2"),
        ("", None), ("n/a", None), (None, None), ("C2+", "C2"), ("unrated", None),
        ("EMPTY", None),
    ],
)
def test_parse(raw, expected):
    assert parse_cefr(raw) == expected


def test_parse_strict_rejects_garbage():
    with pytest.raises(ValueError):
        parse_cefr("excellent", strict=True)
    with pytest.raises(ValueError):
        parse_cefr(7, strict=True)
    assert parse_cefr("excellent") is None
    with pytest.raises(ValueError):
        parse_cefr("Z9", strict=True)  # loaders: warn and count, or refuse with strict=True


def test_five_scheme_round_trip():
    s = get_scheme("five")
    assert s.labels == ["A1", "A2", "B1", "B2", "C1+C2"]
    assert s.map("B1+") == "B1"
    assert s.map("C2") == "C1+C2" and s.map("C1") == "C1+C2"
    assert [s.from_int(s.to_int(x)) for x in ["A1", "B2", "C2"]] == ["A1", "B2", "C1+C2"]
    with pytest.raises(ValueError):
        s.from_int(5)


def test_abc_and_fine():
    assert CefrScheme(abc=True).labels == ["A", "B", "C"]
    assert get_scheme("fine").map("A2.ii") == "A2+"
    assert len(get_scheme("fine").labels) == 11
