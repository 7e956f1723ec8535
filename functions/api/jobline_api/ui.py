"""The dashboard: a single page (plain HTML, CSS and JS shipped in `static/`) served by the API
itself. Loading it needs no identity, like `/health`; every data call it makes is an ordinary,
authenticated API call. The page is `/ui` and its files `/ui/<name>`: two routes API Gateway can
open without the authorizer (`/ui` and `/ui/{proxy+}`, which needs a non-empty rest). It uses
relative URLs only, so it works behind a named stage too: `/prod/ui` loads `ui/app.js` from
`/prod/ui/app.js` and calls `/prod/jobs`; `/ui/` redirects to `../ui`."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""Nothing inline, nothing from elsewhere: a payload that got into the page could not run."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "schema-form.js": "text/javascript; charset=utf-8",
    "view-jobs.js": "text/javascript; charset=utf-8",
    "view-job.js": "text/javascript; charset=utf-8",
    "view-submit.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""Every file the page is made of: only these are served (no path from the request is opened).
The scripts are ES modules (`app.js` imports the others as `./name.js`, so under `/ui/` too):
browsers run a module only when it is served as JavaScript."""

router = APIRouter(include_in_schema=False)


@cache
def asset(name: str) -> bytes:
    """A file of `static/`, read once per execution environment on first use."""
    return files("jobline_api").joinpath("static", name).read_bytes()


def _asset_response(name: str) -> Response:
    return Response(asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/ui")
async def dashboard() -> Response:
    return _asset_response("index.html")


@router.get("/ui/")
async def dashboard_redirect() -> Response:
    return RedirectResponse("../ui", status_code=307, headers=SECURITY_HEADERS)


@router.get("/ui/{name}")
async def dashboard_asset(name: str) -> Response:
    if name not in ASSETS:
        return JSONResponse(
            {"detail": "Not Found"}, status_code=404, headers=SECURITY_HEADERS
        )
    return _asset_response(name)
