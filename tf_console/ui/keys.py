"""Every key of the console in one table: the footer, the ``?`` help screen and the
command palette are all built from it, and every binding has an id (so a keymap
can rebind it).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True, slots=True)
class KeySpec:
    id: str
    keys: str  # Textual key names, comma-separated
    action: str
    description: str  # footer label
    help: str  # one line for the help screen and the palette
    show: bool = True
    priority: bool = False
    writes_marketplace: bool = False  # refused in --read-only

    @property
    def display(self) -> str:
        names = {
            "question_mark": "?",
            "slash": "/",
            "escape": "esc",
            "enter": "enter",
            "shift+up": "shift+↑",
            "shift+down": "shift+↓",
        }
        return " / ".join(names.get(k, k) for k in self.keys.split(","))

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.description,
            show=self.show,
            priority=self.priority,
            tooltip=self.help,
            id=self.id,
            key_display=self.display.split(" / ")[0],
        )


APP_KEYS: tuple[KeySpec, ...] = (
    KeySpec("app.help", "question_mark", "help", "Help", "Show every key and the filter syntax."),
    KeySpec("app.health", "H", "health", "Health", "Open the health view: requests, errors, tokens, outbox."),
    KeySpec(
        "app.stock",
        "i",
        "open_view('stock')",
        "Stock",
        "Open the stock screen: counts, availability, each marketplace's push; adjust a count.",
    ),
    KeySpec(
        "app.analytics",
        "a",
        "open_view('analytics')",
        "Analytics",
        "Open the analytics screen: orders per platform and day, time to ship, print hours vs capacity.",
    ),
    KeySpec("app.quit", "q", "request_quit", "Quit", "Quit the console (asks first; the outbox is kept)."),
    KeySpec(
        "app.quit_ctrl",
        "ctrl+q",
        "request_quit",
        "Quit",
        "Quit the console (asks first, like q).",
        show=False,
        priority=True,
    ),
)

DASHBOARD_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "orders.ship",
        "s",
        "ship",
        "Ship",
        "Mark the selected order shipped: carrier, tracking, lines, confirm.",
        writes_marketplace=True,
    ),
    KeySpec("console.detail", "enter", "detail", "Detail", "Open the selected order or job."),
    KeySpec(
        "orders.filter", "slash", "filter", "Filter", "Filter and search every order, archived ones too."
    ),
    KeySpec("orders.sort", "o", "sort", "Sort", "Sort the orders: newest, ship-by, total, platform, status."),
    KeySpec("queue.up", "K,shift+up", "move_up", "Job up", "Move the selected job one place up (pins it)."),
    KeySpec("queue.down", "J,shift+down", "move_down", "Job down", "Move the selected job one place down."),
    KeySpec("queue.top", "t", "move_top", "Top", "Move the selected job to the top of the queue."),
    KeySpec("queue.unpin", "u", "unpin", "Unpin", "Let the scheduler place the selected job again."),
    KeySpec(
        "queue.priority", "p", "priority", "Priority", "Set the selected job's priority: rush, normal, low."
    ),
    KeySpec("queue.hold", "h", "hold", "Hold", "Hold the selected job, or release it when held."),
    KeySpec(
        "orders.classify",
        "c",
        "classify",
        "Classify",
        "Classify an unknown item of the selected order (writes a catalog rule).",
    ),
    KeySpec("console.poll", "r", "poll_now", "Poll", "Poll every marketplace now (or ask the daemon to)."),
    KeySpec(
        "pane.zoom", "z", "zoom", "Zoom", "Give the focused pane the whole screen, or bring back all three."
    ),
    KeySpec("console.back", "escape", "back", "Back", "Close the filter or go back.", show=False),
    KeySpec(
        "pane.health", "1", "focus_pane('health')", "Platforms", "Focus the platform health pane.", show=False
    ),
    KeySpec(
        "pane.orders", "2", "focus_pane('orders')", "Orders", "Focus the incoming orders pane.", show=False
    ),
    KeySpec(
        "pane.queue", "3", "focus_pane('queue')", "Queue", "Focus the production queue pane.", show=False
    ),
)

DETAIL_KEYS: tuple[KeySpec, ...] = (
    KeySpec("detail.back", "escape", "back", "Back", "Back to the dashboard."),
    KeySpec(
        "detail.reveal",
        "v",
        "reveal",
        "Reveal",
        "Show or mask the buyer's name, address and personalisation.",
    ),
    KeySpec(
        "detail.ship",
        "s",
        "ship",
        "Ship",
        "Mark this order shipped.",
        writes_marketplace=True,
    ),
    KeySpec("detail.classify", "c", "classify", "Classify", "Classify an unknown item of this order."),
)

JOB_KEYS: tuple[KeySpec, ...] = (
    KeySpec("job.back", "escape", "back", "Back", "Back to the dashboard."),
    KeySpec("job.order", "o", "open_order", "Order", "Open the job's order."),
)

HEALTH_KEYS: tuple[KeySpec, ...] = (
    KeySpec("health.back", "escape", "back", "Back", "Back to the dashboard."),
    KeySpec(
        "health.test",
        "T",
        "test_connection",
        "Test connection",
        "Make one cheap authenticated call to the platform shown.",
    ),
    KeySpec("health.poll", "r", "poll_now", "Poll", "Poll every marketplace now."),
    KeySpec("health.next", "right,l", "next_platform", "Next", "Show the next platform.", show=False),
    KeySpec(
        "health.previous", "left", "previous_platform", "Previous", "Show the previous platform.", show=False
    ),
)

ALL_SCOPES: tuple[tuple[str, tuple[KeySpec, ...]], ...] = (
    ("Everywhere", APP_KEYS),
    ("Dashboard", DASHBOARD_KEYS),
    ("Order detail", DETAIL_KEYS),
    ("Job detail", JOB_KEYS),
    ("Health view", HEALTH_KEYS),
)


def bindings(specs: tuple[KeySpec, ...]) -> list[BindingType]:
    return [spec.binding() for spec in specs]
