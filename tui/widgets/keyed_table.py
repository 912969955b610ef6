"""KeyedTable: a DataTable refreshed by diff, whose selection follows its row key.

DataTable's cursor is positional: a sort, or a row removed above it, would move
it to another row. :meth:`KeyedTable.sync` takes the rows a view should show,
adds and removes rows by key and redraws only the cells that changed, all inside
one ``batch_update()``, then puts the cursor back where the reader wants it:

- a table at its top (cursor on the first row) follows new rows: it stays at the
  top, so the newest rows are the ones on screen;
- a table scrolled down stays on the row it was on, with the same rows on screen,
  and counts the rows that arrived above (:attr:`KeyedTable.newer`); ``home`` goes
  back to the top and shows them.

Columns never cut a value: each column is as wide as its widest cell (or its
label), a width the table sets itself from the cells it holds whenever they change,
so that no frame is ever drawn with a narrower column. When the table is narrower
than its columns, whole columns are hidden, least important first (``drop_order``),
and :attr:`KeyedTable.hidden` names them. The sort column's header carries ``▲`` or
``▼``. A table whose rows come sorted by the database (``sql_sort``) does not sort
what it holds: it posts :class:`KeyedTable.SortChanged` and shows the rows it is
given next, in their order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from ..format import Cell

#: Header marks of the sort column.
DESCENDING, ASCENDING = "▼", "▲"


class KeyedTable(DataTable):
    """A row-cursor DataTable of :class:`~stocksbot_tui.format.Cell` rows keyed by string ids."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Detail"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("home,ctrl+home", "top", "Newest", show=False),
    ]

    class PastEdge(Message):
        """The cursor was asked to move past the last (+1) or first (-1) row."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    class SortChanged(Message):
        """The reader chose a sort (column None: the natural order) that the rows'
        source must apply (tables with ``sql_sort``)."""

        def __init__(self, table: KeyedTable, column: str | None, reverse: bool) -> None:
            super().__init__()
            self.table = table
            self.column = column
            self.reverse = reverse

    class NoteChanged(Message):
        """:attr:`KeyedTable.newer` or :attr:`KeyedTable.hidden` changed."""

    def __init__(
        self,
        columns: Sequence[tuple[str, str]],
        *,
        pinned: str | None = None,
        drop_order: Sequence[str] = (),
        sql_sort: Collection[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.column_spec = list(columns)
        self.pinned = pinned
        self.drop_order = list(drop_order)
        self.sql_sort = None if sql_sort is None else frozenset(sql_sort)
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._cells: dict[str, list[Cell]] = {}
        self._rank: dict[str, int] = {}
        self._shown: list[str] = []  # the column keys on screen
        self._columns: list[tuple[str, str, int]] = []  # their keys, labels and widths
        self._newer: set[str] = set()
        self._note: tuple[int, tuple[str, ...]] = (0, ())

    # -- what the view reports -----------------------------------------------------------

    @property
    def newer(self) -> int:
        """Rows that arrived above while the table was scrolled down."""
        return len(self._newer)

    @property
    def hidden(self) -> list[str]:
        """Labels of the columns hidden for want of width."""
        return [label for key, label in self.column_spec if key not in self._shown]

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [row.key.value for row in self.ordered_rows]

    # -- columns -------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._layout()

    def on_resize(self) -> None:
        self._layout()

    def _label(self, key: str, label: str) -> str:
        if key != self.sort_column:
            return label
        return f"{label} {DESCENDING if self.sort_reverse else ASCENDING}"

    def _widths(self) -> dict[str, int]:
        """Each column's width without padding: its label's or its widest cell's.

        The columns get these widths when they are added, rather than being left to
        DataTable's own measure: that one runs only when the table is next idle, and a
        row drawn before it (a busy machine paints first) stays drawn cut to the label's
        width, since DataTable caches drawn lines by content, not by column width.
        """
        return {
            key: max(
                [Text(self._label(key, label)).cell_len]
                + [row[position].cell_len for row in self._cells.values()]
            )
            for position, (key, label) in enumerate(self.column_spec)
        }

    def _fitting_columns(self, widths: dict[str, int]) -> list[str]:
        """The columns that fit the table's width, dropping ``drop_order`` first."""
        shown = [key for key, _ in self.column_spec]
        if self.size.width <= 0:
            return shown
        room = self.size.width - self.styles.scrollbar_size_vertical
        for key in self.drop_order:
            if sum(widths[k] + 2 * self.cell_padding for k in shown) <= room:
                break
            shown.remove(key)
        return shown

    def _layout(self) -> None:
        """Rebuild the columns if the ones that fit, their labels or their widths changed."""
        widths = self._widths()
        shown = self._fitting_columns(widths)
        columns = [
            (key, self._label(key, label), widths[key])
            for key, label in self.column_spec
            if key in shown
        ]
        if columns == self._columns and self.columns:
            return
        order, selected, top = self.keys(), self.selected_key, self.scroll_y
        newer = set(self._newer)  # clear() puts the cursor on the first row, for a moment
        with self.app.batch_update():
            self.clear(columns=True)
            self._shown, self._columns = shown, columns
            for key, label, width in columns:
                self.add_column(Text(label), width=width, key=key)
            for key in order:
                self.add_row(*self._visible(self._cells[key]), key=key)
            self.select_key(selected, scroll=False)
            self.scroll_to(y=top, animate=False, immediate=True)
        self._newer = newer
        self._report()

    def _visible(self, cells: list[Cell]) -> list[Cell]:
        return [
            cell
            for (key, _), cell in zip(self.column_spec, cells, strict=True)
            if key in self._shown
        ]

    # -- rows ----------------------------------------------------------------------------

    def sync(self, rows: Sequence[tuple[str, list[Cell]]], *, fresh: bool = False) -> None:
        """Show exactly ``rows`` (in this order unless a local sort is chosen), by diff.

        ``fresh`` says the rows are another set (a new page, filter or sort), not the
        same list moving on: the cursor goes to the top and nothing counts as newer.
        """
        if not self.columns:
            self._layout()
        selected = self.selected_key
        follow = fresh or selected is None or (self.cursor_row == 0 and self.scroll_y == 0)
        order = self.keys()
        top = order[int(self.scroll_y)] if int(self.scroll_y) < len(order) else None
        wanted = dict(rows)
        with self.app.batch_update():
            for key in [k for k in self._cells if k not in wanted]:
                self.remove_row(key)
                del self._cells[key]
            for key, cells in rows:
                for cell in cells:
                    cell.row_key = key
                old = self._cells.get(key)
                self._cells[key] = cells
                if old is None:
                    self.add_row(*self._visible(cells), key=key)
                    self._newer.add(key)
                    continue
                for (column, _), new, before in zip(self.column_spec, cells, old, strict=True):
                    if column in self._shown and new.signature != before.signature:
                        self.update_cell(key, column, new)
            self._rank = {key: i for i, (key, _) in enumerate(rows)}
            self._apply_sort()
            if follow:
                self._newer.clear()
                self.move_cursor(row=0, scroll=False)
            else:
                # Stay on the same row, with the same rows on screen; count what
                # arrived above it.
                self.select_key(selected, scroll=False)
                self._newer = {
                    k
                    for k in self._newer
                    if k in self._cells and self.get_row_index(k) < self.cursor_row
                }
        self._layout()  # a value that got wider (a price past 99.99) widens its column
        self._report()
        # Once the new rows have their place (after the next refresh), and after the
        # cursor was scrolled into view, scroll so that the same row is on top.
        self.call_after_refresh(self._scroll_to_key, None if follow else top)

    def _scroll_to_key(self, key: str | None) -> None:
        """Scroll so that row ``key`` is the first on screen (None: to the top)."""
        if key is None:
            self.scroll_to(y=0, animate=False, immediate=True)
        elif key in self._cells:
            self.scroll_to(y=self.get_row_index(key), animate=False, immediate=True)

    def _report(self) -> None:
        note = (self.newer, tuple(self.hidden))
        if note != self._note:
            self._note = note
            self.post_message(self.NoteChanged())

    def select_key(self, key: str | None, scroll: bool = True) -> None:
        """Put the cursor on the row ``key`` (if it is there)."""
        if key is not None and key in self._cells:
            self.move_cursor(row=self.get_row_index(key), animate=False, scroll=scroll)

    def action_top(self) -> None:
        """To the first row: the newest, and the end of the "newer" count."""
        self.move_cursor(row=0, animate=False)
        self.scroll_to(y=0, animate=False, immediate=True)
        self._newer.clear()
        self._report()

    def watch_cursor_coordinate(self, old, new) -> None:
        super().watch_cursor_coordinate(old, new)
        if new.row == 0 and self._newer:
            self._newer.clear()
            self._report()

    def action_cursor_down(self) -> None:
        if self.row_count and self.cursor_row == self.row_count - 1:
            self.post_message(self.PastEdge(1))
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.row_count and self.cursor_row == 0:
            self.post_message(self.PastEdge(-1))
        super().action_cursor_up()

    # -- sorting -------------------------------------------------------------------------

    def action_cycle_sort(self) -> None:
        """Sort by the next column; after the last one, back to the natural order.
        Each column sorts descending first (largest, newest on top)."""
        names = [
            key for key, _ in self.column_spec if self.sql_sort is None or key in self.sql_sort
        ]
        if self.sort_column is None:
            column, reverse = names[0], True
        elif self.sort_reverse:
            column, reverse = self.sort_column, False
        else:
            index = names.index(self.sort_column) + 1
            column, reverse = (names[index] if index < len(names) else None), True
        self.sort_by(column, reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = event.column_key.value
        if self.sql_sort is not None and column not in self.sql_sort:
            self.app.bell()
            return
        reverse = not self.sort_reverse if column == self.sort_column else True
        self.sort_by(column, reverse)

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        """Sort by ``column`` (None: the order the rows were given in), keeping the
        selected row selected and any pinned row (a totals row) last. With
        ``sql_sort`` the rows' source sorts: this posts :class:`SortChanged`."""
        selected = self.selected_key
        self.sort_column, self.sort_reverse = column, reverse
        if self.sql_sort is not None:
            self.post_message(self.SortChanged(self, column, reverse))
        else:
            self._apply_sort()
            self.select_key(selected)
        self._layout()

    def _apply_sort(self) -> None:
        if not self._cells:
            return
        position = None
        if self.sort_column and self.sql_sort is None:
            position = [key for key, _ in self.column_spec].index(self.sort_column)
        reverse = self.sort_reverse if position is not None else False

        def sort_key(shown: tuple[Cell, ...]) -> tuple:
            key = shown[0].row_key
            last = (key == self.pinned) != reverse
            if position is None:
                return last, self._rank.get(key, 0)
            value = self._cells[key][position].sort_value
            missing = (value is None) != reverse
            return last, missing, 0 if value is None else value, self._rank.get(key, 0)

        self.sort(key=sort_key, reverse=reverse)
