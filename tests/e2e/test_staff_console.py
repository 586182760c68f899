"""The staff console at /staff in a real headless browser (Debian's chromium via Playwright): a town's clerk signs in,
sees the overview of their own unit, opens the review queue, looks at a suggestion with its picture, corrects its
category; a supervisor can look but not change."""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright, expect

from minsheng_core.staff import Role, StaffDirectory
from minsheng_store.app import create_app as store_app
from tests.fakes.wechat_api import serve
from tests.helpers import eventually

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def classified(system, body) -> dict:
    sid = (await system.web.post("/api/v1/suggestions", json=body)).json()["suggestion_id"]
    return await eventually(lambda: system.db.suggestions.find_one({"_id": sid, "status": "classified"}))


async def test_a_clerk_reviews_and_corrects_in_the_browser(system, tmp_path):
    assert CHROMIUM, "chromium is needed for the staff console's browser test (scripts/test installs it)"
    ours = await classified(
        system, {"text": "希望在石佛村建一个老年活动中心", "location": {"town": "滦河镇", "village": "石佛村"}}
    )
    theirs = await classified(
        system, {"text": "西地村小学操场太小，希望扩建", "location": {"town": "西地镇", "village": "西地村"}}
    )
    await system.db.suggestions.update_one(
        {"_id": ours["_id"]},
        {"$set": {"needs_review": True, "attachments": [{"kind": "image", "channel_ref": "x", "url": "/static/staff.css#pic"}]}},
    )
    await system.db.coverage.insert_one({"_id": "luanhe|石佛村", "unit": "luanhe", "place": "石佛村", "visited": 100})
    directory = StaffDirectory(system.db)
    await directory.create("luanhe-clerk", "a long enough pass", Role.UNIT_STAFF, "孙干事", unit="luanhe")
    await directory.create("sup-zhou", "a long enough pass", Role.SUPERVISOR, "周督查")

    # The store app served on a real port (the browser needs one), on the test's broker and database.
    async with serve(store_app(system.store_settings)) as base:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            try:
                await page.goto(base + "/staff")
                await expect(page).to_have_url(base + "/staff/login")
                await page.fill("#username", "luanhe-clerk")
                await page.fill("#password", "a long enough pass")
                await page.keyboard.press("Enter")
                await expect(page.locator("h1")).to_have_text("总览")
                await expect(page.locator("#total")).to_have_text("1")  # their own unit only
                await expect(page.locator("table.coverage")).to_contain_text("石佛村")
                assert "西地村" not in await page.locator("table.coverage").inner_text()

                await page.click("#review-count")
                await expect(page.locator("table.list")).to_contain_text(ours["tracking_code"])
                assert theirs["tracking_code"] not in await page.content()
                await page.click(f"text={ours['tracking_code']}")
                await expect(page.locator("#text")).to_have_text("希望在石佛村建一个老年活动中心")
                await expect(page.locator("figure img")).to_have_count(1)
                await page.select_option("#new-category", "culture")
                await page.click("text=保存修改")
                await expect(page.locator(".saved")).to_be_visible()
                await expect(page.locator("#category")).to_contain_text("文化生活")

                other = await page.goto(base + f"/staff/suggestions/{theirs['_id']}")
                assert other.status == 404
                await page.goto(base + "/staff")
                await page.click("text=退出")
                await page.fill("#username", "sup-zhou")
                await page.fill("#password", "a long enough pass")
                await page.keyboard.press("Enter")
                await expect(page.locator("#total")).to_have_text("2")  # supervisors see every unit
                await page.goto(base + f"/staff/suggestions/{ours['_id']}")
                await expect(page.locator("form.correction")).to_have_count(0)
            finally:
                await browser.close()

    doc = await system.db.suggestions.find_one({"_id": ours["_id"]})
    assert (doc["category"], doc["correction"]["corrected_by"], doc["needs_review"]) == ("culture", "luanhe-clerk", False)
