"""The price table: USD per million tokens by provider and model, the dated default shipped in
prices.toml, extended or replaced by the file `JOBPULSE_PRICES` names (TOML or JSON). A file
that cannot be used is refused at start, the line at fault named (PriceFileError).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from jobpulse.errors import PriceFileError
from jobpulse.usage.rules import to_pusd

#: A price's fields, and the token count each prices.
PRICE_FIELDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_tokens",
}
_REQUIRED = ("input", "output")
#: Keys of a price file besides its providers.
_SETTINGS = ("as_of", "replace")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """One model's prices in USD per million tokens; a cache price may be unknown (None)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def cost_pusd(self, tokens: Mapping[str, int]) -> int | None:
        """What these token counts cost, in picodollars; None if a count that is not zero
        has no price.
        """
        total = Decimal(0)
        for name, kind in PRICE_FIELDS.items():
            count = tokens.get(kind, 0)
            if not count:
                continue
            price: Decimal | None = getattr(self, name)
            if price is None:
                return None
            total += price * count
        return to_pusd(total / _MILLION)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """The prices calls are costed at, and the date of the shipped ones."""

    prices: Mapping[tuple[str, str], Price]
    as_of: str

    def price_of(self, provider: str, model: str) -> Price | None:
        """The model's price, by its exact id (None without one)."""
        return self.prices.get((provider, model))

    def cost_pusd(self, provider: str, model: str, tokens: Mapping[str, int]) -> int | None:
        """The cost of a call in picodollars; None if the table cannot tell it."""
        price = self.price_of(provider, model)
        return None if price is None else price.cost_pusd(tokens)


def default_prices() -> PriceTable:
    """The table jobpulse ships."""
    text = resources.files("jobpulse.usage").joinpath("prices.toml").read_text("utf-8")
    document, _replace = _parse(text, "prices.toml", is_json=False)
    return document


def load_prices(path: Path | None) -> PriceTable:
    """The shipped table, extended (or replaced) by the file at `path`; PriceFileError for
    a file that cannot be read or has a bad line.
    """
    shipped = default_prices()
    if path is None:
        return shipped
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceFileError(f"price file {path} cannot be read: {exc}") from exc
    given, replace = _parse(text, str(path), is_json=path.suffix.lower() == ".json")
    if replace:
        return given
    return PriceTable({**shipped.prices, **given.prices}, given.as_of or shipped.as_of)


def _parse(text: str, name: str, *, is_json: bool) -> tuple[PriceTable, bool]:
    try:
        if is_json:
            document = json.loads(text, parse_float=Decimal)
        else:
            document = tomllib.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{name}, line {exc.lineno}: not JSON ({exc.msg})") from exc
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        where = f"line {found.group(1)}" if found else "line 1"
        raise PriceFileError(f"{name}, {where}: not TOML ({exc})") from exc
    if not isinstance(document, dict):
        raise PriceFileError(f"{name}, line 1: the file must hold an object of providers")
    return _table(document, text, name)


def _table(document: dict[str, Any], text: str, name: str) -> tuple[PriceTable, bool]:
    replace = document.get("replace", False)
    as_of = document.get("as_of", "")
    if not isinstance(replace, bool):
        raise PriceFileError(
            f"{name}, line {_line_of(text, 'replace')}: replace must be true or false"
        )
    if not isinstance(as_of, str):
        raise PriceFileError(f"{name}, line {_line_of(text, 'as_of')}: as_of must be a string")
    prices: dict[tuple[str, str], Price] = {}
    for provider, models in document.items():
        if provider in _SETTINGS:
            continue
        if not isinstance(models, dict) or not provider:
            line = _line_of(text, provider)
            raise PriceFileError(f"{name}, line {line}: {provider!r} must be a table of models")
        for model, entry in models.items():
            line = _line_of(text, provider, model)
            try:
                prices[(provider.lower(), model)] = _price(entry)
            except ValueError as exc:
                raise PriceFileError(f"{name}, line {line}: {provider}/{model}: {exc}") from exc
    return PriceTable(prices, as_of), replace


def _price(entry: object) -> Price:
    if not isinstance(entry, dict):
        raise ValueError("must be a table of prices (input, output, cache_read, cache_write)")
    unknown = set(entry) - set(PRICE_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    for field in _REQUIRED:
        if field not in entry:
            raise ValueError(f"{field} is missing")
    values: dict[str, Decimal] = {}
    for field, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise ValueError(f"{field} must be a number of USD per million tokens")
        number = Decimal(value)
        if not number.is_finite() or number < 0:
            raise ValueError(f"{field} must be a number of USD per million tokens, 0 or more")
        values[field] = number
    return Price(**values)


def _line_of(text: str, *keys: str) -> int:
    """The line (1-based) where the entry of nested `keys` is written: each key found on a
    line after the previous one's (a good guess for the files this reads, never wrong about
    a file with one entry a line).
    """
    lines = text.splitlines()
    at = 0
    for key in keys:
        pattern = re.compile(rf"""(^|[\s{{,\[."'])["']?{re.escape(key)}["']?\s*[\]=:.]""")
        for number in range(at, len(lines)):
            if pattern.search(lines[number]):
                at = number
                break
    return at + 1
