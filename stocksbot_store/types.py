"""Names for what the public API accepts, so a signature says what it takes.

The store checks every input at run time (a bad one is a
:class:`~stocksbot_store.errors.ValidationError` naming it); these aliases tell a
type checker and a reader the same thing before the call::

    from stocksbot_store.types import Amount, OrderSide

    def buy(storage: StorageService, symbol: str, quantity: Amount) -> None: ...

Text is accepted wherever the store parses it (``"150.10"`` for an amount, ``"buy"``
or ``"BUY"`` for a side, an ISO string for a time), so the enum aliases are the
member or ``str``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TypeAlias

from .models import (
    ConfigValueType,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    PositionSideEnum,
)

#: A quantity, price, commission, fee or P&L as given to the store. Kept exact: a
#: float is read by its ``repr`` (``150.1`` is ``Decimal("150.1")``), text is parsed.
Amount: TypeAlias = Decimal | int | float | str
#: A number of shares or contracts (an :data:`Amount`).
Quantity: TypeAlias = Amount
#: A price per share or contract (an :data:`Amount`).
Price: TypeAlias = Amount

#: A point in time: an aware datetime, a naive one (taken as UTC) or ISO text.
When: TypeAlias = dt.datetime | str
#: One end of a report's range: a date (its midnight in the report's zone), a datetime
#: (naive: in the report's zone) or ISO text.
RangeBound: TypeAlias = dt.date | dt.datetime | str
#: A time zone: a tzinfo or an IANA name such as ``"Europe/Paris"``.
Zone: TypeAlias = dt.tzinfo | str

#: The primary key of a row.
RowId: TypeAlias = int
#: A yes/no input: a bool, the int 0 or 1, or true/false, 1/0, yes/no, on/off text.
Flag: TypeAlias = bool | int | str

#: Which way a position faces: a :class:`PositionSideEnum` or its value (any case).
PositionSide: TypeAlias = PositionSideEnum | str
#: Buy or sell: an :class:`OrderSideEnum` or its value (any case).
OrderSide: TypeAlias = OrderSideEnum | str
#: How an order is priced: an :class:`OrderTypeEnum` or its value (any case).
OrderType: TypeAlias = OrderTypeEnum | str
#: Where an order is in its life: an :class:`OrderStatusEnum` or its value (any case).
OrderStatus: TypeAlias = OrderStatusEnum | str
#: How a config value's text is read: a :class:`ConfigValueType` or its value.
ValueType: TypeAlias = ConfigValueType | str

#: A value that JSON can hold (a strategy's config, a json setting).
JSONValue: TypeAlias = (
    "None | bool | int | float | str | Sequence[JSONValue] | Mapping[str, JSONValue]"
)
#: A setting's value: its stored text, or the native value of its type (a bool, an
#: int, a float, or a JSON value for a json setting).
ConfigValue: TypeAlias = JSONValue

__all__ = [
    "Amount",
    "ConfigValue",
    "Flag",
    "JSONValue",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "PositionSide",
    "Price",
    "Quantity",
    "RangeBound",
    "RowId",
    "ValueType",
    "When",
    "Zone",
]
