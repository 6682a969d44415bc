#!/usr/bin/env python3
"""Tables of the `overhead` bench's results (python3 standard library only).

Reads criterion's `target/criterion/<group>/<id>/new/estimates.json` (the median's point
estimate, in ns) for every variant the last `cargo bench -p tasker-telemetry-benches --bench
overhead` run wrote, and prints as Markdown:
  1. every variant's median (ns per call; publisher and runner variants also as events/s and
     steps/s, from the throughput criterion recorded in `new/benchmark.json`);
  2. the issue's targets: measured figure, target, PASS / MISS;
  3. with --baseline NAME (a run saved by `cargo bench ... -- --save-baseline NAME`, e.g. of an
     earlier commit): every variant before and after, the ratio, and each figure more than 10 %
     worse marked; then the step path's targets, which compare some figures with the baseline.

Usage: python3 scripts/bench_table.py [--criterion-dir DIR] [--baseline NAME] [--markdown-out FILE] [--strict]
Exits 0 whatever the misses, unless --strict (then 1 on any miss or missing result).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# Groups and IDs in the order the bench runs them, with one line on what each measures.
VARIANTS: dict[str, list[tuple[str, str]]] = {
    "overhead": [
        ("baseline", "bare `work(x)`"),
        ("off", "`StepScope::run_attempt`, `set_enabled(false)`"),
        ("off_value_api", "`attempt` / `in_scope` / `finish`, `set_enabled(false)`"),
        ("events_noop_sub", "attempt, metrics off, 1 no-op sync subscriber"),
        ("events_noop_sub_error", "as events_noop_sub, failing with a 200-byte message, value detection on"),
        ("events_noop_sub_error_nodetect", "as events_noop_sub_error, value detection off"),
        ("metrics_only", "attempt, metrics on, no subscriber, spans disabled"),
        ("metrics_cached", "`metrics` + Prometheus recorder, cached handles"),
        ("metrics_macro", "`metrics` + Prometheus recorder, macros per call"),
        ("autometrics", "`#[autometrics]`, prometheus-client backend"),
        ("prometheus_client_cached", "prometheus-client families, cached handles"),
        ("tracing_no_subscriber", "`#[tracing::instrument]`, NoSubscriber"),
        ("tracing_registry", "`#[tracing::instrument]`, registry only"),
        ("tracing_otel", "`#[tracing::instrument]`, registry + tracing-opentelemetry"),
        ("full", "attempt, metrics + subscriber + span to discarding exporter"),
        ("full_unsampled", "as full, trace_sampling_ratio = 0"),
        ("exemplars_off", "attempt, metrics + sampled span, no subscriber, exemplars off"),
        ("exemplars_on", "as exemplars_off, with the duration histograms' exemplars"),
        ("tracing_otel_one_cpu", "as tracing_otel, its export thread on the same one CPU"),
        ("full_one_cpu", "as full, its export thread on the same one CPU"),
        ("fastrace_disabled", "`#[fastrace::trace]`, no root span"),
        ("fastrace_enabled", "`#[fastrace::trace]` under a fresh root span"),
        ("floor_instant", "`Instant::now()` + `elapsed()`"),
        ("floor_fetch_add", "`AtomicU64::fetch_add(1, Relaxed)`"),
    ],
    "publisher": [
        (f"t{t}_s{s}", f"publish `step.completed`, {t} thread(s), {s} no-op subscriber(s)")
        for t in (1, 2)
        for s in (0, 1, 4)
    ]
    + [("t1_async", "publish `step.completed`, 1 thread, 1 asynchronous no-op subscriber")],
    "contention": [
        ("metrics_only_t1", "metrics_only attempt, shared StepScope, 1 thread"),
        ("metrics_only_t2", "metrics_only attempt, shared StepScope, 2 threads"),
    ],
    "runner": [
        ("telemetry_off", "10-step chain per task, telemetry off"),
        ("full", "10-step chain per task, full setup"),
        ("full_store", "as full, with the span store of the last 100 tasks"),
    ],
    "filter": [
        ("defaults", "a 10-key payload through Tasker's 10 default rules"),
        ("rules_10000", "the same payload through 10,000 substring rules"),
        ("scrub_200b", "value detection over a 200-byte error message with no secret"),
    ],
}

RUNNER_STEPS = 10


def load(
    root: str, group: str, ident: str, run: str = "new"
) -> tuple[float | None, int | None]:
    """The median (ns) and the throughput elements per iteration of one variant, if present."""
    base = os.path.join(root, group, ident, run)
    try:
        with open(os.path.join(base, "estimates.json"), encoding="utf-8") as f:
            median = float(json.load(f)["median"]["point_estimate"])
    except (OSError, KeyError, ValueError, TypeError):
        return None, None
    elements = None
    try:
        with open(os.path.join(base, "benchmark.json"), encoding="utf-8") as f:
            throughput = json.load(f).get("throughput") or {}
        if "Elements" in throughput:
            elements = int(throughput["Elements"])
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return median, elements


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "—"
    if ns >= 10_000:
        return f"{ns / 1000:,.1f} µs"
    return f"{ns:,.2f} ns"


def fmt_rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:,.0f}"


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--criterion-dir",
        default=os.path.join(here, "..", "target", "criterion"),
        help="criterion's output directory (default: target/criterion)",
    )
    parser.add_argument("--markdown-out", metavar="FILE", help="also write the tables to FILE")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any miss")
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="also compare with the criterion baseline NAME (saved with --save-baseline NAME)",
    )
    args = parser.parse_args()
    root = os.path.normpath(args.criterion_dir)

    results: dict[tuple[str, str], tuple[float | None, int | None]] = {}
    for group, variants in VARIANTS.items():
        for ident, _ in variants:
            results[(group, ident)] = load(root, group, ident)

    def median(group: str, ident: str) -> float | None:
        return results[(group, ident)][0]

    def per_second(group: str, ident: str) -> float | None:
        """Elements per second over the whole iteration (all threads), from the median."""
        ns, elements = results[(group, ident)]
        if ns is None or ns <= 0:
            return None
        return (elements or 1) / (ns / 1e9)

    out: list[str] = []
    out.append("### All variants (median)")
    out.append("")
    out.append("| group | variant | what | median | per second |")
    out.append("| --- | --- | --- | ---: | ---: |")
    for group, variants in VARIANTS.items():
        for ident, what in variants:
            rate = ""
            if group == "publisher":
                rate = f"{fmt_rate(per_second(group, ident))} events/s"
            elif group == "runner":
                rate = f"{fmt_rate(per_second(group, ident))} steps/s"
            out.append(
                f"| {group} | `{ident}` | {what} | {fmt_ns(median(group, ident))} | {rate} |"
            )
    out.append("")

    # The targets: (what, measured, target, passes), figures in ns unless said.
    def ratio_target(label, left, factor, right):
        return ratio_check(median, label, left, factor, right)

    targets: list[tuple[str, str, str, bool | None]] = []
    off, base = median("overhead", "off"), median("overhead", "baseline")
    targets.append(
        (
            "off ≤ baseline + 2 ns",
            fmt_ns(off),
            "—" if base is None else f"≤ {fmt_ns(base + 2)}",
            None if off is None or base is None else off <= base + 2,
        )
    )
    targets.append(
        ratio_target(
            "metrics_only ≤ 0.5 × metrics_cached",
            ("overhead", "metrics_only"),
            0.5,
            ("overhead", "metrics_cached"),
        )
    )
    targets.append(
        ratio_target(
            "metrics_only ≤ 0.25 × autometrics",
            ("overhead", "metrics_only"),
            0.25,
            ("overhead", "autometrics"),
        )
    )
    ev = median("overhead", "events_noop_sub")
    targets.append(
        ("events_noop_sub ≤ 150 ns", fmt_ns(ev), "≤ 150.00 ns", None if ev is None else ev <= 150)
    )
    targets.append(
        ratio_target(
            "events_noop_sub_error ≤ 1.2 × events_noop_sub_error_nodetect",
            ("overhead", "events_noop_sub_error"),
            1.2,
            ("overhead", "events_noop_sub_error_nodetect"),
        )
    )
    targets.append(
        ratio_target(
            "full ≤ 1.1 × tracing_otel",
            ("overhead", "full"),
            1.1,
            ("overhead", "tracing_otel"),
        )
    )
    targets.append(
        ratio_target(
            "full_one_cpu ≤ 1.1 × tracing_otel_one_cpu (the same target, both on one CPU)",
            ("overhead", "full_one_cpu"),
            1.1,
            ("overhead", "tracing_otel_one_cpu"),
        )
    )
    targets.append(
        ratio_target(
            "full_unsampled ≤ 0.1 × full",
            ("overhead", "full_unsampled"),
            0.1,
            ("overhead", "full"),
        )
    )
    targets.append(
        ratio_target(
            "exemplars_on ≤ 1.15 × exemplars_off",
            ("overhead", "exemplars_on"),
            1.15,
            ("overhead", "exemplars_off"),
        )
    )
    targets.append(
        ratio_target(
            "contention metrics_only_t2 ≤ 2 × metrics_only_t1",
            ("contention", "metrics_only_t2"),
            2.0,
            ("contention", "metrics_only_t1"),
        )
    )
    targets.append(runner_target(median))

    misses = render_targets(out, "Targets", targets)

    if args.baseline:
        misses += compare_with_baseline(out, root, args.baseline, results, median)

    text = "\n".join(out)
    print(text)
    if args.markdown_out:
        with open(args.markdown_out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    absent = [f"{g}/{i}" for (g, i), (ns, _) in results.items() if ns is None]
    if absent:
        print(f"bench_table: no result for {', '.join(absent)} under {root}", file=sys.stderr)
    return 1 if args.strict and misses else 0


def render_targets(out: list[str], title: str, targets) -> int:
    """Appends `targets` as a table under `title`; returns how many did not pass."""
    out.append(f"### {title}")
    out.append("")
    out.append("| target | measured | limit | result |")
    out.append("| --- | ---: | ---: | :---: |")
    misses = 0
    for label, measured, limit, ok in targets:
        verdict = "MISSING" if ok is None else ("PASS" if ok else "MISS")
        misses += verdict != "PASS"
        out.append(f"| {label} | {measured} | {limit} | {verdict} |")
    out.append("")
    return misses


def ratio_check(median, label, left, factor, right) -> tuple[str, str, str, bool | None]:
    """`left` ≤ `factor` × `right`, both medians of the current run."""
    a, b = median(*left), median(*right)
    if a is None or b is None:
        return label, fmt_ns(a), "—", None
    limit = factor * b
    return label, fmt_ns(a), f"≤ {factor:g} × {right[1]} = {fmt_ns(limit)}", a <= limit


def runner_target(median) -> tuple[str, str, str, bool | None]:
    """The runner's full setup at 100,000 steps/s or more."""
    runner_ns = median("runner", "full")
    steps = None if runner_ns is None else RUNNER_STEPS / (runner_ns / 1e9)
    return (
        "runner full ≥ 100,000 steps/s",
        "—" if steps is None else f"{steps:,.0f} steps/s",
        "≥ 100,000 steps/s",
        None if steps is None else steps >= 100_000,
    )


def compare_with_baseline(out, root, baseline, results, median) -> int:
    """Appends the before/after table and the step path's targets; returns the misses."""
    before: dict[tuple[str, str], float | None] = {
        key: load(root, key[0], key[1], baseline)[0] for key in results
    }
    out.append(f"### Before (baseline `{baseline}`) and after")
    out.append("")
    out.append("| group | variant | before | after | after / before | |")
    out.append("| --- | --- | ---: | ---: | ---: | --- |")
    for (group, ident), (after, _) in results.items():
        was = before[(group, ident)]
        ratio = None if was is None or after is None or was <= 0 else after / was
        mark = "more than 10 % worse" if ratio is not None and ratio > 1.10 else ""
        shown = "—" if ratio is None else f"{ratio:.2f} ×"
        out.append(
            f"| {group} | `{ident}` | {fmt_ns(was)} | {fmt_ns(after)} | {shown} | {mark} |"
        )
    out.append("")

    def check(label, measured, limit, ok):
        return label, measured, limit, ok

    def ratio(label, left, factor, right):
        return ratio_check(median, label, left, factor, right)

    targets = [
        ratio("full_one_cpu ≤ 1.0 × tracing_otel_one_cpu", ("overhead", "full_one_cpu"), 1.0,
              ("overhead", "tracing_otel_one_cpu")),
        ratio("full ≤ 1.1 × tracing_otel", ("overhead", "full"), 1.1, ("overhead", "tracing_otel")),
        ratio("metrics_only ≤ 0.55 × metrics_cached", ("overhead", "metrics_only"), 0.55,
              ("overhead", "metrics_cached")),
        ratio("full_unsampled ≤ 0.1 × full", ("overhead", "full_unsampled"), 0.1, ("overhead", "full")),
    ]
    ev, ev_before = median("overhead", "events_noop_sub"), before[("overhead", "events_noop_sub")]
    limit = None if ev_before is None else max(150.0, 1.3 * ev_before)
    targets.append(
        check(
            "events_noop_sub ≤ 150 ns, or ≤ 1.3 × its baseline",
            fmt_ns(ev),
            "—" if limit is None else f"≤ {fmt_ns(limit)}",
            None if ev is None or limit is None else ev <= limit,
        )
    )
    targets.append(runner_target(median))
    return render_targets(out, "The step path's targets", targets)


if __name__ == "__main__":
    sys.exit(main())
