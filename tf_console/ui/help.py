"""The ``?`` help screen: every key of every screen, and the filter syntax."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tf_console.console.summary import FILTER_HELP
from tf_console.ui.keys import ALL_SCOPES


def help_text(read_only: bool) -> RenderableType:
    parts: list[RenderableType] = []
    for scope, specs in ALL_SCOPES:
        parts.append(Text(scope, style="bold underline"))
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column("key", style="bold cyan", no_wrap=True, min_width=16)
        table.add_column("what")
        for spec in specs:
            what = spec.help
            if read_only and spec.writes_marketplace:
                what += " (off: read-only)"
            table.add_row(spec.display, what)
        parts.append(table)
        parts.append(Text(""))
    parts.append(Text("Filter (/)", style="bold underline"))
    parts.append(Text(FILTER_HELP))
    parts.append(Text(""))
    parts.append(
        Text(
            "Every action is also in the command palette (ctrl+p). Panes: ↑/↓ move, page up/down, "
            "home/end; 1 2 3 jump to a pane.",
            style="dim",
        )
    )
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close", tooltip="Close the help."),
    ]

    def __init__(self, read_only: bool = False) -> None:
        super().__init__(classes="modal")
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static(Text("Keys", style="bold"), classes="dialog-title")
            yield Static(help_text(self.read_only), id="help-body")

    def action_close(self) -> None:
        self.dismiss(None)
