"""KeyedTable: a DataTable refreshed by diff, whose selection follows its row key.

DataTable's cursor is positional: a sort, or a row removed above it, would move
it to another row. :meth:`KeyedTable.sync` takes the rows a view should show,
adds and removes rows by key and redraws only the cells that changed, all inside
one ``batch_update()``, then puts the cursor back on the row it was on.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from ..format import Cell


class KeyedTable(DataTable):
    """A row-cursor DataTable of :class:`~tui.format.Cell` rows keyed by string ids."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Detail"),
        Binding("s", "cycle_sort", "Sort"),
    ]

    class PastEdge(Message):
        """The cursor was asked to move past the last (+1) or first (-1) row."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    def __init__(self, columns: Sequence[tuple[str, str]], *, pinned: str | None = None,
                 **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.column_spec = list(columns)
        self.pinned = pinned
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._cells: dict[str, list[Cell]] = {}
        self._rank: dict[str, int] = {}

    def on_mount(self) -> None:
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        # Rows that arrive before the table is mounted must find their columns, or the
        # columns would later be sized by their labels alone and cut the values.
        if not self.columns:
            for key, label in self.column_spec:
                self.add_column(label, key=key)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [row.key.value for row in self.ordered_rows]

    def sync(self, rows: Sequence[tuple[str, list[Cell]]]) -> None:
        """Show exactly ``rows`` (in this order unless a sort is chosen), by diff."""
        self._ensure_columns()
        selected = self.selected_key
        wanted = dict(rows)
        with self.app.batch_update():
            for key in [k for k in self._cells if k not in wanted]:
                self.remove_row(key)
                del self._cells[key]
            for key, cells in rows:
                cells[0].row_key = key
                old = self._cells.get(key)
                if old is None:
                    self.add_row(*cells, key=key)
                else:
                    for (column, _), new, before in zip(self.column_spec, cells, old, strict=True):
                        if new.signature != before.signature:
                            # A value that got wider (a price past 99.99) widens its column.
                            self.update_cell(key, column, new, update_width=True)
                self._cells[key] = cells
            self._rank = {key: i for i, (key, _) in enumerate(rows)}
            self._apply_sort()
            self.select_key(selected)

    def select_key(self, key: str | None) -> None:
        """Put the cursor on the row ``key`` (if it is there)."""
        if key is not None and key in self._cells:
            self.move_cursor(row=self.get_row_index(key), animate=False)

    def action_cursor_down(self) -> None:
        if self.row_count and self.cursor_row == self.row_count - 1:
            self.post_message(self.PastEdge(1))
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.row_count and self.cursor_row == 0:
            self.post_message(self.PastEdge(-1))
        super().action_cursor_up()

    def action_cycle_sort(self) -> None:
        """Sort by the next column; after the last one, back to the natural order.
        Each column sorts descending first (largest, newest on top)."""
        names = [key for key, _ in self.column_spec]
        if self.sort_column is None:
            self.sort_column, self.sort_reverse = names[0], True
        elif self.sort_reverse:
            self.sort_reverse = False
        else:
            index = names.index(self.sort_column) + 1
            self.sort_column = names[index] if index < len(names) else None
            self.sort_reverse = True
        self.sort_by(self.sort_column, self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = event.column_key.value
        reverse = not self.sort_reverse if column == self.sort_column else True
        self.sort_by(column, reverse)

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        """Sort by ``column`` (None: the order the rows were given in), keeping the
        selected row selected and any pinned row (a totals row) last."""
        selected = self.selected_key
        self.sort_column, self.sort_reverse = column, reverse
        self._apply_sort()
        self.select_key(selected)

    def _apply_sort(self) -> None:
        if not self._cells:
            return
        position = [key for key, _ in self.column_spec].index(self.sort_column) \
            if self.sort_column else None
        reverse = self.sort_reverse if position is not None else False

        def sort_key(cells: tuple[Cell, ...]) -> tuple:
            key = cells[0].row_key
            last = (key == self.pinned) != reverse
            if position is None:
                return last, self._rank.get(key, 0)
            value = cells[position].sort_value
            missing = (value is None) != reverse
            return last, missing, 0 if value is None else value, self._rank.get(key, 0)

        self.sort(key=sort_key, reverse=reverse)
