"""Compare a pytest-benchmark JSON run against a stored baseline from the same machine class.

    python -m benchmarks.compare benchmarks/baseline/baseline.json out/bench.json [--max-regression 0.25]

Exit 0: no median regressed by more than the threshold. Exit 1: regressions (listed).
Exit 2: the baseline comes from another machine class (CPU brand, family/model, core count and
SIMD features such as AVX-512 VNNI must match: latency baselines only compare on the same class).
"""

from __future__ import annotations

import argparse
import json
import sys


def load(path: str) -> tuple[dict, dict[str, float]]:
    d = json.load(open(path))
    return d.get("machine_info", {}), {b["fullname"]: b["stats"]["median"] for b in d["benchmarks"]}


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
    mb, base = load(a.baseline)
    mc, cur = load(a.current)
    cls_b, cls_c = machine_class(mb), machine_class(mc)
    if cls_b != cls_c and not a.any_machine:
        print(f"baseline is from another machine class ({cls_b} vs {cls_c}); record a baseline here first", file=sys.stderr)
        return 2
    bad = []
    for name, med in sorted(cur.items()):
        if name not in base:
            print(f"new      {name}: {med * 1e3:.3f} ms")
            continue
        ratio = med / base[name]
        flag = "REGRESSED" if ratio > 1 + a.max_regression else "ok"
        print(f"{flag:9}{name}: {base[name] * 1e3:.3f} -> {med * 1e3:.3f} ms ({ratio - 1:+.0%})")
        if flag != "ok":
            bad.append(name)
    if bad:
        print(f"{len(bad)} benchmark(s) regressed by more than {a.max_regression:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
