"""The two ways to reach a :class:`~tf_console.sandbox.core.Sandbox`.

* :class:`SandboxTransport` — an ``httpx.AsyncBaseTransport`` that calls the
  sandbox in-process.  In-process there is no socket, so it enacts each
  response's :class:`~tf_console.sandbox.core.Delivery` by raising what a real
  socket would make httpx raise: ``ReadTimeout``, ``RemoteProtocolError`` (a
  truncated body or a dropped connection), ``ConnectError``.
* :class:`LoopbackServer` — a real HTTP/1.1 server on 127.0.0.1 (stdlib
  ``ThreadingHTTPServer`` in a thread) that produces the real thing: it sleeps
  past the client's timeout, closes mid-body or closes without answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tf_console.sandbox.core import Delivery, Sandbox, SandboxRequest, SandboxResponse

IN_PROCESS_BASE_URL = "https://sandbox.tf-console.invalid"
"""Base URL to use with :class:`SandboxTransport` (never resolved: nothing leaves the process)."""

Sleep = Callable[[float], Awaitable[None]]


class _TruncatedStream(httpx.AsyncByteStream):
    def __init__(self, part: bytes, expected: int, request: httpx.Request) -> None:
        self._part = part
        self._expected = expected
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._part:
            yield self._part
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body: "
            f"received {len(self._part)} bytes, expected {self._expected}",
            request=self._request,
        )


class SandboxTransport(httpx.AsyncBaseTransport):
    """In-process access to a sandbox; ``sleep`` serves slow answers (inject a fake clock's)."""

    def __init__(self, sandbox: Sandbox, *, sleep: Sleep = asyncio.sleep) -> None:
        self.sandbox = sandbox
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        target = request.url.raw_path.decode("ascii")
        sandbox_request = SandboxRequest.build(request.method, target, request.headers.multi_items(), body)
        answer = self.sandbox.handle(sandbox_request)
        read_timeout = _read_timeout(request)
        delivery = answer.delivery
        if delivery is Delivery.REFUSE:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if delivery is Delivery.TIMEOUT:
            raise httpx.ReadTimeout("The read operation timed out", request=request)
        if delivery is Delivery.DROP:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if delivery is Delivery.DELAY:
            if read_timeout is not None and answer.delay >= read_timeout:
                raise httpx.ReadTimeout("The read operation timed out", request=request)
            await self._sleep(answer.delay)
        headers = _wire_headers(answer)
        if delivery is Delivery.TRUNCATE:
            part = answer.body[: len(answer.body) // 2]
            return httpx.Response(
                answer.status,
                headers=headers,
                stream=_TruncatedStream(part, len(answer.body), request),
                request=request,
            )
        return httpx.Response(answer.status, headers=headers, content=answer.body, request=request)


def _read_timeout(request: httpx.Request) -> float | None:
    timeouts: Any = request.extensions.get("timeout") or {}
    value = timeouts.get("read") if isinstance(timeouts, dict) else None
    return float(value) if value is not None else None


def _wire_headers(answer: SandboxResponse) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in answer.headers if k.lower() not in ("content-length", "transfer-encoding")]
    headers.append(("Content-Length", str(len(answer.body))))
    return headers


# ---------------------------------------------------------------------------
# Loopback HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Idle keep-alive connections must not pin a thread forever after the server stops.
    timeout = 10

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        return (
            None  # request lines carry order ids and tokens in queries; the sandbox log has what tests need
        )

    def _dispatch(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send(SandboxResponse.json({"error": "length_required"}, 411))
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = SandboxRequest.build(self.command, self.path, self.headers.items(), body)
        answer = self.server.sandbox.handle(request)
        delivery = answer.delivery
        if delivery in (Delivery.DROP, Delivery.REFUSE):
            self._hang_up()
            return
        if delivery is Delivery.TIMEOUT:
            self.server.stopping.wait(answer.delay)
            self._hang_up()
            return
        if delivery is Delivery.DELAY and self.server.stopping.wait(answer.delay):
            self._hang_up()
            return
        self._send(answer, truncate=delivery is Delivery.TRUNCATE)

    def _send(self, answer: SandboxResponse, *, truncate: bool = False) -> None:
        self.send_response(answer.status)
        for name, value in _wire_headers(answer):
            self.send_header(name, value)
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body[: len(answer.body) // 2] if truncate else answer.body)
        self.wfile.flush()
        if truncate:
            self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class LoopbackServer:
    """Serves a sandbox on ``http://127.0.0.1:<port>`` from a background thread."""

    def __init__(self, sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the sandbox listens on loopback only")
        self.sandbox = sandbox
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LoopbackServer:
        server = _Server(self._address, self.sandbox)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox server is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
