"""Messages the dashboard's workers and views post; the app's handlers act on them.

Workers run on threads and only ever post these (posting is thread-safe); every
widget update happens in a handler on the UI thread.
"""

from __future__ import annotations

from textual.message import Message

from .data import OrderDetail, OrderPage, Snapshot


class Refreshed(Message):
    """A refresh finished; ``snapshot`` is None when nothing had changed."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.snapshot = snapshot


class RefreshFailed(Message):
    """A read failed; ``error`` says why. ``unavailable``: the database cannot be
    reached (retry as a whole); otherwise only ``view`` failed, or, with no view,
    the whole refresh (an outdated schema, say)."""

    def __init__(self, error: str, *, unavailable: bool, view: str | None = None) -> None:
        super().__init__()
        self.error = error
        self.unavailable = unavailable
        self.view = view


class OrdersLoaded(Message):
    """A page of orders asked for by paging or filtering."""

    def __init__(self, page: OrderPage) -> None:
        super().__init__()
        self.page = page


class FillsLoaded(Message):
    """An order, its fills and its history, for the detail screen."""

    def __init__(self, detail: OrderDetail) -> None:
        super().__init__()
        self.detail = detail


class ActionFinished(Message):
    """An operator action was written (``ok``) or refused; ``text`` says which."""

    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text = text
        self.ok = ok


class OrderChosen(Message):
    """The user asked for the detail of an order."""

    def __init__(self, order_id: int) -> None:
        super().__init__()
        self.order_id = order_id


class SymbolChosen(Message):
    """The user asked for the orders of one symbol (enter on a position)."""

    def __init__(self, symbol: str) -> None:
        super().__init__()
        self.symbol = symbol


class PageRequested(Message):
    """The orders view asks for the next (+1) or previous (-1) page."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step
