"""The key help screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]stocksbot dashboard[/b] - the store, live; writes only when confirmed

  [b]1-6[/b], [b]tab[/b]   positions, orders, strategies, trades, performance, audit
  [b]/[/b]          filter orders by symbol, status, side, strategy;
             in Audit, filter the log by table, row id, actor
  [b]n[/b] / [b]p[/b]      next / previous page of orders (of the audit log)
  [b]s[/b]          sort by the next column (or click a header);
             orders and trades sort over the whole history
  [b]home[/b]       back to the first row: the newest
  [b]enter[/b]      an order's fills and history; a position's orders;
             in Audit, the history of an entry's row
  [b]r[/b]          refresh now, and back to the first row
  [b]t[/b]          halt or resume trading (asks first)
  [b]a[/b]          (de)activate the selected strategy (asks first)
  [b]ctrl+p[/b]     command palette
  [b]?[/b]          this help        [b]q[/b]  quit

escape closes this screen"""


class HelpScreen(ModalScreen[None]):
    """Lists the keys."""

    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static(HELP)
