"""The dashboard's Starlette app: thin routes over `views`, `trial` and `lineage.compare`.

    /                               the search's page (one search) or the comparison (several)
    /s/{key}/                       a search's page        /s/{key}/trial/{exp}   a trial's page
    /api/s/{key}/summary            the page's data (ETag: the lineage's change counter)
    /api/s/{key}/points?start=N     finished trials from N on, in pages
    /api/s/{key}/children/{exp}     a tree node's children, in pages
    /api/s/{key}/trial/{exp}        a trial's status (its page reloads when it finishes)
    /api/compare                    the comparison of every search given
    /static/...                     the page's scripts and styles; plotly.min.js from the installed plotly

Every response is built from a `LiveState`; one built for a version is cached and reused until
the version moves, and a client that sends the version's ETag gets 304 without a body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pygments.formatters import HtmlFormatter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lineage.compare import compare_states
from lineage.exceptions import TrialNotFoundError
from servers.dashboard import trial as trial_page
from servers.dashboard import views
from servers.dashboard._gate import TokenGate
from servers.dashboard._sources import Source, Sources

STATIC = Path(str(files("servers.dashboard") / "static"))
POLL_MS = 2000


def plotly_js() -> Path:
    """The plotly.js bundle that the `plotly` package ships (served from here: no CDN)."""
    path = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the plotly package (pip install plotly)")
    return path


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("servers.dashboard", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html"]))
    env.filters["num"] = lambda x: "—" if x is None else f"{x:.6g}"
    env.filters["signed"] = lambda x: "—" if x is None else f"{x:+.4g}"
    return env


class Dashboard:
    """The routes' state: the searches (`Sources`), the templates, the poll interval."""

    def __init__(self, sources: Sources, poll_ms: int = POLL_MS) -> None:
        self.sources, self.poll_ms = sources, poll_ms
        self.env = _templates()
        self.plotly = plotly_js()
        self.pygments_css = HtmlFormatter(style="default").get_style_defs(".hl")

    def page(self, name: str, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(poll_ms=self.poll_ms, **context)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    def source(self, request: Request) -> Source:
        key = request.path_params["key"]
        found = self.sources.get(key)
        if found is None:
            raise HTTPException(404, f"no search {key!r} here; the searches are {', '.join(self.sources.keys())}")
        return found


def _json(request: Request, etag: str, build: Callable[[], bytes], started: float) -> Response:
    """`build()` as JSON under `etag`, or 304 when the client already holds that version; the
    server's own time (reading the lineage included) in a Server-Timing header."""
    headers = {"etag": etag, "cache-control": "no-cache, private"}
    if request.headers.get("if-none-match") == etag:
        body, status = b"", 304
    else:
        body, status = build(), 200
    headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return Response(body or None, status_code=status, media_type=None if status == 304 else "application/json",
                    headers=headers)


def _int(request: Request, name: str, default: int, low: int = 0, high: int = 2**31 - 1) -> int:
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {raw!r}") from None
    return min(max(value, low), high)


def _plain(body: Any) -> Response:
    return Response(json.dumps(body).encode(), media_type="application/json", headers={"cache-control": "no-store"})


class Handlers:
    """The routes' bodies: each reads a `LiveState` or the store through plain code, nothing more."""

    def __init__(self, d: Dashboard) -> None:
        self.d = d

    def home(self, request: Request) -> Response:
        if len(self.d.sources) == 1:
            return self.search_page(request, self.d.sources.first())
        return self.d.page("compare.html", sources=self.d.sources.all())

    def search_page(self, request: Request, src: Source | None = None) -> Response:
        src = src or self.d.source(request)
        return self.d.page("search.html", key=src.key, title=src.title(), several=len(self.d.sources) > 1)

    def trial(self, request: Request) -> Response:
        src = self.d.source(request)
        try:
            ctx = trial_page.trial_context(src.store, src.snapshots, src.live.state().search, request.path_params["exp"])
        except TrialNotFoundError as exc:
            raise HTTPException(404, f"{exc}; the search page lists its trials") from None
        return self.d.page("trial.html", key=src.key, title=src.title(), **ctx)

    def summary(self, request: Request) -> Response:
        started, src = time.perf_counter(), self.d.source(request)
        st = src.live.state()
        return _json(request, src.etag(st), lambda: src.cached(st, "summary", lambda: views.summary(src.store, st)),
                     started)

    def points(self, request: Request) -> Response:
        st = self.d.source(request).live.state()
        start, limit = _int(request, "start", 0), _int(request, "limit", views.POINTS_PAGE, 1, views.POINTS_PAGE)
        return _plain(views.points(st, start, limit))

    def children(self, request: Request) -> Response:
        src = self.d.source(request)
        offset, limit = _int(request, "offset", 0), _int(request, "limit", 50, 1, 200)
        return _plain(views.children(src.store, src.key_search_id, request.path_params["exp"], offset, limit))

    def trial_status(self, request: Request) -> Response:
        src = self.d.source(request)
        try:
            t = src.store.get_trial(src.key_search_id, request.path_params["exp"])
        except TrialNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return _plain({"exp": t.exp_id, "status": t.status.value, "finished": t.status.is_finished()})

    def compare(self, request: Request) -> Response:
        started, sources = time.perf_counter(), self.d.sources.all()
        states = [s.live.state() for s in sources]
        etag = '"' + "-".join(f"{st.epoch}.{st.version}" for st in states) + '"'
        return _json(request, etag, lambda: self.d.sources.cached_compare(
            etag, lambda: compare_states(states, labels=[s.key for s in sources])), started)


def routes(d: Dashboard) -> list[Any]:
    h = Handlers(d)
    return [
        Route("/", h.home), Route("/s/{key}/", h.search_page),
        Route("/s/{key}", lambda r: RedirectResponse(f"/s/{r.path_params['key']}/")),
        Route("/s/{key}/trial/{exp:int}", h.trial),
        Route("/api/s/{key}/summary", h.summary), Route("/api/s/{key}/points", h.points),
        Route("/api/s/{key}/children/{exp:int}", h.children), Route("/api/s/{key}/trial/{exp:int}", h.trial_status),
        Route("/api/compare", h.compare),
        Route("/static/plotly.min.js", lambda r: FileResponse(d.plotly, headers={"cache-control": "max-age=86400"})),
        Route("/static/pygments.css", lambda r: Response(d.pygments_css, media_type="text/css")),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def build_app(sources: Sources, tokens: dict[str, str], how_to: str, *, poll_ms: int = POLL_MS) -> Starlette:
    """The dashboard as an ASGI app: gzip inside the token gate (see `_gate`)."""
    d = Dashboard(sources, poll_ms)
    return Starlette(routes=routes(d), middleware=[
        Middleware(TokenGate, tokens=tokens, how_to=how_to), Middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)])
