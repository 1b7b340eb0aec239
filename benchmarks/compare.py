"""Compare a pytest-benchmark JSON run against a stored baseline from the same machine class.

    python -m benchmarks.compare benchmarks/baseline/baseline.json out/bench.json [--max-regression 0.25]

Exit 0: no median regressed by more than the threshold. Exit 1: regressions (listed).
Exit 2: the baseline comes from another machine class (CPU brand, family/model, core count and
SIMD features such as AVX-512 VNNI must match: latency baselines only compare on the same class).
Exit 3: some benchmarks ran another model file than the baseline's (their recorded SHA-256 differ):
a new model's latency is not a code regression; record a new baseline with it.
"""

from __future__ import annotations

import argparse
import json
import sys


def load(path: str) -> tuple[dict, dict[str, float], dict[str, str]]:
    """Machine info, each benchmark's median, and the SHA-256 of the model file each one ran (where recorded)."""
    d = json.load(open(path))
    benches = d["benchmarks"]
    return (d.get("machine_info", {}), {b["fullname"]: b["stats"]["median"] for b in benches},
            {b["fullname"]: b["extra_info"]["sha256"] for b in benches if "sha256" in b.get("extra_info", {})})


# Instruction-set features that change how fast the int8/fp32 kernels run: two VMs that report the
# same brand string ("AMD EPYC") can differ by 8x on int8 (AVX-512 VNNI vs plain AVX2).
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
              "asimddp", "i8mm", "sve")


def machine_class(machine_info: dict) -> tuple:
    """What must match for two latency runs to be comparable: CPU brand, family/model, core count, SIMD features."""
    cpu = machine_info.get("cpu", {})
    flags = set(cpu.get("flags", []))
    return (cpu.get("brand_raw"), cpu.get("family"), cpu.get("model"), cpu.get("count"),
            tuple(f for f in SIMD_FLAGS if f in flags))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline")
    p.add_argument("current")
    p.add_argument("--max-regression", type=float, default=0.25, help="allowed median slow-down, as a fraction (default: %(default)s)")
    p.add_argument("--any-machine", action="store_true", help="compare even when the CPUs differ")
    a = p.parse_args(argv)
    mb, base, model_b = load(a.baseline)
    mc, cur, model_c = load(a.current)
    cls_b, cls_c = machine_class(mb), machine_class(mc)
    if cls_b != cls_c and not a.any_machine:
        print(f"baseline is from another machine class ({cls_b} vs {cls_c}); record a baseline here first", file=sys.stderr)
        return 2
    bad, changed = [], []
    for name, med in sorted(cur.items()):
        if name not in base:
            print(f"new      {name}: {med * 1e3:.3f} ms")
            continue
        if name in model_b and name in model_c and model_b[name] != model_c[name]:
            print(f"MODEL    {name}: {base[name] * 1e3:.3f} -> {med * 1e3:.3f} ms, another model file "
                  f"({model_b[name][:12]}... -> {model_c[name][:12]}...)")
            changed.append(name)
            continue
        ratio = med / base[name]
        flag = "REGRESSED" if ratio > 1 + a.max_regression else "ok"
        print(f"{flag:9}{name}: {base[name] * 1e3:.3f} -> {med * 1e3:.3f} ms ({ratio - 1:+.0%})")
        if flag != "ok":
            bad.append(name)
    if bad:
        print(f"{len(bad)} benchmark(s) regressed by more than {a.max_regression:.0%}", file=sys.stderr)
        return 1
    if changed:
        print(f"{len(changed)} benchmark(s) ran another model file than the baseline's: record a new baseline "
              "with this model (pytest benchmarks/ --benchmark-json benchmarks/baseline/baseline.json)", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
