"""The JSON policy: what it refuses (and says where), what it keeps, and that no input reaches
a recursion limit. Property-based on generated JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobpulse.documents import (
    INT_MAX,
    INT_MIN,
    MAX_BYTES,
    MAX_DEPTH,
    check_document,
    loads,
    repaired,
)
from jobpulse.errors import ValidationError


def nested(levels: int, leaf: Any = 1) -> dict[str, Any]:
    """A document `levels` deep ({"a": {"a": … leaf}}), built without recursion."""
    document: Any = leaf
    for _ in range(levels):
        document = {"a": document}
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": math.nan}, r"^metadata\.x is nan; only finite numbers are JSON$"),
        ({"x": math.inf}, r"^metadata\.x is inf"),
        ({"x": [1, {"y": -math.inf}]}, r"^metadata\.x\[1\]\.y is -inf"),
        ({"x": INT_MAX + 1}, r"^metadata\.x is an integer outside 64 bits$"),
        ({"x": INT_MIN - 1}, r"outside 64 bits"),
        ({"x": "a\x00b"}, r"^metadata\.x has a NUL character$"),
        ({"x": ["\ud800"]}, r"^metadata\.x\[0\] has an unpaired surrogate"),
        ({"ok": {"a\x00": 1}}, r"^metadata\.ok has a key that has a NUL character$"),
        ({"ok": {1: 1}}, r"^metadata\.ok has a key that is not text$"),
        ({"x": {1, 2}}, r"^metadata\.x is a set, not a JSON value$"),
        ({"x": b"raw"}, r"is a bytes, not a JSON value"),
    ],
)
def test_refused_values_say_where_and_why(value: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_document(value)


def test_the_name_given_leads_the_message() -> None:
    with pytest.raises(ValidationError, match=r"^progress\.p is nan"):
        check_document({"p": math.nan}, "progress")


def test_thirty_two_levels_are_kept_and_thirty_three_refused() -> None:
    assert check_document(nested(MAX_DEPTH)) == nested(MAX_DEPTH)
    with pytest.raises(ValidationError, match=f"nested deeper than {MAX_DEPTH} levels"):
        check_document(nested(MAX_DEPTH + 1))
    lists: Any = []
    for _ in range(MAX_DEPTH):
        lists = [lists]
    with pytest.raises(ValidationError, match=r"^metadata\.a(\[0\])+ is nested deeper"):
        check_document({"a": lists})


@pytest.mark.parametrize("levels", [270, 1_000, 100_000])
def test_any_depth_is_refused_without_reaching_a_recursion_limit(levels: int) -> None:
    with pytest.raises(ValidationError, match="nested deeper than 32 levels"):
        check_document(nested(levels))


def test_the_limits_of_integers_and_size_are_inclusive() -> None:
    assert check_document({"max": INT_MAX, "min": INT_MIN})
    overhead = len('{"k":""}')
    assert check_document({"k": "x" * (MAX_BYTES - overhead)})
    with pytest.raises(ValidationError, match=f"limit is {MAX_BYTES}"):
        check_document({"k": "x" * (MAX_BYTES - overhead + 1)})


def test_size_is_counted_in_utf8_bytes() -> None:
    overhead = len('{"k":""}')
    with pytest.raises(ValidationError, match=f"is {MAX_BYTES + 1} bytes"):
        check_document({"k": "é" * ((MAX_BYTES - overhead) // 2) + "x"})


def test_not_an_object_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be a JSON object, not list"):
        check_document([1])


#: Values every database and receiver can take: the policy must keep each as it is.
texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=30,
)
documents = st.dictionaries(texts, values, max_size=6)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_generated_json_within_the_policy_is_kept_as_it_is(document: dict[str, Any]) -> None:
    assert check_document(document) == document
    assert json.loads(json.dumps(document, allow_nan=False)) == document


@settings(max_examples=200, deadline=None)
@given(documents, st.sampled_from([math.nan, math.inf, -math.inf, INT_MAX + 1, "\x00"]))
def test_one_bad_value_anywhere_is_refused(document: dict[str, Any], bad: object) -> None:
    spoiled: Any = document
    while isinstance(spoiled, dict) and spoiled:  # walk down to a leaf and spoil it
        key = sorted(spoiled)[0]
        if not isinstance(spoiled[key], dict) or not spoiled[key]:
            spoiled[key] = bad
            break
        spoiled = spoiled[key]
    else:
        document["bad"] = bad
    with pytest.raises(ValidationError):
        check_document(document)


def test_stored_nan_reads_as_null_and_repair_cuts_depth() -> None:
    assert loads('{"x": NaN, "y": [Infinity, -Infinity, 1.5]}') == {
        "x": None,
        "y": [None] * 2 + [1.5],
    }
    assert repaired({"x": math.nan, "y": [math.inf, 2]}) == {"x": None, "y": [None, 2]}
    cut = repaired(nested(300))
    assert check_document(cut) == cut
    assert json.dumps(cut).count("{") == MAX_DEPTH
