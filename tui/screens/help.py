"""The key help screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]stocksbot dashboard[/b] - reads the store live; writes only on a confirmed action

  [b]1-4[/b], [b]tab[/b]   positions, orders, strategies, trades
  [b]/[/b]          filter orders by symbol, status, side, strategy
  [b]n[/b] / [b]p[/b]      next / previous page of orders (or move past the last/first row)
  [b]s[/b]          sort the table by the next column (click a header too)
  [b]enter[/b]      an order's fills (orders, trades); a symbol's orders (positions)
  [b]r[/b]          refresh now
  [b]t[/b]          halt or resume trading (asks first)
  [b]a[/b]          activate or deactivate the selected strategy (asks first)
  [b]ctrl+p[/b]     command palette
  [b]?[/b]          this help        [b]q[/b]  quit

escape closes this screen"""


class HelpScreen(ModalScreen[None]):
    """Lists the keys."""

    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static(HELP)
