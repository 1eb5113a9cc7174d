"""The web page at ``/``, driven in a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import launch_chromium, requires_chromium
from tests.serving.conftest import CAT_LABELS, ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = requires_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, imagenet_server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{imagenet_server.url}/")
    try:
        yield page
    finally:
        context.close()
    # A 4xx on /invocations is logged by the browser as a failed resource, not a script error.
    assert [e for e in errors if "status of 4" not in e] == []


def test_picking_a_photo_shows_the_top_5_labels(
    page: Page, tmp_path: Path, chelsea_jpeg: bytes
) -> None:
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(chelsea_jpeg)
    # A selector wait: a predicate string would be eval'ed in the page, which its CSP forbids.
    page.wait_for_selector("#model-info:has-text('1000')")
    assert "efficientnet_lite0" in page.inner_text("#model-info")

    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#predictions tbody tr")
    labels = page.locator("#predictions td.label").all_inner_texts()
    percents = page.locator("#predictions td.probability").all_inner_texts()
    assert len(labels) == 5
    assert labels[0] in CAT_LABELS
    values = [float(p.strip().rstrip("%").strip()) for p in percents]
    assert values == sorted(values, reverse=True)
    assert 0 < sum(values) <= 100.5
    assert page.inner_text("#status") == "Top 5 for chelsea.jpg"
    assert page.is_visible("#preview")
    page.screenshot(path=str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_a_file_that_is_not_an_image_shows_the_servers_reason(page: Page, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("shopping list: eggs, milk")
    page.set_input_files("#file", str(fake))
    page.wait_for_selector("#status.error")
    status = page.inner_text("#status")
    assert status.startswith("Error 400:")
    assert "not an image" in status
    assert page.is_hidden("#predictions")
