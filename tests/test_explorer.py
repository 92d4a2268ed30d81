"""The explorer's page and assets as the collector serves them (the page itself runs in
test_explorer_browser.py): open without a key, strict about scripts, documented."""

import re
from pathlib import Path

STATIC = "collector/web/static/explorer"


def test_the_page_is_served_at_the_root_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    page = response.get_data(as_text=True)
    assert '<script type="module" src="/explorer/main.js">' in page
    assert "<script>" not in page and " style=" not in page  # nothing inline: the policy holds


def linked_assets(client):
    """Every asset the page links, and every module those modules import."""
    page = client.get("/").get_data(as_text=True)
    pending = re.findall(r'(?:src|href)="(/explorer/[^"]+)"', page)
    seen = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.endswith(".js"):
            text = client.get(path).get_data(as_text=True)
            folder = path.rsplit("/", 1)[0]
            for relative in re.findall(r'^import .* from "(\./[^"]+)";', text, re.M):
                pending.append(f"{folder}/{relative[2:]}")
    return seen


def test_every_asset_and_module_is_served(client):
    assets = linked_assets(client)
    assert {"/explorer/main.js", "/explorer/explorer.css", "/explorer/favicon.svg",
            "/explorer/vendor/uplot/uPlot.min.css", "/explorer/vendor/uplot/uPlot.esm.js",
            "/explorer/histogram.js", "/explorer/api.js"} <= assets
    for path in assets:
        response = client.get(path)
        assert response.status_code == 200, path
        if path.endswith(".js"):  # browsers run a module only with a JavaScript type
            assert response.mimetype == "text/javascript", path
    missing = client.get("/explorer/nothing.js")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_the_page_needs_no_key_where_the_api_does(make_app):
    client = make_app(AUTH_REQUIRED=True).test_client()
    assert client.get("/").status_code == 200
    for path in linked_assets(client):
        assert client.get(path).status_code == 200, path
    assert client.get("/logs").get_json()["error"] == "missing_api_key"


def test_the_page_is_documented_and_its_assets_are_not(client):
    document = client.get("/openapi.json").get_json()
    assert "text/html" in document["paths"]["/"]["get"]["responses"]["200"]["content"]
    assert "security" not in document["paths"]["/"]["get"]
    assert not any(path.startswith("/explorer") for path in document["paths"])


def test_the_vendored_chart_library_keeps_its_licence_and_names_its_version():
    folder = Path(__file__).resolve().parents[1] / STATIC / "vendor" / "uplot"
    assert "Permission is hereby granted" in (folder / "LICENSE").read_text()
    header = (folder / "uPlot.esm.js").read_text()[:400]
    version = re.search(r"github\.com/leeoniya/uPlot \(v([0-9.]+)\)", header).group(1)
    assert f"uPlot {version} " in (folder / "README.md").read_text()
