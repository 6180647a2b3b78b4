"""The API reference pages, Swagger UI at `/docs` and ReDoc at `/redoc`, drawn from assets
that ship in the package (see vendor/README.md): they render with no network but the server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: The vendored versions (npm `swagger-ui-dist` and `redoc`), named in the assets' URLs so
#: that a browser never keeps an old copy after an upgrade.
SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.2"
VENDOR = Path(__file__).parent / "vendor"
ASSETS = "/static/api"
#: The pages may load nothing but from the server itself (ReDoc's footer would fetch its
#: maker's logo from a CDN): the browser refuses before any request leaves.
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; font-src 'self' data:"
)
#: ReDoc's "API docs by Redocly" footer is an image from elsewhere: hidden.
REDOC_STYLE = '<style>a[href*="redocly.com"] { display: none; }</style>'


def install(app: FastAPI) -> None:
    """Serve `/docs` and `/redoc` on `app` (made with `docs_url=None, redoc_url=None`)."""
    app.mount(ASSETS, StaticFiles(directory=VENDOR), name="api-assets")
    swagger = f"{ASSETS}/swagger-ui"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} · API",
                swagger_js_url=f"{swagger}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
                swagger_css_url=f"{swagger}/swagger-ui.css?v={SWAGGER_UI_VERSION}",
                swagger_favicon_url=f"{swagger}/favicon-32x32.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API",
            redoc_js_url=f"{ASSETS}/redoc/redoc.standalone.js?v={REDOC_VERSION}",
            redoc_favicon_url=f"{swagger}/favicon-32x32.png",
            with_google_fonts=False,
        )
        html = bytes(page.body).decode().replace("</head>", f"{REDOC_STYLE}</head>", 1)
        return _local_only(HTMLResponse(html))


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = POLICY
    return page
