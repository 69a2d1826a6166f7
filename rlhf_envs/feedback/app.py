"""The labelling web app: annotators compare two replies (or rate one) in a browser.

``rlhf-envs label --db feedback.sqlite --env RLHF-Chat-v0 --invite Ada`` serves it on
127.0.0.1:8000 and prints Ada's invitation link and the admin link. The page
(``static/label.html`` + ``label.js``) reads the token from the link, then shows the
dialogue so far and two candidate replies side by side; keys ``1``/``2`` choose,
``t`` is a tie, ``s`` skips. The rating mode shows one reply: ``u``/``d`` (thumbs) or
``1``-``5`` (stars). ``/admin`` lists labels per annotator, inter-annotator agreement
(Cohen's kappa) and the reward models' accuracy against the labels over time.

Access control (on unless ``open_access``): each annotator has a random token, given
once in an invitation link and stored hashed; labels, ratings and progress need it, and a
label is accepted only for a pair handed to that annotator (so nobody picks the held-out
pairs that decide promotions). ``/admin`` (names beside pseudonymous ids) and
``/api/stats`` need the admin token. The ``Host`` header must name an allowed host.

Safety: the page sets every text with ``textContent`` (never parsed as HTML), the admin
page escapes every value, and a Content-Security-Policy allows only the app's own script
file, so a reply containing ``<script>`` is shown as text and cannot run. Each label
carries a ``label_id`` made by the server when it hands out the item; sending the same
form twice stores one label. Bad requests get a 4xx answer with a message; nothing is
half-written because every label is one transaction.

JSON API (what the page uses; also scriptable):

Every request may carry ``Authorization: Bearer TOKEN``; ``annotator_id`` may then be
left out (it must match the token's annotator if given).

- ``GET /api/config`` -> ``{"access": "tokens" | "open"}``
- ``GET /api/me`` -> ``{"annotator_id", "labels"}`` of the token's annotator
- ``POST /api/annotators`` ``{"name"}`` -> ``{"annotator_id", "name", "labels"}`` (open
  access only)
- ``GET /api/next?annotator_id=`` -> a comparison with a fresh ``label_id``, held for
  this annotator for the lease time
- ``POST /api/labels``
  ``{"label_id", "comparison_id", "annotator_id", "choice", "reason"?, "seconds"?}``
- ``GET /api/next-rating?annotator_id=&scale=thumbs|stars`` -> a reply to rate
- ``POST /api/ratings`` ``{"label_id", "item_id", "annotator_id", "scale", "value"}``
- ``GET /api/progress?annotator_id=`` and ``GET /api/stats`` (admin)
"""

from __future__ import annotations

import html
import math
import secrets
import sqlite3
from collections.abc import Sequence
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rlhf_envs.dialogue import parse_transcript
from rlhf_envs.feedback.agreement import annotator_agreement, rm_accuracy_over_time
from rlhf_envs.feedback.pairs import PairSource
from rlhf_envs.feedback.store import FeedbackStore, LabelConflict, StoreError, UnknownItem

__all__ = ["LOOPBACK_HOSTS", "create_app"]

MAX_BODY = 64 * 1024  # bytes; a label is a few hundred
SECURITY_HEADERS = {
    # Only the app's own files may run or style the page: an injected <script> or an
    # onerror attribute would be refused by the browser even if it reached the DOM.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC = {"label.js": "text/javascript", "style.css": "text/css"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Host names a server on this machine answers to by default."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AnnotatorIn(_Strict):
    name: str = Field(min_length=1, max_length=64)


ID = Field(ge=1, le=2**63 - 1)  # SQLite row ids


class LabelIn(_Strict):
    label_id: str = Field(min_length=8, max_length=100)
    comparison_id: int = ID
    annotator_id: str | None = Field(default=None, min_length=1, max_length=100)
    choice: Literal["a", "b", "tie", "skip"]
    reason: str | None = Field(default=None, max_length=2000)
    seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class RatingIn(_Strict):
    label_id: str = Field(min_length=8, max_length=100)
    item_id: int = ID
    annotator_id: str | None = Field(default=None, min_length=1, max_length=100)
    scale: Literal["thumbs", "stars"]
    value: int
    reason: str | None = Field(default=None, max_length=2000)


def _static(name: str) -> str:
    return (
        resources.files("rlhf_envs.feedback")
        .joinpath("static")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


def _turns(context: str) -> list[dict[str, str]]:
    return [{"role": t.role, "text": t.text} for t in parse_transcript(context)]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def create_app(
    store: FeedbackStore,
    source: PairSource,
    title: str | None = None,
    *,
    open_access: bool = False,
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
) -> FastAPI:
    """The labelling app over ``store``, drawing new pairs from ``source``.

    Args:
        store: the feedback database.
        source: where comparisons and rating items come from when none is waiting.
        title: shown in the page header (default: the env id).
        open_access: no tokens: anyone who reaches the port registers by typing a name and
            sees ``/admin`` (for one person on their own machine). Off by default: then
            labels, ratings and progress need an annotator's token (from
            :meth:`FeedbackStore.invite`), ``/admin`` and ``/api/stats`` an admin token
            (:meth:`FeedbackStore.new_admin_token`), as ``Authorization: Bearer TOKEN`` or
            ``?token=`` on a page link; a label is accepted only for a pair handed to that
            annotator.
        allowed_hosts: host names the ``Host`` header may carry; anything else is refused,
            which defeats DNS rebinding (a page elsewhere reaching a server on 127.0.0.1).
    """
    app = FastAPI(title="rlhf-envs labelling", docs_url=None, redoc_url=None, openapi_url=None)
    heading = title or source.env_id
    hosts = {h.lower() for h in allowed_hosts}

    def caller(request: Request) -> tuple[str, str | None] | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        token = token or request.query_params.get("token")
        return store.token_owner(token) if token else None

    def annotator(request: Request, claimed: str | None) -> str:
        """The annotator a request acts for: the claimed id in open mode, else the
        token's annotator (a claimed id must match it)."""
        if open_access:
            if claimed is None:
                raise Denied(422, "annotator_id is required (the id POST /api/annotators gave)")
            if not store.has_annotator(claimed):
                raise UnknownItem(f"unknown annotator {claimed!r}; register a name first")
            return claimed
        owner = caller(request)
        if owner is None or owner[0] != "annotator" or owner[1] is None:
            raise Denied(401, "an annotator's access token is required: open your invitation link")
        if claimed is not None and claimed != owner[1]:
            raise Denied(403, "this token belongs to another annotator")
        return owner[1]

    def admin_only(request: Request) -> None:
        if not open_access:
            owner = caller(request)
            if owner is None or owner[0] != "admin":
                raise Denied(
                    401,
                    "the admin token is required: open the admin link that `rlhf-envs label` "
                    "printed when it started",
                )

    @app.middleware("http")
    async def limits_and_headers(request: Request, call_next: Any) -> Response:
        if _host_name(request.headers.get("host", "")) not in hosts:
            return _error(
                421,
                f"host {request.headers.get('host', '')!r} is not served here; allowed: "
                f"{', '.join(sorted(hosts))} (rlhf-envs label --allow-host adds one)",
            )
        length = request.headers.get("content-length")
        if "transfer-encoding" in request.headers or (
            request.method in ("POST", "PUT", "PATCH") and length is None
        ):
            # A chunked body has no announced size; refusing it keeps memory bounded.
            return _error(
                411, "send the body with a Content-Length header (chunked bodies are not accepted)"
            )
        if length is not None and (
            not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY
        ):
            return _error(
                413, f"request body too large or its length unreadable; at most {MAX_BODY} bytes"
            )
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(422, "invalid request: " + "; ".join(problems))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Unknown paths and wrong methods answer in the same {"error": ...} shape.
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(Denied)
    async def denied(_: Request, exc: Denied) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(UnknownItem)
    async def unknown(_: Request, exc: UnknownItem) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(LabelConflict)
    async def conflict(_: Request, exc: LabelConflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(StoreError)
    async def refused(_: Request, exc: StoreError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(sqlite3.OperationalError)
    async def busy(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # A writer held the database past the timeout: the label was not stored; retry.
        return _error(
            503, f"the database is busy ({exc}); nothing was stored, send the label again"
        )

    # --- pages ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(_static("label.html").replace("{{title}}", html.escape(heading)))

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            return _error(404, f"no static file {name!r}")
        return Response(_static(name), media_type=STATIC[name])

    @app.get("/admin", response_class=HTMLResponse)
    def admin(request: Request) -> HTMLResponse:
        admin_only(request)
        return HTMLResponse(render_admin(store, heading))

    # --- API ------------------------------------------------------------------------------

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {"access": "open" if open_access else "tokens"}

    @app.post("/api/annotators")
    def register(body: AnnotatorIn) -> dict[str, Any]:
        if not open_access:
            raise Denied(
                403,
                "annotators are invited by an admin (rlhf-envs feedback invite, or "
                "rlhf-envs label --invite NAME); open your invitation link",
            )
        annotator_id = store.annotator(body.name)
        return {
            "annotator_id": annotator_id,
            "name": body.name.strip(),
            "labels": store.labels_by(annotator_id),
        }

    @app.get("/api/me")
    def me(request: Request) -> dict[str, Any]:
        if open_access:
            raise Denied(404, "open access: register a name with POST /api/annotators")
        annotator_id = annotator(request, None)
        return {"annotator_id": annotator_id, "labels": store.labels_by(annotator_id)}

    @app.get("/api/next")
    def next_pair(
        request: Request, annotator_id: str | None = Query(None, min_length=1, max_length=100)
    ) -> dict[str, Any]:
        annotator_id = annotator(request, annotator_id)
        c = source.next_for(annotator_id)
        return {
            "comparison_id": c.id,
            "label_id": f"lbl-{secrets.token_hex(12)}",
            "turns": _turns(c.context),
            "reply_a": c.reply_a,
            "reply_b": c.reply_b,
            "source": c.source,
            "progress": progress(store, annotator_id),
        }

    @app.post("/api/labels")
    def label(request: Request, body: LabelIn) -> JSONResponse:
        stored = store.add_label(
            body.label_id,
            body.comparison_id,
            annotator(request, body.annotator_id),
            body.choice,
            reason=body.reason,
            seconds=body.seconds,
            require_lease=not open_access,
            limit_to_wanted=True,
        )
        return JSONResponse(
            {"stored": stored, "duplicate": not stored, "label_id": body.label_id},
            status_code=201 if stored else 200,
        )

    @app.get("/api/next-rating")
    def next_rating(
        request: Request,
        annotator_id: str | None = Query(None, min_length=1, max_length=100),
        scale: Literal["thumbs", "stars"] = "thumbs",
    ) -> dict[str, Any]:
        annotator_id = annotator(request, annotator_id)
        item = store.rating_item(source.next_rating_item(annotator_id, scale))
        return {
            "item_id": item.id,
            "label_id": f"rtg-{secrets.token_hex(12)}",
            "turns": _turns(item.context),
            "reply": item.reply,
            "scale": scale,
            "progress": progress(store, annotator_id),
        }

    @app.post("/api/ratings")
    def rate(request: Request, body: RatingIn) -> JSONResponse:
        stored = store.add_rating(
            body.label_id,
            body.item_id,
            annotator(request, body.annotator_id),
            body.scale,
            body.value,
            reason=body.reason,
        )
        return JSONResponse(
            {"stored": stored, "duplicate": not stored, "label_id": body.label_id},
            status_code=201 if stored else 200,
        )

    @app.get("/api/progress")
    def get_progress(
        request: Request, annotator_id: str | None = Query(None, min_length=1, max_length=100)
    ) -> dict[str, Any]:
        return progress(store, annotator(request, annotator_id))

    @app.get("/api/stats")
    def stats(request: Request) -> dict[str, Any]:
        admin_only(request)
        agreement = annotator_agreement(store.overlapping_labels())
        return {
            "counts": store.counts(),
            "agreement": {
                "items": agreement.items,
                "pairs": agreement.pairs,
                "observed": _finite(agreement.observed),
                "kappa": _finite(agreement.kappa),
            },
            "reward_models": [
                {k: v for k, v in r.items() if k != "config"} for r in store.reward_models()
            ],
            "rm_accuracy": rm_accuracy_over_time(store.labels()),
        }

    return app


class Denied(Exception):
    """A request without the access it needs (401: no valid token; 403: not allowed)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _host_name(host: str) -> str:
    """The host name of a ``Host`` header, without the port (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _finite(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 4)


def progress(store: FeedbackStore, annotator_id: str) -> dict[str, Any]:
    """The counters the page shows: this annotator's labels, everyone's, and how often
    this annotator agreed with others on pairs both labelled."""
    overlap = store.overlapping_labels()
    mine = {
        item: choice for item, who, choice in overlap if who == annotator_id and choice != "skip"
    }
    shared = agree = 0
    for item, who, choice in overlap:
        if who != annotator_id and item in mine and choice != "skip":
            shared += 1
            agree += mine[item] == choice
    return {
        "yours": store.labels_by(annotator_id),
        "total": store.counts()["labels"],
        "shared": shared,
        "agreement": round(agree / shared, 4) if shared else None,
    }


def render_admin(store: FeedbackStore, heading: str) -> str:
    """The admin page as HTML; every value is escaped."""
    e = html.escape
    counts = store.counts()
    rows = "".join(
        f"<tr><td>{e(a['name'])}</td><td><code>{e(a['id'])}</code></td><td>{a['labels']}</td>"
        f"<td>{a['ties']}</td><td>{a['skips']}</td><td>{a['ratings']}</td></tr>"
        for a in store.annotator_summary()
    )
    agreement = annotator_agreement(store.overlapping_labels())
    names = {a["id"]: a["name"] for a in store.annotator_summary()}
    pair_rows = "".join(
        f"<tr><td>{e(names.get(x, x))}</td><td>{e(names.get(y, y))}</td><td>{n}</td>"
        f"<td>{obs:.0%}</td><td>{_fmt(k)}</td></tr>"
        for (x, y), (n, obs, k) in agreement.by_pair.items()
    )
    models = "".join(
        f"<tr><td>v{r['version']}</td><td>{r['train_labels']}</td><td>{r['heldout_labels']}</td>"
        f"<td>{_fmt(r['accuracy'])}</td>"
        f"<td>{'v' + str(r['baseline_version']) if r['baseline_version'] else '-'}</td>"
        f"<td>{_fmt(r['baseline_accuracy'])}</td><td>{'yes' if r['promoted'] else 'no'}</td></tr>"
        for r in store.reward_models()
    )
    over_time = rm_accuracy_over_time(store.labels())
    time_rows = "".join(
        f"<tr><td>{p['labels']}</td><td>{p['n']}</td><td>{p['accuracy']:.1%}</td>"
        f"<td>{e(', '.join('v' + str(v) for v in p['versions']))}</td>"
        f"<td><span class='bar'>{'#' * round(20 * p['accuracy'])}"
        f"</span></td></tr>"
        for p in over_time
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Admin - {e(heading)}</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body class="admin"><h1>Labelling admin: {e(heading)}</h1>
<p><a href="/">back to labelling</a></p>
<p id="counts">{counts["comparisons"]} comparisons, {counts["labels"]} labels, \
{counts["ratings"]} ratings,
{counts["annotators"]} annotators, {counts["reward_models"]} reward models.</p>
<h2>Labels per annotator</h2>
<table id="annotators"><tr><th>name</th><th>pseudonymous id (in exports)</th><th>labels</th>\
<th>ties</th>
<th>skips</th><th>ratings</th></tr>{rows}</table>
<h2>Inter-annotator agreement</h2>
<p id="kappa">{agreement.items} comparisons labelled by two or more annotators; \
{agreement.pairs} label pairs;
agreement {_pct(agreement.observed)}; Cohen's kappa {_fmt(agreement.kappa)}.</p>
<table><tr><th>annotator</th><th>annotator</th><th>shared</th><th>agree</th><th>kappa</th></tr>{pair_rows}</table>
<h2>Reward models</h2>
<table id="models"><tr><th>version</th><th>train labels</th><th>held-out labels</th>\
<th>held-out accuracy</th>
<th>compared with</th><th>its accuracy</th><th>promoted</th></tr>{models}</table>
<h2>Reward-model accuracy against the labels over time</h2>
<p>How often the reward model serving when a pair was drawn agreed with the label people gave, \
per 50 A/B
labels on pairs drawn at random while a model was in service (active pairs are the model's \
least sure by
design, so they are left out).</p>
<table id="rm-accuracy"><tr><th>labels</th><th>n</th><th>accuracy</th><th>models</th><th></th>\
</tr>{time_rows}</table>
</body></html>"""


def _fmt(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.0%}"
