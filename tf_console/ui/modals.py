"""Dialogs: confirm, ship an order, set a job's priority, classify an unknown item.

Each returns its answer through ``dismiss``; the dashboard pushes them from a
worker with ``push_screen_wait`` and acts on the answer.  Every key here is a
binding with an id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from tf_console.console.service import ConsoleService
from tf_console.console.views import ProfileChoice, ShipForm
from tf_console.models import ItemKind, Platform, Priority
from tf_console.sync.shipping import ShipRequest

# ---------------------------------------------------------------------------
# Confirm


class ConfirmModal(ModalScreen[bool]):
    """Yes or no.  ``y``/``enter`` confirm, ``n``/``esc`` decline."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Confirm."),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Decline and go back."),
    ]

    def __init__(
        self, title: str, message: str, *, yes: str = "Yes", no: str = "No", danger: bool = False
    ) -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.message = message
        self.yes_label = yes
        self.no_label = no
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, id="confirm-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self.yes_label} (y)", id="confirm-yes", variant="error" if self.danger else "primary"
                )
                yield Button(f"{self.no_label} (n)", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-yes", Button).focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.dismiss(False)


# ---------------------------------------------------------------------------
# Ship


class ShipModal(ModalScreen[ShipRequest | None]):
    """Carrier (the platform's own list), tracking (required, checked), lines, then confirm."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="ship.cancel", tooltip="Close without shipping."),
        Binding(
            "ctrl+s", "submit", "Ship", id="ship.submit", tooltip="Check the tracking number and confirm."
        ),
    ]

    def __init__(self, form: ShipForm, service: ConsoleService) -> None:
        super().__init__(classes="modal")
        self.form = form
        self.service = service
        self._busy = False

    def compose(self) -> ComposeResult:
        form = self.form
        options = [(c.label, c.code) for c in form.carriers]
        with Vertical(id="ship-dialog", classes="dialog"):
            yield Label(f"Ship {form.platform.label} order {form.order_id}", classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("Carrier", classes="field-label")
                yield Select(options, value=options[0][1], allow_blank=False, id="carrier")
            with Horizontal(classes="field", id="carrier-name-row"):
                yield Label("Carrier name", classes="field-label")
                yield Input(placeholder="as printed on the label", id="carrier-name")
            with Horizontal(classes="field"):
                yield Label("Tracking", classes="field-label")
                yield Input(placeholder="required", id="tracking")
            yield Label("Quantity to ship now (0 leaves a line for later):", classes="section")
            with VerticalScroll(id="ship-lines"):
                for n, line in enumerate(form.lines):
                    with Horizontal(classes="ship-line"):
                        yield Label(f"{line.sku or line.line_id}  {line.title}"[:44], classes="line-label")
                        yield Label(f"of {line.unshipped}", classes="line-left")
                        yield Input(str(line.unshipped), id=f"qty-{n}", type="integer", classes="line-qty")
            yield Static("", id="ship-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Ship… (ctrl+s)", id="ship-ok", variant="primary")
                yield Button("Cancel (esc)", id="ship-cancel")

    def on_mount(self) -> None:
        self._show_carrier_name()
        self.query_one("#tracking", Input).focus()

    def _carrier(self) -> str:
        value = self.query_one("#carrier", Select).value
        return str(value) if value is not Select.NULL else ""

    def _is_other(self) -> bool:
        code = self._carrier()
        return any(c.code == code and c.is_other for c in self.form.carriers)

    def _show_carrier_name(self) -> None:
        self.query_one("#carrier-name-row").display = self._is_other()

    @on(Select.Changed, "#carrier")
    def _carrier_changed(self) -> None:
        self._show_carrier_name()

    def _error(self, sentence: str) -> None:
        self.query_one("#ship-error", Static).update(sentence)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#ship-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#ship-ok")
    @on(Input.Submitted)
    def _submit_event(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        if not self._busy:
            self._busy = True
            self.app.run_worker(self._submit(), group="ship-dialog", exit_on_error=False)

    def build_request(self) -> tuple[ShipRequest | None, str]:
        """The request the form describes, or a sentence saying what to fix."""
        carrier = self._carrier()
        carrier_name = self.query_one("#carrier-name", Input).value.strip() if self._is_other() else ""
        tracking = self.query_one("#tracking", Input).value.strip()
        if not carrier:
            return None, "Choose a carrier."
        if self._is_other() and not carrier_name:
            return None, "Type the carrier's name (it is sent with the tracking number)."
        if not tracking:
            return None, "A tracking number is required."
        lines: list[tuple[str, int | None]] = []
        partial = False
        for n, line in enumerate(self.form.lines):
            raw = self.query_one(f"#qty-{n}", Input).value.strip() or "0"
            if not raw.isdigit():
                return None, f"The quantity for {line.sku or line.line_id} must be a whole number."
            qty = int(raw)
            if qty > line.unshipped:
                return None, f"{line.sku or line.line_id} has only {line.unshipped} unit(s) left to ship."
            if qty < line.unshipped:
                partial = True
            if qty > 0:
                lines.append((line.line_id, qty))
        if not lines:
            return None, "Ship at least one unit, or press esc to close."
        request = ShipRequest(
            platform=self.form.platform,
            order_id=self.form.order_id,
            carrier=carrier,
            carrier_name=carrier_name,
            tracking=tracking,
            lines=lines if partial else [],
        )
        return request, ""

    async def _submit(self) -> None:
        try:
            request, problem = self.build_request()
            if request is None:
                self._error(problem)
                return
            verdict = self.service.check_tracking(
                request.platform, request.carrier, request.carrier_name, request.tracking
            )
            if not verdict.ok and verdict.hard:
                self._error(verdict.sentence)
                return
            if not verdict.ok:
                go_on = await self.app.push_screen_wait(
                    ConfirmModal(
                        "Tracking number does not match the carrier",
                        f"{verdict.sentence}\n\nSend it anyway?",
                        yes="Send anyway",
                        no="Fix it",
                    )
                )
                if not go_on:
                    self._error("Check the tracking number and the carrier.")
                    self.query_one("#tracking", Input).focus()
                    return
                request.force = True
            carrier_label = next(
                (c.label for c in self.form.carriers if c.code == request.carrier), request.carrier
            )
            if request.carrier_name:
                carrier_label = f"{carrier_label}: {request.carrier_name}"
            lines = (
                ", ".join(f"{line_id} × {qty}" for line_id, qty in request.lines)
                if request.lines
                else "every unshipped line"
            )
            confirmed = await self.app.push_screen_wait(
                ConfirmModal(
                    f"Confirm shipment to {request.platform.label}",
                    f"Order {request.order_id}\nCarrier: {carrier_label}\nTracking: {request.tracking}\n"
                    f"Lines: {lines}\n\nThis is sent to {request.platform.label} exactly once.",
                    yes="Ship",
                    no="Back",
                )
            )
            if confirmed:
                self.dismiss(request)
        finally:
            self._busy = False


# ---------------------------------------------------------------------------
# Priority


class PriorityModal(ModalScreen[Priority | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="priority.cancel", tooltip="Keep the priority."),
    ]

    def __init__(self, job_id: str, current: Priority) -> None:
        super().__init__(classes="modal")
        self.job_id = job_id
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="priority-dialog", classes="dialog"):
            yield Label(f"Priority of job {self.job_id}", classes="dialog-title")
            yield OptionList(
                Option("rush — before every normal job", id=Priority.RUSH.value),
                Option("normal", id=Priority.NORMAL.value),
                Option("low — after every normal job", id=Priority.LOW.value),
                id="priority-options",
            )

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = [Priority.RUSH, Priority.NORMAL, Priority.LOW].index(self.current)
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Priority(str(event.option.id)))

    def action_cancel(self) -> None:
        self.dismiss(None)


# ---------------------------------------------------------------------------
# Classify


@dataclass(frozen=True, slots=True)
class UnknownItem:
    line_id: str
    sku: str
    title: str


@dataclass(frozen=True, slots=True)
class ClassifyChoice:
    sku: str
    kind: ItemKind
    profile: str
    platform: Platform | None


class ClassifyModal(ModalScreen[ClassifyChoice | None]):
    """Write a catalog rule for an unknown SKU: printed (with a profile) or from stock."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="classify.cancel", tooltip="Close without a rule."),
        Binding("ctrl+s", "submit", "Save rule", id="classify.submit", tooltip="Write the rule."),
    ]

    def __init__(
        self, platform: Platform, order_id: str, items: list[UnknownItem], profiles: list[ProfileChoice]
    ):
        super().__init__(classes="modal")
        self.platform = platform
        self.order_id = order_id
        self.items = items
        self.profiles = profiles

    def compose(self) -> ComposeResult:
        with Vertical(id="classify-dialog", classes="dialog"):
            yield Label(
                f"Classify an item of {self.platform.label} order {self.order_id}", classes="dialog-title"
            )
            with Horizontal(classes="field"):
                yield Label("Item", classes="field-label")
                yield Select(
                    [(f"{i.sku}  {i.title}"[:50], n) for n, i in enumerate(self.items)],
                    value=0,
                    allow_blank=False,
                    id="classify-item",
                )
            with Horizontal(classes="field"):
                yield Label("Kind", classes="field-label")
                yield Select(
                    [("printed here", ItemKind.PRINT.value), ("from stock", ItemKind.STOCK.value)],
                    value=ItemKind.PRINT.value,
                    allow_blank=False,
                    id="classify-kind",
                )
            with Horizontal(classes="field", id="profile-row"):
                yield Label("Profile", classes="field-label")
                yield Select(
                    [(f"{p.name} ({p.description})"[:50], p.name) for p in self.profiles],
                    prompt="choose a print profile",
                    id="classify-profile",
                )
            yield Checkbox(f"Only for {self.platform.label} listings", id="classify-platform")
            yield Static("", id="classify-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save rule (ctrl+s)", id="classify-ok", variant="primary")
                yield Button("Cancel (esc)", id="classify-cancel")

    def on_mount(self) -> None:
        self.query_one("#classify-kind", Select).focus()

    @on(Select.Changed, "#classify-kind")
    def _kind_changed(self) -> None:
        self.query_one("#profile-row").display = self._kind() is ItemKind.PRINT

    def _kind(self) -> ItemKind:
        return ItemKind(str(self.query_one("#classify-kind", Select).value))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#classify-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#classify-ok")
    def _ok(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        item_value = self.query_one("#classify-item", Select).value
        item = self.items[int(str(item_value))] if item_value is not Select.NULL else self.items[0]
        kind = self._kind()
        profile_value = self.query_one("#classify-profile", Select).value
        profile = "" if profile_value is Select.NULL else str(profile_value)
        if kind is ItemKind.PRINT and not profile:
            self.query_one("#classify-error", Static).update("Choose the print profile that makes this item.")
            return
        if not item.sku:
            self.query_one("#classify-error", Static).update(
                "This item has no SKU; add a title rule to catalog.toml instead (`tf-console catalog check`)."
            )
            return
        only_here = self.query_one("#classify-platform", Checkbox).value
        self.dismiss(
            ClassifyChoice(
                sku=item.sku,
                kind=kind,
                profile=profile if kind is ItemKind.PRINT else "",
                platform=self.platform if only_here else None,
            )
        )
