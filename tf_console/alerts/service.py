"""The alert service: watches the sync engine, evaluates the rules, delivers the events.

:func:`install_alerts` hooks a :class:`AlertService` into a runtime's engine:

* every poll result and outbox change marks the rules due, and the engine's
  periodic hook (run by the lease holder after each round of polls and
  deliveries) evaluates them — and at least once a minute anyway, so time-based
  rules (ship-by, credential ages, the clear hold) move on without polls;
* a daily periodic job (its first run at start) makes one cheap authenticated
  call per platform (:meth:`AlertService.check_credentials`; the console's
  health view calls the same on demand);
* events go to the listeners (the console's banner and notification) at once,
  and are owed to e-mail and TF_ALERT_COMMAND in ``alerts.json``: retried with
  backoff, given up after a day, so an SMTP hiccup or a restart loses none.

Only the lease holder evaluates; any process reads the state
(:meth:`active_alerts`, :meth:`events_after`) — that is how an attached console
shows the banner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from tf_console.alerts.credentials import LIFETIMES, CredentialAges, credential_ages
from tf_console.alerts.delivery import Channel, CommandChannel, DeliveryError, EmailChannel, parse_recipients
from tf_console.alerts.model import ActiveAlert, AlertEvent, Condition, Thresholds
from tf_console.alerts.rules import (
    CallStats,
    CancelWhilePrinting,
    Observations,
    OverdueOrder,
    Quota,
    RejectedItem,
    evaluate_rules,
)
from tf_console.alerts.state import (
    AlertState,
    AlertStateFile,
    CheckResult,
    PendingDelivery,
    PlatformTrack,
    queue_deliveries,
    reconcile,
)
from tf_console.config import Settings
from tf_console.marketplaces.base import (
    Marketplace,
    MarketplaceError,
    OutcomeUnknown,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.redact import REDACTOR, Redactor
from tf_console.models import FulfilledBy, JobState, OrderStatus, Platform, ShipmentState
from tf_console.sync.outbox import OutboxItem, OutboxKind, OutboxState, outbox_collection
from tf_console.sync.poller import PollResult

if TYPE_CHECKING:
    from tf_console.runtime import Runtime
    from tf_console.sync.engine import SyncEngine

log = logging.getLogger(__name__)

#: the periodic hook runs every engine round; it evaluates when something happened or this long passed
EVALUATE_EVERY = 60.0
TICK = 0.0  # every round: the hook itself decides whether anything is due
CHECK_EVERY = 24 * 3600.0
CHECK_TIMEOUT = 60.0
CALL_WINDOW = timedelta(hours=1)
RETRY_FIRST = 60.0
RETRY_MAX = 1800.0
GIVE_UP_AFTER = timedelta(days=1)
_ERROR_CHARS = 300

AlertListener = Callable[[AlertEvent], None]
T = TypeVar("T")


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    recipients = parse_recipients(settings.alert_email_to)
    if settings.smtp_url is not None and recipients:
        channels["email"] = EmailChannel(settings.smtp_url, recipients, sender=settings.smtp_from)
    if settings.alert_command:
        channels["command"] = CommandChannel(settings.alert_command, timeout=settings.alert_command_timeout)
    return channels


def apply_poll(
    tracks: dict[str, PlatformTrack], result: PollResult, now: datetime, redactor: Redactor
) -> None:
    """Extend or end a platform's run of failed polls."""
    track = tracks.setdefault(result.platform.value, PlatformTrack())
    at = result.finished_at or now
    track.last_poll_at = at
    if result.ok:
        track.failures = 0
        track.failing_since = None
        track.last_error = ""
        return
    track.failures += 1
    if track.failing_since is None:
        track.failing_since = result.started_at or at
    track.last_error = redactor.scrub(result.error)[:_ERROR_CHARS]


class AlertService:
    def __init__(
        self,
        runtime: Runtime,
        *,
        thresholds: Thresholds | None = None,
        channels: Mapping[str, Channel] | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self.runtime = runtime
        self.clock = runtime.clock
        self.thresholds = thresholds or Thresholds.from_settings(runtime.settings)
        self.channels: dict[str, Channel] = (
            dict(channels) if channels is not None else channels_from_settings(runtime.settings)
        )
        self.redactor = redactor
        self.state_file = AlertStateFile(runtime.ctx.data_dir, lock=self._lock)
        self.ages = CredentialAges(runtime.ctx.data_dir, lock=self._lock, clock=self.clock)
        self._listeners: list[AlertListener] = []
        self._polls: list[PollResult] = []
        self._polls_lock = threading.Lock()
        self._dirty = True
        self._last_evaluation: float | None = None

    def __repr__(self) -> str:
        return f"AlertService({sorted(self.channels)})"

    def _lock(self) -> AbstractContextManager[None]:
        return self.runtime.store.lock()

    # ------------------------------------------------------------------ wiring

    def attach(self, engine: SyncEngine) -> None:
        engine.listeners.poll_finished.append(self.observe_poll)
        engine.listeners.outbox_changed.append(self.observe_outbox)
        engine.periodic.append(("alerts", TICK, self.tick))
        engine.periodic.append(("credential-check", CHECK_EVERY, self._scheduled_check))

    def subscribe(self, listener: AlertListener) -> Callable[[], None]:
        """Call ``listener(event)`` on the event loop for every event this process produces."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def observe_poll(self, result: PollResult) -> None:
        with self._polls_lock:
            self._polls.append(result)
        self._dirty = True

    def observe_outbox(self, item: OutboxItem) -> None:
        self._dirty = True

    # ------------------------------------------------------------------ reading (any process)

    def state(self) -> AlertState:
        return self.state_file.read()

    def active_alerts(self) -> list[ActiveAlert]:
        return self.state_file.read().sorted_active()

    def latest_seq(self) -> int:
        return self.state_file.read().seq

    def events_after(self, seq: int) -> list[AlertEvent]:
        return [e for e in self.state_file.read().recent if e.seq > seq]

    def stamp(self) -> int:
        return self.state_file.stamp()

    # ------------------------------------------------------------------ evaluation (lease holder)

    async def tick(self) -> None:
        """The engine's periodic hook: evaluate when due, then send what is owed."""
        now = self.clock.monotonic()
        if self._dirty or self._last_evaluation is None or now - self._last_evaluation >= EVALUATE_EVERY:
            await self.evaluate()
        await self.deliver_due()

    async def evaluate(self) -> list[AlertEvent]:
        self._dirty = False
        self._last_evaluation = self.clock.monotonic()
        events: list[AlertEvent] = await anyio.to_thread.run_sync(self.evaluate_blocking)
        self._announce(events)
        return events

    def _announce(self, events: Iterable[AlertEvent]) -> None:
        for event in events:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # the UI's trouble must never stop alerting
                    log.exception("alert listener failed")

    def evaluate_blocking(self) -> list[AlertEvent]:
        now = self.clock.now()
        with self._polls_lock:
            polls, self._polls = self._polls, []
        configured = self._configured_credentials()
        if not self.runtime.read_only:
            self.ages.observe(configured)
        platforms = tuple(self.runtime.marketplaces)
        calls, quotas = self._call_health(platforms, now)
        credentials = credential_ages(
            self.ages.records(),
            configured,
            rotated_at=self._rotations(configured),
            known_expiry=self._reported_expiry(configured),
        )
        rejected = self._guard("outbox", lambda: self._rejected(now))
        overdue, cancels = self._guard("orders", lambda: self._orders_and_jobs(now)) or (None, None)
        tz = self.runtime.settings.tzinfo

        def change(state: AlertState) -> list[AlertEvent]:
            for result in polls:
                apply_poll(state.tracks, result, now, self.redactor)
            obs = Observations(
                now=now,
                tz=tz,
                platforms=platforms,
                tracks=state.tracks,
                checks=state.checks,
                calls=calls,
                quotas=quotas,
                credentials=credentials,
                rejected=rejected,
                overdue=overdue,
                cancels=cancels,
            )
            conditions, ran = evaluate_rules(obs, self.thresholds)
            events = reconcile(
                state,
                [self._scrubbed(c) for c in conditions],
                now,
                self.thresholds.clear_after,
                evaluated=ran,
            )
            queue_deliveries(state, events, {name: True for name in self.channels}, now)
            return events

        events: list[AlertEvent] = self.state_file.update(change)
        return events

    def _scrubbed(self, condition: Condition) -> Condition:
        scrub = self.redactor.scrub
        return Condition(
            condition.rule,
            condition.subject,
            condition.severity,
            scrub(condition.title),
            scrub(condition.sentence),
            condition.since,
        )

    @staticmethod
    def _guard(what: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except Exception as exc:  # an unreadable input skips its rules; it must not stop the others
            log.warning("alert rules on the %s were skipped: %s", what, type(exc).__name__)
            return None

    # -- inputs ------------------------------------------------------------------------

    def _configured_credentials(self) -> dict[str, str]:
        settings = self.runtime.settings
        return {name: value for name in LIFETIMES if (value := settings.value(name))}

    def _rotations(self, configured: Mapping[str, str]) -> dict[str, datetime]:
        """When tf-console itself last renewed a rotating token (the token vault)."""
        ctx = self.runtime.ctx
        if not ctx.vault_path.exists():
            return {}
        rotated: dict[str, datetime] = {}
        try:
            vault = ctx.vault()
            for name in LIFETIMES:
                entry = vault.entry(name)
                if entry is not None and vault.persisted_wins(name, configured.get(name)):
                    rotated[name] = entry.stored_at
        except Exception as exc:
            log.warning("the token vault could not be read for credential ages: %s", type(exc).__name__)
        return rotated

    def _reported_expiry(self, configured: Mapping[str, str]) -> dict[str, datetime]:
        """eBay tells when an Auth'n'Auth token expires (HardExpirationWarning)."""
        token = configured.get("EBAY_USER_TOKEN", "")
        health = self.runtime.health(Platform.EBAY)
        if health is None or not token.startswith("AgAAAA"):
            return {}
        expires = health.snapshot().token_expires_at
        return {"EBAY_USER_TOKEN": expires} if expires is not None else {}

    def _call_health(
        self, platforms: tuple[Platform, ...], now: datetime
    ) -> tuple[dict[Platform, CallStats], dict[Platform, Quota]]:
        calls: dict[Platform, CallStats] = {}
        quotas: dict[Platform, Quota] = {}
        for platform in platforms:
            health = self.runtime.health(platform)
            if health is None:
                continue
            recent = [r for r in health.records() if r.kind == "call" and r.at >= now - CALL_WINDOW]
            if recent:
                failed = [r for r in recent if not r.ok]
                calls[platform] = CallStats(
                    calls=len(recent),
                    ok=len(recent) - len(failed),
                    last_problem=failed[-1].message if failed else "",
                )
            snapshot = health.snapshot()
            if snapshot.daily_budget and snapshot.daily_remaining is not None:
                quotas[platform] = Quota(remaining=snapshot.daily_remaining, budget=snapshot.daily_budget)
        return calls, quotas

    def _rejected(self, now: datetime) -> list[RejectedItem]:
        store = self.runtime.store
        horizon = now - timedelta(days=self.thresholds.rejected_shipment_days)
        found: list[RejectedItem] = []
        for item in outbox_collection(store).all():
            if item.state is not OutboxState.REJECTED or item.updated_at < horizon:
                continue
            order_open: bool | None = None
            if item.kind is OutboxKind.SHIPMENT:
                order = store.orders.get(item.platform, item.order_id)
                order_open = order is not None and order.is_open
            found.append(
                RejectedItem(
                    item_id=item.item_id,
                    kind=item.kind.value,
                    platform=item.platform,
                    order_id=item.order_id,
                    sku=item.sku,
                    answer=item.answer,
                    rejected_at=item.updated_at,
                    order_open=order_open,
                )
            )
        return found

    def _orders_and_jobs(self, now: datetime) -> tuple[list[OverdueOrder], list[CancelWhilePrinting]]:
        overdue: list[OverdueOrder] = []
        cancelling: dict[str, tuple[Platform, str, bool]] = {}
        # Hot shards hold every open order; PII is not decrypted for this.
        for order in self.runtime.store.orders.iter_all(include_archive=False, include_pii=False):
            if order.cancel_requested or order.status is OrderStatus.CANCELLED:
                cancelling[order.key] = (
                    order.platform,
                    order.order_id,
                    order.status is OrderStatus.CANCELLED,
                )
            if (
                order.ship_by is not None
                and order.ship_by < now
                and order.status in (OrderStatus.UNSHIPPED, OrderStatus.PARTIALLY_SHIPPED)
                and order.fulfilled_by is FulfilledBy.MERCHANT
                and not order.cancel_requested
                and not any(
                    s.state in (ShipmentState.REQUESTED, ShipmentState.UNKNOWN) for s in order.shipments
                )
            ):
                overdue.append(OverdueOrder(order.platform, order.order_id, order.ship_by))
        cases: dict[str, CancelWhilePrinting] = {}
        for job in self.runtime.production.jobs():
            if job.state not in (JobState.PRINTING, JobState.PRINTED):
                continue
            key = f"{job.platform.value}:{job.order_id}"
            found = cancelling.get(key)
            if found is None:
                continue
            platform, order_id, cancelled = found
            if cancelled and job.state is not JobState.PRINTING:
                continue  # printed units of a cancelled order are withdrawn as spare: nothing to decide
            if key in cases and cases[key].job_state == JobState.PRINTING.value:
                continue
            cases[key] = CancelWhilePrinting(platform, order_id, job.state.value, cancelled)
        return overdue, list(cases.values())

    # ------------------------------------------------------------------ credential checks

    async def _scheduled_check(self) -> None:
        await self.check_credentials()

    async def check_credentials(
        self, platforms: Iterable[Platform] | None = None
    ) -> dict[Platform, CheckResult]:
        """One cheap authenticated call per platform (all enabled ones by default); the results
        are kept for the credential-check rule and ``doctor``."""
        wanted = set(platforms) if platforms is not None else None
        results: dict[Platform, CheckResult] = {}
        for platform, market in self.runtime.marketplaces.items():
            if wanted is None or platform in wanted:
                results[platform] = await self._check_one(platform, market)
        if results:
            await anyio.to_thread.run_sync(self.record_checks, results)
        return results

    async def _check_one(self, platform: Platform, market: Marketplace) -> CheckResult:
        label = platform.label
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                check = await market.check_credentials()
        except TimeoutError:
            return CheckResult(
                at=self.clock.now(),
                ok=None,
                sentence=f"{label} did not answer within {CHECK_TIMEOUT:.0f} s; nothing was checked.",
            )
        except ReauthNeeded as exc:
            return CheckResult(at=self.clock.now(), ok=False, sentence=exc.sentence)
        except (TransientError, OutcomeUnknown) as exc:
            return CheckResult(at=self.clock.now(), ok=None, sentence=exc.sentence)
        except MarketplaceError as exc:
            return CheckResult(at=self.clock.now(), ok=False, sentence=exc.sentence)
        except Exception as exc:  # a bug in one platform's check must not hide the others'
            log.exception("the %s credential check failed unexpectedly", platform.value)
            return CheckResult(
                at=self.clock.now(),
                ok=None,
                sentence=f"The {label} check failed unexpectedly ({type(exc).__name__}); see the log.",
            )
        return CheckResult(at=self.clock.now(), ok=check.ok, sentence=check.sentence)

    def record_checks(self, results: Mapping[Platform, CheckResult]) -> None:
        """Keep check results (also from the console's on-demand check) for the next evaluation."""

        def change(state: AlertState) -> None:
            for platform, result in results.items():
                state.checks[platform.value] = result.model_copy(
                    update={"sentence": self.redactor.scrub(result.sentence)[:_ERROR_CHARS]}
                )

        self.state_file.update(change)
        self._dirty = True

    # ------------------------------------------------------------------ delivery (lease holder)

    async def deliver_due(self) -> int:
        """Send what is owed and due; returns how many deliveries went through."""
        now = self.clock.now()
        state = await anyio.to_thread.run_sync(self.state_file.read)
        due = [p for p in state.pending if p.next_at <= now or p.channel not in self.channels]
        if not due:
            return 0
        outcomes: list[tuple[PendingDelivery, str | None]] = []
        for pending in due:
            channel = self.channels.get(pending.channel)
            if channel is None:
                outcomes.append((pending, None))  # the channel was unconfigured: nothing owed any more
                continue
            try:
                await anyio.to_thread.run_sync(channel.send, pending.events)
            except DeliveryError as exc:
                outcomes.append((pending, str(exc)))
            except Exception as exc:  # a bug in a channel must not stop polling or other deliveries
                log.exception("alert delivery over %s failed", pending.channel)
                outcomes.append((pending, f"The {pending.channel} delivery failed ({type(exc).__name__})."))
            else:
                outcomes.append((pending, None))
        await anyio.to_thread.run_sync(self._settle, outcomes, now)
        return sum(1 for pending, problem in outcomes if problem is None and pending.channel in self.channels)

    def _settle(self, outcomes: list[tuple[PendingDelivery, str | None]], now: datetime) -> None:
        def identity(p: PendingDelivery) -> tuple[str, tuple[int, ...]]:
            return p.channel, tuple(e.seq for e in p.events)

        results = {identity(p): problem for p, problem in outcomes}

        def change(state: AlertState) -> None:
            kept: list[PendingDelivery] = []
            for pending in state.pending:
                key = identity(pending)
                if key not in results:
                    kept.append(pending)
                    continue
                problem = results[key]
                if problem is None:
                    if pending.channel in self.channels:
                        state.delivery_problems[pending.channel] = ""
                    continue
                problem = self.redactor.scrub(problem)
                attempts = pending.attempts + 1
                if now - pending.first_at >= GIVE_UP_AFTER:
                    state.delivery_problems[pending.channel] = (
                        f"{problem} Gave up on {len(pending.events)} alert(s) after trying for a day."
                    )
                    log.warning("gave up delivering alerts over %s: %s", pending.channel, problem)
                    continue
                delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (attempts - 1))
                state.delivery_problems[pending.channel] = problem
                log.warning("alert delivery over %s failed: %s", pending.channel, problem)
                kept.append(
                    pending.model_copy(
                        update={
                            "attempts": attempts,
                            "next_at": now + timedelta(seconds=delay),
                            "last_problem": problem,
                        }
                    )
                )
            state.pending = kept

        self.state_file.update(change)


def install_alerts(runtime: Runtime, on_alert: AlertListener | None = None) -> AlertService:
    """Build the alert service on ``runtime`` (after :meth:`Runtime.open` built the engine) and
    hook it into the engine; ``on_alert`` gets every event this process produces."""
    service = AlertService(runtime)
    if on_alert is not None:
        service.subscribe(on_alert)
    service.attach(runtime.engine)
    return service
