"""Request limits: what a client may send, refused before it is parsed, and big bodies parsed off the event loop (04).

A service that parses whatever it is sent can be stalled by one client: a 66 MB body took the event loop for seconds,
and every other client's ``/health`` with it. So, as pure ASGI middleware in front of every route:

- a body over :data:`MAX_BODY_BYTES` gets **413** before a byte of it is parsed: at once from its ``Content-Length``
  (the body is never read), or, sent in chunks, as soon as the bytes received pass the limit. The answer states the
  limit and what to do;
- a body sent to a route that takes JSON without a JSON ``Content-Type`` gets **415** saying what to send (FastAPI
  would otherwise refuse it with "Input should be a valid dictionary", which does not say why). :data:`ACCEPTS` lists
  the routes and the media types they take; a route not listed takes any;
- :func:`off_loop_route` makes the route class of the routes that parse a body: their parsing, validation and
  handler run on one worker thread with its own event loop (one request at a time, as before), so the server's event
  loop only receives bytes and keeps answering ``/health`` and ``/metrics`` while a 10,000-row batch is being parsed.
  Threads share one interpreter lock, so the worker also parses a long ``records`` array record by record
  (:func:`parse_json`) and validates it in slices (:func:`~mlops_helpers.serving.contract.in_slices`): no single call
  holds the lock for more than a few milliseconds.

Refusals have the shape of every other refusal of the service: ``{"detail": [{"loc", "msg", "type"}]}``. Starlette's
own ``max_body_size`` answers a plain "Content Too Large", and only once a route reads the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Awaitable, Mapping
from typing import Any

#: The largest request body the service reads: room for :data:`~mlops_helpers.serving.contract.MAX_BATCH` records
#: of a dozen numeric columns written out in full (a 10,000-row batch of the course's model is about 1.5 MB).
MAX_BODY_BYTES = 8 * 1024 * 1024
#: The media types each route that reads a body accepts (a route not listed accepts any).
ACCEPTS: dict[str, tuple[str, ...]] = {
    "/predict": ("application/json",),
    "/routing": ("application/json",),
    # MLflow's scoring protocol takes CSV and Parquet too (serving.protocols.CONTENT_TYPES); it answers a wrong type
    # itself with the list of formats it takes.
}
_BODYLESS = {"GET", "HEAD", "OPTIONS", "DELETE"}
#: Bodies longer than this are parsed by :func:`parse_json` (shorter ones by one ``json.loads``).
INCREMENTAL_BYTES = 64 * 1024
_RECORDS = re.compile(r'\s*\{\s*"records"\s*:\s*\[')
_SPACE = re.compile(r"\s*")


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def too_large(size: int | None, limit: int) -> dict:
    """The 413 answer: the body's size (when known), the limit, and what to do."""
    said = f"the body is {size:,} bytes" if size is not None else "the body passed the limit while it was being sent"
    return _refusal(
        f"{said}; this service reads at most {limit:,} bytes ({limit / 2**20:.0f} MiB) per request: send the records "
        "in smaller batches",
        "too_large",
    )


def wrong_type(got: str | None, wanted: tuple[str, ...]) -> dict:
    """The 415 answer: what was sent and the header to send instead."""
    said = f"Content-Type {got!r}" if got else "no Content-Type"
    return _refusal(
        f"the body was sent with {said}: send it as JSON with the header 'Content-Type: {wanted[0]}' "
        f"(e.g. requests.post(url, json=body) or curl -H 'Content-Type: {wanted[0]}' --data @body.json)",
        "unsupported_media_type",
    )


def _refusal(msg: str, kind: str) -> dict:
    return {"detail": [{"loc": ["body"], "msg": msg, "type": kind}]}


def _media_type(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip().lower() if value else None


class RequestLimits:
    """Pure ASGI middleware: 413 for a body over ``max_body`` bytes, 415 for a body of the wrong media type; both
    before the route (or any parsing) runs. ``accepts`` maps paths to the media types they take."""

    def __init__(self, inner, max_body: int = MAX_BODY_BYTES, accepts: Mapping[str, tuple[str, ...]] = ACCEPTS):
        self.inner, self.max_body, self.accepts = inner, max_body, dict(accepts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.inner(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        size = int(length) if length and length.isdigit() else None
        if size is not None and size > self.max_body:
            await _answer(send, 413, too_large(size, self.max_body))  # the body is never read
            return
        wanted = self.accepts.get(scope["path"])
        got = _header(scope, b"content-type")
        if wanted and size != 0 and _media_type(got) not in wanted:
            await _answer(send, 415, wrong_type(got, wanted))
            return
        if size is not None:
            await self.inner(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope, receive, send) -> None:
        """A body of unknown length (chunked): read it up to the limit, then hand it on, or refuse it."""
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_body:
                await _answer(send, 413, too_large(None, self.max_body))
                return
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.inner(scope, replay, send)


async def _answer(send, status: int, content: dict) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # Close the connection: the client may still be sending a body nobody will read.
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class Worker:
    """One thread with its own event loop: coroutines handed to :meth:`run` execute there, one at a time."""

    def __init__(self, name: str = "predict") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, work: Awaitable[Any]) -> Any:
        """Run ``work`` (a coroutine) on the worker's loop; wait for it without blocking the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def parse_json(body: bytes) -> Any:
    """``json.loads(body)``, but a long ``{"records": [...]}`` is parsed one record at a time, so that another thread
    gets the interpreter lock between records. Anything else, or anything irregular, goes to ``json.loads``, which
    gives the same value or the same error."""
    text = body.decode("utf-8")
    start = _RECORDS.match(text)
    if len(body) < INCREMENTAL_BYTES or start is None:
        return json.loads(text)
    decoder, records, at = json.JSONDecoder(), [], start.end()
    try:
        at = _SPACE.match(text, at).end()
        while text[at] != "]":
            record, at = decoder.raw_decode(text, at)
            records.append(record)
            at = _SPACE.match(text, at).end()
            if text[at] == ",":
                at = _SPACE.match(text, at + 1).end()
                if text[at] == "]":
                    return json.loads(text)  # a trailing comma: let json.loads say where
            elif text[at] != "]":
                return json.loads(text)  # a missing comma
        closing = _SPACE.match(text, at + 1).end()
        if text[closing:].strip() != "}":
            return json.loads(text)  # another key after the records, or trailing data
    except (ValueError, IndexError):
        return json.loads(text)
    return {"records": records}


def off_loop_route(worker: Worker):
    """The FastAPI route class whose requests are received on the event loop and handled on ``worker``: the
    parsing of the body (``json.loads``, the pydantic validation), the handler and the rendering of its answer."""
    from fastapi.routing import APIRoute

    class OffLoop(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def received_here_handled_there(request):
                body = await request.body()  # waiting for bytes costs the event loop nothing; the body is cached
                return await worker.run(parsed_then(request, body, handler))

            return received_here_handled_there

    return OffLoop


async def parsed_then(request, body: bytes, handler):
    """On the worker: parse a long JSON body with :func:`parse_json` into the request's cache (Starlette keeps a
    request's parsed JSON in ``_json``, which FastAPI's ``await request.json()`` then returns), then handle it."""
    if len(body) >= INCREMENTAL_BYTES and _media_type(request.headers.get("content-type")) == "application/json":
        with contextlib.suppress(ValueError):  # not JSON, or not UTF-8: FastAPI parses it again, with its own error
            request._json = parse_json(body)
    return await handler(request)
