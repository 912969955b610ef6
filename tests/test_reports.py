"""P&L reports and the equity curve equal figures computed by hand, on every backend.

The history: AAPL (strategy ``trend``) opens long 10 @ 100, closes 4 @ 110 (+40),
sells 10 @ 90 (closes 6 at -60 and flips short 4), buys back 1 @ 80 (+10) the next
week; MSFT (no strategy) buys 5 @ 200 exactly at midnight in Kolkata (+05:30) and
sells them @ 190 (-50) on the last evening of March, which is April 1st in Kolkata.
Fees: 1, 1 + 0.5, 2, 0, 0, 1.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from stocksbot_store import Fill, StorageService, ValidationError
from stocksbot_store.buckets import rebuild
from stocksbot_store.check import check_ledger
from stocksbot_store.database import backend_of

UTC = dt.timezone.utc
KOLKATA = "Asia/Kolkata"


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def history(storage: StorageService) -> None:
    storage.create_strategy("trend")

    def fill(symbol, side, quantity, price, when, commission=0, fees=0, strategy=None):
        order = storage.create_order(symbol, side, "market", quantity, strategy=strategy)
        storage.record_trade(
            order.id, symbol, side, quantity, price, commission, fees, executed_at=when
        )

    fill("AAPL", "buy", 10, 100, at(2, 17), commission=1, strategy="trend")  # 22:30 IST
    fill("MSFT", "buy", 5, 200, at(2, 18, 30))  # 00:00 IST
    fill("AAPL", "sell", 4, 110, at(2, 19), 1, "0.5", strategy="trend")  # +40
    fill("AAPL", "sell", 10, 90, at(3, 10), commission=2, strategy="trend")  # -60, flip
    fill("AAPL", "buy", 1, 80, at(9, 12), strategy="trend")  # +10
    fill("MSFT", "sell", 5, 190, at(31, 23), fees=1)  # -50


def figures(rows):
    """(key, trades, closing, wins, losses, gross, fees, net, volume) per row."""
    return [
        (
            r.key,
            r.trades,
            r.closing_trades,
            r.wins,
            r.losses,
            r.gross_pnl,
            r.fees,
            r.net_pnl,
            r.volume,
        )
        for r in rows
    ]


D = Decimal


@pytest.fixture
def booked(storage):
    history(storage)
    return storage


def test_by_day_in_utc(booked):
    assert figures(booked.pnl_by_period("day")) == [
        ("2026-03-02", 3, 1, 1, 0, D(40), D("2.5"), D("37.5"), D(2440)),
        ("2026-03-03", 1, 1, 0, 1, D(-60), D(2), D(-62), D(900)),
        ("2026-03-09", 1, 1, 1, 0, D(10), D(0), D(10), D(80)),
        ("2026-03-31", 1, 1, 0, 1, D(-50), D(1), D(-51), D(950)),
    ]


def test_by_day_at_the_operators_midnight(booked):
    rows = booked.pnl_by_period("day", tz=KOLKATA)
    assert figures(rows) == [
        ("2026-03-02", 1, 0, 0, 0, D(0), D(1), D(-1), D(1000)),
        ("2026-03-03", 3, 2, 1, 1, D(-20), D("3.5"), D("-23.5"), D(2340)),
        ("2026-03-09", 1, 1, 1, 0, D(10), D(0), D(10), D(80)),
        ("2026-04-01", 1, 1, 0, 1, D(-50), D(1), D(-51), D(950)),
    ]
    assert rows[1].start == dt.datetime(2026, 3, 3, tzinfo=rows[1].start.tzinfo)
    assert rows[1].start.utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_by_week_and_month(booked):
    assert figures(booked.pnl_by_period("week")) == [
        ("2026-03-02", 4, 2, 1, 1, D(-20), D("4.5"), D("-24.5"), D(3340)),
        ("2026-03-09", 1, 1, 1, 0, D(10), D(0), D(10), D(80)),
        ("2026-03-30", 1, 1, 0, 1, D(-50), D(1), D(-51), D(950)),
    ]
    assert figures(booked.pnl_by_period("month")) == [
        ("2026-03-01", 6, 4, 2, 2, D(-60), D("5.5"), D("-65.5"), D(4370))
    ]
    assert figures(booked.pnl_by_period("month", tz=KOLKATA)) == [
        ("2026-03-01", 5, 3, 2, 1, D(-10), D("4.5"), D("-14.5"), D(3420)),
        ("2026-04-01", 1, 1, 0, 1, D(-50), D(1), D(-51), D(950)),
    ]


def test_filters_by_strategy_symbol_and_range(booked):
    assert [r.key for r in booked.pnl_by_period("day", strategy="trend")] == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-09",
    ]
    assert figures(booked.pnl_by_period("month", strategy="trend")) == [
        ("2026-03-01", 4, 3, 2, 1, D(-10), D("4.5"), D("-14.5"), D(2420))
    ]
    assert figures(booked.pnl_by_period("day", symbol="MSFT", tz=KOLKATA)) == [
        ("2026-03-03", 1, 0, 0, 0, D(0), D(0), D(0), D(1000)),
        ("2026-04-01", 1, 1, 0, 1, D(-50), D(1), D(-51), D(950)),
    ]
    rows = booked.pnl_by_period("day", since=dt.date(2026, 3, 3), until=dt.date(2026, 3, 10))
    assert [r.key for r in rows] == ["2026-03-03", "2026-03-09"]


def test_by_symbol(booked):
    assert figures(booked.pnl_by_symbol()) == [
        ("AAPL", 4, 3, 2, 1, D(-10), D("4.5"), D("-14.5"), D(2420)),
        ("MSFT", 2, 1, 0, 1, D(-50), D(1), D(-51), D(1950)),
    ]
    # From midnight in Kolkata (18:30 UTC the day before): ragged ends come from the
    # quarter hours, whole UTC days from the day rows.
    assert figures(booked.pnl_by_symbol(since=dt.date(2026, 3, 3), tz=KOLKATA)) == [
        ("AAPL", 3, 3, 2, 1, D(-10), D("3.5"), D("-13.5"), D(1420)),
        ("MSFT", 2, 1, 0, 1, D(-50), D(1), D(-51), D(1950)),
    ]
    assert figures(booked.pnl_by_symbol(since=at(2, 18, 30), until=at(2, 19, 15))) == [
        ("AAPL", 1, 1, 1, 0, D(40), D("1.5"), D("38.5"), D(440)),
        ("MSFT", 1, 0, 0, 0, D(0), D(0), D(0), D(1000)),
    ]
    assert figures(booked.pnl_by_symbol(strategy="trend"))[0][0] == "AAPL"
    assert len(booked.pnl_by_symbol(strategy="trend")) == 1


def test_equity_curve_values_open_positions_at_closing_marks(booked):
    booked.record_marks({"AAPL": 95, "MSFT": 210}, at=at(3, 20))
    curve = booked.equity_curve()
    assert len(curve) == 30 and curve[0].day == dt.date(2026, 3, 2)
    by_day = {p.day.day: p for p in curve}
    # End of 2 March: AAPL long 6 @ 100 and MSFT long 5 @ 200, no mark yet: last fills.
    first = by_day[2]
    assert (
        first.realized_pnl,
        first.fees,
        first.unrealized_pnl,
        first.equity,
        first.drawdown,
        first.unmarked,
    ) == (D(40), D("2.5"), D(60), D("97.5"), D(0), ("AAPL", "MSFT"))
    # AAPL short 4 @ 90 at 95 (-20), MSFT 5 @ 200 at 210 (+50).
    assert (by_day[3].unrealized_pnl, by_day[3].equity, by_day[3].drawdown, by_day[3].unmarked) == (
        D(30),
        D("5.5"),
        D(92),
        (),
    )
    assert by_day[4].equity == D("5.5") and by_day[4].day_net_pnl == 0
    assert (by_day[9].realized_pnl, by_day[9].unrealized_pnl, by_day[9].equity) == (
        D(-10),
        D(35),
        D("20.5"),
    )
    last = by_day[31]
    assert (
        last.realized_pnl,
        last.fees,
        last.unrealized_pnl,
        last.equity,
        last.drawdown,
        last.day_net_pnl,
    ) == (D(-60), D("5.5"), D(-15), D("-80.5"), D(178), D(-51))
    assert [p.day.day for p in booked.equity_curve(since=dt.date(2026, 3, 30))] == [30, 31]


def test_position_values_say_which_price_they_use(booked):
    [value] = booked.get_position_values()
    assert (value.source, value.price, value.unrealized_pnl) == ("fill", D(80), D(30))
    booked.record_marks({"AAPL": "95.5"}, at=at(31, 20))
    booked.record_marks({"AAPL": 99}, at=at(31, 19))  # older: changes nothing
    [value] = booked.get_position_values()
    assert (value.source, value.price, value.unrealized_pnl) == ("mark", D("95.5"), D("-16.5"))
    assert value.priced_at == at(31, 20)
    assert value.age(at(31, 21)) == dt.timedelta(hours=1)


def test_closing_marks_keep_one_row_per_symbol_and_day(booked):
    for minute in range(0, 60, 5):
        booked.record_marks({"AAPL": 90 + minute}, at=at(4, 12, minute))
    rows = booked.db.execute_sql("SELECT symbol, price FROM mark_close").fetchall()
    assert [(s, Decimal(str(p))) for s, p in rows] == [("AAPL", D(145))]


def test_the_bulk_path_keeps_the_same_figures(storage, db_url):
    history(storage)
    single = (
        figures(storage.pnl_by_period("day", tz=KOLKATA)),
        figures(storage.pnl_by_symbol()),
        storage.equity_curve(),
    )
    trades = storage.trades.get_all(limit=None)
    from stocksbot_store import connect, init_db

    other = StorageService(init_db(connect("sqlite:///:memory:")))
    other.create_strategy("trend")
    fills = []
    for t in sorted(trades, key=lambda t: t.id):
        order = other.create_order(
            t.symbol, t.side, "market", t.quantity, strategy="trend" if t.strategy_id else None
        )
        fills.append(
            Fill(
                order.id,
                t.symbol,
                t.side,
                t.quantity,
                t.price,
                t.commission,
                t.fees,
                None,
                t.executed_at,
            )
        )
    other.record_trades(fills)
    assert (
        figures(other.pnl_by_period("day", tz=KOLKATA)),
        figures(other.pnl_by_symbol()),
        other.equity_curve(),
    ) == single
    assert check_ledger(other.db).ok


def test_the_ledger_check_verifies_the_kept_figures(booked):
    assert check_ledger(booked.db).ok
    sql = "UPDATE pnl_bucket SET fees_e0 = fees_e0 + 1 WHERE span = 86400"
    booked.db.execute_sql(sql)
    report = check_ledger(booked.db)
    assert {v.kind for v in report.violations} == {"report"}
    assert "fees of bucket" in report.format()
    booked.db.execute_sql("UPDATE pnl_bucket SET fees_e0 = fees_e0 - 1 WHERE span = 86400")
    mark = "%s" if backend_of(booked.db) == "postgres" else "?"
    booked.db.execute_sql(
        f"UPDATE position_day SET quantity = {mark} WHERE symbol = {mark}", ("7", "AAPL")
    )
    report = check_ledger(booked.db)
    assert [v.kind for v in report.violations] == ["report"] * len(report.violations)
    assert "position_day AAPL" in report.format()
    booked.db.execute_sql("DELETE FROM position_day")
    booked.db.execute_sql("DELETE FROM pnl_bucket")
    assert not check_ledger(booked.db).ok


def test_rebuild_gives_trades_stored_before_the_figures_theirs(booked):
    before = (figures(booked.pnl_by_period("day")), booked.equity_curve())
    booked.db.execute_sql("DELETE FROM position_day")
    booked.db.execute_sql("DELETE FROM pnl_bucket")
    assert booked.pnl_by_period("day") == []
    with booked.db.atomic():
        rebuild(booked.db, batch=2)
    assert (figures(booked.pnl_by_period("day")), booked.equity_curve()) == before
    assert check_ledger(booked.db).ok


def test_bad_arguments_name_the_fix(booked):
    with pytest.raises(ValidationError, match="period"):
        booked.pnl_by_period("year")
    with pytest.raises(ValidationError, match="IANA"):
        booked.pnl_by_period("day", tz="Mars/Olympus")
    assert booked.pnl_by_period("day", since=dt.date(2030, 1, 1)) == []


def test_fills_at_the_edges_of_the_years_taken_report_in_any_zone(storage):
    """A fill dated year 1 or 9999 was taken, and every zone's report then failed with a
    raw OverflowError; such times are refused now, and fills at the first and the last
    moment taken report in a zone west and one east of UTC."""
    order = storage.create_order("EDGE", "buy", "market", 4)
    first = dt.datetime(1900, 1, 1, tzinfo=UTC)
    last = dt.datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
    for when in (first, last):
        storage.record_trade(order.id, "EDGE", "buy", 1, 10, executed_at=when)
    sell = storage.create_order("EDGE", "sell", "market", 2)
    for when in (first, last):
        storage.record_trade(sell.id, "EDGE", "sell", 1, 12, executed_at=when)
    for refused in (dt.datetime(1, 1, 1, tzinfo=UTC), "9999-12-31T00:00:00+00:00"):
        with pytest.raises(ValidationError, match="outside the years 1900-2199"):
            storage.record_trade(sell.id, "EDGE", "sell", 1, 12, executed_at=refused)
        with pytest.raises(ValidationError, match="outside the years 1900-2199"):
            storage.record_marks({"EDGE": 11}, at=refused)
    for zone in ("America/New_York", KOLKATA):
        rows = storage.pnl_by_period("month", tz=zone)
        assert sum(r.gross_pnl for r in rows) == 4
        assert len(rows) == 2
    assert storage.orders.get(sell.id).filled_quantity == 2


def test_reports_do_not_depend_on_the_callers_decimal_context(booked):
    import decimal

    booked.record_marks({"AAPL": "95.123456789"}, at=at(31, 20))
    expected = (
        figures(booked.pnl_by_period("day", tz=KOLKATA)),
        figures(booked.pnl_by_symbol()),
        booked.equity_curve(),
        [v.unrealized_pnl for v in booked.get_position_values()],
    )
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_DOWN)):
        assert (
            figures(booked.pnl_by_period("day", tz=KOLKATA)),
            figures(booked.pnl_by_symbol()),
            booked.equity_curve(),
            [v.unrealized_pnl for v in booked.get_position_values()],
        ) == expected


def test_a_tally_gives_each_bucket_the_sum_of_its_trades_figures():
    """Tally sums one row per quarter hour and derives the every-symbol and day rows at
    the end; the amounts must still be what adding each trade's own parts gives (as the
    single path adds them in SQL), exactly, whatever the caller's decimal context."""
    import decimal
    import random

    from stocksbot_store.buckets import AMOUNTS, COUNTS, PARTS, Tally, figures_of, join, keys_of

    rng = random.Random(7)
    trades = []
    for n in range(400):
        pnl = None if n % 3 else Decimal(rng.randint(-(10**16), 10**16)).scaleb(-10)
        trades.append(
            (
                at(2 + n % 2, rng.randrange(24), rng.randrange(60)),
                rng.choice([None, 1, 2]),
                rng.choice(["AAPL", "MSFT"]),
                Decimal(rng.randint(1, 10**14)).scaleb(-9),
                Decimal(rng.randint(1, 10**14)).scaleb(-7),
                Decimal(rng.randint(0, 10**6)).scaleb(-10),
                Decimal("0.0000000001") * n,
                pnl,
            )
        )
    expected: dict[tuple, list[int]] = {}
    for t in trades:
        for key in keys_of(t[0], t[1], t[2]):
            row = expected.setdefault(key, [0] * (len(COUNTS) + len(AMOUNTS) * len(PARTS)))
            for i, value in enumerate(figures_of(*t[3:])):
                row[i] += value
    tally = Tally()
    with decimal.localcontext(decimal.Context(prec=5)):
        for t in trades:
            tally.add(*t)
        got = tally.figures()

    def amounts(row):
        return [
            row[:4],
            *(join(*row[4 + 4 * i : 8 + 4 * i]) for i in range(len(AMOUNTS))),
        ]

    assert sorted(got) == sorted(expected)
    assert {k: amounts(v) for k, v in got.items()} == {k: amounts(v) for k, v in expected.items()}
