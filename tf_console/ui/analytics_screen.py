"""The analytics screen (``a``): the report's numbers with charts.

Orders per platform per day, time to ship per platform per day, and the print
queue's scheduled hours against printer capacity for the next week; below them
the per-platform totals and the production and API figures.  The screen talks
only to a report source (:class:`tf_console.analytics.AnalyticsService` in the
console) and computes nothing itself; the report is built in a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from tf_console.analytics.render import money_text
from tf_console.analytics.report import PlatformDay, Report
from tf_console.models import Platform

STYLESHEET = "analytics.tcss"
_REPOSITORY_STYLES = Path(__file__).resolve().parent.parent.parent / "styles"
_PACKAGE_STYLES = Path(__file__).resolve().parent / "styles"

DAY_CHOICES: tuple[int, ...] = (7, 14, 30, 90)
COLOURS: dict[Platform, str] = {
    Platform.AMAZON: "orange",
    Platform.EBAY: "blue",
    Platform.ETSY: "green",
    Platform.TEST: "magenta",
}
#: above this many days, bars get too thin: the daily charts become lines
BARS_UP_TO_DAYS = 14


def stylesheet() -> Path:
    """The repository's ``styles/analytics.tcss`` in a checkout, the packaged copy otherwise."""
    repository = _REPOSITORY_STYLES / STYLESHEET
    return repository if repository.is_file() else _PACKAGE_STYLES / STYLESHEET


class ReportSource(Protocol):
    async def report_async(self, days: int) -> Report: ...


def _one(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _money(row: PlatformDay) -> str:
    if row.proceeds and not row.buyer_paid:
        return f"{money_text(row.proceeds)} (proceeds)"
    if row.proceeds:
        return f"{money_text(row.buyer_paid)}; proceeds {money_text(row.proceeds)}"
    return money_text(row.buyer_paid)


def summary_text(report: Report) -> str:
    """Production and API figures in a few lines."""
    lines: list[str] = []
    production = report.production
    if production is None:
        lines.append("Production: no print queue.")
    elif production.printers == 0:
        lines.append(f"Queue {production.queued_hours:.1f} h; no printer is enabled (printers.toml)")
    else:
        work = production.days_of_work
        lines.append(
            f"Queue {production.queued_hours:.1f} h on {production.printers} printer(s), "
            f"{production.capacity_hours_per_day:.0f} printer-h/day"
            + (f" ({work:.1f} days of work)" if work is not None else "")
        )
        lines.append(f"{production.late_orders} order(s) projected late")
        if production.estimate_ratio is not None:
            lines.append(
                f"Prints take {production.estimate_ratio:.2f}× the slicer estimate "
                f"({production.learned_runs} plates)"
            )
        lines.append(f"Plates: {production.plates_printed} printed, {production.plates_failed} failed")
    for api in report.api:
        rate = api.success_rate
        shown = "—" if rate is None else f"{rate:.1%}"
        throttled = f", {api.throttled}×429" if api.throttled else ""
        lines.append(f"{api.platform.label} API: {shown} of {api.calls} calls ok{throttled}")
    return "\n".join(lines)


class AnalyticsScreen(Screen[None]):
    CSS_PATH = stylesheet()
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="analytics.back"),
        Binding("r", "refresh_report", "Refresh", id="analytics.refresh"),
        Binding("d", "next_days", "Days", id="analytics.days", tooltip="Show 7, 14, 30 or 90 days."),
    ]

    def __init__(self, source: ReportSource, *, days: int = DAY_CHOICES[0]) -> None:
        super().__init__()
        self.source = source
        self.days = days
        self.report: Report | None = None

    def compose(self) -> ComposeResult:
        yield Static("Analytics — loading…", id="analytics-title")
        with Horizontal(id="analytics-top"):
            yield PlotextPlot(id="orders-chart")
            yield PlotextPlot(id="ship-chart")
        with Horizontal(id="analytics-middle"):
            yield PlotextPlot(id="queue-chart")
            yield Static("", id="analytics-summary")
        yield DataTable(id="analytics-totals", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#analytics-totals", DataTable)
        table.add_columns(
            "Platform", "Orders", "Units", "Money", "Avg h", "P90 h", "Late", "Overdue", "Cancel"
        )
        self.load()

    @work(exclusive=True, group="analytics")
    async def load(self) -> None:
        report = await self.source.report_async(self.days)
        self.show(report)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_refresh_report(self) -> None:
        self.load()

    def action_next_days(self) -> None:
        index = DAY_CHOICES.index(self.days) if self.days in DAY_CHOICES else -1
        self.days = DAY_CHOICES[(index + 1) % len(DAY_CHOICES)]
        self.load()

    # ------------------------------------------------------------------ drawing

    def show(self, report: Report) -> None:
        self.report = report
        self.query_one("#analytics-title", Static).update(
            f"Analytics — {report.first_day:%d %b} to {report.last_day:%d %b} "
            f"({report.days} days, {report.timezone}); d: change days, r: refresh"
        )
        self._orders_chart(report)
        self._ship_chart(report)
        self._queue_chart(report)
        self.query_one("#analytics-summary", Static).update(summary_text(report))
        table = self.query_one("#analytics-totals", DataTable)
        table.clear()
        for total in report.totals:
            table.add_row(
                total.platform.label,
                str(total.orders),
                str(total.units),
                _money(total),
                _one(total.avg_ship_hours),
                _one(total.p90_ship_hours),
                str(total.late_shipments),
                str(total.overdue),
                str(total.cancelled),
                key=total.platform.value,
            )

    def _day_axis(self, report: Report) -> tuple[list[float], list[str]]:
        first = report.series(report.platforms[0]) if report.platforms else []
        labels = [f"{row.day:%m-%d}" if row.day is not None else "" for row in first]
        return [float(x) for x in range(1, len(labels) + 1)], labels

    def _orders_chart(self, report: Report) -> None:
        chart = self.query_one("#orders-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Orders per day")
        xs, labels = self._day_axis(report)
        most = max((row.orders for row in report.rows), default=0)
        plt.ylim(0, _headroom(most))
        if report.platforms and report.days <= BARS_UP_TO_DAYS:
            # textual-plotext's stub names these "label" and a single colour; plotext itself
            # takes one label and one colour per series.
            plt.multiple_bar(  # type: ignore[call-arg]
                labels,
                [[row.orders for row in report.series(p)] for p in report.platforms],
                labels=[p.label for p in report.platforms],
                color=[COLOURS[p] for p in report.platforms],  # type: ignore[arg-type]
            )
        else:
            for platform in report.platforms:
                ys = [row.orders for row in report.series(platform)]
                plt.plot(xs, ys, label=platform.label, color=COLOURS[platform], marker="braille")
            _sparse_ticks(plt, xs, labels)
        chart.refresh()

    def _ship_chart(self, report: Report) -> None:
        chart = self.query_one("#ship-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Hours from order to ship (average)")
        xs, labels = self._day_axis(report)
        drawn = False
        for platform in report.platforms:
            points = [
                (x, row.avg_ship_hours)
                for x, row in zip(xs, report.series(platform), strict=True)
                if row.avg_ship_hours is not None
            ]
            if points:
                drawn = True
                plt.plot(
                    [x for x, _ in points],
                    [round(y, 1) for _, y in points],
                    label=platform.label,
                    color=COLOURS[platform],
                    marker="dot",
                )
        if drawn:
            longest = max((row.avg_ship_hours or 0.0 for row in report.rows), default=0.0)
            plt.ylim(0, _headroom(longest))
            plt.xlim(0.5, len(xs) + 0.5)
            _sparse_ticks(plt, xs, labels)
        else:
            plt.title("Hours from order to ship: no shipments in the window")
        chart.refresh()

    def _queue_chart(self, report: Report) -> None:
        chart = self.query_one("#queue-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        production = report.production
        if production is None or not production.forecast or production.printers == 0:
            plt.title("Print queue: no printer is enabled")
            chart.refresh()
            return
        plt.title("Print hours scheduled vs capacity, next 7 days")
        xs = [float(x) for x in range(1, len(production.forecast) + 1)]
        labels = [f"{d.day:%a}" for d in production.forecast]
        plt.bar(xs, [d.scheduled_hours for d in production.forecast], label="scheduled h", color="cyan")
        plt.plot(xs, [d.capacity_hours for d in production.forecast], label="capacity h", color="red")
        plt.xticks(xs, labels)
        plt.ylim(0, _headroom(max(d.capacity_hours for d in production.forecast)))
        chart.refresh()


def _headroom(highest: float) -> float:
    """The y-axis top: room above the highest value for the legend in the top-left corner."""
    return max(1.0, highest * 1.6)


def _sparse_ticks(plt: Plot, xs: list[float], labels: list[str]) -> None:
    """At most about eight day labels under a chart, evenly spread."""
    step = max(1, len(xs) // 8)
    plt.xticks(xs[::step], labels[::step])
