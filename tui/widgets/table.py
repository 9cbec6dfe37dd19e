"""A DataTable that is refreshed in place: the cursor stays on the same row by key."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable

__all__ = ["LiveTable"]


class LiveTable(DataTable[object]):
    """Rows replaced on each refresh; sortable by a column; the selected row is kept."""

    def __init__(
        self,
        columns: Sequence[str],
        *,
        id: str,  # noqa: A002 - Textual's name
        sort_column: int = 0,
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.column_names = list(columns)
        self.sort_column = sort_column
        self.sort_reverse = False
        self._rows: list[tuple[str, tuple[object, ...]]] = []

    def on_mount(self) -> None:
        """Add the columns."""
        self.add_columns(*self.column_names)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:  # an empty or just-cleared table
            return None

    def show(self, rows: Sequence[tuple[str, Sequence[object]]]) -> None:
        """Replace the rows (``(key, cells)``), sorted, keeping the cursor on its key."""
        fresh = [(key, tuple(cells)) for key, cells in rows]
        if fresh == self._rows:  # most refreshes change nothing: skip the redraw
            return
        self._rows = fresh
        self._render_rows()

    def cycle_sort(self) -> str:
        """Sort by the next column (then reverse); returns what it sorts by now."""
        if self.sort_reverse:
            self.sort_column = (self.sort_column + 1) % len(self.column_names)
        self.sort_reverse = not self.sort_reverse
        self._render_rows()
        order = "descending" if self.sort_reverse else "ascending"
        return f"sorted by {self.column_names[self.sort_column]}, {order}"

    def _render_rows(self) -> None:
        keep = self.selected_key
        rows = sorted(
            self._rows,
            key=lambda row: _sortable(row[1][self.sort_column]),
            reverse=self.sort_reverse,
        )
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if keep is not None:
            for index, (key, _) in enumerate(rows):
                if key == keep:
                    self.move_cursor(row=index)
                    break


def _sortable(cell: object) -> tuple[int, float | str]:
    text = str(cell).split(" ")[0].rstrip("%/")
    try:
        return (0, float(text))
    except ValueError:
        return (1, str(cell).lower())
