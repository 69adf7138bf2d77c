"""Alerts: rules evaluated after every poll and outbox attempt, delivered once when they
start and once when they clear (banner and notification, ``doctor``, e-mail, a command).

See :mod:`tf_console.alerts.service` for how it hooks into the sync engine,
:mod:`.rules` for the rules, :mod:`.state` for the damping and the persisted state,
:mod:`.credentials` for credential ages and :mod:`.delivery` for e-mail and the command.
"""

from tf_console.alerts.model import ActiveAlert, AlertEvent, Condition, Rule, Severity, Thresholds
from tf_console.alerts.service import AlertService, install_alerts

__all__ = [
    "ActiveAlert",
    "AlertEvent",
    "AlertService",
    "Condition",
    "Rule",
    "Severity",
    "Thresholds",
    "install_alerts",
]
