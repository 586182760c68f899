"""The results table (markdown) and the chart (PNG)."""

from __future__ import annotations

from pathlib import Path

from bench.ceilings import Ceiling
from bench.loadgen import Attack
from bench.pipeline import Burst, Step


def table(
    raw: list[Ceiling], bare: Attack, steps: list[Step], half: Step, burst: Burst | None, reports: str, elapsed_s: float
) -> str:
    slowest = min(raw, key=lambda c: c.per_second)
    best = max(steps, key=lambda s: s.sustained)
    lost = sum(s.lost for s in steps) + half.lost + (burst.submissions - burst.stored if burst else 0)
    lines = [
        "## Minsheng benchmark (one run, side by side)",
        "",
        "### Raw ceilings",
        "",
        "| component | per second | how |",
        "|---|---:|---|",
        *(f"| {c.name} | {c.per_second:,.0f} | {c.note} |" for c in raw),
        "",
        f"Bare endpoint latency at full speed: p50 {bare.p50_ms:.1f} ms, p99 {bare.p99_ms:.1f} ms.",
        "",
        "### Pipeline: web submissions at rising rates (accepted → classified → stored)",
        "",
        "| offered/s | accepted | sustained/s | accept p50 ms | accept p99 ms | end-to-end p50 ms | end-to-end p99 ms | lost |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {s.offered_rate} | {s.attack.accepted}/{s.attack.requests} | {s.sustained:,.0f} | {s.attack.p50_ms:.0f} "
            f"| {s.attack.p99_ms:.0f} | {s.e2e_p50_ms:.0f} | {s.e2e_p99_ms:.0f} | {s.lost} |"
            for s in steps
        ),
        f"| **{half.offered_rate}** (half) | {half.attack.accepted}/{half.attack.requests} | {half.sustained:,.0f} "
        f"| {half.attack.p50_ms:.0f} | **{half.attack.p99_ms:.0f}** | {half.e2e_p50_ms:.0f} "
        f"| {half.e2e_p99_ms:.0f} | {half.lost} |",
        "",
    ]
    if burst is not None:
        lines += [
            f"### Burst: {burst.submissions:,} submissions as fast as the intake takes them",
            "",
            "| accepted | intake rate/s | accept p99 ms | drained in s | stored | "
            + " | ".join(f"peak RSS {name} MiB" for name in burst.peak_rss_mib)
            + " |",
            "|---:|---:|---:|---:|---:|" + "---:|" * len(burst.peak_rss_mib),
            f"| {burst.attack.accepted:,} | {burst.attack.throughput:,.0f} | {burst.attack.p99_ms:.0f} | {burst.drained_s:.1f} "
            f"| {burst.stored:,} | " + " | ".join(f"{v:.0f}" for v in burst.peak_rss_mib.values()) + " |",
            "",
        ]
    ratio = best.sustained / slowest.per_second
    lines += [
        "### Targets",
        "",
        "| target | measured | met |",
        "|---|---|:---:|",
        f"| sustained ≥ 0.5 × slowest raw ceiling ({slowest.name}, {slowest.per_second:,.0f}/s) "
        f"| {best.sustained:,.0f}/s = {ratio:.2f}× | {'yes' if ratio >= 0.5 else 'no'} |",
        f"| accept p99 ≤ 50 ms at half the sustained rate | {half.attack.p99_ms:.0f} ms "
        f"| {'yes' if half.attack.p99_ms <= 50 else 'no'} |",
        f"| burst drained with zero loss | lost {burst.submissions - burst.stored if burst else '–'} "
        f"| {'yes' if burst and burst.stored >= burst.attack.accepted else 'no'} |",
        f"| nothing lost in any step | lost {lost} | {'yes' if lost == 0 else 'no'} |",
        "",
    ]
    if reports:
        lines += ["### Reports with the suggestions stored (make bench-reports)", "", reports.strip(), ""]
    lines.append(f"_Whole run: {elapsed_s / 60:.1f} min._")
    return "\n".join(lines) + "\n"


def chart(raw: list[Ceiling], steps: list[Step], path: Path) -> None:
    """Sustained throughput and latency against the offered rate, with the ceilings as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    offered = [s.offered_rate for s in steps]
    left.plot(offered, [s.sustained for s in steps], marker="o", label="pipeline sustained")
    left.plot(offered, offered, linestyle=":", color="grey", label="offered")
    slowest = min(raw, key=lambda c: c.per_second)
    left.axhline(slowest.per_second * 0.5, color="red", linestyle="--", label=f"0.5 × {slowest.name}")
    left.set_xlabel("offered submissions/s")
    left.set_ylabel("classified and stored/s")
    left.legend(fontsize=7)
    right.plot(offered, [s.attack.p99_ms for s in steps], marker="o", label="accept p99")
    right.plot(offered, [s.e2e_p99_ms for s in steps], marker="s", label="end-to-end p99")
    right.set_yscale("log")
    right.set_xlabel("offered submissions/s")
    right.set_ylabel("ms")
    right.legend(fontsize=7)
    fig.suptitle("Minsheng pipeline against the raw ceilings")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
