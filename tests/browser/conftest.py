"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real server."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, start_server, stop_server, write_config

CHROMIUM = "/usr/bin/chromium"
KEY = "browser-test-key-0123456789"
ARTIFACTS = Path(os.environ.get("LIVECART_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: ./dev.sh test installs it")


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser")
    config = write_config(tmp / "livecart.toml", f'[streams.demo2]\npublish_key = "{KEY}"\n')
    server = start_server(["--config", str(config), "--data-dir", str(tmp / "data")], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    assert "Traceback" not in server.log()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def chromium_args() -> list[str]:
    """Extra Chromium switches; a module overrides this fixture to add its own."""
    return []


@pytest.fixture
async def browser(chromium_args: list[str]) -> AsyncIterator[object]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
                *chromium_args,
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()
