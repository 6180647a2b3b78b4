"""The API reference pages come from the package: every script and stylesheet they name is
served by jobpulse itself, and their policy lets the browser load nothing from elsewhere
(tests/browser/test_dashboard_views.py renders them with every other host blocked).
"""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_reference_names_only_local_assets(http: httpx.AsyncClient, path: str) -> None:
    page = await http.get(path)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, page.text
    for asset in assets:
        assert asset.startswith("/"), asset  # on this server, never a CDN
        served = await http.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 0
    assert "cdn.jsdelivr" not in page.text
    assert "fonts.googleapis" not in page.text
