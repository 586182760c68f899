"""The call centre's transcript batches (channel ``hotline_transcript``): their format, their checks, their import.

A batch is UTF-8 (a BOM is allowed), either CSV with a header row or JSON lines, one call per row:

========================  ==============================================================================
``call_id``               required; 1–100 characters of ``A-Z a-z 0-9 _ . : -``; the idempotency key
``started_at``            required; ISO 8601 with a UTC offset (``2019-10-20T09:30:00+08:00`` or ``…Z``)
``caller``                optional; a mobile number or a landline with its area code
``text``                  required column/key; at most 5000 characters; empty: kept, awaiting transcription
``confidence``            optional; the ASR confidence, 0…1 (below the threshold: awaiting transcription)
``recording_url``         optional; http(s), at most 1000 characters
========================  ==============================================================================

Problems of the whole file (not UTF-8, broken CSV quoting, missing or unknown columns, no rows) raise
``BatchRejected`` before any row is looked at. Every row is then checked on its own: a bad row is reported with
its number and the reason, and never stops the good ones. Row numbers are what an editor or a spreadsheet shows:
the line of a JSON-lines file, the spreadsheet row of a CSV file (the header is row 1).

No FastAPI here; ``import_batch`` hands each good row to the hotline intake, which makes it durable and
idempotent by call id (a row is accepted whole or not at all).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from minsheng_core.events import BODY_MAX
from minsheng_core.outbox import Accepted, SubmissionKeyConflict
from minsheng_core.phones import PHONE_PATTERN, canonical_phone
from minsheng_core.sheets import FileRefused
from minsheng_intake_hotline.suggestions import CallWords

Format = Literal["csv", "jsonl"]
Outcome = Literal["accepted", "duplicate", "rejected"]

REQUIRED_COLUMNS = ("call_id", "started_at", "text")
OPTIONAL_COLUMNS = ("caller", "confidence", "recording_url")
COLUMNS = ("call_id", "started_at", "caller", "text", "confidence", "recording_url")
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv", "jsonl": "application/x-ndjson"}

CALL_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
RECORDING_URL_MAX = 1000
# A call cannot have started later than now; a little slack for the call centre's clock. A local time labelled
# as UTC (a common export mistake) shows up here as a call in the future.
FUTURE_TOLERANCE = timedelta(minutes=15)
# What call-centre systems write when the caller withheld their number: a suggestion without a phone.
_WITHHELD = {"anonymous", "unknown", "withheld", "restricted", "private", "unavailable"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_EXAMPLE_TIME = "2019-10-20T09:30:00+08:00"


class BatchRejected(FileRefused):
    """The file as a whole cannot be imported; nothing of it is."""


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _misdecoded(text: str) -> bool:
    """UTF-8 that some system read as Latin-1 / Windows-1252 before writing it out again ("å»ºè®®" for "建议")."""
    if text.isascii():
        return False
    for codec in ("cp1252", "latin-1"):
        try:
            repaired = text.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
        if repaired != text:
            return True
    return False


class TranscriptRow(BaseModel):
    """One call of a transcript batch, checked and normalised (time in UTC, canonical phone)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    call_id: str
    started_at: datetime
    caller: str | None = None
    text: str = Field(max_length=BODY_MAX)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    recording_url: str | None = Field(default=None, max_length=RECORDING_URL_MAX)

    @field_validator("call_id", mode="before")
    @classmethod
    def _call_id(cls, value: object) -> str:
        if not isinstance(value, str):
            raise _error("call_id_type", "must be text")
        value = value.strip()
        if not re.fullmatch(CALL_ID_PATTERN, value):
            raise _error("call_id_format", "must be 1–100 characters of letters, digits and _ . : -")
        return value

    @field_validator("started_at", mode="before")
    @classmethod
    def _started_at(cls, value: object, info: ValidationInfo) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str) and value.strip():
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                shown = value.strip()[:40]
                raise _error("time_format", f"'{shown}' is not an ISO 8601 time such as {_EXAMPLE_TIME}") from None
        elif isinstance(value, str) or value is None:
            raise _error("missing", "required")
        else:
            raise _error("time_type", f"must be an ISO 8601 time as text, such as {_EXAMPLE_TIME}")
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise _error("naive_time", f"has no UTC offset; write it as {_EXAMPLE_TIME} or with Z for UTC")
        parsed = parsed.astimezone(UTC)
        now = (info.context or {}).get("now")
        if now is not None and parsed > now + FUTURE_TOLERANCE:
            raise _error("future_time", "is in the future (is the UTC offset right?)")
        return parsed

    @field_validator("caller", mode="before")
    @classmethod
    def _caller(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _error("phone_type", "must be text (a number as a string keeps its leading 0)")
        if not value.strip() or value.strip().lower() in _WITHHELD:
            return None
        phone = canonical_phone(value)
        if not re.fullmatch(PHONE_PATTERN, phone):
            raise _error("phone_format", "is not a phone number: a mobile number, or a landline with its area code")
        return phone

    @field_validator("text", mode="before")
    @classmethod
    def _text_type(cls, value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _error("text_type", "must be text")
        if _SURROGATE.search(value):
            raise _error("text_encoding", "contains invalid characters (lone surrogates)")
        return value

    @field_validator("text")
    @classmethod
    def _text_characters(cls, value: str) -> str:
        if "\ufffd" in value:
            raise _error("text_encoding", "contains U+FFFD replacement characters: it was decoded wrongly before export")
        if _misdecoded(value):
            raise _error("text_encoding", "looks like UTF-8 read as Latin-1/Windows-1252 (mojibake): export it as UTF-8")
        if _CONTROL.search(value):
            raise _error("text_control", "contains control characters")
        return value

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence(cls, value: object) -> object:
        if isinstance(value, bool):
            raise _error("confidence_type", "must be a number from 0 to 1")
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            try:
                number = float(value)
            except ValueError:
                raise _error("confidence_type", "must be a number from 0 to 1") from None
            if not math.isfinite(number):
                raise _error("confidence_type", "must be a number from 0 to 1")
            return number
        return value

    @field_validator("recording_url", mode="before")
    @classmethod
    def _recording_url(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _error("url_type", "must be text")
        value = value.strip()
        if not value:
            return None
        if len(value) > RECORDING_URL_MAX:
            return value  # the length constraint says so
        parts = urlsplit(value)
        if (
            parts.scheme.lower() not in ("http", "https")
            or not parts.netloc
            or re.search(r"[\s\x00-\x1f\x7f\ud800-\udfff]", value)
        ):
            raise _error("url_format", "must be an http:// or https:// address")
        return value

    def words(self) -> CallWords:
        """What the caller said, as the call centre's ASR heard it."""
        return CallWords(self.text, self.confidence)


@dataclass(frozen=True)
class ValidRow:
    """A row that passed every check, with its row number in the file."""

    row: int
    transcript: TranscriptRow


@dataclass(frozen=True)
class SkippedRow:
    """A row that will not be imported: rejected with a reason, or a repeat of a call id earlier in the batch."""

    row: int
    call_id: str | None
    outcome: Literal["rejected", "duplicate"]
    reason: str


BatchItem = ValidRow | SkippedRow


def batch_format(name: str) -> Format:
    """The format named (``csv``, ``jsonl``/``ndjson``, a media type) or implied by a file name's suffix."""
    lowered = name.strip().lower()
    if lowered in ("csv", "text/csv") or lowered.endswith(".csv"):
        return "csv"
    if lowered in ("jsonl", "ndjson", "application/x-ndjson") or lowered.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise BatchRejected("format", f"unknown format {name[:60]!r}: use a .csv file (with a header row) or a .jsonl file")


def decode_batch(data: bytes) -> str:
    """The file as text: UTF-8 with or without a BOM, else ``BatchRejected`` naming the first bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BatchRejected("encoding", "not UTF-8: the file is UTF-16 (it starts with a UTF-16 BOM); save it as UTF-8")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        line = data.count(b"\n", 0, at) + 1
        hint = ""
        try:
            data[bom:].decode("gbk")
            hint = "; it may be GBK/GB18030: save it as UTF-8"
        except UnicodeDecodeError:
            pass
        raise BatchRejected("encoding", f"not UTF-8 at byte {at} (line {line}){hint}; nothing was imported") from None


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p)[:40] for p in err.get("loc", ())) or "row"
        kind = err.get("type", "")
        message = {"missing": "required", "extra_forbidden": "unknown field"}.get(kind, err.get("msg", "invalid"))
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _csv_records(text: str) -> list[tuple[int, dict[str, Any] | SkippedRow]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, dict[str, Any] | SkippedRow]] = []
    try:
        row = 0  # the spreadsheet row: one per CSV record, whatever newlines its quoted fields hold
        header = None
        for cells in reader:
            row += 1
            if any(cell.strip() for cell in cells):
                header = cells
                break
        if header is None:
            raise BatchRejected("empty", "the file is empty: expected a header row and at least one row")
        names = _checked_header(header)
        id_at = names.index("call_id")
        for cells in reader:
            row += 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, or a spreadsheet's empty row
            if len(cells) != len(names):
                call_id = cells[id_at].strip()[:100] or None if id_at < len(cells) else None
                reason = f"has {len(cells)} fields, the header has {len(names)}"
                records.append((row, SkippedRow(row, call_id, "rejected", reason)))
                continue
            records.append((row, dict(zip(names, cells, strict=True))))
    except csv.Error as exc:
        raise BatchRejected("malformed", f"CSV unreadable near line {reader.line_num}: {exc}; nothing was imported") from None
    return records


def _checked_header(header: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BatchRejected("columns", f"repeated columns: {', '.join(repeated)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        required = ", ".join(REQUIRED_COLUMNS)
        raise BatchRejected("missing_columns", f"missing columns: {', '.join(missing)} (the header must name {required})")
    unknown = [n[:40] or "(blank)" for n in names if n not in COLUMNS]
    if unknown:
        raise BatchRejected("unknown_columns", f"unknown columns: {', '.join(unknown)} (allowed: {', '.join(COLUMNS)})")
    return names


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not allowed in JSON")


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"repeated key {repeated[0][:40]!r}")
    return dict(pairs)


def _jsonl_records(text: str) -> list[tuple[int, dict[str, Any] | SkippedRow]]:
    records: list[tuple[int, dict[str, Any] | SkippedRow]] = []
    # Split on newlines only: U+2028 and friends may stand unescaped inside a JSON string.
    for row, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_constant=_no_constants, object_pairs_hook=_object_without_repeats)
        except ValueError as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            records.append((row, SkippedRow(row, None, "rejected", f"not valid JSON: {message}")))
            continue
        if not isinstance(value, dict):
            records.append((row, SkippedRow(row, None, "rejected", "must be a JSON object with call_id, started_at, text")))
            continue
        records.append((row, value))
    return records


def _raw_call_id(record: dict[str, Any]) -> str | None:
    value = record.get("call_id")
    return value.strip()[:100] or None if isinstance(value, str) else None


def read_batch(data: bytes, filename_or_format: str, *, now: datetime | None = None) -> list[BatchItem]:
    """Check the whole file, then each row on its own: one ValidRow or SkippedRow per row, in file order.

    Raises ``BatchRejected`` for a problem of the file as a whole, before any row is checked.
    """
    fmt = batch_format(filename_or_format)
    text = decode_batch(data)
    records = _csv_records(text) if fmt == "csv" else _jsonl_records(text)
    if not records:
        raise BatchRejected("empty", "the file has no rows")
    context = {"now": now or datetime.now(UTC)}
    first_row: dict[str, int] = {}
    items: list[BatchItem] = []
    for row, record in records:
        if isinstance(record, SkippedRow):
            items.append(record)
            continue
        try:
            transcript = TranscriptRow.model_validate(record, context=context)
        except ValidationError as exc:
            items.append(SkippedRow(row, _raw_call_id(record), "rejected", _reason(exc)))
            continue
        if transcript.call_id in first_row:
            reason = f"same call_id as row {first_row[transcript.call_id]}"
            items.append(SkippedRow(row, transcript.call_id, "duplicate", reason))
            continue
        first_row[transcript.call_id] = row
        items.append(ValidRow(row, transcript))
    return items


def _csv_line(values: Iterable[str]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerow(values)
    return out.getvalue().encode("utf-8")


def encode_header(fmt: Format) -> bytes:
    """What a batch starts with: the header row of a CSV file, nothing for JSON lines."""
    return _csv_line(COLUMNS) if fmt == "csv" else b""


def encode_row(transcript: TranscriptRow, fmt: Format) -> bytes:
    """One row in the batch format, as ``read_batch`` reads it back (time in UTC)."""
    values = transcript.model_dump(mode="json")
    if fmt == "jsonl":
        return (json.dumps(values, ensure_ascii=False) + "\n").encode("utf-8")
    return _csv_line("" if values[c] is None else str(values[c]) for c in COLUMNS)


def encode_batch(transcripts: Sequence[TranscriptRow], fmt: Format) -> bytes:
    """A whole batch in the given format."""
    return encode_header(fmt) + b"".join(encode_row(t, fmt) for t in transcripts)


@dataclass(frozen=True)
class RowOutcome:
    """What became of one row."""

    row: int
    call_id: str | None
    outcome: Outcome
    tracking_code: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "call_id": self.call_id, "outcome": self.outcome}
        if self.tracking_code is not None:
            out["tracking_code"] = self.tracking_code
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowOutcome:
        outcome = data["outcome"]
        if outcome not in ("accepted", "duplicate", "rejected"):
            raise ValueError(f"unknown outcome {outcome!r}")
        return cls(int(data["row"]), data.get("call_id"), outcome, data.get("tracking_code"), data.get("reason"))


@dataclass
class BatchReport:
    """The outcome of every row of a batch, in order, and the counts."""

    rows: list[RowOutcome] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def accepted(self) -> int:
        return self.count("accepted")

    @property
    def duplicates(self) -> int:
        return self.count("duplicate")

    @property
    def rejected(self) -> int:
        return self.count("rejected")

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rows": [r.as_json() for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchReport:
        return cls([RowOutcome.from_json(r) for r in data["rows"]])


class TranscriptSink(Protocol):
    async def take_transcript(
        self, call_id: str, started_at: datetime, caller: str | None, words: CallWords, recording_url: str | None = None
    ) -> Accepted: ...


class ImportInterrupted(Exception):
    """The intake could not store a row (its outbox failed); the rows before it are stored, the rest are not."""

    def __init__(self, row: int, report: BatchReport) -> None:
        super().__init__(f"stopped at row {row}")
        self.row = row
        self.report = report


async def import_batch(sink: TranscriptSink, items: Sequence[BatchItem]) -> BatchReport:
    """Hand each good row to the intake (durable, idempotent by call id) and report every row's outcome."""
    report = BatchReport()
    codes: dict[str, str | None] = {}
    for item in items:
        if isinstance(item, SkippedRow):
            code = codes.get(item.call_id) if item.outcome == "duplicate" and item.call_id else None
            report.rows.append(RowOutcome(item.row, item.call_id, item.outcome, code, item.reason))
            continue
        t = item.transcript
        try:
            accepted = await sink.take_transcript(t.call_id, t.started_at, t.caller, t.words(), t.recording_url)
        except SubmissionKeyConflict:
            reason = "call_id was already imported with different content; the first import stands"
            report.rows.append(RowOutcome(item.row, t.call_id, "rejected", reason=reason))
            continue
        except ValidationError as exc:
            report.rows.append(RowOutcome(item.row, t.call_id, "rejected", reason=_reason(exc)))
            continue
        except Exception as exc:
            raise ImportInterrupted(item.row, report) from exc
        codes[t.call_id] = accepted.tracking_code
        if accepted.new:
            report.rows.append(RowOutcome(item.row, t.call_id, "accepted", accepted.tracking_code))
        else:
            report.rows.append(RowOutcome(item.row, t.call_id, "duplicate", accepted.tracking_code, "already imported"))
    return report
