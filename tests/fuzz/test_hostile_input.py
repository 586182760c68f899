"""Hostile input that the schema fuzzer cannot aim: script in every free-text field of every channel, read back on
every staff page (found by following the pages' own links); MongoDB operators and regular expressions in every query
and path parameter of every service's API (found in its OpenAPI schema).

WeChat XML (DTD, entities, oversize), Twilio parameters (signatures, sizes) and spreadsheets (formulas, encodings,
merged cells) have their own suites: tests/unit/test_wechat_protocol.py, tests/e2e/test_hotline_voice.py,
tests/unit/test_survey_sheet.py, tests/unit/test_weekly.py."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from minsheng_core.staff import Role
from tests.fakes.twilio_voice import TwilioCall
from tests.helpers import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "a test password"  # what System.sign_in gives every account


def payload(marker: str) -> str:
    """Breaks out of an attribute and opens a script and an event handler, if anything prints it unescaped."""
    return f"'\"><script>{marker}</script><img src=x onerror={marker}>"


def words(marker: str) -> str:
    """A resident's text (it must have words) carrying the payload."""
    return f"村口路灯坏了希望修好{payload(marker)}"


RAW = re.compile(r"<script>xs\d\d|<img src=x onerror=xs\d\d")
ESCAPED = re.compile(r"&lt;script&gt;(xs\d\d)")
SCRIPT_URL = re.compile(r"""(?:href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


async def crawl(client: httpx.AsyncClient, start: list[str], prefix: str, limit: int = 200) -> dict[str, str]:
    """Every HTML page under ``prefix`` reachable by links from ``start`` (GET only: forms are not submitted)."""
    pages: dict[str, str] = {}
    queue, seen = list(start), set()
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        response = await client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        pages[url] = response.text
        for href in re.findall(r'href="([^"#]*)"', response.text):
            target = urljoin(url, html.unescape(href))
            parts = urlsplit(target)
            if parts.netloc or not parts.path.startswith(prefix) or "/static/" in parts.path:
                continue
            queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return pages


async def page_sign_in(client: httpx.AsyncClient, prefix: str, username: str) -> str:
    """Sign in on a service's staff pages (the cookie stays on the client); the CSRF token of its first page."""
    response = await client.post(f"{prefix}/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.text
    page = (await client.get(prefix)).text
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


async def test_script_in_every_free_text_field_is_shown_escaped_on_every_staff_page(system):
    today = date.today()  # the test campaign is open around today
    fields: dict[str, str] = {}  # marker → where it went in

    def mark(where: str) -> str:
        marker = f"xs{len(fields) + 1:02d}"
        fields[marker] = where
        return marker

    expected = 0  # suggestions that must reach the store

    # The web form's JSON API: every free-text field of a suggestion.
    web = await system.web.post(
        "/api/v1/suggestions",
        json={
            "title": payload(mark("web title")),
            "text": words(mark("web text")),
            "location": {
                "town": payload(mark("web town")),
                "village": payload(mark("web village")),
                "detail": payload(mark("web detail")),
            },
            "contact": {"name": payload(mark("web contact name"))},
        },
    )
    assert web.status_code == 202, web.text
    expected += 1

    # WeChat: a text, then a picture whose URL is a script (it joins the text's suggestion), a recognised voice message.
    district = system.wechat_accounts[0]
    sent = await district.send(system.wechat, district.text("o-xss-sender", words(mark("wechat text")), msg_id=7001))
    assert sent.status_code == 200
    picture = "<PicUrl><![CDATA[javascript:alert(1)]]></PicUrl><MediaId><![CDATA[media-xss]]></MediaId>"
    sent = await district.send(system.wechat, district.message("o-xss-sender", "image", 7002, None, picture))
    assert sent.status_code == 200  # kept by its MediaId; the script address is dropped
    voice = district.voice("o-xss-other", payload(mark("wechat media id"))[:60], 7003, recognition=words(mark("wechat voice")))
    assert (await district.send(system.wechat, voice)).status_code == 200
    expected += 2

    # The TV hotline: words Twilio heard; unclear words with a recording.
    settings = system.hotline_settings
    token, public = settings.twilio_auth_token.get_secret_value(), settings.public_url
    heard = await TwilioCall(token, public).post(
        system.hotline, "/twilio/voice/speech", SpeechResult=words(mark("hotline speech")), Confidence="0.9"
    )
    assert heard.status_code == 200
    unclear = TwilioCall(token, public)
    recording_url = "https://api.twilio.com/rec/" + payload(mark("hotline recording url"))
    query = "?" + httpx.QueryParams({"heard": words(mark("hotline heard")), "confidence": "0.2"}).__str__()
    recorded = await unclear.post(system.hotline, "/twilio/voice/recording" + query, RecordingUrl=recording_url)
    assert recorded.status_code == 200, recorded.text
    expected += 2

    # The call centre's transcripts.
    batch = io.StringIO()
    writer = csv.writer(batch)
    writer.writerow(["call_id", "started_at", "caller", "text", "confidence", "recording_url"])
    writer.writerow(["xss-call-1", datetime.now(UTC).isoformat(), "", words(mark("transcript text")), "0.9", ""])
    transcripts = await system.hotline.post(
        "/api/v1/transcripts",
        content=batch.getvalue().encode(),
        headers={"Authorization": "Bearer test-transcripts-token", "Content-Type": "text/csv"},
    )
    assert transcripts.status_code == 200 and transcripts.json()["accepted"] == 1, transcripts.text
    expected += 1

    # The operators' console: an entry, published at once (its edit window moved into the past).
    await system.sign_in("xss-operator", Role.OPERATOR)
    csrf = await page_sign_in(system.hotline, "/console", "xss-operator")
    entry = {
        "csrf": csrf,
        "entry_key": "a1b2c3d4e5f6a7b8",
        "phone": "13912345678",
        "name": payload(mark("console name")),
        "town": payload(mark("console town")),
        "village": payload(mark("console village")),
        "detail": payload(mark("console detail")),
        "text": words(mark("console text")),
    }
    taken = await system.hotline.post("/console/entries", data=entry)
    assert taken.status_code == 303, taken.text
    outbox = system.apps["hotline"].state.hotline.runtime.outbox
    hotline_pages = await crawl(system.hotline, ["/console"], "/console")  # while the entry is still editable
    await outbox.db.execute("UPDATE outbox SET hold_until = ?", ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(),))
    await outbox.db.commit()
    expected += 1

    # Door to door: a survey sheet, a visit typed on the phone page, a symposium.
    clerk = await system.sign_in("xss-clerk", Role.UNIT_STAFF, "shuangtashan")
    sheet = io.StringIO()
    writer = csv.writer(sheet)
    writer.writerow(["村/社区", "户主/地址", "走访日期", "走访人", "建议内容", "姓名"])
    row = ["西山村", payload(mark("sheet household")), today.isoformat(), payload(mark("sheet visitor"))]
    writer.writerow([*row, words(mark("sheet suggestion")), payload(mark("sheet name"))])
    files = {"file": ("sheet.csv", sheet.getvalue().encode(), "text/csv")}
    imported = await system.survey.post("/api/v1/survey-sheets", files=files, headers=clerk)
    assert imported.status_code == 200 and imported.json()["accepted"] == 1, imported.text
    expected += 1
    csrf = await page_sign_in(system.survey, "/visits", "xss-clerk")
    visit = {
        "csrf": csrf,
        "village": "西山村",
        "household": payload(mark("visit household")),
        "visited_on": today.isoformat(),
        "visitor": payload(mark("visit visitor")),
        "suggestion": words(mark("visit suggestion")),
        "name": payload(mark("visit name")),
    }
    refused = await system.survey.post("/visits", data={**visit, "visited_on": "1999-01-01"})  # shown again, with errors
    assert refused.status_code == 422
    survey_pages = {"/visits (refused)": refused.text}
    assert (await system.survey.post("/visits", data=visit)).status_code == 303
    expected += 1
    symposium = {
        "held_on": today.isoformat(),
        "place": payload(mark("symposium place")),
        "host": payload(mark("symposium host")),
        "participants": 12,
        "suggestions": [{"text": words(mark("symposium suggestion")), "name": payload(mark("symposium name"))}],
    }
    recorded = await system.survey.post("/api/v1/symposiums", json=symposium, headers=clerk)
    assert recorded.status_code == 200, recorded.text
    expected += 1
    survey_pages |= await crawl(system.survey, ["/visits"], "/visits")

    # Everything reaches the store, classified.
    async def all_stored():
        return await system.db.suggestions.count_documents({"status": "classified"}) >= expected or None

    await eventually(all_stored, timeout=60)

    # What the staff write: a unit's contacts, a correction's note.
    person = {"name": payload(mark("contact leader name")), "post": payload(mark("contact leader post")), "phone": "13912345678"}
    contact = {"name": payload(mark("contact name")), "post": payload(mark("contact post")), "phone": "13912345679"}
    registered = await system.store.put(
        "/api/v1/units/shuangtashan/contacts", json={"leader": person, "contact": contact}, headers=system.staff_headers
    )
    assert registered.status_code == 200, registered.text
    some = await system.db.suggestions.find_one({"channel": "web"})
    note = {"category": "road_traffic", "note": payload(mark("correction note"))}
    corrected = await system.store.patch(
        f"/api/v1/suggestions/{some['_id']}/classification", json=note, headers=system.staff_headers
    )
    assert corrected.status_code == 200, corrected.text

    # Every staff page, as the district office sees them; the list searched for the payload itself.
    await system.sign_in("xss-admin", Role.ADMIN)
    await page_sign_in(system.store, "/staff", "xss-admin")
    search = "/staff/suggestions?" + str(httpx.QueryParams({"q": payload(mark("staff search box"))}))
    starts = ["/staff", "/staff/suggestions", "/staff/suggestions?review=true", "/staff/supervision", "/staff/weekly", search]
    store_pages = await crawl(system.store, starts, "/staff")
    hotline_pages |= await crawl(system.hotline, ["/console"], "/console")
    # And the resident's own status page, with the tracking code and access code the web form gave.
    receipt = web.json()
    status = await system.web.get(
        "/status", params={"tracking_code": receipt["tracking_code"], "access_code": receipt["access_code"]}
    )
    pages = {
        **{f"store {u}": t for u, t in store_pages.items()},
        **{f"hotline {u}": t for u, t in hotline_pages.items()},
        **{f"survey {u}": t for u, t in survey_pages.items()},
        "web /status": status.text,
    }

    assert len(store_pages) >= 5 + expected, sorted(store_pages)  # the crawl reached every suggestion's own page
    shown: set[str] = set()
    for url, text in pages.items():
        raw = RAW.findall(text)
        assert not raw, f"{url} prints {[fields[m[-4:]] for m in raw]} unescaped"
        assert not SCRIPT_URL.search(text), f"{url} links to a javascript: URL"
        shown |= set(ESCAPED.findall(text))
    # Not vacuous: what staff read (the words, the title, the place, what they typed and searched) was on a page.
    must_show = [m for m, where in fields.items() if any(k in where for k in ("text", "speech", "suggestion", "heard"))]
    must_show += [m for m, where in fields.items() if where in ("web title", "web detail", "staff search box")]
    missing = [fields[m] for m in must_show if m not in shown]
    assert not missing, f"never shown on any page, so not checked: {missing}"


# ----------------------------------------------------------------------------------------------------------------
# MongoDB operators through every query and path parameter

OPERATOR_STRINGS = [
    '{"$ne": null}',
    '{"$gt": ""}',
    "$ne",
    "$where",
    "'; return true; var x='",
    ".*",
    "^",
    "a|b",
    "\\",
    "[$ne]",
    '{"$regex": ".*"}',
]


def _count(body: Any) -> int | None:
    """How many records a list answer holds: ``total`` if it says, else the length of its only list."""
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        if isinstance(body.get("total"), int):
            return body["total"]
        lists = [v for v in body.values() if isinstance(v, list)]
        if len(lists) == 1:
            return len(lists[0])
    return None


def _string_parameters(spec: dict[str, Any], method: str, path: str) -> list[dict[str, Any]]:
    operation = spec["paths"][path][method]
    out = []
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
        if parameter["in"] in ("query", "path") and "string" in types and not schema.get("format"):
            out.append(parameter)
    return out


async def test_mongodb_operators_in_query_and_path_parameters_match_nothing_and_break_nothing(system):
    # Something to find: three suggestions, one corrected (so the audit log has an entry too).
    texts = ["村里到镇上的路一下雨就是泥，希望硬化", "希望在社区增设老年食堂", "西山村的路灯坏了好几个"]
    for text in texts:
        assert (await system.web.post("/api/v1/suggestions", json={"text": text})).status_code == 202

    async def stored():
        return await system.db.suggestions.count_documents({"status": "classified"}) == len(texts) or None

    await eventually(stored, timeout=60)
    some = await system.db.suggestions.find_one({})
    corrected = await system.store.patch(
        f"/api/v1/suggestions/{some['_id']}/classification", json={"category": "community"}, headers=system.staff_headers
    )
    assert corrected.status_code == 200, corrected.text

    headers = {
        "store": system.staff_headers,
        "survey": system.staff_headers,
        "hotline": {"Authorization": "Bearer test-transcripts-token"},
    }
    tried = 0
    broadened: list[str] = []
    for name in ("store", "web", "classifier", "hotline", "survey", "wechat"):
        client: httpx.AsyncClient = getattr(system, name)
        spec = (await client.get("/openapi.json")).json()
        for path, operations in spec["paths"].items():
            if "get" not in operations:  # read operations: a filter that matched more would show it
                continue
            parameters = _string_parameters(spec, "get", path)
            path_values = {p["name"]: "x" for p in operations["get"].get("parameters", []) if p["in"] == "path"}
            baseline = await client.get(path.format(**path_values), headers=headers.get(name, {}))
            baseline_count = (
                _count(baseline.json())
                if baseline.status_code == 200 and "json" in baseline.headers.get("content-type", "")
                else None
            )
            for parameter in parameters:
                for value in OPERATOR_STRINGS:
                    tried += 1
                    if parameter["in"] == "path":
                        url, params = path.format(**{**path_values, parameter["name"]: value.replace("/", "")}), {}
                    else:
                        url, params = path.format(**path_values), {parameter["name"]: value}
                    response = await client.get(url, params=params, headers=headers.get(name, {}))
                    where = f"{name} GET {path} {parameter['in']} {parameter['name']}={value!r}"
                    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:200]}"
                    if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
                        continue
                    count = _count(response.json())
                    # A value no record holds must find no record: an operator or a pattern matched more.
                    if count and baseline_count and parameter["in"] == "query":
                        broadened.append(f"{where}: {count} of {baseline_count}")
    assert tried > 100
    assert not broadened, broadened
