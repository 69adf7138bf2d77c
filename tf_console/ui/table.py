"""A DataTable that mounts only the rows in view of a much longer keyed list.

The built-in DataTable takes seconds to first paint 100k rows, so a pane keeps
its whole list as keys (orders by ``platform:order_id``, jobs by job id) and
this table mounts one row per visible line.  Rows are addressed by slot (its
line in the window); each slot remembers which item it shows and a signature of
every cell, so a refresh calls ``update_cell`` only for cells whose text or
style changed — moving a job is two rows' worth of cell updates, and a refresh
where nothing changed repaints nothing.  Scrolling moves the window over the
list instead of scrolling mounted rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from tf_console.ui.format import cell_signature

RENDER_CACHE_SIZE = 20_000
Cells = tuple[Text, ...]
RowRenderer = Callable[[str], Cells | None]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int


class WindowedTable(DataTable[Text], inherit_bindings=False):
    """See the module docstring.  ``render_row(key)`` returns the cells of one item."""

    # No "enter" here: the screen's enter binding (order/job detail) must see the key.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "scroll_top", "Top", show=False),
        Binding("end,ctrl+end", "scroll_bottom", "Bottom", show=False),
        Binding("left", "cursor_left", "Scroll left", show=False),
        Binding("right", "cursor_right", "Scroll right", show=False),
    ]

    def __init__(
        self,
        columns: Sequence[Column],
        render_row: RowRenderer,
        *,
        id: str | None = None,
        min_window: int = 3,
        fit_all: bool = False,
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_row_labels=False)
        self._columns = tuple(columns)
        self._render_row = render_row
        self._keys: tuple[str, ...] = ()
        self._positions: dict[str, int] = {}
        self._offset = 0
        self._slots: list[tuple[str, tuple[str, ...]]] = []
        self._min_window = min_window
        self._fit_all = fit_all  # short lists (the platforms): mount every row, the pane sizes to them
        self.cell_updates = 0  # how many cells were repainted (tests: an idle refresh adds none)
        self._rendered: dict[tuple[Any, ...], Any] = {}

    # DataTable.update_cell repaints the whole table, which sends every visible line to
    # the terminal again; a changed cell needs only its row.  While update_cell runs, its
    # full refresh is narrowed to that row (over SSH: ~0.6 KB instead of ~13 KB).
    _row_only: int | None = None

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: Text,
        *,
        update_width: bool = False,
    ) -> None:
        key = row_key.value if isinstance(row_key, RowKey) else row_key
        self._row_only = int(key) if key is not None and str(key).isdigit() else None
        try:
            super().update_cell(row_key, column_key, value, update_width=update_width)
        finally:
            self._row_only = None

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        row = self._row_only
        if row is not None and not regions and not layout and not recompose:
            self._row_only = None
            self.refresh_row(row)
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def on_mount(self) -> None:
        for column in self._columns:
            self.add_column(column.label, width=column.width, key=column.key)

    # ------------------------------------------------------------------ the list

    @property
    def item_keys(self) -> tuple[str, ...]:
        return self._keys

    @property
    def window_offset(self) -> int:
        return self._offset

    @property
    def window(self) -> int:
        """How many rows fit: the mounted rows never exceed this."""
        if self._fit_all:
            return max(1, len(self._keys))
        height = self.scrollable_content_region.height or self.size.height
        return max(self._min_window, height - self.header_height)

    @property
    def cursor_key(self) -> str | None:
        index = self._offset + self.cursor_row
        if 0 <= self.cursor_row < len(self._slots) and index < len(self._keys):
            return self._keys[index]
        return None

    def position_of(self, key: str) -> int | None:
        return self._positions.get(key)

    def set_keys(self, keys: Sequence[str], *, follow: str | None = None) -> None:
        """Show ``keys``; the cursor stays on ``follow`` (default: the item under it) when still listed."""
        follow = follow if follow is not None else self.cursor_key
        row_in_view = self.cursor_row
        self._keys = tuple(keys)
        self._positions = {key: n for n, key in enumerate(self._keys)}
        target = self._positions.get(follow) if follow is not None else None
        window = self.window
        if target is None:
            self._offset = min(self._offset, max(0, len(self._keys) - window))
            self._sync(cursor_row=min(row_in_view, max(0, len(self._keys) - self._offset - 1)))
            return
        if not self._offset <= target < self._offset + window:
            self._offset = max(0, min(target - min(row_in_view, window - 1), len(self._keys) - window))
        self._sync(cursor_row=target - self._offset)

    def refresh_rows(self, keys: set[str] | None = None) -> None:
        """Re-render the rows in view (only those showing ``keys`` when given)."""
        self._sync(only=keys)

    def go_to(self, key: str) -> bool:
        target = self._positions.get(key)
        if target is None:
            return False
        window = self.window
        if not self._offset <= target < self._offset + window:
            self._offset = max(0, min(target - window // 2, len(self._keys) - window))
        self._sync(cursor_row=target - self._offset)
        return True

    # ------------------------------------------------------------------ rendering

    def _sync(self, *, cursor_row: int | None = None, only: set[str] | None = None) -> None:
        if not self.is_mounted or not self._columns:
            return
        window = self.window
        if self._offset > max(0, len(self._keys) - 1):
            self._offset = max(0, len(self._keys) - window)
        visible = self._keys[self._offset : self._offset + window]
        with self.app.batch_update():
            for slot, key in enumerate(visible):
                if (
                    only is not None
                    and slot < len(self._slots)
                    and self._slots[slot][0] == key
                    and key not in only
                ):
                    continue
                cells = self._render_row(key)
                if cells is None:
                    cells = tuple(Text("") for _ in self._columns)
                signatures = tuple(cell_signature(c) for c in cells)
                if slot >= len(self._slots):
                    self.add_row(*cells, key=str(slot))
                    self._slots.append((key, signatures))
                    continue
                _previous_key, previous = self._slots[slot]
                for column, cell, signature, old in zip(
                    self._columns, cells, signatures, previous, strict=True
                ):
                    if signature != old:
                        self.update_cell(str(slot), column.key, cell)
                        self.cell_updates += 1
                self._slots[slot] = (key, signatures)
            while len(self._slots) > len(visible):
                slot = len(self._slots) - 1
                self.remove_row(str(slot))
                self._slots.pop()
            if cursor_row is not None and self._slots:
                row = max(0, min(cursor_row, len(self._slots) - 1))
                if row != self.cursor_row:
                    self.move_cursor(row=row, animate=False, scroll=False)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        # DataTable keys its cell cache on a table-wide update counter, so one changed cell
        # re-renders every visible cell.  Keyed on the cell's own signature instead, a
        # moved job re-renders only the cells whose text changed.
        if 0 <= row_index < len(self._slots) and 0 <= column_index < len(self._columns):
            signature: str = self._slots[row_index][1][column_index]
        elif row_index == -1 and 0 <= column_index < len(self._columns):
            signature = "\x00header:" + self._columns[column_index].label
        else:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_index,
            column_index,
            signature,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self.show_cursor,
            self._pseudo_class_state,
        )
        found = self._rendered.get(key)
        if found is None:
            if len(self._rendered) > RENDER_CACHE_SIZE:
                self._rendered.clear()
            found = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._rendered[key] = found
        return found

    def on_resize(self, _event: events.Resize) -> None:
        self._sync(cursor_row=self.cursor_row)

    # ------------------------------------------------------------------ moving the window

    def _shift(self, delta: int, *, cursor_row: int | None = None) -> None:
        window = self.window
        last_offset = max(0, len(self._keys) - window)
        offset = max(0, min(self._offset + delta, last_offset))
        if offset != self._offset:
            self._offset = offset
            self._sync(cursor_row=cursor_row if cursor_row is not None else self.cursor_row)
        elif cursor_row is not None:
            self._sync(cursor_row=cursor_row)

    def action_cursor_down(self) -> None:
        if self.cursor_row >= len(self._slots) - 1:
            self._shift(1)
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.cursor_row <= 0:
            self._shift(-1)
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        self._shift(max(1, self.window - 1))

    def action_page_up(self) -> None:
        self._shift(-max(1, self.window - 1))

    def action_scroll_top(self) -> None:
        self._offset = 0
        self._sync(cursor_row=0)

    def action_scroll_bottom(self) -> None:
        self._offset = max(0, len(self._keys) - self.window)
        self._sync(cursor_row=len(self._keys) - self._offset - 1)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self._shift(3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self._shift(-3)
