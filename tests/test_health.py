"""Health recording, state derivation and redaction of secrets and PII."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tf_console.clock import FakeClock
from tf_console.marketplaces import testplatform
from tf_console.marketplaces.base import PermanentError, TransientError
from tf_console.marketplaces.health import HealthRecorder
from tf_console.marketplaces.http import ApiClient, PlatformHooks
from tf_console.marketplaces.ratelimit import BucketSpec, RateLimiter
from tf_console.marketplaces.redact import (
    EMAIL_MARK,
    PII_MARK,
    SECRET_MARK,
    RedactingFilter,
    Redactor,
    install_log_redaction,
    redacting_logger,
)
from tf_console.models import Platform, PlatformHealth, PlatformState

TOKEN = "tsb-at-9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc"
BUYER = "Ingrid Okafor-Lindqvist"


def recorder(clock: FakeClock, **kw: Any) -> HealthRecorder:
    return HealthRecorder(Platform.ETSY, clock, **kw)


def call(h: HealthRecorder, ok: bool, status: int | None = 200, message: str = "") -> None:
    h.record_call(
        operation="getShopReceipts",
        method="GET",
        status=status,
        latency_ms=12.5,
        attempt=1,
        ok=ok,
        message=message,
    )


# ---------------------------------------------------------------------------
# State


def test_state_follows_recent_outcomes() -> None:
    clock = FakeClock()
    h = recorder(clock)
    assert h.snapshot().state is PlatformState.OK and h.snapshot().success_rate is None
    for _ in range(5):
        call(h, True)
    call(h, False, 503, "Etsy had a server problem (HTTP 503).")
    snap = h.snapshot()
    assert snap.state is PlatformState.DEGRADED and "503" in snap.reason
    assert snap.success_rate == pytest.approx(5 / 6)
    call(h, False, None, "Could not connect to Etsy.")
    call(h, False, None, "Could not connect to Etsy.")
    snap = h.snapshot()
    assert snap.state is PlatformState.DOWN and "not answering" in snap.reason
    call(h, True)
    assert h.snapshot().state is PlatformState.DEGRADED  # working again, but most recent calls failed
    clock.advance(timedelta(minutes=31).total_seconds())
    call(h, True)
    assert h.snapshot().state is PlatformState.OK  # the failures left the window
    assert h.last_error == "Could not connect to Etsy."


def test_refused_requests_do_not_make_a_platform_down() -> None:
    h = recorder(FakeClock())
    for _ in range(4):
        call(h, False, 400, "Etsy refused the request.")
    assert h.snapshot().state is PlatformState.DEGRADED


def test_reauth_and_disabled_win_over_call_outcomes() -> None:
    h = recorder(FakeClock())
    call(h, True)
    h.mark_reauth("Etsy refused the refresh token; set it with `tf-console creds set ETSY_REFRESH_TOKEN`.")
    assert h.snapshot().state is PlatformState.REAUTH
    h.mark_disabled("Etsy is not configured.")
    assert h.snapshot().state is PlatformState.DISABLED
    h.enable()
    assert h.snapshot().state is PlatformState.REAUTH
    call(h, True)  # an authenticated call worked again
    assert h.snapshot().state is PlatformState.OK


def test_records_are_bounded_and_sunk_and_listeners_hear_changes() -> None:
    sunk: list[dict[str, Any]] = []
    heard: list[PlatformHealth] = []
    h = recorder(FakeClock(), capacity=10, sink=sunk.append)
    remove = h.add_listener(heard.append)
    for i in range(25):
        call(h, i % 2 == 0)
    assert len(h.records()) == 10 and len(sunk) == 25 and len(heard) == 25
    assert sunk[0]["platform"] == "etsy" and isinstance(sunk[0]["at"], str)
    remove()
    call(h, True)
    assert len(heard) == 25


def test_a_failing_sink_or_listener_does_not_break_a_call() -> None:
    def broken(_: object) -> None:
        raise OSError("disk full")

    h = recorder(FakeClock(), sink=broken)
    h.add_listener(broken)
    call(h, True)
    assert len(h.records()) == 1


def test_snapshot_carries_rate_state_and_token_expiry() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Platform.ETSY, clock, default=BucketSpec(10, 10), per_minute_cap=100)
    h = recorder(clock, rate_source=limiter.snapshot)
    h.set_token_expiry(clock.now() + timedelta(hours=1))
    h.set_poll_times(clock.now(), clock.now() + timedelta(minutes=5))
    h.set_poller("this console")
    snap = h.snapshot()
    assert snap.window_budget == 100 and snap.token_expires_at == clock.now() + timedelta(hours=1)
    assert snap.poller == "this console" and snap.next_poll_at is not None


# ---------------------------------------------------------------------------
# Redaction


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("token Atza|IQEBLjAsAhRmHjNgHpi0U-Dme37rR6CuUpSREXAMPLE expired", "Atza|IQEB"),
        ("refresh Atzr|IQEBLzAtAhRPpMJxdwVz2Nn6f2y-tpJX2DeXEXAMPLE", "Atzr|IQEB"),
        ("<eBayAuthToken>AgAAAA**AQAAAA**aAAAAA**abc</eBayAuthToken>", "AQAAAA"),
        ("iaf v^1.1#i^1#p^3#r^1#I^3#f^0#t^Ul4xMF8yOjg=", "i^1#p^3"),
        ("Authorization: Bearer 12345678.abcdefghijklmnop", "abcdefghijklmnop"),
        ("x-api-key: keystring123:sharedsecret456", "sharedsecret456"),
        ('{"refresh_token": "rt-abcdef0123"}', "rt-abcdef0123"),
        ("client_secret=s3cr3tValue&grant_type=refresh_token", "s3cr3tValue"),
        ("opaque ZXlKaGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5 end", "ZXlKaGJH"),
        ("Basic YXBwaWQ6Y2VydGlk", "YXBwaWQ6"),
    ],
)
def test_token_shapes_are_scrubbed(text: str, gone: str) -> None:
    cleaned = Redactor().scrub(text)
    assert gone not in cleaned and SECRET_MARK in cleaned


def test_emails_registered_values_and_harmless_text() -> None:
    r = Redactor()
    r.register_secret("hunter2-but-longer")
    r.register_secret("abc")  # too short to scrub safely: ignored
    r.register_pii([BUYER, "", None, "Al"])
    text = f"{BUYER} <mira.okafor@buyers.example> used hunter2-but-longer on abc"
    cleaned = r.scrub(text)
    assert cleaned == f"{PII_MARK} <{EMAIL_MARK}> used {SECRET_MARK} on abc"
    kept = "Request b8d7f0e2-1c2d-4e5f-8a9b-0c1d2e3f4a5b failed: order 902-1106328-1059050 (HTTP 503)."
    assert r.scrub(kept) == kept


def test_logging_filter_scrubs_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    r = Redactor()
    r.register_secret(TOKEN)
    logger = logging.getLogger("tests.redaction.direct")
    logger.addFilter(RedactingFilter(r))
    with caplog.at_level(logging.DEBUG, logger="tests.redaction.direct"):
        logger.warning("sending %s with %s", TOKEN, {"Authorization": f"Bearer {TOKEN}"})
    assert TOKEN not in caplog.text and SECRET_MARK in caplog.text


def test_install_log_redaction_quiets_httpx() -> None:
    install_log_redaction()
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING
    assert any(isinstance(f, RedactingFilter) for f in redacting_logger("tf_console.x").filters)


async def test_a_known_token_and_buyer_name_never_reach_health_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A marketplace error that echoes the token and the buyer's name, through the whole client."""
    clock = FakeClock()
    redactor = Redactor()
    redactor.register_pii([BUYER])
    sunk: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        echoed = f"Order for {BUYER} refused; token {request.headers['authorization']} is not allowed"
        if request.url.path == "/boom":
            return httpx.Response(502, json={"error": "server_error", "message": echoed})
        return httpx.Response(422, json={"error": "bad_request", "message": echoed})

    class Fixed:
        token_expires_at = None

        async def get_token(self) -> str:
            return TOKEN

        async def refresh(self, reason: str, *, failed_token: str | None = None) -> str:
            return TOKEN

    redactor.register_secret(TOKEN)
    health = HealthRecorder(Platform.TEST, clock, sink=sunk.append, redactor=redactor)
    client = ApiClient(
        Platform.TEST,
        clock=clock,
        rng=random.Random(0),
        limiter=RateLimiter(Platform.TEST, clock, default=BucketSpec(50, 50)),
        health=health,
        hooks=PlatformHooks(classify=testplatform.classify),
        auth=Fixed(),
        base_url="https://api.example.com",
        transport=httpx.MockTransport(answer),
        redactor=redactor,
    )
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(PermanentError) as refused:
            await client.request("ship", "POST", "/refuse", json={"buyer": BUYER}, idempotent=True)
        with pytest.raises(TransientError):
            await client.request("read", "GET", "/boom", idempotent=True)
        logging.getLogger("tf_console.marketplaces.http").warning("last error: %s", refused.value.sentence)
    texts = (
        [r.message for r in health.records()] + [str(s) for s in sunk] + [health.snapshot().model_dump_json()]
    )
    texts.append(caplog.text)
    for text in texts:
        assert TOKEN not in text
        assert BUYER not in text
    assert any(PII_MARK in r.message for r in health.records())
