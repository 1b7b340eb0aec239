"""Compare a pytest-benchmark JSON run against a stored baseline from the same machine class.

    python -m benchmarks.compare benchmarks/baseline/baseline.json out/bench.json [--max-regression 0.25]

Exit 0: no median regressed by more than the threshold. Exit 1: regressions (listed).
Exit 2: the baseline comes from another CPU (latency baselines only compare on the same machine).
"""

from __future__ import annotations

import argparse
import json
import sys


def load(path: str) -> tuple[dict, dict[str, float]]:
    d = json.load(open(path))
    return d.get("machine_info", {}), {b["fullname"]: b["stats"]["median"] for b in d["benchmarks"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline")
    p.add_argument("current")
    p.add_argument("--max-regression", type=float, default=0.25, help="allowed median slow-down, as a fraction (default: %(default)s)")
    p.add_argument("--any-machine", action="store_true", help="compare even when the CPUs differ")
    a = p.parse_args(argv)
    mb, base = load(a.baseline)
    mc, cur = load(a.current)
    cpu_b = mb.get("cpu", {}).get("brand_raw")
    cpu_c = mc.get("cpu", {}).get("brand_raw")
    if cpu_b != cpu_c and not a.any_machine:
        print(f"baseline is from another machine ({cpu_b!r} vs {cpu_c!r}); record a baseline here first", file=sys.stderr)
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
