"""The realized P&L report, checked against a history computed by hand.

AAA (long, then a flip to short):
  2026-01-02 buy 10 @ 100, commission 1      lot A
  2026-01-03 buy 10 @ 110, fees 2            lot B; average 105, opening fees 3
  2026-01-05 sell 5 @ 120, commission 0.5    partial close
  2026-01-06 sell 25 @ 90, commission 1      closes 15, opens short 10 @ 90 (lot C)
  2026-02-01 sell 10 @ 100, fees 0.4         lot D; short 20 @ average 95
  2027-01-04 buy 15 @ 80, fees 0.3           partial cover
BBB: 2026-03-01 buy 1 @ 50, 2026-03-02 sell 1 @ 60.

Average cost (fees: the close's own plus its share of the opening fees, pro rata):
  sell 5 @ 120:  proceeds 600, cost 5 x 105 = 525, gross 75, fees 0.5 + 3 x 5/20 = 1.25
  sell 25 @ 90:  closes 15: proceeds 1350, cost 1575, gross -225, fees 1 + 2.25 = 3.25
  buy 15 @ 80:   short: proceeds 15 x 95 = 1425, cost 1200, gross 225,
                 fees 0.3 + 0.4 x 15/20 = 0.6
FIFO:
  sell 5 @ 120:  from lot A: cost 500, gross 100, fees 0.5 + 1 x 5/10 = 1
  sell 25 @ 90:  A 5 @ 100 + B 10 @ 110: cost 1600, gross -250, fees 1 + 0.5 + 2 = 3.5
  buy 15 @ 80:   C 10 @ 90 + D 5 @ 100: proceeds 1400, cost 1200, gross 200,
                 fees 0.3 + 0 + 0.4 x 5/10 = 0.5
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pytest

from stocksbot_store import StorageService, realized_report
from stocksbot_store.commands import export_main
from stocksbot_store.realized import yearly_summary

UTC = dt.timezone.utc


def day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(hour=15, tzinfo=UTC)


HISTORY = [  # symbol, side, quantity, price, commission, fees, when
    ("AAA", "buy", 10, 100, 1, 0, "2026-01-02"),
    ("AAA", "buy", 10, 110, 0, 2, "2026-01-03"),
    ("AAA", "sell", 5, 120, "0.5", 0, "2026-01-05"),
    ("AAA", "sell", 25, 90, 1, 0, "2026-01-06"),
    ("BBB", "buy", 1, 50, 0, 0, "2026-03-01"),
    ("AAA", "sell", 10, 100, 0, "0.4", "2026-02-01"),
    ("BBB", "sell", 1, 60, 0, 0, "2026-03-02"),
    ("AAA", "buy", 15, 80, 0, "0.3", "2027-01-04"),
]

# trade id, side closed, quantity, opened, closed, proceeds, cost, gross, fees, net
EXPECTED = {
    "average": [
        (3, "long", "5", "2026-01-02", "2026-01-05", "600", "525", "75", "1.25", "73.75"),
        (
            4,
            "long",
            "15",
            "2026-01-02..2026-01-03",
            "2026-01-06",
            "1350",
            "1575",
            "-225",
            "3.25",
            "-228.25",
        ),
        (7, "long", "1", "2026-03-01", "2026-03-02", "60", "50", "10", "0", "10"),
        (
            8,
            "short",
            "15",
            "2026-01-06..2026-02-01",
            "2027-01-04",
            "1425",
            "1200",
            "225",
            "0.6",
            "224.4",
        ),
    ],
    "fifo": [
        (3, "long", "5", "2026-01-02", "2026-01-05", "600", "500", "100", "1", "99"),
        (
            4,
            "long",
            "15",
            "2026-01-02..2026-01-03",
            "2026-01-06",
            "1350",
            "1600",
            "-250",
            "3.5",
            "-253.5",
        ),
        (7, "long", "1", "2026-03-01", "2026-03-02", "60", "50", "10", "0", "10"),
        (
            8,
            "short",
            "15",
            "2026-01-06..2026-02-01",
            "2027-01-04",
            "1400",
            "1200",
            "200",
            "0.5",
            "199.5",
        ),
    ],
}
# year, symbol, closing trades, quantity, proceeds, cost, gross, fees, net
YEARLY = {
    "average": [
        (2026, "AAA", 2, "20", "1950", "2100", "-150", "4.5", "-154.5"),
        (2026, "BBB", 1, "1", "60", "50", "10", "0", "10"),
        (2027, "AAA", 1, "15", "1425", "1200", "225", "0.6", "224.4"),
    ],
    "fifo": [
        (2026, "AAA", 2, "20", "1950", "2100", "-150", "4.5", "-154.5"),
        (2026, "BBB", 1, "1", "60", "50", "10", "0", "10"),
        (2027, "AAA", 1, "15", "1400", "1200", "200", "0.5", "199.5"),
    ],
}


def record(storage: StorageService) -> None:
    for symbol, side, quantity, price, commission, fees, when in HISTORY:
        order = storage.create_order(symbol, side, "market", quantity)
        storage.record_trade(
            order.id, symbol, side, quantity, price, commission, fees, executed_at=day(when)
        )


@pytest.mark.parametrize("method", ["average", "fifo"])
def test_every_row_equals_the_hand_computed_figures(storage, method):
    record(storage)
    rows = list(realized_report(storage.db, method))
    got = [
        (
            r.trade_id,
            r.side,
            r.quantity,
            r.opened,
            r.closed.isoformat(),
            r.proceeds,
            r.cost_basis,
            r.gross_pnl,
            r.fees,
            r.net_pnl,
        )
        for r in rows
    ]
    want = [
        (t, s, Decimal(q), o, c, *map(Decimal, figures))
        for t, s, q, o, c, *figures in EXPECTED[method]
    ]
    assert got == want
    assert {r.method for r in rows} == {method}
    years = [
        (
            y.year,
            y.symbol,
            y.closing_trades,
            y.quantity,
            y.proceeds,
            y.cost_basis,
            y.gross_pnl,
            y.fees,
            y.net_pnl,
        )
        for y in yearly_summary(rows)
    ]
    assert years == [(y, s, n, *map(Decimal, figures)) for y, s, n, *figures in YEARLY[method]]


def test_average_cost_is_the_books(storage):
    """The average-cost gross figures are the trades' realized P&L as stored."""
    record(storage)
    stored = {
        t.id: t.realized_pnl for t in storage.get_recent_trades(100) if t.realized_pnl is not None
    }
    assert {r.trade_id: r.gross_pnl for r in realized_report(storage.db)} == stored


def test_report_command_writes_csv_naming_the_method(storage, tmp_path, capsys, backend):
    if backend == "sqlite_memory":
        pytest.skip("the command opens the database by URL")
    record(storage)
    url = storage.db.stocksbot_url
    out = tmp_path / "tax"
    for method in ("average", "fifo"):
        assert (
            export_main(
                ["--url", url, "--report", "realized", "--method", method, "--out", str(out)]
            )
            == 0
        )
        assert f"realized ({method}): 4 closing trades" in capsys.readouterr().out
    with (out / "realized-fifo.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "method",
        "trade_id",
        "symbol",
        "side",
        "quantity",
        "opened",
        "closed",
        "proceeds",
        "cost_basis",
        "gross_pnl",
        "fees",
        "net_pnl",
    ]
    assert rows[2] == [
        "FIFO",
        "4",
        "AAA",
        "long",
        "15",
        "2026-01-02..2026-01-03",
        "2026-01-06",
        "1350",
        "1600",
        "-250",
        "3.5",
        "-253.5",
    ]
    with (out / "realized-average-yearly.csv").open() as f:
        years = list(csv.reader(f))
    assert years[3] == [
        "average cost",
        "2027",
        "AAA",
        "1",
        "15",
        "1425",
        "1200",
        "225",
        "0.6",
        "224.4",
    ]
