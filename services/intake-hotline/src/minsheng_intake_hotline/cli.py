"""minsheng-hotline: import the call centre's transcript files into the running intake-hotline service.

The file is checked here first (nothing is sent if it is unusable as a whole), then sent in chunks to
POST /api/v1/transcripts. Rows are idempotent by call id, so an interrupted import is finished by running the
same command again. Exit codes: 0 all rows imported or already there, 1 some rows rejected, 2 the file or the
request is unusable (nothing more was sent), 3 the service could not be reached or failed (run again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import httpx
from tqdm import tqdm

from minsheng_intake_hotline.transcripts import (
    MEDIA_TYPES,
    BatchRejected,
    BatchReport,
    Format,
    RowOutcome,
    SkippedRow,
    ValidRow,
    batch_format,
    encode_header,
    encode_row,
    read_batch,
)

DEFAULT_URL = "http://127.0.0.1:8004"
TOKEN_ENV = "MINSHENG_HOTLINE_TRANSCRIPTS_TOKEN"
DEV_TOKEN = "dev-only-transcripts-token"
ENDPOINT = "/api/v1/transcripts"
CHUNK_ROWS = 200
# Below the service's default body limit (256 KiB): 200 long Chinese transcripts would not fit in one request.
CHUNK_BYTES = 192 * 1024

OK, SOME_REJECTED, UNUSABLE, UNREACHABLE = 0, 1, 2, 3
RERUN = "Running the same command again is safe: rows are idempotent by call id, what is stored stays as it is."


class ImportFailed(Exception):
    """Sending stopped; ``exit_code`` says whether running again may help."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def chunks(rows: Sequence[ValidRow], fmt: Format, max_rows: int, max_bytes: int) -> Iterator[tuple[list[int], bytes]]:
    """The rows re-serialised as request bodies of at most ``max_rows`` rows and (but for a single huge row)
    ``max_bytes`` bytes, with the CSV header in each; yields (row numbers in the file, body)."""
    header = encode_header(fmt)
    numbers: list[int] = []
    body = bytearray(header)
    for item in rows:
        encoded = encode_row(item.transcript, fmt)
        if numbers and (len(numbers) >= max_rows or len(body) + len(encoded) > max_bytes):
            yield numbers, bytes(body)
            numbers, body = [], bytearray(header)
        numbers.append(item.row)
        body += encoded
    if numbers:
        yield numbers, bytes(body)


def _server_error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text[:200])
    except (ValueError, AttributeError):
        return response.text[:200] or response.reason_phrase


def send_chunk(client: httpx.Client, fmt: Format, numbers: list[int], body: bytes) -> list[RowOutcome]:
    """Post one chunk; the outcomes carry the rows' numbers in the file, not in the chunk."""
    try:
        response = client.post(ENDPOINT, content=body, headers={"Content-Type": f"{MEDIA_TYPES[fmt]}; charset=utf-8"})
    except httpx.HTTPError as exc:
        raise ImportFailed(f"could not reach {client.base_url}: {type(exc).__name__}: {exc}", UNREACHABLE) from exc
    status = response.status_code
    if status == 401:
        raise ImportFailed(f"the service refused the token (401): pass --token or set {TOKEN_ENV}", UNUSABLE)
    if status == 413:
        raise ImportFailed("the service refused a chunk as too large (413): use a smaller --chunk-rows", UNUSABLE)
    if status == 429 or status >= 500:
        raise ImportFailed(f"the service failed ({status}): {_server_error(response)}", UNREACHABLE)
    if status != 200:
        raise ImportFailed(f"the service refused the batch ({status}): {_server_error(response)}", UNUSABLE)
    try:
        report = BatchReport.from_json(response.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise ImportFailed(f"unexpected answer from the service: {type(exc).__name__}", UNREACHABLE) from exc
    if len(report.rows) != len(numbers):
        raise ImportFailed(f"the service answered for {len(report.rows)} rows, {len(numbers)} were sent", UNREACHABLE)
    return [replace(outcome, row=number) for outcome, number in zip(report.rows, numbers, strict=True)]


def _with_codes(outcomes: list[RowOutcome]) -> BatchReport:
    """Sorted by row; a repeat within the file gets the tracking code of the row it repeats."""
    codes = {o.call_id: o.tracking_code for o in outcomes if o.tracking_code}
    rows = [
        replace(o, tracking_code=codes.get(o.call_id)) if o.outcome == "duplicate" and o.tracking_code is None else o
        for o in outcomes
    ]
    return BatchReport(sorted(rows, key=lambda o: o.row))


def print_report(report: BatchReport, out: TextIO, *, as_json: bool = False) -> None:
    """Counts, then every rejected row with its number and reason."""
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2), file=out)
        return
    print(f"accepted:   {report.accepted}", file=out)
    print(f"duplicates: {report.duplicates}", file=out)
    print(f"rejected:   {report.rejected}", file=out)
    for outcome in report.rows:
        if outcome.outcome == "rejected":
            call = f" (call_id {outcome.call_id})" if outcome.call_id else ""
            print(f"  row {outcome.row}{call}: {outcome.reason}", file=out)


def import_transcripts(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    """Check the file locally, send its good rows in chunks with a progress bar, report every row."""
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return UNUSABLE
    try:
        fmt = batch_format(args.format or path.name)
        items = read_batch(data, fmt)
    except BatchRejected as exc:
        print(f"{path}: {exc}. Nothing was sent.", file=sys.stderr)
        return UNUSABLE
    outcomes = [RowOutcome(i.row, i.call_id, i.outcome, reason=i.reason) for i in items if isinstance(i, SkippedRow)]
    valid = [i for i in items if isinstance(i, ValidRow)]
    token = args.token or os.environ.get(TOKEN_ENV) or DEV_TOKEN
    client = httpx.Client(
        base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=args.timeout, transport=transport
    )
    sent = 0
    try:
        with client, tqdm(total=len(valid), unit="row", desc="importing", file=sys.stderr, disable=args.quiet) as bar:
            for numbers, body in chunks(valid, fmt, args.chunk_rows, args.chunk_bytes):
                outcomes += send_chunk(client, fmt, numbers, body)
                sent += len(numbers)
                bar.update(len(numbers))
    except ImportFailed as exc:
        if sent:
            print(f"partial report ({sent} of {len(valid)} rows sent):", file=sys.stdout)
            print_report(_with_codes(outcomes), sys.stdout, as_json=args.json)
        print(f"import stopped after {sent} of {len(valid)} rows: {exc}", file=sys.stderr)
        if exc.exit_code == UNREACHABLE:
            print(RERUN, file=sys.stderr)
        return exc.exit_code
    report = _with_codes(outcomes)
    print_report(report, sys.stdout, as_json=args.json)
    return SOME_REJECTED if report.rejected else OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minsheng-hotline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser(
        "import-transcripts",
        help="import a call-centre transcript file (CSV or JSON lines)",
        description="Columns: call_id, started_at, caller, text, confidence, recording_url. " + RERUN,
    )
    imports.add_argument("file", type=Path, help="a .csv file with a header row, or a .jsonl file")
    imports.add_argument("--url", default=DEFAULT_URL, help=f"the intake-hotline service (default {DEFAULT_URL})")
    imports.add_argument("--token", help=f"the transcripts token (default: ${TOKEN_ENV}, else the development token)")
    imports.add_argument("--format", choices=["csv", "jsonl"], help="the file's format (default: from its suffix)")
    imports.add_argument("--chunk-rows", type=_positive, default=CHUNK_ROWS, help=f"rows per request (default {CHUNK_ROWS})")
    imports.add_argument("--chunk-bytes", type=_positive, default=CHUNK_BYTES, help=argparse.SUPPRESS)
    imports.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each request (default 60)")
    imports.add_argument("--json", action="store_true", help="print the report as JSON, with every row's tracking code")
    imports.add_argument("--quiet", action="store_true", help="no progress bar")
    imports.set_defaults(run=import_transcripts)
    return parser


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """The console script; ``transport`` stands in for the network in tests."""
    args = _parser().parse_args(argv)
    runner: Any = args.run
    return runner(args, transport)


if __name__ == "__main__":
    sys.exit(main())
