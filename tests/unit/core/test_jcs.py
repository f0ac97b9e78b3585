import pytest

from core.jcs import canonicalize


def test_members_sorted_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: sorting is by UTF-16 code units, so U+1F600 (a
    # surrogate pair starting 0xD83D) sorts before U+FB33 (0xFB33).
    value = {"\ufb33": 1, "\U0001f600": 2, "a": 3, "Z": 4, "中": 5}
    assert canonicalize(value) == '{"Z":4,"a":3,"\u4e2d":5,"\U0001f600":2,"\ufb33":1}'.encode()


def test_strings_escape_like_ecmascript() -> None:
    assert canonicalize("a\"b\\c\n\t\x01\u2028é") == b'"a\\"b\\\\c\\n\\t\\u0001\xe2\x80\xa8\xc3\xa9"'


def test_no_whitespace_and_nested_structures() -> None:
    assert canonicalize({"b": [1, True, None, {"y": "x"}], "a": False}) == b'{"a":false,"b":[1,true,null,{"y":"x"}]}'


def test_floats_and_large_integers_are_refused() -> None:
    with pytest.raises(TypeError):
        canonicalize({"x": 1.5})
    with pytest.raises(ValueError):
        canonicalize(2**53)
    with pytest.raises(TypeError):
        canonicalize({1: "x"})
