"""The operators' console in a real headless browser (Debian's chromium, driven by Playwright): sign in, type a
caller's suggestion with the keyboard, see the classifier's guess and the repeat-caller warning, get the code,
and find the suggestion stored and classified once the edit window has passed."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import async_playwright, expect

from minsheng_classifier.app import create_app as classifier_app
from minsheng_core.staff import Role, StaffDirectory
from minsheng_intake_hotline.app import create_app as hotline_app
from tests.fakes.wechat_api import serve
from tests.helpers import eventually

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def console_url(system, tmp_path):
    """intake-hotline and a classifier on real ports (the browser needs them), on the test's broker and database."""
    async with serve(classifier_app(system.classifier_settings)) as classifier:
        settings = system.hotline_settings.model_copy(
            update={"outbox_path": tmp_path / "browser-outbox.sqlite3", "classifier_url": classifier}
        )
        async with serve(hotline_app(settings)) as hotline:
            yield hotline, settings.outbox_path


async def test_an_operator_takes_a_call_down_in_the_browser(system, console_url):
    assert CHROMIUM, "chromium is needed for the console's browser test (scripts/test installs it)"
    base, outbox_path = console_url
    await StaffDirectory(system.db).create("op-zhang", "a long enough pass", Role.OPERATOR, "张接线")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page()
        try:
            await page.goto(base + "/console")
            await expect(page).to_have_url(base + "/console/login")
            await expect(page.locator("#username")).to_be_focused()  # autofocus; typing before it would go nowhere
            await page.keyboard.type("op-zhang")
            await page.keyboard.press("Tab")
            await page.keyboard.type("a long enough pass")
            await page.keyboard.press("Enter")
            await expect(page.locator("h1")).to_have_text("录入来电建议")
            await expect(page.locator("#phone")).to_be_focused()

            # keyboard only: phone, name, town, village, detail, the caller's words
            await page.keyboard.type("139-1234-5678")
            await expect(page.locator("#phone")).to_have_value("139-1234-5678")
            for value in ("刘阿姨", "西地镇", "张家营村", "村委会往东"):
                await page.keyboard.press("Tab")
                await page.keyboard.type(value)
            await page.keyboard.press("Tab")
            await page.keyboard.type("村里到镇上的土路一下雨全是泥，孩子上学难走，希望明年硬化成水泥路。")
            await expect(page.locator("#prediction")).to_contain_text("道路交通")
            options = await page.locator("#villages option").evaluate_all("els => els.map(e => e.value)")
            assert "张家营村" in options and "西山村" not in options  # the villages of the town typed
            await page.keyboard.press("Control+Enter")
            await page.wait_for_url("**/console?saved=*")
            code = (await page.locator("#saved-code").text_content()).strip()
            await expect(page.locator("#entries")).to_contain_text(code)

            # the same caller again: the console says so, with a link to the first suggestion
            await page.locator("#phone").fill("13912345678")
            await page.locator("#name").focus()
            warning = page.locator("#phone-warning")
            await expect(warning).to_be_visible()
            await expect(warning.locator("a")).to_have_text(code)
            assert await warning.locator("a").get_attribute("href") == f"/console/suggestions/{code}"
        finally:
            await browser.close()

    # The edit window passes (moved into the past here); the console's own drainer publishes the entry.
    with sqlite3.connect(outbox_path) as db:
        db.execute("UPDATE outbox SET hold_until = ?", ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(),))

    async def stored():
        return await system.db.suggestions.find_one({"tracking_code": code, "status": "classified"})

    doc = await eventually(stored)
    assert doc["channel"] == "hotline" and doc["location"] == {"town": "西地镇", "village": "张家营村", "detail": "村委会往东"}
    assert doc["classification"]["category"] == "road_traffic" and doc["unit"] == "xidi"
    personal, vault = await system.db.personal_data.find_one({"_id": doc["_id"]}), system.store_settings.vault
    assert (vault.open("phone", personal["phone"]), vault.open("name", personal["name"])) == ("13912345678", "刘阿姨")
