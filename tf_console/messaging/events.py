"""Which customer updates exist, and the one channel each marketplace allows for each.

=============  ==========================  ===============================  =========================
event          Amazon                      eBay                             Etsy
=============  ==========================  ===============================  =========================
queued         —                           AddMemberMessageAAQToPartner     e-mail (TF_SMTP_URL)
printing       — (Amazon forbids it)       AddMemberMessageAAQToPartner     e-mail
shipped        —                           AddMemberMessageAAQToPartner     ``note_to_buyer`` on the
                                                                            shipment call
delayed        createUnexpectedProblem     AddMemberMessageAAQToPartner     e-mail
customization  confirmCustomizationDetails —                                —
=============  ==========================  ===============================  =========================

Amazon allows unprompted messages only to complete an order or fix a problem, so it
gets the delay notice and the personalisation check and nothing else.  Etsy has no
messaging API.  Every event is opt-in per platform (``TF_MESSAGES_AMAZON`` …).
"""

from __future__ import annotations

import enum

from tf_console.config import Settings
from tf_console.models import Platform


class MessageEvent(enum.StrEnum):
    QUEUED = "queued"  # the order's prints entered the queue
    PRINTING = "printing"  # the first plate of the order started
    SHIPPED = "shipped"  # the console confirmed a shipment
    DELAYED = "delayed"  # the order will miss (or missed) its ship-by date
    CUSTOMIZATION = "customization"  # ask the buyer to check a personalised design

    @property
    def label(self) -> str:
        return {
            "queued": "in the print queue",
            "printing": "printing started",
            "shipped": "shipped",
            "delayed": "delay notice",
            "customization": "personalisation check",
        }[self.value]


class Channel(enum.StrEnum):
    AMAZON_UNEXPECTED_PROBLEM = "amazon-unexpected-problem"
    AMAZON_CUSTOMIZATION = "amazon-customization"
    EBAY_MESSAGE = "ebay-member-message"
    ETSY_NOTE = "etsy-note-to-buyer"
    EMAIL = "email"

    @property
    def label(self) -> str:
        return {
            "amazon-unexpected-problem": "Amazon buyer message (unexpected problem)",
            "amazon-customization": "Amazon buyer message (confirm customization details)",
            "ebay-member-message": "eBay message to the buyer",
            "etsy-note-to-buyer": "Etsy note to the buyer on the shipment",
            "email": "e-mail",
        }[self.value]


CHANNELS: dict[Platform, dict[MessageEvent, Channel]] = {
    Platform.AMAZON: {
        MessageEvent.DELAYED: Channel.AMAZON_UNEXPECTED_PROBLEM,
        MessageEvent.CUSTOMIZATION: Channel.AMAZON_CUSTOMIZATION,
    },
    Platform.EBAY: {
        MessageEvent.QUEUED: Channel.EBAY_MESSAGE,
        MessageEvent.PRINTING: Channel.EBAY_MESSAGE,
        MessageEvent.SHIPPED: Channel.EBAY_MESSAGE,
        MessageEvent.DELAYED: Channel.EBAY_MESSAGE,
    },
    Platform.ETSY: {
        MessageEvent.QUEUED: Channel.EMAIL,
        MessageEvent.PRINTING: Channel.EMAIL,
        MessageEvent.SHIPPED: Channel.ETSY_NOTE,
        MessageEvent.DELAYED: Channel.EMAIL,
    },
}


def channel_for(platform: Platform, event: MessageEvent) -> Channel | None:
    """The channel ``platform`` allows for ``event``; None when it allows none."""
    return CHANNELS.get(platform, {}).get(event)


def opted_in(settings: Settings) -> dict[Platform, frozenset[MessageEvent]]:
    """The events the owner turned on, per platform (config validation already refused the rest)."""
    chosen = {
        Platform.AMAZON: settings.messages_amazon,
        Platform.EBAY: settings.messages_ebay,
        Platform.ETSY: settings.messages_etsy,
    }
    return {
        platform: frozenset(
            MessageEvent(name) for name in names if channel_for(platform, MessageEvent(name)) is not None
        )
        for platform, names in chosen.items()
    }
