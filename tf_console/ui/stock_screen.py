"""The stock screen (``i``): what ``tf-console stock`` shows, with the adjust and count actions.

One row per tracked SKU — on-hand, allocated, buffer, what is offered, and each
marketplace's last push and whether it applied — and, under the table, why the
selected SKU offers what it does.  ``a`` adjusts the count (+N or -N with a
reason), ``c`` records a shelf count; the process holding the poller lease
pushes the new quantity.  Everything goes through :class:`InventoryService`
(blocking, so in a worker thread); nothing here knows the store or a marketplace.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from typing import Any, ClassVar, Literal, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from tf_console.errors import UserError
from tf_console.inventory import InventoryService, PushStatus, PushView, StockChange, StockRow
from tf_console.models import MARKETPLACES, Platform
from tf_console.ui.styles import PACKAGE_STYLES, REPOSITORY_STYLES

T = TypeVar("T")

STYLESHEET = "stock.tcss"
REFRESH_EVERY = 5.0


def stylesheet_path() -> str:
    repository = REPOSITORY_STYLES / STYLESHEET
    return str(repository if repository.is_file() else PACKAGE_STYLES / STYLESHEET)


_STATUS_STYLE = {
    PushStatus.APPLIED: "green",
    PushStatus.PENDING: "cyan",
    PushStatus.QUEUED: "cyan",
    PushStatus.UNVERIFIED: "yellow",
    PushStatus.REJECTED: "bold red",
    PushStatus.SKIPPED: "dim",
}


def short_text(view: PushView) -> str:
    """A push in a few characters: ``9 ✓ 42s``, ``9 queued``, ``9 ✗ refused``, ``no listing``."""
    value = "-" if view.quantity is None else str(view.quantity)
    if view.status is PushStatus.SKIPPED:
        return "no listing"
    if view.status is PushStatus.APPLIED:
        took = view.latency.total_seconds() if view.latency is not None else None
        if took is None:
            return f"{value} ✓"
        shown = (
            f"{took:.0f}s" if took < 120 else f"{took / 60:.0f}m" if took < 7200 else f"{took / 3600:.0f}h"
        )
        return f"{value} ✓ {shown}"
    words = {
        PushStatus.PENDING: "waiting",
        PushStatus.QUEUED: "queued",
        PushStatus.UNVERIFIED: "unverified",
        PushStatus.REJECTED: "✗ refused",
    }
    return f"{value} {words[view.status]}"


def push_text(views: Sequence[PushView]) -> Text:
    if not views:
        return Text("-", style="dim")
    first = views[0]
    text = Text(short_text(first), style=_STATUS_STYLE[first.status])
    if len(views) > 1:
        same = all(short_text(v) == short_text(first) for v in views)
        text.append(f" ×{len(views)}" if same else f" +{len(views) - 1}", style="dim")
    return text


def explain(row: StockRow, tz: tzinfo) -> Text:
    text = Text(row.sku, style="bold")
    if row.offered is None:
        text.append(f"  not pushed: {row.why}.")
    else:
        kind = "made to order: " if row.made_to_order else "available = "
        text.append(f"  offers {row.offered} ({kind}{row.why})")
    for platform, views in row.pushes.items():
        for view in views:
            when = f" at {view.at.astimezone(tz):%H:%M}" if view.at is not None else ""
            text.append(f"\n{platform.label} {view.listing_sku}: ", style="bold")
            text.append(view.text, style=_STATUS_STYLE[view.status])
            if view.answer:
                text.append(f"{when} — {view.answer}")
    return text


class StockChangeModal(ModalScreen[tuple[int, str] | None]):
    """Adjust (+N / -N and a reason) or count (units on the shelf) one SKU."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="stock_change.cancel", tooltip="Close without changing."),
    ]

    def __init__(self, sku: str, mode: Literal["adjust", "count"], on_hand: int | None) -> None:
        super().__init__(classes="modal")
        self.sku = sku
        self.mode = mode
        self.on_hand = on_hand

    def compose(self) -> ComposeResult:
        adjusting = self.mode == "adjust"
        title = f"Adjust {self.sku}" if adjusting else f"Count {self.sku}"
        shown = "not counted yet" if self.on_hand is None else f"{self.on_hand} on hand now"
        with Vertical(id="stock-change-dialog", classes="dialog"):
            yield Label(f"{title} ({shown})", classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("Change" if adjusting else "On the shelf", classes="field-label")
                yield Input(
                    placeholder="+2 or -1" if adjusting else "units",
                    id="stock-change-amount",
                    restrict=r"[+\-]?[0-9]*" if adjusting else r"[0-9]*",
                )
            with Horizontal(classes="field"):
                yield Label("Reason", classes="field-label")
                yield Input(
                    placeholder="required, e.g. two broke in packing" if adjusting else "shelf count",
                    id="stock-change-reason",
                )
            yield Static("", id="stock-change-problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (enter)", id="stock-change-save", variant="primary")
                yield Button("Cancel (esc)", id="stock-change-cancel")

    def on_mount(self) -> None:
        self.query_one("#stock-change-amount", Input).focus()

    def _problem(self, sentence: str) -> None:
        self.query_one("#stock-change-problem", Static).update(Text(sentence, style="bold red"))

    @on(Input.Submitted)
    @on(Button.Pressed, "#stock-change-save")
    def _save(self) -> None:
        raw = self.query_one("#stock-change-amount", Input).value.strip()
        reason = self.query_one("#stock-change-reason", Input).value.strip()
        try:
            amount = int(raw)
        except ValueError:
            self._problem(
                "Give a whole number of units, e.g. +2 or -1." if self.mode == "adjust" else "Give a number."
            )
            return
        if self.mode == "adjust" and (amount == 0 or not reason):
            self._problem("An adjustment needs +N or -N and a reason.")
            return
        self.dismiss((amount, reason))

    @on(Button.Pressed, "#stock-change-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class StockScreen(Screen[None]):
    CSS_PATH = stylesheet_path()
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "adjust", "Adjust", id="stock.adjust", tooltip="Add or remove units with a reason."),
        Binding("c", "count", "Count", id="stock.count", tooltip="Record a shelf count for the SKU."),
        Binding("r", "reload", "Refresh", id="stock.refresh", tooltip="Read the stock again."),
        Binding("escape", "back", "Back", id="stock.back", tooltip="Back to the dashboard."),
    ]

    def __init__(
        self,
        service: InventoryService,
        *,
        read_only: bool = False,
        tz: tzinfo = UTC,
        refresh_every: float | None = REFRESH_EVERY,
    ) -> None:
        super().__init__(classes="stock-screen")
        self.service = service
        self.read_only = read_only
        self.tz = tz
        self.refresh_every = refresh_every
        self.rows: dict[str, StockRow] = {}
        self.loads = 0  # finished loads, so tests can wait for one

    def compose(self) -> ComposeResult:
        yield Static(
            "Stock · available = on-hand − allocated − buffer · made to order: what prints in time",
            id="stock-title",
        )
        yield DataTable(id="stock-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="stock-detail")
        yield Footer()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#stock-table", DataTable)

    def platforms(self) -> list[Platform]:
        shown = set(self.service.platforms) | {p for r in self.rows.values() for p in r.pushes}
        return [p for p in MARKETPLACES if p in shown or not shown] + sorted(shown - set(MARKETPLACES))

    def on_mount(self) -> None:
        self.action_reload()
        if self.refresh_every:
            self.set_interval(self.refresh_every, self.action_reload)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args))

    def action_reload(self) -> None:
        self.run_worker(self._load(), group="stock-load", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        rows = await self._call(self.service.rows)
        self._show(rows)
        self.loads += 1

    def _show(self, rows: list[StockRow]) -> None:
        table = self.table
        selected = self.selected()
        self.rows = {r.sku: r for r in rows}
        platforms = self.platforms()
        with self.app.batch_update():
            table.clear(columns=True)
            for label, key in (
                ("SKU", "sku"),
                ("On hand", "on_hand"),
                ("Alloc", "allocated"),
                ("Buf", "buffer"),
                ("Avail", "offered"),
            ):
                table.add_column(label, key=key)
            for platform in platforms:
                table.add_column(platform.label, key=platform.value)
            for row in rows:
                on_hand = "to order" if row.made_to_order and row.on_hand is None else row.on_hand
                table.add_row(
                    row.sku,
                    Text("unset", style="dim", justify="right")
                    if on_hand is None
                    else Text(str(on_hand), justify="right"),
                    Text(str(row.allocated), justify="right"),
                    Text(str(row.buffer), justify="right"),
                    Text("-", style="dim", justify="right")
                    if row.offered is None
                    else Text(str(row.offered), style="bold", justify="right"),
                    *[push_text(row.pushes.get(p, ())) for p in platforms],
                    key=row.sku,
                )
            if selected in self.rows:
                table.move_cursor(row=table.get_row_index(selected))
        self._detail()
        if not rows:
            self.query_one("#stock-detail", Static).update(
                "No stock is tracked yet: press c on a SKU's row, or run `tf-console stock set SKU N`."
            )

    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # no cursor row yet (an empty or just-cleared table)
            return None
        return str(key.value) if key.value is not None else None

    def _detail(self) -> None:
        sku = self.selected()
        row = self.rows.get(sku) if sku else None
        if row is not None:
            self.query_one("#stock-detail", Static).update(explain(row, self.tz))

    @on(DataTable.RowHighlighted, "#stock-table")
    def _highlighted(self) -> None:
        self._detail()

    def handle_event(self, event: Any) -> None:
        """The console's events: stock moves with orders and with outbox answers."""
        if str(getattr(event, "kind", "")) in ("orders", "outbox"):
            self.action_reload()

    # ----------------------------------------------------------------- actions

    def _writable_row(self) -> StockRow | None:
        if self.read_only:
            self.notify("This console is read-only; stock is changed from a normal console or the CLI.")
            return None
        sku = self.selected()
        if sku is None:
            self.notify("No SKU is selected; count one first with `tf-console stock set SKU N`.")
            return None
        return self.rows[sku]

    def action_adjust(self) -> None:
        row = self._writable_row()
        if row is None:
            return
        if row.on_hand is None:
            self.notify(f"{row.sku} has no shelf count yet; press c to count it first.", severity="warning")
            return

        def done(answer: tuple[int, str] | None) -> None:
            if answer is not None:
                self._change(self.service.adjust, row.sku, answer[0], answer[1])

        self.app.push_screen(StockChangeModal(row.sku, "adjust", row.on_hand), done)

    def action_count(self) -> None:
        row = self._writable_row()
        if row is None:
            return

        def done(answer: tuple[int, str] | None) -> None:
            if answer is not None:
                self._change(self.service.set_on_hand, row.sku, answer[0], answer[1])

        self.app.push_screen(StockChangeModal(row.sku, "count", row.on_hand), done)

    def _change(self, fn: Callable[..., StockChange], *args: Any) -> None:
        self.run_worker(self._apply(fn, *args), group="stock-change", exit_on_error=False)

    async def _apply(self, fn: Callable[..., StockChange], *args: Any) -> None:
        try:
            change = await self._call(fn, *args)
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        before = "unset" if change.before.on_hand is None else change.before.on_hand
        self.notify(
            f"{change.sku}: on-hand {before} → {change.after.on_hand}. "
            "The poller pushes the new quantity to the marketplaces.",
            timeout=6,
        )
        await self._load()

    def action_back(self) -> None:
        self.dismiss(None)
