#!/usr/bin/env python3
"""Issue #14's targets against one run of bench/issue14.sh: reads the results folder it wrote.

  bench/issue14_summary.py bench/results/issue14
"""
import json
import math
import pathlib
import re
import statistics
import sys

CONVOLUTIONS = ("InteractionBlock", "ConvNetLayer", "MACE_layer", "E3Attention_", "AttentionInteractionBlock")


def staged_runs(path, dtype):
    runs = json.loads(path.read_text())["runs"]
    return {r["atoms"]: r for r in runs if r["series"] == f"klay staged {dtype} np1" and r["status"] == "ok"}


def torchscript_rows(path):
    """case -> forward+backward TS/native ratio (None where the case has no backward)."""
    rows = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[0].startswith("layer_"):
            ratio = fields[6]
            rows[fields[0]] = float(ratio[:-1]) if ratio.endswith("x") else None
    return rows


def kernel_rates(path):
    """(table, description, %mm forward, %mm forward+backward) of each row of bench_layers' two
    convolution tables: "kernel" (the convolution kernel alone, its per-edge weights materialised)
    and "radial" (the radial MLP and the convolution in one kernel, as the layers run them)."""
    rates, table = [], None
    for line in path.read_text().splitlines():
        if line.startswith("fused convolution kernel"):
            table = "kernel"
        elif line.startswith("radial MLP + convolution"):
            table = "radial"
        percents = re.findall(r"(\d+)%", line)
        if table and len(percents) == 2 and not line.startswith("#"):
            rates.append((table, line.split("  ")[0].strip(), int(percents[0]), int(percents[1])))
    return rates


def alternated_runs(path):
    """(atoms -> {(threads, dtype): [ms/step of each run]}, atoms -> [ratio to sw of each float64
    1-thread run]) of bench/threads_alternated.sh (lines "atoms threads ms/step [dtype [ratio]]";
    files before float32 was alternated have no dtype: float64, nor before sw ran beside it any
    ratio)."""
    times, ratios = {}, {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        atoms, threads, ms, *rest = line.split()
        dtype = rest[0] if rest else "float64"
        times.setdefault(int(atoms), {}).setdefault((int(threads), dtype), []).append(float(ms))
        if len(rest) > 1:
            ratios.setdefault(int(atoms), []).append(float(rest[1]))
    return dict(sorted(times.items())), ratios


def alternated_medians(runs, baseline, other):
    """(pairs, median ms/step of `baseline`, of `other`) where both configurations ran."""
    if baseline not in runs or other not in runs:
        return None
    return min(len(runs[baseline]), len(runs[other])), statistics.median(runs[baseline]), statistics.median(runs[other])


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/issue14")
    rows = []

    def row(target, measured, met):
        rows.append((target, measured, "yes" if met else "no"))

    t1 = staged_runs(out / "speed_threads1.json", "float64")
    f32 = staged_runs(out / "speed_threads1.json", "float32")
    t2 = staged_runs(out / "speed_threads2.json", "float64")
    small = t1[512]["ratio_to_baseline"]
    row("512 atoms <= 100x sw", f"{t1[512]['ms_per_step']:.2f} ms/step, {small:.1f}x", small <= 100)
    alternated = out / "threads_alternated.txt"
    runs, sw_ratios = alternated_runs(alternated) if alternated.exists() else ({}, {})
    for atoms in (4096, 32768):
        ratio = t1[atoms]["ratio_to_baseline"]
        row(f"{atoms} atoms within 20 % of 512", f"{ratio:.1f}x ({ratio / small - 1:+.0%})",
            abs(ratio / small - 1) <= 0.2)
        if atoms in sw_ratios and 512 in sw_ratios:
            median, median_small = statistics.median(sw_ratios[atoms]), statistics.median(sw_ratios[512])
            row(f"{atoms} atoms within 20 % of 512 (medians of {len(sw_ratios[atoms])} / {len(sw_ratios[512])} "
                "alternated runs)", f"{median:.1f}x / {median_small:.1f}x ({median / median_small - 1:+.0%})",
                abs(median / median_small - 1) <= 0.2)
    row("peak memory 32,768 atoms (reported)", f"{t1[32768]['peak_memory_mib_max']:.0f} MiB", True)
    def speedup_row(what, bar, atoms, how, baseline_ms, other_ms):
        speedup = baseline_ms / other_ms
        row(f"{what} >= {bar}x, {atoms} atoms (LAMMPS{how})",
            f"{baseline_ms:.2f} / {other_ms:.2f} ms = {speedup:.2f}x", speedup >= bar)

    for what, bar, single, config in (("threads 2", 1.7, t2, (2, "float64")), ("float32", 1.6, f32, (1, "float32"))):
        for atoms in sorted(single):
            speedup_row(what, bar, atoms, "", t1[atoms]["ms_per_step"], single[atoms]["ms_per_step"])
        for atoms, by_config in runs.items():
            medians = alternated_medians(by_config, (1, "float64"), config)
            if medians:
                pairs, baseline_ms, other_ms = medians
                speedup_row(what, bar, atoms, f", medians of {pairs} alternated pairs", baseline_ms, other_ms)

    ts = torchscript_rows(out / "torchscript.txt")
    with_backward = [r for r in ts.values() if r]
    for case, ratio in sorted(ts.items()):
        if case.startswith(tuple("layer_" + c for c in CONVOLUTIONS)):
            row(f"{case} >= 3x TorchScript (f+b)", f"{ratio:.2f}x" if ratio else "-", bool(ratio and ratio >= 3))
    geomean = math.exp(sum(math.log(r) for r in with_backward) / len(with_backward))
    row("TorchScript geometric mean >= 2x (f+b)", f"{geomean:.2f}x over {len(with_backward)} cases", geomean >= 2)
    for table, what, forward, both in kernel_rates(out / "kernels.txt"):
        label = f"kernel {what[:40]}" if table == "kernel" else f"radial MLP + convolution, {what[:24]}"
        row(f"{label} f+b >= 25 % of matmul", f"{both} % (forward {forward} %)", both >= 25)

    width = max(len(r[0]) for r in rows)
    measured_width = max(len(r[1]) for r in rows)
    print(f"{'target'.ljust(width)}  {'measured'.ljust(measured_width)}  met")
    for target, measured, met in rows:
        print(f"{target.ljust(width)}  {measured.ljust(measured_width)}  {met}")
    print("cases without a TorchScript file in the conformance data (E3Attention: Python cannot script it; "
          "AttentionInteractionBlock: Python cannot build it) are not in the table")


if __name__ == "__main__":
    main()
