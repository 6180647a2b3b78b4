"""The pure rules of LLM usage and the price table: totals, exact costs, price files."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from jobpulse.errors import PriceFileError
from jobpulse.usage.prices import Price, default_prices, load_prices
from jobpulse.usage.rules import PICO, TOKEN_KINDS, Call, add_call, to_pusd, to_usd

AT = datetime(2026, 12, 1, tzinfo=UTC)


def call(
    model: str = "m",
    cost: int | None = 1,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> Call:
    return Call(
        id="c",
        provider="p",
        model=model,
        recorded_at=AT,
        cost_pusd=cost,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
    )


def test_totals_add_each_kind_by_model() -> None:
    totals = add_call(None, call("a", 5, input_tokens=3, cache_read_tokens=2))
    totals = add_call(totals, call("b", 7, output_tokens=4, cache_write_tokens=1))
    totals = add_call(totals, call("a", 1, input_tokens=1))
    assert totals == {
        "calls": 3,
        "input_tokens": 4,
        "output_tokens": 4,
        "cache_read_tokens": 2,
        "cache_write_tokens": 1,
        "cost_usd": 13 / PICO,
        "by_model": {
            "p/a": {
                "calls": 2,
                "input_tokens": 4,
                "output_tokens": 0,
                "cache_read_tokens": 2,
                "cache_write_tokens": 0,
                "cost_usd": 6 / PICO,
            },
            "p/b": {
                "calls": 1,
                "input_tokens": 0,
                "output_tokens": 4,
                "cache_read_tokens": 0,
                "cache_write_tokens": 1,
                "cost_usd": 7 / PICO,
            },
        },
    }


def test_an_unknown_cost_makes_the_total_unknown_for_good() -> None:
    totals = add_call(None, call("a", 5))
    totals = add_call(totals, call("b", None))
    totals = add_call(totals, call("a", 5))
    assert totals["cost_usd"] is None
    assert totals["by_model"]["p/b"]["cost_usd"] is None
    assert totals["by_model"]["p/a"]["cost_usd"] == 10 / PICO


@pytest.mark.parametrize("seed", range(5))
def test_the_cost_total_is_exact_in_any_order(seed: int) -> None:
    rng = random.Random(seed)
    costs = [rng.randrange(2 * 10**12) for _ in range(500)]  # up to $2 a call, $1000 in all
    for _ in range(3):
        rng.shuffle(costs)
        totals = None
        for cost in costs:
            totals = add_call(totals, call(cost=cost, input_tokens=1))
        assert totals is not None
        assert totals["cost_usd"] == sum(costs) / PICO
        assert to_pusd(totals["cost_usd"]) == sum(costs)


def test_dollars_to_picodollars() -> None:
    assert to_pusd(0.1) + to_pusd(0.2) == to_pusd(0.3) == 3 * 10**11
    assert to_pusd(Decimal("0.0000000000015")) == 2  # half to even
    assert to_pusd(7) == 7 * PICO
    assert to_usd(None) is None
    assert to_usd(1_500_000_000_000) == 1.5


def test_a_price_costs_each_kind_and_never_guesses_a_missing_one() -> None:
    price = Price(Decimal(3), Decimal(15), Decimal("0.30"))
    tokens = {"input_tokens": 1_000, "output_tokens": 2_000, "cache_read_tokens": 10_000}
    # $3 x 1000 + $15 x 2000 + $0.30 x 10000, per million tokens = $0.036
    assert price.cost_pusd(tokens) == 36_000_000_000
    assert price.cost_pusd({"cache_write_tokens": 1}) is None
    assert price.cost_pusd({"cache_write_tokens": 0, "input_tokens": 1}) == 3_000_000


def test_the_shipped_table_is_dated_and_prices_current_models() -> None:
    table = default_prices()
    assert table.as_of
    for provider, model in (
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5-20251001"),
        ("anthropic", "claude-opus-4-1"),
        ("openai", "gpt-5"),
        ("openai", "gpt-4.1-mini"),
        ("openai", "gpt-4o"),
    ):
        price = table.price_of(provider, model)
        assert price is not None, model
        assert None not in (price.cache_read, price.cache_write)
        assert price.output > price.input > price.cache_read  # type: ignore[operator]
    assert table.price_of("anthropic", "claude-sonnet-4-5-29991231") is None  # no guess
    assert table.price_of("openai", "claude-sonnet-4-5") is None


def test_a_price_file_extends_the_shipped_table(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text(
        'as_of = "2026-12-01"\n'
        "[anthropic]\n"
        '"claude-sonnet-4-5" = { input = 2.5, output = 12 }\n'
        "[acme]\n"
        '"llm-1" = { input = 1, output = 2, cache_read = 0.1, cache_write = 1 }\n'
    )
    table = load_prices(toml)
    assert table.as_of == "2026-12-01"
    assert table.price_of("anthropic", "claude-sonnet-4-5") == Price(Decimal("2.5"), Decimal(12))
    assert table.price_of("acme", "llm-1") is not None
    assert table.price_of("openai", "gpt-5") == default_prices().price_of("openai", "gpt-5")


def test_a_price_file_may_replace_the_shipped_table(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        '{"replace": true,\n "acme": {\n  "llm-1": {"input": 1, "output": 2.25}\n }\n}\n'
    )
    table = load_prices(prices)
    assert set(table.prices) == {("acme", "llm-1")}
    assert table.cost_pusd("acme", "llm-1", {"output_tokens": 10**6}) == to_pusd(2.25)


GOOD = '[openai]\n"gpt-x" = { input = 1, output = 2 }\n'


@pytest.mark.parametrize(
    ("name", "text", "line", "problem"),
    [
        ("p.toml", GOOD + '"gpt-y" = { input = -1, output = 2 }\n', 3, "openai/gpt-y"),
        ("p.toml", GOOD + '"gpt-y" = { input = 1 }\n', 3, "output is missing"),
        ("p.toml", GOOD + '"gpt-y" = { input = 1, output = "2" }\n', 3, "output must be"),
        ("p.toml", GOOD + '"gpt-y" = { input = 1, output = 2, cached = 1 }\n', 3, "'cached'"),
        ("p.toml", GOOD + '"gpt-y" = { input = 1, output = 2 \n', 3, "not TOML"),
        ("p.toml", GOOD + "\n\n" + '"gpt-z" = 3\n', 5, "must be a table of prices"),
        ("p.toml", 'replace = "yes"\n' + GOOD, 1, "replace must be"),
        ("p.json", '{"openai": {\n "a": {"input": 1, "output": 2},\n "b": [1]\n}}', 3, "table"),
        ("p.json", '{"openai": {\n "a": {"input": 1, "output": 2},\n}}', 3, "not JSON"),
        ("p.json", '["openai"]', 1, "object of providers"),
        ("p.json", '{\n"openai": 5}', 2, "'openai' must be a table"),
    ],
)
def test_a_bad_price_file_is_refused_with_its_line(
    tmp_path: Path, name: str, text: str, line: int, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as refused:
        load_prices(path)
    assert f"{path}, line {line}:" in refused.value.message
    assert problem in refused.value.message


def test_a_missing_price_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot be read"):
        load_prices(tmp_path / "nowhere.toml")


def test_token_kinds_are_the_wire_names() -> None:
    assert TOKEN_KINDS == (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    )
