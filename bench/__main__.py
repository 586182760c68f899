"""`make bench`: raw ceilings, the pipeline at rising rates, a burst, and the reports at scale; a table and a chart.

Everything is measured side by side in one run on this machine and reported as ratios to the slowest raw ceiling,
because absolute figures on a shared 2-core machine mean little.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from bench import ceilings, pipeline
from bench.loadgen import suggestion_texts
from bench.report import chart, table
from bench.stage import WORK_DIR, fresh_stage, start_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[25, 50, 100, 150, 200, 300, 400, 600])
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--burst", type=int, default=20_000, help="submissions in the burst (0: skip)")
    parser.add_argument("--reports-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=WORK_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    texts = suggestion_texts()
    started = time.time()

    print("[bench] raw ceilings", flush=True)
    with fresh_stage("ceiling") as stage:
        raw = asyncio.run(ceilings.broker(stage))
        raw.append(asyncio.run(ceilings.store(stage)))
        bare, bare_attack = ceilings.bare_endpoint(stage, texts)
        raw.append(bare)
    for c in raw:
        print(f"[bench]   {c.name}: {c.per_second:,.0f}/s", flush=True)

    print("[bench] pipeline at rising rates", flush=True)
    with fresh_stage("pipeline") as stage:
        services = start_pipeline(stage)
        try:
            steps = pipeline.rising(stage, services["intake-web"], texts, args.rates, args.step_seconds)
            best = max(steps, key=lambda s: s.sustained)
            half_rate = max(1, int(best.sustained / 2))
            accepted = sum(s.attack.accepted for s in steps)
            half = pipeline.run_step(stage, services["intake-web"], texts, half_rate, args.step_seconds, accepted)
            print(f"[bench] at half the sustained rate ({half_rate}/s): accept p99 {half.attack.p99_ms:.0f} ms", flush=True)
        finally:
            for service in services.values():
                service.stop()

    burst = None
    if args.burst:
        print(f"[bench] burst of {args.burst:,}", flush=True)
        with fresh_stage("burst") as stage:
            services = start_pipeline(stage)
            try:
                burst = pipeline.burst(stage, services, texts, args.burst)
            finally:
                for service in services.values():
                    service.stop()

    reports = ""
    if args.reports_sizes:
        print("[bench] reports at " + ", ".join(f"{n:,}" for n in args.reports_sizes) + " stored", flush=True)
        command = ["minsheng-bench-reports", "--repeats", "3", "--sizes", *map(str, args.reports_sizes)]
        reports = subprocess.run(command, check=True, capture_output=True, text=True).stdout

    markdown = table(raw, bare_attack, steps, half, burst, reports, time.time() - started)
    (args.out / "results.md").write_text(markdown, encoding="utf-8")
    chart(raw, steps, args.out / "pipeline.png")
    print(markdown)
    print(f"[bench] written: {args.out / 'results.md'}, {args.out / 'pipeline.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
