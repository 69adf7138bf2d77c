"""Message templates: built-in defaults, an optional TOML file that replaces them, safe rendering.

A template is a subject and a body with ``{placeholders}``.  Only the names in
:data:`FIELDS` exist — order facts and the buyer's first name at most, never an
address, a full name or an e-mail address — and a placeholder is a bare name
(no attribute, index, conversion or format spec), so a template cannot reach
anything else.  ``TF_MESSAGE_TEMPLATES`` names a TOML file laid out like
:data:`DEFAULT_TOML`: a ``[<platform>.<event>]`` table wins over ``[default.<event>]``.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tf_console.errors import UserError
from tf_console.messaging.events import MessageEvent
from tf_console.models import Platform

FIELDS: dict[str, str] = {
    "first_name": "the buyer's first name, or 'there' when the marketplace gave none",
    "order_id": "the marketplace's order number",
    "platform": "Amazon, eBay or Etsy",
    "items": "what was bought, e.g. '2 × Spiral Vase, Medium'",
    "ship_by": "the promised ship-by date, e.g. 'Tue 3 Nov'",
    "ready_by": "when the order is now expected to ship, or 'the next few days'",
    "shop": "TF_SHOP_NAME",
    "carrier": "the carrier of the shipment (shipped only)",
    "tracking": "the tracking number (shipped only)",
    "personalisation": "the buyer's personalisation text (customization only)",
}
_ONLY_FOR: dict[str, MessageEvent] = {
    "carrier": MessageEvent.SHIPPED,
    "tracking": MessageEvent.SHIPPED,
    "personalisation": MessageEvent.CUSTOMIZATION,
}

DEFAULT_TOML = '''\
# TitanForge Console customer message templates (TF_MESSAGE_TEMPLATES).
# A [<platform>.<event>] table (platform: amazon, ebay, etsy) wins over [default.<event>].
# Events: queued, printing, shipped, delayed, customization.
# Placeholders: {first_name} {order_id} {platform} {items} {ship_by} {ready_by} {shop};
# {carrier} {tracking} in shipped; {personalisation} in customization.
# Amazon messages have no subject and may not contain HTML or e-mail addresses.

[default.queued]
subject = "Your order {order_id} is in our print queue"
body = """Hi {first_name},

thank you for your order {order_id} ({items}). Every piece is printed to order, and yours is \
in our print queue now. We expect to ship it by {ship_by}.

{shop}"""

[default.printing]
subject = "Your order {order_id} is being printed"
body = """Hi {first_name},

your order {order_id} ({items}) is on the printer now. We will let you know when it is on its way.

{shop}"""

[default.shipped]
subject = "Your order {order_id} has shipped"
body = """Hi {first_name},

your order {order_id} is on its way with {carrier}, tracking number {tracking}. Thank you for \
buying from us!

{shop}"""

[etsy.shipped]
subject = ""
body = "Thank you for your order! Printed with care by {shop}."

[default.delayed]
subject = "A delay with your order {order_id}"
body = """Hi {first_name},

we are sorry: your order {order_id} ({items}) will not ship by {ship_by} as promised. We now \
expect to ship it by {ready_by} and will send it as soon as it is ready.

{shop}"""

[default.customization]
subject = "Please check the personalisation of order {order_id}"
body = """Hi {first_name},

before we print your order {order_id}, please check the personalisation: "{personalisation}". \
If it is right, there is nothing to do. If it is not, reply with the correct text and we will \
print that instead.

{shop}"""
'''


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    body: str
    source: str  # "default.queued", "ebay.shipped", … (where it came from, for preview and audit)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    body: str
    template: str


def placeholders(text: str) -> list[str]:
    """The placeholder names in ``text``; raises ValueError for anything but bare names."""
    names: list[str] = []
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise ValueError(f"{{{name}}} is not a plain placeholder such as {{first_name}}")
        names.append(name)
    return names


def _check(text: str, event: MessageEvent, where: str) -> None:
    try:
        names = placeholders(text)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}.") from None
    for name in names:
        if name not in FIELDS:
            raise UserError(
                f"{where}: {{{name}}} is not a placeholder; use {', '.join('{' + f + '}' for f in FIELDS)}."
            )
        only = _ONLY_FOR.get(name)
        if only is not None and only is not event:
            raise UserError(f"{where}: {{{name}}} exists only in {only.value} messages.")


def _parse(text: str, origin: str) -> dict[tuple[str, MessageEvent], Template]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"{origin} is not valid TOML ({exc}); fix it or unset TF_MESSAGE_TEMPLATES."
        ) from None
    sections = {"default", *(p.value for p in Platform if p is not Platform.TEST)}
    found: dict[tuple[str, MessageEvent], Template] = {}
    for section, events in data.items():
        if section not in sections or not isinstance(events, dict):
            raise UserError(
                f"{origin}: [{section}] is not a template group; use {', '.join(sorted(sections))}."
            )
        for event_name, table in events.items():
            try:
                event = MessageEvent(event_name)
            except ValueError:
                known = ", ".join(e.value for e in MessageEvent)
                raise UserError(f"{origin}: [{section}.{event_name}] is not an event; use {known}.") from None
            where = f"{origin} [{section}.{event_name}]"
            if not isinstance(table, dict) or not isinstance(table.get("body"), str):
                raise UserError(f'{where} needs a body = "…" line.')
            subject = table.get("subject", "")
            if not isinstance(subject, str):
                raise UserError(f"{where}: subject must be text.")
            _check(subject, event, where)
            _check(table["body"], event, where)
            found[(section, event)] = Template(subject, table["body"], f"{section}.{event.value}")
    return found


class Templates:
    def __init__(self, overrides: Mapping[tuple[str, MessageEvent], Template] | None = None) -> None:
        self._table = dict(_parse(DEFAULT_TOML, "the built-in templates"))
        self._table.update(overrides or {})

    @classmethod
    def load(cls, path: Path | None) -> Templates:
        """The built-in templates, replaced by those of ``path`` (TF_MESSAGE_TEMPLATES) if given."""
        if path is None:
            return cls()
        path = path.expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(
                f"TF_MESSAGE_TEMPLATES names {path}, which cannot be read ({exc.strerror or exc}); "
                "fix the path or unset it to use the built-in templates."
            ) from None
        return cls(_parse(text, str(path)))

    def get(self, platform: Platform, event: MessageEvent) -> Template | None:
        return self._table.get((platform.value, event)) or self._table.get(("default", event))

    def render(self, platform: Platform, event: MessageEvent, fields: Mapping[str, str]) -> RenderedMessage:
        template = self.get(platform, event)
        if template is None:
            raise UserError(f"No template for {platform.label} {event.value} messages.")
        values = {name: fields.get(name, "") for name in FIELDS}
        subject = " ".join(template.subject.format_map(values).split())
        body = template.body.format_map(values).strip()
        return RenderedMessage(subject, body, template.source)
