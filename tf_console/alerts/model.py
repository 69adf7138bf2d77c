"""What an alert is: a condition a rule found, the events it produces, and the thresholds.

A rule looks at what the console knows (poll results, call health, credential ages,
the outbox, open orders, print jobs) and returns :class:`Condition`\\ s, each under a
stable key (``platform_failing:amazon``, ``ship_by_overdue:etsy:123``).  The alert
engine turns a key appearing into one ``fired`` :class:`AlertEvent` and a key that
stayed absent for the hold time into one ``cleared`` event.  Texts name order keys,
SKUs and variable names — never a buyer, an address or a secret.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from tf_console.models import UtcDatetime

if TYPE_CHECKING:
    from tf_console.config import Settings

EVENT_FORMAT_VERSION = 1


class Severity(enum.StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return 0 if self is Severity.CRITICAL else 1


class Rule(enum.StrEnum):
    PLATFORM_FAILING = "platform_failing"
    SUCCESS_RATE = "success_rate"
    QUOTA = "quota"
    CREDENTIAL_EXPIRING = "credential_expiring"
    CREDENTIAL_EXPIRED = "credential_expired"
    CREDENTIAL_CHECK = "credential_check"
    OUTBOX_REJECTED = "outbox_rejected"
    SHIP_BY_OVERDUE = "ship_by_overdue"
    CANCEL_WHILE_PRINTING = "cancel_while_printing"


@dataclass(frozen=True, slots=True)
class Condition:
    """Something wrong right now, as one rule sees it."""

    rule: Rule
    subject: str  # a platform id, an order key, an outbox item id or a variable name
    severity: Severity
    title: str  # a few words for a banner
    sentence: str  # what is wrong and what to do
    since: datetime | None = None  # when it began, when the rule knows; else when first seen

    @property
    def key(self) -> str:
        return f"{self.rule.value}:{self.subject}"


class AlertEvent(BaseModel):
    """One delivery: an alert started (``fired``) or ended (``cleared``)."""

    seq: int
    event: Literal["fired", "cleared"]
    key: str
    rule: Rule
    subject: str
    severity: Severity
    title: str
    sentence: str
    at: UtcDatetime
    since: UtcDatetime

    def to_json(self) -> dict[str, Any]:
        """The document TF_ALERT_COMMAND reads on stdin (and the e-mail describes)."""
        return {"version": EVENT_FORMAT_VERSION, "source": "tf-console", **self.model_dump(mode="json")}

    @property
    def headline(self) -> str:
        word = "FIRING" if self.event == "fired" else "CLEARED"
        return f"{word} {self.severity.value}: {self.title}"


class ActiveAlert(BaseModel):
    """An alert that fired and has not cleared yet (persisted, shown in banners and doctor)."""

    key: str
    rule: Rule
    subject: str
    severity: Severity
    title: str
    sentence: str
    since: UtcDatetime
    fired_at: UtcDatetime
    seq: int
    #: the condition has been absent since then; the alert clears once that held long enough
    clear_since: UtcDatetime | None = None

    @property
    def clearing(self) -> bool:
        return self.clear_since is not None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The rules' limits (TF_ALERT_* in the configuration; these are the defaults)."""

    failing_minutes: int = 15
    failing_polls: int = 3
    success_rate_percent: int = 80
    #: fewer calls than this in the hour say nothing about a success rate
    success_min_calls: int = 10
    credential_days: int = 14
    quota_percent: int = 90
    clear_minutes: int = 10
    #: a refused shipment matters while its order is open, up to this long
    rejected_shipment_days: int = 7
    #: other refused deliveries (quantities, messages) stay raised this long
    rejected_other_hours: int = 24

    @property
    def clear_after(self) -> timedelta:
        return timedelta(minutes=self.clear_minutes)

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            failing_minutes=settings.alert_failing_minutes,
            failing_polls=settings.alert_failing_polls,
            success_rate_percent=settings.alert_success_rate,
            credential_days=settings.alert_credential_days,
            quota_percent=settings.alert_quota_percent,
            clear_minutes=settings.alert_clear_minutes,
        )
