"""The review page as a Starlette app: HTML rendered on the server, a little plain JavaScript
for the keys, every save an ``add`` (``posterml.review.queue``).

What it guards: images are served by their place in the queue, never by a path, and only
the posters found under the folder under review; they are sent as bounded JPEG thumbnails
decoded by the one safe decoder. Forms are small and only known genre names are accepted.
Bound to loopback, only loopback Host headers are answered (no DNS rebinding) and a POST
from another site's page is refused; bound beyond it, every request needs the token.
"""

from __future__ import annotations

import hmac
import io
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from posterml.data.candidates import AddError
from posterml.data.images import ImageDecodeError, load_image
from posterml.genres import GENRES
from posterml.review.queue import ReviewQueue

# One key per genre; s skips, z undoes, / goes to the year, arrows move, Enter saves.
GENRE_KEYS = dict(zip(GENRES, "avnciodfyhrmelxtkwj", strict=True))
MAX_FORM_BYTES = 4096  # 19 genre names and a year fit in ~400 bytes
THUMBNAIL_SIZE = (600, 900)  # width, height: enough to judge a poster
THUMBNAILS_KEPT = 128
TOKEN_COOKIE = "posterml_review_token"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)


class TokenGate:
    """Every request needs ``?token=`` once (then a cookie), as Jupyter does off loopback."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            response = PlainTextResponse("a token is needed: open the URL the command printed", 401)
            await response(scope, receive, send)
            return

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start" and "token" in request.query_params:
                cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def thumbnail(path: Path) -> bytes:
    """A bounded JPEG thumbnail of a poster, decoded by the one safe decoder."""
    width, height = THUMBNAIL_SIZE
    image = load_image(path, min_size=(height, width))  # huge images: refused by size
    image.thumbnail(THUMBNAIL_SIZE)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class FormError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def read_form(request: Request) -> dict[str, list[str]]:
    """A small url-encoded form from this page (not another site's); ``FormError`` else."""
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise FormError("a form from another site is refused", 403)
    if request.headers.get("content-type", "").split(";")[0] not in (
        "application/x-www-form-urlencoded",
        "",
    ):
        raise FormError("send the page's form (application/x-www-form-urlencoded)", 415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"form over {MAX_FORM_BYTES} bytes", 413)
    try:
        return parse_qs(body.decode("utf-8"), max_num_fields=64, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(f"unreadable form: {exc}") from None


def build_app(queue: ReviewQueue, token: str | None = None, loopback: bool = True) -> Starlette:
    """The review page over ``queue``; ``token`` guards it, ``loopback`` pins Host headers."""
    thumbnails = lru_cache(maxsize=THUMBNAILS_KEPT)(thumbnail)  # the last ones, decoded once

    def poster_index(request: Request) -> int:
        index = request.path_params["index"]
        if not 0 <= index < len(queue.posters):
            raise FormError(f"no poster {index} (there are {len(queue.posters)})", 404)
        return index

    def page(index: int, message: str = "", status: int = 200) -> HTMLResponse:
        poster = queue.posters[index]
        genres, year = queue.labels_of(poster)
        html = _templates.get_template("page.html").render(
            poster=poster,
            index=index,
            total=len(queue.posters),
            reviewed=queue.n_reviewed,
            is_reviewed=queue.is_reviewed(poster),
            ticked=set(genres),
            maybe=set(poster.maybe) - set(genres),
            year="" if year is None else year,
            model_years=queue.model_years,
            keys=GENRE_KEYS,
            note=queue.note,
            message=message,
            dataset=queue.dataset,
            previous=(index - 1) % len(queue.posters),
            next=(index + 1) % len(queue.posters),
        )
        return HTMLResponse(html, status)

    async def home(request: Request) -> Response:
        if not queue.posters:
            return HTMLResponse(
                _templates.get_template("empty.html").render(note=queue.note, root=queue.root)
            )
        index = queue.next_open()
        if index is None:
            return page(0, "Every poster is reviewed.")
        return RedirectResponse(f"/poster/{index}", 303)

    async def show(request: Request) -> Response:
        return page(poster_index(request))

    async def save(request: Request) -> Response:
        index = poster_index(request)
        form = await read_form(request)
        genres = form.get("genre", [])
        unknown = [g for g in genres if g not in GENRE_KEYS]
        if unknown:
            raise FormError(f"unknown genre(s): {', '.join(map(repr, unknown))}")
        try:
            queue.save(index, genres, (form.get("year") or [""])[0])
        except AddError as exc:
            return page(index, f"Not saved: {exc}", 400)
        following = queue.next_open(index)
        if following is None:
            return page(index, "Saved. Every poster is reviewed.")
        return RedirectResponse(f"/poster/{following}", 303)

    async def skip(request: Request) -> Response:
        index = poster_index(request)
        await read_form(request)
        queue.skipped.add(index)
        following = queue.next_open(index)
        return RedirectResponse(f"/poster/{index if following is None else following}", 303)

    async def undo(request: Request) -> Response:
        await read_form(request)
        index = queue.undo()
        if index is None:
            return RedirectResponse("/", 303)
        return RedirectResponse(f"/poster/{index}", 303)

    async def image(request: Request) -> Response:
        poster = queue.posters[poster_index(request)]
        try:
            data = thumbnails(poster.path)
        except ImageDecodeError as exc:
            return PlainTextResponse(f"cannot show {poster.name}: {exc.reason}", 422)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def form_error(request: Request, exc: FormError) -> Response:
        return PlainTextResponse(str(exc), exc.status)

    routes = [
        Route("/", home),
        Route("/poster/{index:int}", show),
        Route("/poster/{index:int}", save, methods=["POST"]),
        Route("/skip/{index:int}", skip, methods=["POST"]),
        Route("/undo", undo, methods=["POST"]),
        Route("/image/{index:int}", image),
    ]
    middleware = []
    if token:
        middleware.append(Middleware(TokenGate, token=token))
    if loopback:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS))
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={FormError: form_error}
    )
