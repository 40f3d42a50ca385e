"""``sardana-redis web``: the ASGI application (Starlette) and its server (uvicorn).

Two pages (the shell ``static/page.html`` around a body of their own; static files shipped
in the package, uPlot included) and one server-sent
event stream per page: ``/events/scans`` (the list, same filters as ``sardana-redis
scans``) and ``/events/scan/<key>`` (one scan: its state, panels and new points). Each
client gets at most one batch every :data:`BATCH_PERIOD` seconds, coalesced from
whatever changed meanwhile (:mod:`sardana_redis.web.feeds`). Read-only: nothing here
writes to Redis; the Redis URL is only ever shown redacted.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import socket
import string
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sardana_redis import __version__
from sardana_redis.browse import FILTERS
from sardana_redis.redis_url import redact_redis_url
from sardana_redis.web.feeds import Feed, Hub, ScanCursor
from sardana_redis.web.view import send_delay

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: Seconds between two batches sent to one client (at most).
BATCH_PERIOD = 0.1
#: Seconds of silence after which a comment keeps the connection (and its proxies) alive.
KEEPALIVE = 15.0
#: Scans listed at most (each listed again every second: bounded Redis reads).
MAX_LIMIT = 200
TOKEN_COOKIE = "sardana_redis_web_token"
SCAN_KEY = re.compile(r"esrf:scan:[0-9A-Za-z_-]{1,64}")
#: The pages: title, extra head lines, and the body (``<name>.body.html``) and script
#: (``<name>.js``) of their own, put into ``page.html``.
PAGES = {
    "list": ("sardana-redis scans", ""),
    "scan": ("sardana-redis scan", '<link rel="stylesheet" href="/static/uPlot.min.css">\n'
                                   '<script src="/static/uPlot.iife.min.js" defer></script>\n'),
}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def render_page(name: str) -> str:
    """The HTML of page ``name`` (see :data:`PAGES`)."""
    title, head = PAGES[name]
    return string.Template((STATIC / "page.html").read_text()).substitute(
        title=title, head=head, script=f"{name}.js",
        body=(STATIC / f"{name}.body.html").read_text())


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _stream(subscribe: Callable[[Callable[[], None]], Feed],
                  unsubscribe: Callable[[Feed, Callable[[], None]], None],
                  produce: Callable[[Feed], str | None]) -> AsyncIterator[str]:
    """The events of one client: woken by its feed, at most one batch per BATCH_PERIOD."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:
        loop.call_soon_threadsafe(wake.set)

    feed = subscribe(notify)
    last = 0.0
    try:
        yield ": connected\n\n"
        while True:
            delay = send_delay(last, time.monotonic(), BATCH_PERIOD)
            if delay:
                await asyncio.sleep(delay)
            wake.clear()
            # off the event loop: a big first batch (a long scan) never stalls other clients
            chunk = await asyncio.to_thread(produce, feed)
            if chunk:
                last = time.monotonic()
                yield chunk
            try:
                await asyncio.wait_for(wake.wait(), KEEPALIVE)
            except asyncio.TimeoutError:
                yield ": keepalive\n\n"
    finally:
        unsubscribe(feed, notify)


def create_app(store: Any, redis_url: str, token: str | None = None) -> Starlette:
    """The viewer on a blissdata ``store`` (``redis_url`` is only shown, redacted)."""
    hub = Hub(store)

    def page(name: str) -> Callable[[Request], Any]:
        html = render_page(name)

        async def endpoint(request: Request) -> Response:
            return HTMLResponse(html, headers=HEADERS)
        return endpoint

    async def about(request: Request) -> Response:
        return JSONResponse({"redis": redact_redis_url(redis_url), "version": __version__,
                             "readers": hub.readers()}, headers=HEADERS)

    def events(subscribe: Callable, produce: Callable) -> StreamingResponse:
        return StreamingResponse(
            _stream_or_busy(subscribe, produce), media_type="text/event-stream",
            headers={**HEADERS, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _stream_or_busy(subscribe: Callable, produce: Callable) -> AsyncIterator[str]:
        try:
            async for chunk in _stream(subscribe, hub.unsubscribe, produce):
                yield chunk
        except OverflowError as exc:
            yield _sse("busy", str(exc))

    async def scan_events(request: Request) -> Response:
        key = request.path_params["key"]
        if not SCAN_KEY.fullmatch(key):
            return PlainTextResponse("not a scan key", status_code=404, headers=HEADERS)
        cursor = ScanCursor()

        def produce(feed: Any) -> str | None:
            message = feed.message(cursor)
            return _sse("scan", message) if message is not None else None

        return events(lambda notify: hub.subscribe_scan(key, notify), produce)

    async def list_events(request: Request) -> Response:
        query = request.query_params
        filters: dict[str, Any] = {name: query[name] for name in FILTERS if query.get(name)}
        try:
            if "number" in filters:
                filters["number"] = int(filters["number"])
            limit = int(query.get("limit", 20))
            limit = min(limit, MAX_LIMIT) if limit > 0 else MAX_LIMIT
        except ValueError:
            return PlainTextResponse("number and limit are integers", status_code=400,
                                     headers=HEADERS)
        seen = {"version": -1}

        def produce(feed: Any) -> str | None:
            seen["version"], scans = feed.message(seen["version"])
            return _sse("scans", scans) if scans is not None else None

        return events(lambda notify: hub.subscribe_list(filters, limit, notify), produce)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(hub.close)

    app = Starlette(routes=[
        Route("/", page("list")),
        Route("/scan/{key:path}", page("scan")),
        Route("/about", about),
        Route("/events/scans", list_events),
        Route("/events/scan/{key:path}", scan_events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    app.state.hub = hub
    return TokenGate(app, token) if token else app  # type: ignore[return-value]


class TokenGate:
    """ASGI middleware: every request carries the token (``?token=``, then a cookie, or
    ``Authorization: Bearer``), else 401."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self.token = token
        self.state = app.state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or \
            request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            response = PlainTextResponse("token required: open the address given by "
                                         "sardana-redis web (with ?token=...)", status_code=401,
                                         headers=HEADERS)
            return await response(scope, receive, send)
        if request.query_params.get("token"):
            async def send_with_cookie(message: dict) -> None:
                if message["type"] == "http.response.start":
                    cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                    message["headers"] = [*message.get("headers", []),
                                          (b"set-cookie", cookie.encode())]
                await send(message)
            return await self.app(scope, receive, send_with_cookie)
        return await self.app(scope, receive, send)


#: What ``sardana-redis web`` prints first, followed by the page's address.
STARTED = "sardana-redis web: "


def address_in(output: str) -> str | None:
    """The page's address in what ``sardana-redis web`` printed (None: not started yet)."""
    match = re.search(re.escape(STARTED) + r"(\S+)", output)
    return match.group(1) if match else None


def listen(bind: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(128)
    return sock


def address(sock: socket.socket, token: str | None = None) -> str:
    """The page's address on ``sock`` (with the token, for the one who started it)."""
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")


def serve(app: Any, sock: socket.socket) -> None:
    """Run the server on ``sock`` until Ctrl-C or SIGTERM."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
