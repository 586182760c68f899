"""The call centre's transcript batches: the file checks, the row checks, the import and the CLI (no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from minsheng_core.outbox import SubmissionKeyConflict
from minsheng_intake_hotline import cli
from minsheng_intake_hotline.suggestions import CallWords
from minsheng_intake_hotline.transcripts import (
    BatchRejected,
    ImportInterrupted,
    SkippedRow,
    TranscriptRow,
    ValidRow,
    batch_format,
    encode_batch,
    import_batch,
    read_batch,
)

NOW = datetime(2019, 11, 1, 12, 0, tzinfo=UTC)
HEADER = "call_id,started_at,caller,text,confidence,recording_url\n"
GOOD_CSV = (
    HEADER
    + "CC-1001,2019-10-20T09:30:00+08:00,+86 139-0000-0001,希望村里修路,0.93,https://cc.example/rec/1001.mp3\n"
    + 'CC-1002,2019-10-21T10:00:00Z,0314-2345678,"多建几个公共厕所，\n最好在菜市场旁边",,\n'
    + "CC-1003,2019-10-22T11:00:00+08:00,,,0.2,\n"
)
GOOD_JSONL = "\n".join(
    json.dumps(r, ensure_ascii=False)
    for r in [
        {
            "call_id": "CC-2001",
            "started_at": "2019-10-20T09:30:00+08:00",
            "caller": "13900000001",
            "text": "修路",
            "confidence": 0.9,
        },
        {"call_id": "CC-2002", "started_at": "2019-10-20T01:30:00Z", "text": "建公厕"},
    ]
)


def read(text: str | bytes, fmt: str = "csv"):
    return read_batch(text.encode() if isinstance(text, str) else text, fmt, now=NOW)


def rejected(items) -> dict[int, str]:
    return {i.row: i.reason for i in items if isinstance(i, SkippedRow) and i.outcome == "rejected"}


def csv_row(**values: str) -> str:
    row = {"call_id": "CC-1", "started_at": "2019-10-20T09:30:00+08:00", "caller": "", "text": "修路", "confidence": ""}
    row |= values
    return HEADER.replace(",recording_url", "") + ",".join(
        row[c] for c in ("call_id", "started_at", "caller", "text", "confidence")
    )


# --- the file as a whole -----------------------------------------------------------------------------------


def test_a_good_csv_gives_normalised_rows_numbered_as_a_spreadsheet_shows_them():
    items = read(GOOD_CSV)
    assert [type(i) for i in items] == [ValidRow, ValidRow, ValidRow]
    assert [i.row for i in items] == [2, 3, 4]  # the header is row 1; a quoted newline stays in its row
    first, second, third = (i.transcript for i in items)
    assert first.started_at == datetime(2019, 10, 20, 1, 30, tzinfo=UTC)
    assert (first.caller, first.confidence, first.recording_url) == ("13900000001", 0.93, "https://cc.example/rec/1001.mp3")
    assert second.text == "多建几个公共厕所，\n最好在菜市场旁边" and second.caller == "03142345678"
    assert (second.confidence, second.recording_url) == (None, None)
    # An empty text is kept: the suggestion then awaits transcription.
    assert (third.text, third.caller, third.words()) == ("", None, CallWords("", 0.2))


def test_a_good_jsonl_file_with_blank_lines_numbers_rows_by_line():
    items = read("\n" + GOOD_JSONL + "\n\n", "jsonl")
    assert [(i.row, i.transcript.call_id) for i in items] == [(2, "CC-2001"), (3, "CC-2002")]
    assert items[0].transcript.started_at == items[1].transcript.started_at


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_utf8_bom_is_allowed(fmt):
    data = GOOD_CSV if fmt == "csv" else GOOD_JSONL
    assert read(b"\xef\xbb\xbf" + data.encode(), fmt) == read(data, fmt)


def test_a_file_that_is_not_utf8_is_rejected_naming_the_byte_and_line():
    data = GOOD_CSV.encode("gbk")
    with pytest.raises(BatchRejected) as info:
        read(data)
    at = data.index("希".encode("gbk")) + 2  # its first two bytes happen to make a UTF-8 character
    assert f"not UTF-8 at byte {at} (line 2)" in str(info.value) and "GBK" in str(info.value)
    assert info.value.code == "encoding"
    with pytest.raises(BatchRejected, match="not UTF-8 at byte 7 "):
        read(b"\xef\xbb\xbfcall\xff", "csv")  # an offset in the file as it is, BOM included
    with pytest.raises(BatchRejected, match="UTF-16"):
        read(GOOD_CSV.encode("utf-16"))


def test_missing_columns_are_named_before_any_row_is_looked_at():
    with pytest.raises(BatchRejected) as info:
        read("call_id,caller,text\nCC-1,13900000001,修路\nnot even,a row,with,the right,fields\n")
    assert str(info.value).startswith("missing columns: started_at")
    assert info.value.code == "missing_columns"


def test_unknown_or_repeated_columns_and_empty_files_are_rejected():
    with pytest.raises(BatchRejected, match="unknown columns: agent"):
        read("call_id,started_at,text,agent\nCC-1,2019-10-20T09:30:00Z,修路,007\n")
    with pytest.raises(BatchRejected, match="repeated columns: text"):
        read("call_id,started_at,text,text\n")
    for empty, fmt in [("", "csv"), ("\n\n", "csv"), (HEADER, "csv"), ("\n \n", "jsonl")]:
        with pytest.raises(BatchRejected) as info:
            read(empty, fmt)
        assert info.value.code == "empty"


def test_broken_csv_quoting_rejects_the_file_instead_of_swallowing_rows():
    broken = HEADER + 'CC-1,2019-10-20T09:30:00Z,,"unclosed,,\nCC-2,2019-10-20T09:30:00Z,,修路,,\n'
    with pytest.raises(BatchRejected, match="CSV unreadable"):
        read(broken)


def test_header_names_are_trimmed_and_case_insensitive():
    items = read(" Call_ID ,STARTED_AT,text\nCC-1,2019-10-20T09:30:00Z,修路\n")
    assert items[0].transcript.call_id == "CC-1"


def test_the_format_comes_from_a_name_a_suffix_or_a_media_type():
    assert [batch_format(n) for n in ["csv", "calls.CSV", "text/csv"]] == ["csv"] * 3
    assert [batch_format(n) for n in ["jsonl", "ndjson", "a.jsonl", "b.ndjson", "application/x-ndjson"]] == ["jsonl"] * 5
    with pytest.raises(BatchRejected, match="unknown format"):
        batch_format("calls.xlsx")


# --- each row on its own -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"started_at": "2019-10-20T09:30:00"}, "started_at: has no UTC offset"),
        ({"started_at": "2019-10-20"}, "started_at: has no UTC offset"),
        ({"started_at": "20/10/2019 09:30"}, "started_at: '20/10/2019 09:30' is not an ISO 8601 time"),
        ({"started_at": "2019-13-01T00:00:00Z"}, "started_at: '2019-13-01T00:00:00Z' is not an ISO 8601"),
        ({"started_at": ""}, "started_at: required"),
        ({"started_at": "2019-11-02T12:00:00Z"}, "started_at: is in the future"),
        ({"caller": "12345"}, "caller: is not a phone number"),
        ({"caller": "+1 415 555 0100"}, "caller: is not a phone number"),
        ({"confidence": "1.5"}, "confidence: Input should be less than or equal to 1"),
        ({"confidence": "-0.1"}, "confidence: Input should be greater than or equal to 0"),
        ({"confidence": "93%"}, "confidence: must be a number from 0 to 1"),
        ({"confidence": "nan"}, "confidence: must be a number from 0 to 1"),
        ({"call_id": "CC 1/2"}, "call_id: must be 1–100 characters"),
        ({"call_id": "x" * 101}, "call_id: must be 1–100 characters"),
        ({"call_id": ""}, "call_id: must be 1–100 characters"),
        ({"text": "x" * 5001}, "text: String should have at most 5000 characters"),
        ({"text": "å»ºè®®ä¿®è·¯"}, "text: looks like UTF-8 read as Latin-1/Windows-1252"),
        ({"text": "修�路"}, "text: contains U+FFFD"),
        ({"text": "修\x07路"}, "text: contains control characters"),
    ],
)
def test_a_bad_row_is_rejected_with_its_reason_and_never_stops_the_good_ones(values, reason):
    good = "CC-9,2019-10-20T09:30:00+08:00,,希望修路,"
    text = csv_row(**values) + "\n" + good + "\n"
    items = read(text)
    assert list(rejected(items)) == [2], items
    assert rejected(items)[2].startswith(reason), rejected(items)[2]
    assert isinstance(items[1], ValidRow) and items[1].transcript.call_id == "CC-9"


def test_a_rejected_row_names_its_call_id_when_it_has_one():
    items = read(csv_row(caller="12345"))
    assert (items[0].row, items[0].call_id, items[0].outcome) == (2, "CC-1", "rejected")


def test_text_at_the_limit_is_kept_and_surrounding_spaces_are_trimmed():
    assert read(csv_row(text="修" * 5000))[0].transcript.text == "修" * 5000
    assert read(csv_row(text="  修路 "))[0].transcript.text == "修路"


def test_a_withheld_number_is_no_number():
    assert read(csv_row(caller="anonymous"))[0].transcript.caller is None


def test_a_csv_row_with_the_wrong_number_of_fields_is_rejected_alone():
    items = read(HEADER + "CC-1,2019-10-20T09:30:00Z,,修路\nCC-2,2019-10-20T09:30:00Z,,修路,,\n")
    assert rejected(items) == {2: "has 4 fields, the header has 6"} and items[0].call_id == "CC-1"
    assert isinstance(items[1], ValidRow)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"call_id": "J", "started_at": "2019-10-20T09:30:00Z", "text": "x", "confidence": NaN}', "not valid JSON"),
        ('{"call_id": "J", "call_id": "K", "started_at": "2019-10-20T09:30:00Z", "text": "x"}', "not valid JSON: repeated key"),
        ('{"call_id": "J", "started_at": 1571533800, "text": "x"}', "started_at: must be an ISO 8601 time as text"),
        ('{"call_id": "J", "started_at": "2019-10-20T09:30:00Z"}', "text: required"),
        ('{"call_id": "J", "started_at": "2019-10-20T09:30:00Z", "text": "x", "agent": 7}', "agent: unknown field"),
        ('{"call_id": "J", "started_at": "2019-10-20T09:30:00Z", "text": "\\ud800"}', "text: contains invalid characters"),
        ('{"call_id": "J", "started_at": "2019-10-20T09:30:00Z", "text": "x", "confidence": true}', "confidence: must be"),
        ('{"call_id": "J", "started_at": "2019-10-20T09:30:00Z", "text": "x", "caller": 13900000001}', "caller: must be text"),
        ('{"call_id": 12, "started_at": "2019-10-20T09:30:00Z", "text": "x"}', "call_id: must be text"),
        (
            '{"call_id": "J", "started_at": "2019-10-20T09:30:00Z", "text": "x", "recording_url": "ftp://x/y"}',
            "recording_url: must be",
        ),
    ],
)
def test_bad_json_lines_are_rejected_each_with_a_reason(line, reason):
    items = read(line + "\n" + GOOD_JSONL, "jsonl")
    assert list(rejected(items)) == [1]
    assert rejected(items)[1].startswith(reason), rejected(items)[1]
    assert [i.row for i in items if isinstance(i, ValidRow)] == [2, 3]


def test_null_text_and_confidence_in_json_lines_mean_none_yet():
    row = read('{"call_id": "J", "started_at": "2019-10-20T09:30:00Z", "text": null, "confidence": null}', "jsonl")[0]
    assert row.transcript.words() == CallWords("", None)


def test_a_repeated_call_id_in_one_batch_is_a_duplicate_of_its_first_row():
    text = csv_row() + "\nCC-1,2019-10-21T09:30:00+08:00,,另一条,\nCC-2,bad,,x,\nCC-2,2019-10-21T09:30:00+08:00,,x,\n"
    items = read(text)
    assert isinstance(items[0], ValidRow)
    assert (items[1].outcome, items[1].reason) == ("duplicate", "same call_id as row 2")
    # The first CC-2 was rejected: the second is the one that counts.
    assert items[2].outcome == "rejected" and isinstance(items[3], ValidRow)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_written_back_read_the_same(fmt):
    rows = [i.transcript for i in read(GOOD_CSV)]
    again = read_batch(encode_batch(rows, fmt), fmt, now=NOW)
    assert [i.transcript for i in again] == rows


def test_the_model_converts_times_to_utc():
    row = TranscriptRow(call_id="A", started_at="2019-10-20T09:30:00+08:00", text="修路")
    assert row.started_at.utcoffset().total_seconds() == 0 and row.started_at.hour == 1


# --- the import ----------------------------------------------------------------------------------------------


@dataclass
class Accepted:
    tracking_code: str
    new: bool


@dataclass
class FakeIntake:
    """The intake as the import sees it: first acceptance wins, the same call again is not new."""

    taken: dict[str, tuple] = field(default_factory=dict)
    fail_on: str | None = None

    async def take_transcript(self, call_id, started_at, caller, words, recording_url=None):
        if call_id == self.fail_on:
            raise OSError("disk full")
        content = (started_at, caller, words, recording_url)
        if call_id in self.taken and self.taken[call_id] != content:
            raise SubmissionKeyConflict(call_id)
        new = call_id not in self.taken
        self.taken.setdefault(call_id, content)
        return Accepted(f"T-{call_id}", new)


async def test_import_reports_every_row_and_a_second_import_changes_nothing():
    text = GOOD_CSV + "CC-1001,2019-10-20T09:30:00+08:00,,again,,\nCC-1004,no-time,,x,,\n"
    items = read(text)
    intake = FakeIntake()
    first = await import_batch(intake, items)
    assert (first.accepted, first.duplicates, first.rejected) == (3, 1, 1)
    rows = first.as_json()["rows"]
    assert rows[0] == {"row": 2, "call_id": "CC-1001", "outcome": "accepted", "tracking_code": "T-CC-1001"}
    assert rows[3] == {
        "row": 5,
        "call_id": "CC-1001",
        "outcome": "duplicate",
        "tracking_code": "T-CC-1001",
        "reason": "same call_id as row 2",
    }
    assert rows[4]["outcome"] == "rejected" and rows[4]["reason"].startswith("started_at:")
    assert intake.taken["CC-1001"][1] == "13900000001"

    second = await import_batch(intake, items)
    assert (second.accepted, second.duplicates, second.rejected) == (0, 4, 1)
    assert len(intake.taken) == 3


async def test_the_same_call_id_with_other_content_is_rejected_and_the_first_stands():
    intake = FakeIntake()
    await import_batch(intake, read(csv_row()))
    report = await import_batch(intake, read(csv_row(text="不一样的内容")))
    assert report.rejected == 1 and "already imported with different content" in report.rows[0].reason


async def test_an_intake_failure_interrupts_the_import_naming_the_row():
    intake = FakeIntake(fail_on="CC-1002")
    with pytest.raises(ImportInterrupted) as info:
        await import_batch(intake, read(GOOD_CSV))
    assert info.value.row == 3 and info.value.report.accepted == 1


# --- the CLI -------------------------------------------------------------------------------------------------


class FakeService:
    """The endpoint behind an httpx.MockTransport, on a FakeIntake."""

    def __init__(self, token: str = cli.DEV_TOKEN) -> None:
        self.token = token
        self.intake = FakeIntake()
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import asyncio

        assert request.url.path == "/api/v1/transcripts"
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"error": "token"})
        self.bodies.append(request.content)
        fmt = batch_format(request.headers["content-type"].split(";")[0])
        items = read_batch(request.content, fmt, now=NOW)
        report = asyncio.run(import_batch(self.intake, items))
        return httpx.Response(200, json=report.as_json())


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def many_rows(n: int) -> str:
    return HEADER + "".join(f"CC-{i},2019-10-20T09:30:00+08:00,1390000{i:04d},希望修路{i},0.9,\n" for i in range(n))


def test_cli_sends_chunks_with_the_header_repeated_and_reports_in_file_rows(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
    bad = "CC-x,2019-10-20T09:30,,修路,,\n"
    text = many_rows(5).replace("CC-3,", "CC-1,", 1) + bad
    service = FakeService()
    code = cli.main(
        ["import-transcripts", write(tmp_path, "calls.csv", text), "--chunk-rows", "2"], transport=httpx.MockTransport(service)
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert len(service.bodies) == 2 and all(b.startswith(HEADER.encode().replace(b"\n", b"\r\n")) for b in service.bodies)
    assert out.splitlines() == [
        "accepted:   4",
        "duplicates: 1",
        "rejected:   1",
        "  row 7 (call_id CC-x): started_at: has no UTC offset; write it as 2019-10-20T09:30:00+08:00 or with Z for UTC",
    ]
    assert "4/4" in err  # the progress bar, on stderr

    again = cli.main(
        ["import-transcripts", write(tmp_path, "fixed.csv", many_rows(5)), "--json"], transport=httpx.MockTransport(service)
    )
    report = json.loads(capsys.readouterr().out)
    assert again == 0 and (report["accepted"], report["duplicates"], report["rejected"]) == (1, 4, 0)
    assert [r["row"] for r in report["rows"]] == [2, 3, 4, 5, 6] and report["rows"][0]["tracking_code"] == "T-CC-0"


def test_cli_chunks_also_by_size(tmp_path, capsys):
    service = FakeService()
    path = write(
        tmp_path,
        "calls.jsonl",
        "\n".join(json.dumps({"call_id": f"J{i}", "started_at": "2019-10-20T09:30:00Z", "text": "修" * 3000}) for i in range(4)),
    )
    argv = ["import-transcripts", path, "--chunk-bytes", "20000", "--quiet"]
    assert cli.main(argv, transport=httpx.MockTransport(service)) == 0
    assert [len(b.splitlines()) for b in service.bodies] == [2, 2]
    assert capsys.readouterr().out.startswith("accepted:   4\n")


def test_cli_reports_in_batch_duplicates_with_the_first_rows_tracking_code(tmp_path, capsys):
    path = write(tmp_path, "calls.csv", many_rows(2) + "CC-0,2019-10-21T09:30:00+08:00,,别的,,\n")
    assert cli.main(["import-transcripts", path, "--json", "--quiet"], transport=httpx.MockTransport(FakeService())) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[2] == {
        "row": 4,
        "call_id": "CC-0",
        "outcome": "duplicate",
        "tracking_code": "T-CC-0",
        "reason": "same call_id as row 2",
    }


def test_cli_rejects_an_unusable_file_without_sending_anything(tmp_path, capsys):
    def refuse(_request):
        raise AssertionError("nothing may be sent")

    for name, data, message in [
        ("calls.csv", "call_id,text\nCC-1,修路\n", "missing columns: started_at"),
        ("calls.csv", many_rows(2).encode("utf-16"), "UTF-16"),
        ("calls.xlsx", b"PK\x03\x04", "unknown format"),
    ]:
        code = cli.main(["import-transcripts", write(tmp_path, name, data)], transport=httpx.MockTransport(refuse))
        out, err = capsys.readouterr()
        assert code == 2 and message in err and "Nothing was sent" in err and out == ""
    assert cli.main(["import-transcripts", str(tmp_path / "absent.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_token_comes_from_the_option_then_the_environment(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "calls.csv", many_rows(1))
    monkeypatch.setenv(cli.TOKEN_ENV, "from-env")
    assert cli.main(["import-transcripts", path, "--quiet"], transport=httpx.MockTransport(FakeService("from-env"))) == 0
    assert (
        cli.main(["import-transcripts", path, "--token", "opt", "--quiet"], transport=httpx.MockTransport(FakeService("opt")))
        == 0
    )
    capsys.readouterr()
    assert cli.main(["import-transcripts", path, "--quiet"], transport=httpx.MockTransport(FakeService("other"))) == 2
    assert "refused the token" in capsys.readouterr().err


def test_cli_network_failure_says_rerunning_is_safe_and_keeps_the_partial_report(tmp_path, capsys):
    service = FakeService()

    def flaky(request: httpx.Request) -> httpx.Response:
        if service.bodies:
            raise httpx.ConnectError("connection refused", request=request)
        return service(request)

    path = write(tmp_path, "calls.csv", many_rows(3))
    assert cli.main(["import-transcripts", path, "--chunk-rows", "2", "--quiet"], transport=httpx.MockTransport(flaky)) == 3
    out, err = capsys.readouterr()
    assert "partial report (2 of 3 rows sent)" in out and "accepted:   2" in out
    assert "could not reach" in err and "idempotent by call id" in err

    def down(_request):
        return httpx.Response(503, json={"error": "could not store row 2"})

    assert cli.main(["import-transcripts", path, "--quiet"], transport=httpx.MockTransport(down)) == 3
    assert "could not store row 2" in capsys.readouterr().err
