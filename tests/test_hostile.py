"""Hostile input: every value is stored exactly as given, or rejected with a
StorageError that names the field, and a rejection writes nothing.

Text with quotes, semicolons, SQL, placeholders, control characters, unicode and
10,000 characters; numbers that are NaN, infinite, negative, zero, 1e30, 1e-30;
wrong types; unknown enum values. Each test walks its whole list on one backend and
reports every input that misbehaved at once. ``INPUTS_TRIED`` counts them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import dump_tables

from stocksbot_store import StorageError
from stocksbot_store.check import check_ledger
from stocksbot_store.fields import shown

SQL_TEXT = [
    "'; DROP TABLE trade; --",
    'x"); DROP TABLE "order"; --',
    "a'b\"c;d`e",
    "1 OR 1=1",
    "SELECT * FROM position",
    "%s %(x)s ? $1 :name",
    "\\'\\\\",
    "Robert'); DELETE FROM strategy WHERE ('1'='1",
]
UNICODE_TEXT = ["🚀📈", "株式会社", "Ünïcödé", "Ω" * 64, "zero\u200bwidth", "e\u0301"]
#: Not in an identifier (symbol, name, key, broker id): control characters of every kind,
#: bidi overrides and a lone surrogate (see stocksbot_store.validation).
CONTROL_TEXT = [
    "\u202eevil",
    "tab\there",
    "new\nline",
    "cr\rx",
    "esc\x1b]2;title\x07",
    "\x1b[2J",
    "del\x7f",
    "c1\x9b31m",
    "lone\ud800",
]
TOO_LONG = ["x" * 10_000, "é" * 201]
BAD_TEXT = ["", "   ", "nul\x00byte", None, 42, b"bytes", ["AAPL"], *CONTROL_TEXT]

NUMBERS_BAD = [
    float("nan"),
    Decimal("NaN"),
    "nan",
    float("inf"),
    float("-inf"),
    Decimal("-Infinity"),
    "inf",
    -1,
    Decimal("-0.5"),
    0,
    "0",
    1e30,
    Decimal("1e30"),
    "1e30",
    1e-30,
    Decimal("1e-30"),
    "1e-11",
    True,
    None,
    [],
    {},
    b"1",
    object(),
    "12abc",
    "",
    dt.date(2026, 1, 1),
    10**15,
    # Too large or too precise to be an amount: refused before any work.
    10**5000,
    -(10**5000),
    "9" * 1_000_000,
    "0." + "1" * 1_000_000,
    Decimal("1e999999"),
    Decimal("-1e999999"),
    "1e999999",
    "1e99999999999",
    "1e-999999",
    Decimal("1e-999999"),
    "1e-99999999999999999999",
    "1_000",
]
ROUND_TO_ZERO = [
    v
    for v in NUMBERS_BAD
    if isinstance(v, (int, float, str, Decimal))
    and v in (0, "0", 1e-30, "1e-11")
    or isinstance(v, Decimal)
    and repr(v) == "Decimal('1E-30')"
]
NUMBERS_GOOD = {
    "1e-10": Decimal("1E-10"),
    1e-10: Decimal("1E-10"),
    " 5 ": Decimal(5),
    999_999_999_999_999: Decimal(999_999_999_999_999),
    "0.3": Decimal("0.3"),
    0.1: Decimal("0.1"),
    Decimal("2.00000000004"): Decimal(2),
    Decimal("2.00000000005"): Decimal(2),
    Decimal("2.00000000015"): Decimal("2.0000000002"),
}

PLUS_FIVE, MINUS_FIVE = (dt.timezone(dt.timedelta(hours=h)) for h in (5, -5))


class _BrokenZone(dt.tzinfo):
    """A time zone whose offset cannot be computed."""

    def utcoffset(self, when):
        raise ZeroDivisionError("no offset")


#: Times that are not a time, or not one in years 1-9999 once in UTC. Only None means now.
BAD_TIMES = [
    "yesterday",
    12345,
    "2026-13-01",
    dt.date(2026, 1, 1),
    "",
    "  ",
    0,
    0.0,
    False,
    [],
    {},
    b"2026-01-01",
    dt.datetime(1, 1, 1, tzinfo=PLUS_FIVE),
    dt.datetime.max.replace(tzinfo=MINUS_FIVE),
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    dt.datetime(2026, 1, 1, tzinfo=_BrokenZone()),
    # Times no event of a bot has: a zone's report overflowed on them (see test_reports).
    dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc),
    "9999-12-31T00:00:00+00:00",
    "1899-12-31T23:59:59+00:00",
    dt.datetime(2200, 1, 1),
]


def _nested(depth: int) -> list:
    """A list nested ``depth`` deep (JSON encoders recurse on it)."""
    outer = inner = []
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


#: How many hostile inputs the tests in this module try per backend (for the report).
INPUTS_TRIED: dict[str, int] = {}


def _what(args: tuple, kwargs: dict) -> str:
    """The arguments of a call, short enough for a report (some are megabytes)."""
    return ", ".join([shown(a) for a in args] + [f"{k}={shown(v)}" for k, v in kwargs.items()])


class Tried:
    """Collects what each input did; fails once, listing every bad outcome."""

    def __init__(self, storage, name: str) -> None:
        self.storage = storage
        self.name = name
        self.problems: list[str] = []
        self.count = 0

    def rejected_or_none(self, field: str, function, *args, **kwargs):
        """Call; a StorageError must name ``field`` and leave the tables alone.
        Returns the result, or None when it was rejected."""
        self.count += 1
        before = dump_tables(self.storage.db)
        try:
            return function(*args, **kwargs)
        except StorageError as e:
            named = getattr(e, "field", None) == field or field in str(e)
            if not named:
                self.problems.append(f"{_what(args, kwargs)}: error does not name {field!r}: {e}")
            if dump_tables(self.storage.db) != before:
                self.problems.append(f"{_what(args, kwargs)}: rejected but wrote something")
        except Exception as e:  # anything else escaping is a defect
            self.problems.append(f"{_what(args, kwargs)}: raised {type(e).__name__}: {e}"[:300])
        return None

    def must_reject(self, field: str, function, *args, **kwargs) -> None:
        if self.rejected_or_none(field, function, *args, **kwargs) is not None:
            self.problems.append(f"{_what(args, kwargs)}: accepted, should be rejected ({field})")

    def done(self) -> None:
        INPUTS_TRIED[self.name] = INPUTS_TRIED.get(self.name, 0) + self.count
        print(f"\nhostile {self.name}: {self.count} inputs tried, {len(self.problems)} problems")
        assert not self.problems, "\n".join(self.problems)
        report = check_ledger(self.storage.db)
        assert report.ok, report.format()


def test_symbols(storage):
    tried = Tried(storage, "symbols")
    for symbol in SQL_TEXT + UNICODE_TEXT:
        order = tried.rejected_or_none(
            "symbol", storage.create_order, symbol, "buy", "limit", 1, price=1
        )
        if order is None:
            tried.problems.append(f"{symbol!r}: rejected, but it is valid text")
            continue
        assert storage.orders.get(order.id).symbol == symbol
        storage.record_trade(order.id, symbol, "buy", 1, 1)
        assert storage.get_position_by_symbol(symbol).symbol == symbol
        assert [o.id for o in storage.orders.page(symbol=symbol)] == [order.id]
        assert [t.symbol for t in storage.trades.get_by_symbol(symbol)] == [symbol]
    for symbol in TOO_LONG + BAD_TEXT:
        tried.must_reject("symbol", storage.create_order, symbol, "buy", "market", 1)
        tried.must_reject("symbol", storage.create_position, symbol, "long", 1, 1)
    order = storage.create_order("OK", "buy", "market", 5)
    for symbol in TOO_LONG + BAD_TEXT + ["ok", "OK "]:
        tried.must_reject("symbol", storage.record_trade, order.id, symbol, "buy", 1, 1)
    tried.done()
    assert len(storage.get_open_positions()) == len(SQL_TEXT + UNICODE_TEXT)


def test_strategy_names_descriptions_and_config(storage):
    tried = Tried(storage, "strategies")
    for i, text in enumerate(SQL_TEXT + UNICODE_TEXT + ["n" * 200]):
        description = text * 50 + "d" * 10_000
        config = {"text": text, "nested": [text, {"k": text}], "n": 1.5}
        row = tried.rejected_or_none(
            "name", storage.create_strategy, text, "t;'", config, description
        )
        if row is None:
            tried.problems.append(f"{text!r:.40}: rejected, but it is a valid name")
            continue
        stored = storage.get_strategy_by_name(text)
        assert (stored.name, stored.description, stored.config, stored.strategy_type) == (
            text,
            description,
            config,
            "t;'",
        )
        order = storage.create_order(f"S{i}", "sell", "market", 1, strategy=text)
        assert order.strategy_id == stored.id
        storage.set_config_value(text, text)
        assert storage.get_config(text) == text
    for name in TOO_LONG + BAD_TEXT:
        tried.must_reject("name", storage.create_strategy, name)
    tried.must_reject("name", storage.create_strategy, SQL_TEXT[0])  # taken already
    tried.must_reject("config", storage.create_strategy, "cfg", None, {"x": object()})
    tried.must_reject("config", storage.create_strategy, "cfg", None, {"x": float("nan")})
    tried.must_reject("config", storage.create_strategy, "cfg", None, _nested(100_000))
    tried.must_reject("description", storage.create_strategy, "nul", None, None, "a\x00b")
    tried.must_reject("strategy_type", storage.create_strategy, "st", "x" * 10_000)
    for key in TOO_LONG + BAD_TEXT:
        tried.must_reject("key", storage.set_config_value, key, "v")
    for value, kind in [
        ("maybe", "bool"),
        ("1.5", "int"),
        ("nan", "float"),
        ("{", "json"),
        ("x", "xml"),
        (object(), "string"),
    ]:
        tried.must_reject(
            "risk" if kind != "xml" else "value_type", storage.set_config_value, "risk", value, kind
        )
    tried.must_reject(
        "strategy", storage.create_order, "X", "buy", "market", 1, strategy="no such strategy"
    )
    tried.done()


@pytest.mark.parametrize("field", ["quantity", "price"])
def test_order_numbers(storage, field):
    tried = Tried(storage, "numbers")
    base = {"symbol": "NUM", "side": "buy", "order_type": "limit", "quantity": 1, "price": 1}
    for value in NUMBERS_BAD:
        tried.must_reject(field, storage.create_order, **{**base, field: value})
    for value, stored in NUMBERS_GOOD.items():
        order = tried.rejected_or_none(field, storage.create_order, **{**base, field: value})
        if order is None:
            tried.problems.append(f"{value!r}: rejected, but it is a valid {field}")
            continue
        assert getattr(storage.orders.get(order.id), field) == stored, value
    tried.done()


def test_fill_numbers_ids_and_times(storage):
    tried = Tried(storage, "fills")
    order = storage.create_order("FILL", "buy", "market", 10)
    good = {"order_id": order.id, "symbol": "FILL", "side": "buy", "quantity": 1, "price": 1}
    for field in ("quantity", "price", "commission", "fees"):
        for value in NUMBERS_BAD:
            if field in ("commission", "fees") and any(value is v for v in ROUND_TO_ZERO):
                continue  # zero commission is fine, and these round to zero
            tried.must_reject(field, storage.record_trade, **{**good, field: value})
    for value in ["1", 1.0, True, -1, 0, None, "1; DROP TABLE trade", 2**70, 10**5000]:
        tried.must_reject("order_id", storage.record_trade, **{**good, "order_id": value})
    for value in BAD_TIMES:
        tried.must_reject("executed_at", storage.record_trade, **{**good, "executed_at": value})
        tried.must_reject("executed_at", storage.record_trades, [{**good, "executed_at": value}])
    for value in TOO_LONG + ["", "  ", "a\x00b", b"id", 1.5, 10**5000, *CONTROL_TEXT]:
        tried.must_reject("external_id", storage.record_trade, **{**good, "external_id": value})
    tried.must_reject("quantity", storage.record_trade, **{**good, "quantity": 11})  # overfill
    for text in SQL_TEXT + UNICODE_TEXT[:3]:
        trade = storage.record_trade(**{**good, "quantity": "0.1", "external_id": text})
        assert storage.trades.get_by_external_id(text).id == trade.id
    numeric = storage.record_trade(**{**good, "quantity": "0.1", "external_id": 12345})
    assert numeric.external_id == "12345"
    tried.must_reject("order_id", storage.record_trades, [{**good, "order_id": None}])
    tried.must_reject("price", storage.record_trades, [good, {**good, "price": "nan"}])
    tried.done()
    assert storage.orders.get(order.id).filled_quantity == Decimal("1.2")


def test_unknown_enums(storage):
    tried = Tried(storage, "enums")
    for value in ["hold", "BUYY", "", 1, None, "buy; DROP TABLE trade", "long", 10**5000]:
        tried.must_reject("side", storage.create_order, "ENUM", value, "market", 1)
    for value in ["iceberg", "MARKETS", 0, None, "limit'--", 10**5000]:
        tried.must_reject("order_type", storage.create_order, "ENUM", "buy", value, 1, price=1)
    order = storage.create_order("ENUM", " BUY ", "Market", 1)
    assert (order.side.value, order.type.value) == ("buy", "market")
    for value in ["done", "FILLED!", 3, None, "cancelled'--", 10**5000]:
        tried.must_reject("status", storage.update_order_status, order.id, value)
    for value in ["flat", "buy", None, 1]:
        tried.must_reject("side", storage.create_position, "POS", value, 1, 1)
    tried.must_reject("side", storage.record_trade, order.id, "ENUM", "hodl", 1, 1)
    tried.done()


def test_reads_with_hostile_filters(storage):
    """Reads take the same text as data, never as SQL; bad filter values are rejected."""
    tried = Tried(storage, "reads")
    order = storage.create_order("READ", "buy", "market", 1)
    for text in SQL_TEXT + UNICODE_TEXT + TOO_LONG:
        tried.count += 1
        assert storage.orders.page(symbol=text) == []
        assert storage.trades.get_by_symbol(text) == []
        assert storage.get_position_by_symbol(text) is None
        assert storage.get_strategy_by_name(text) is None
        assert storage.get_config(text, "default") == "default"
        assert storage.orders.get_by_external_id(text) is None
    for field, value in [("status", "bogus"), ("side", "bogus'--"), ("side", 7)]:
        tried.must_reject(field, storage.orders.page, **{field: value})
    tried.must_reject("status", storage.orders.get_by_status, "1; DROP TABLE trade")
    assert [o.id for o in storage.orders.page(side="buy")] == [order.id]
    tried.done()
