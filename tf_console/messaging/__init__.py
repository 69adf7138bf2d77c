"""Customer updates (issue 9, item 6): opt-in per event, only through channels each marketplace allows.

See :mod:`tf_console.messaging.service` for how a message is found, queued once,
delivered once and recorded, :mod:`tf_console.messaging.events` for the channel of
each event on each marketplace, :mod:`tf_console.messaging.templates` for the
templates and :mod:`tf_console.messaging.smtp` for e-mail.
"""

from __future__ import annotations

from tf_console.messaging.events import Channel, MessageEvent, channel_for, opted_in
from tf_console.messaging.install import build_messaging, install_messaging
from tf_console.messaging.service import (
    MessageView,
    MessagingService,
    PlannedMessage,
    message_item_id,
    purge_message_bodies,
)
from tf_console.messaging.templates import DEFAULT_TOML, Templates

__all__ = [
    "DEFAULT_TOML",
    "Channel",
    "MessageEvent",
    "MessageView",
    "MessagingService",
    "PlannedMessage",
    "Templates",
    "build_messaging",
    "channel_for",
    "install_messaging",
    "message_item_id",
    "opted_in",
    "purge_message_bodies",
]
