"""Wiring customer updates into a started runtime: one call from :meth:`Runtime.open`."""

from __future__ import annotations

import logging
import ssl
import weakref
from typing import TYPE_CHECKING

import anyio.to_thread

from tf_console.errors import UserError
from tf_console.marketplaces.etsy import EtsyMarketplace
from tf_console.messaging.service import MessagingService
from tf_console.messaging.smtp import SmtpConfig, SmtpMailer
from tf_console.messaging.templates import Templates
from tf_console.models import Platform
from tf_console.sync.outbox import OutboxKind

if TYPE_CHECKING:
    from tf_console.runtime import Runtime

log = logging.getLogger(__name__)

#: how often the poller looks for due messages, and for bodies to purge
SCAN_INTERVAL = 60.0
PURGE_INTERVAL = 3600.0

_INSTALLED: weakref.WeakKeyDictionary[Runtime, MessagingService] = weakref.WeakKeyDictionary()


def build_messaging(
    runtime: Runtime, *, ssl_context: ssl.SSLContext | None = None, strict: bool = True
) -> MessagingService:
    """A service over the runtime's store, production and platforms (nothing registered).

    A templates file that cannot be used raises UserError when ``strict``; otherwise every
    message is held back (never sent with other words than the owner wrote) and
    :meth:`MessagingService.warnings` says why, so syncing and shipping carry on."""
    config = SmtpConfig.from_settings(runtime.settings)
    mailer = SmtpMailer(config, ssl_context=ssl_context) if config is not None else None
    problem = ""
    try:
        templates = Templates.load(runtime.settings.message_templates)
    except UserError as exc:
        if strict:
            raise
        log.error("customer messages are held back: %s", exc)
        templates, problem = Templates(), str(exc)
    return MessagingService(
        runtime.store,
        runtime.settings,
        runtime.clock,
        production=runtime.production,
        marketplaces=runtime.marketplaces,
        templates=templates,
        mailer=mailer,
        held_back=problem,
    )


def install_messaging(
    runtime: Runtime, *, ssl_context: ssl.SSLContext | None = None, strict: bool = False
) -> MessagingService:
    """Register the message handler with the outbox, the scan and purge with the poller's
    periodic jobs, and the Etsy shipment note.  Idempotent per runtime; call after the engine
    exists (at the end of :meth:`Runtime.open`).  ``strict``: see :func:`build_messaging`."""
    existing = _INSTALLED.get(runtime)
    if existing is not None:
        if strict and existing.held_back:
            raise UserError(existing.held_back)
        return existing
    service = build_messaging(runtime, ssl_context=ssl_context, strict=strict)
    engine = runtime.engine
    engine.sender.register(OutboxKind.MESSAGE, service.deliver)

    async def scan() -> None:
        created = await anyio.to_thread.run_sync(service.scan)
        if created:
            log.info("%d customer message(s) queued", len(created))

    async def purge() -> None:
        await anyio.to_thread.run_sync(lambda: service.purge_bodies())

    if service.enabled:
        engine.periodic.append(("customer-messages", SCAN_INTERVAL, scan))
        engine.periodic.append(("customer-message-purge", PURGE_INTERVAL, purge))
    etsy = runtime.marketplaces.get(Platform.ETSY)
    if isinstance(etsy, EtsyMarketplace):
        etsy.shipment_note = service.shipment_note
    _INSTALLED[runtime] = service
    return service
