"""The one JSON policy for everything jobpulse stores or sends (metadata, progress, step
details): what both databases, every reader and every webhook receiver can take. Pure.

A document is a JSON object of at most 64 KiB, nested at most 32 levels, whose numbers are
finite and whose integers fit in 64 bits, whose strings are UTF-8 without NUL. It is checked
by one walk without recursion, so no input reaches an interpreter or parser recursion limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from jobpulse.errors import ValidationError

MAX_BYTES = 64 * 1024
#: Levels of nesting, the document itself being the first.
MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

#: A place inside a document: (its parent, the key or index that leads to it), for messages.
_Path = tuple["_Path", str | int] | None


def _where(what: str, path: _Path) -> str:
    steps: list[str | int] = []
    while path is not None:
        path, step = path
        steps.append(step)
    return what + "".join(
        f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps[::-1]
    )


def text_problem(text: str) -> str | None:
    """What keeps `text` from being stored alike on both databases (a NUL, which PostgreSQL
    refuses; a lone surrogate, which is not UTF-8), or None.
    """
    if "\x00" in text:
        return "has a NUL character"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "has an unpaired surrogate (not UTF-8)"
    return None


def _scalar_problem(value: object) -> str | None:
    """What makes a non-container value unfit, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return "is an integer outside 64 bits"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value!r}; only finite numbers are JSON"
    return f"is a {type(value).__name__}, not a JSON value"


def check_document(value: object, what: str = "metadata") -> dict[str, Any]:
    """`value` as a document (see the module docstring); ValidationError saying where not."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a JSON object, not {type(value).__name__}")
    stack: list[tuple[object, _Path, int]] = [(value, None, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth > MAX_DEPTH:
                where = _where(what, path)
                raise ValidationError(f"{where} is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, Mapping):
                for key, child in item.items():
                    problem = text_problem(key) if isinstance(key, str) else "is not text"
                    if problem is not None:
                        raise ValidationError(f"{_where(what, path)} has a key that {problem}")
                    stack.append((child, (path, key), depth + 1))
            else:
                stack.extend((child, (path, n), depth + 1) for n, child in enumerate(item))
        elif (problem := _scalar_problem(item)) is not None:
            raise ValidationError(f"{_where(what, path)} {problem}")
    check_size(value, what)
    return dict(value)


def check_size(value: Mapping[str, Any], what: str = "metadata") -> None:
    """ValidationError if `value` (already walked) serializes to more than 64 KiB."""
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise ValidationError(f"{what} is {size} bytes; the limit is {MAX_BYTES}")


def loads(text: str | bytes) -> Any:
    """A stored document, read back whatever it holds: NaN and ±Infinity written before this
    policy existed read as null, so that one bad row can never fail a listing.
    """
    return json.loads(text, parse_constant=lambda _name: None)


def repaired(value: Any) -> Any:
    """`value` made to fit the policy's shape: non-finite numbers and levels past MAX_DEPTH
    become null (for rows stored before the policy; never applied to new input).
    """
    if not isinstance(value, dict | list):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    root: list[Any] = [value]
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        container, depth = stack.pop()
        slots = container.items() if isinstance(container, dict) else enumerate(container)
        for slot, child in list(slots):
            if isinstance(child, float) and not math.isfinite(child):
                container[slot] = None
            elif isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    container[slot] = None
                else:
                    stack.append((child, depth + 1))
    return root[0]
