#!/usr/bin/env bash
# make test-arm64: the runtime checks that matter, on aarch64 under qemu-user, in a Debian bookworm arm64
# userland (= Raspberry Pi OS 64-bit) with the aarch64 wheels a device would install, compared with x86_64.
#
#   1. qemu-user-static + debootstrap (apt-get install when missing; needs root)
#   2. the project's wheel, built from a clean copy of the working tree (tracked + untracked, not ignored files)
#   3. a bookworm arm64 minbase userland with python3 (debootstrap --foreign + dpkg -x; nothing arm64 is executed)
#   4. its site-packages: the wheel's dependencies as manylinux aarch64 wheels, pinned to the x86 venv's versions
#      (so the comparison isolates the architecture, not version drift)
#   5. tests/arm64/check.py natively (x86 venv) and under qemu-aarch64 (-cpu cortex-a72, with an ARM
#      /proc/cpuinfo: ONNX Runtime and LiteRT crash on an x86 one), both importing edge_emotion from the same
#      installed wheel
#   6. check.py compare: agreement, accuracy, boxes, stream
#
# 3 and 4 are cached under $EDGE_EMOTION_ARM64_CACHE (default .cache/arm64 in the project root) in directories
# named by a hash of what they are built from, so a warm cache downloads nothing.
#
# Environment (defaults in brackets):
#   EDGE_EMOTION_ARM64_CACHE    [.cache/arm64]      EDGE_EMOTION_X86_PYTHON   [.venv/bin/python]
#   EDGE_EMOTION_ARM64_MIRROR   [deb.debian.org]    EDGE_EMOTION_SHARED       [../shared/data beside the project]
#   EDGE_EMOTION_ARM64_FACES    [300] FER-2013 PrivateTest faces per classifier
#   EDGE_EMOTION_ARM64_FRAMES   [40]  frames of short_hamilton_clip.mp4
#   EDGE_EMOTION_ARM64_JOBS     [3]   emulated processes (1, 2 or 3)
#   EDGE_EMOTION_ARM64_THREADS  [1]   runtime threads per process
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${EDGE_EMOTION_ARM64_CACHE:-$ROOT/.cache/arm64}
PY=${EDGE_EMOTION_X86_PYTHON:-$ROOT/.venv/bin/python}
MIRROR=${EDGE_EMOTION_ARM64_MIRROR:-http://deb.debian.org/debian}
FACES=${EDGE_EMOTION_ARM64_FACES:-300}
FRAMES=${EDGE_EMOTION_ARM64_FRAMES:-40}
THREADS=${EDGE_EMOTION_ARM64_THREADS:-1}
JOBS=${EDGE_EMOTION_ARM64_JOBS:-3}
SUITE=bookworm
GLIBC_MINOR=36          # bookworm's glibc 2.36: the newest manylinux_2_X wheels it runs
QEMU_CPU=cortex-a72     # Raspberry Pi 4; also what the cpuinfo below describes
RECIPE=1                # bump to rebuild the cached userland and site-packages

# background jobs (the emulated checks) do not outlive this script
trap 'jobs -p | xargs -r kill 2>/dev/null || true' EXIT
T_ALL=$(date +%s.%N)
PHASES=()
T_PHASE=
say() { printf '[arm64] %s\n' "$*"; }
die() { printf '[arm64] FAILED: %s\n' "$*" >&2; exit 1; }
phase() { T_PHASE=$(date +%s.%N); say "== $1"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f s", b - a }'; }
done_phase() { PHASES+=("$(printf '%-22s %s' "$1" "$(since "$T_PHASE")")"); }
hash_of() { sha256sum | cut -c1-16; }

[ "$(uname -s)/$(uname -m)" = "Linux/x86_64" ] || die "needs an x86_64 Linux host (this is $(uname -s)/$(uname -m))"
[ -x "$PY" ] || die "no x86 Python at $PY (run 'make dev-venv', or set EDGE_EMOTION_X86_PYTHON)"
SHARED=${EDGE_EMOTION_SHARED:-$(dirname "$ROOT")/shared/data}
for f in fer2013.npz fer2013.json scenes/short_hamilton_clip.mp4; do
    [ -f "$SHARED/$f" ] || die "test data $SHARED/$f is missing (the shared data folder sits beside the project root; or set EDGE_EMOTION_SHARED)"
done
export EDGE_EMOTION_SHARED=$SHARED   # read by check.py, native and emulated

# ------------------------------------------------------------------------------------------- 1. tools
phase tools
missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "${missing[*]} missing and not root: apt-get install ${missing[*]}"
    command -v apt-get >/dev/null || die "${missing[*]} missing and no apt-get to install them"
    say "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "$(qemu-aarch64-static --version | head -1); debootstrap $(debootstrap --version 2>/dev/null | awk '{print $2}')"
done_phase tools

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "another run has held $CACHE/.lock for 15 min"   # one run at a time per cache
RUN=$CACHE/run
rm -rf "$RUN"
mkdir -p "$RUN"

# ------------------------------------------------------------------------------------------- 2. wheel
phase wheel
SRC=$RUN/src
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # the working tree as it is, without ignored files (.venv, build/, *.egg-info, .cache ...) or stale build dirs
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
    tar -C "$ROOT" --exclude=./.venv --exclude=./.venv-runtime --exclude=./.cache --exclude=./build \
        --exclude=./dist --exclude='*.egg-info' --exclude=.git -cf - . | tar -xf - -C "$SRC"
fi
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$RUN/dist" "$SRC"
WHEEL=$(ls "$RUN"/dist/edge_emotion-*.whl)
rm -rf "$SRC"
# pure Python: one install, imported by both the x86 and the aarch64 run
"$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$RUN/pkg" "$WHEEL"
say "$(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1)); face detector weights in it: $(find "$RUN/pkg/edge_emotion" \
    -path '*/face_detection/weights/*.tflite' | wc -l)"
done_phase wheel

# ----------------------------------------------------------------------------------- 3. arm64 userland
phase "arm64 userland"
RFS_KEY=$(printf 'recipe=%s suite=%s arch=arm64 variant=minbase include=python3\n' "$RECIPE" "$SUITE" | hash_of)
RFS=$CACHE/rootfs-$RFS_KEY
if [ ! -f "$RFS/.complete" ]; then
    [ "$(id -u)" = 0 ] || die "building the arm64 userland needs root (debootstrap)"
    say "debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 $SUITE ($MIRROR)"
    rm -rf "$RFS.tmp" "$CACHE"/rootfs-*       # also drops userlands of older recipes
    debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 "$SUITE" "$RFS.tmp" "$MIRROR" \
        > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # unpack every downloaded package; no maintainer script runs (nothing arm64 is executed)
    n=0
    for deb in "$RFS.tmp"/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$RFS.tmp"; n=$((n + 1)); done
    rm -f "$RFS.tmp"/var/cache/apt/archives/*.deb
    [ -x "$RFS.tmp/usr/bin/python3" ] || die "no python3 in the arm64 userland"
    say "unpacked $n packages"
    touch "$RFS.tmp/.complete"
    mv "$RFS.tmp" "$RFS"
else
    say "cached: $RFS"
fi
ARM_PY=$RFS/usr/bin/$(basename "$(readlink "$RFS/usr/bin/python3")")   # python3 -> python3.11
[ -x "$ARM_PY" ] || die "cannot find the arm64 Python in $RFS/usr/bin"
ARM_PYVER=$(basename "$ARM_PY" | sed 's/^python//')
say "arm64 Python: $(basename "$ARM_PY")"
done_phase "arm64 userland"

# ----------------------------------------------------------------------------- 4. aarch64 site-packages
phase "aarch64 wheels"
# the wheel's runtime requirements (its dependencies and the tflite + onnx extras), pinned to the x86 venv's versions
"$PY" - "$RUN/pkg" "$ARM_PYVER" > "$RUN/requirements-aarch64.txt" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, distributions, version
from packaging.requirements import Requirement

pkg, pyver = sys.argv[1], sys.argv[2]
# markers are evaluated for the device, not for this x86 host
device = {"platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
          "python_version": pyver, "python_full_version": pyver + ".0", "implementation_name": "cpython",
          "platform_python_implementation": "CPython"}
dist = next(d for d in distributions(path=[pkg]) if d.metadata["Name"] == "edge-emotion")
reqs = {}
for line in dist.requires or []:
    req = Requirement(line)
    if req.marker and not any(req.marker.evaluate({**device, "extra": e}) for e in ("", "tflite", "onnx")):
        continue
    reqs.setdefault(req.name.lower(), []).append(req)
for name, rs in sorted(reqs.items()):
    try:
        v = version(name)
    except PackageNotFoundError:
        v = None
    if v and all(r.specifier.contains(v, prereleases=True) for r in rs):
        print(f"{name}=={v}")
    else:
        print(name + ",".join(str(r.specifier) for r in rs if str(r.specifier)))
EOF
PIP_ARGS=(--only-binary=:all: --implementation cp --python-version "$ARM_PYVER" --platform manylinux2014_aarch64)
# pip does not expand --platform manylinux_2_X to older glibc versions: list every one up to bookworm's
for v in $(seq 17 "$GLIBC_MINOR"); do PIP_ARGS+=(--platform "manylinux_2_${v}_aarch64"); done
SITE_KEY=$( { echo "recipe=$RECIPE"; echo "${PIP_ARGS[*]}"; sort "$RUN/requirements-aarch64.txt"; } | hash_of)
SITE=$CACHE/site-$SITE_KEY
say "requirements: $(tr '\n' ' ' < "$RUN/requirements-aarch64.txt")"
if [ ! -f "$SITE/.complete" ]; then
    rm -rf "$SITE.tmp" "$CACHE"/site-*
    "$PY" -m pip install -q --disable-pip-version-check --target "$SITE.tmp" "${PIP_ARGS[@]}" \
        -r "$RUN/requirements-aarch64.txt"
    touch "$SITE.tmp/.complete"
    mv "$SITE.tmp" "$SITE"
else
    say "cached: $SITE"
fi
ls "$SITE"/*.dist-info -d | xargs -n1 basename | sed 's/\.dist-info$//' | tr '\n' ' ' | fold -s -w 110 | sed 's/^/[arm64]   /'
echo
done_phase "aarch64 wheels"

# --------------------------------------------------------------------------- 5. checks, native and emulated
# /proc/cpuinfo of a Raspberry Pi 4 (4x Cortex-A72). ONNX Runtime and LiteRT read it through pytorch/cpuinfo
# and segfault on the host's x86 one (ONNX Runtime at import). qemu-user's -L resolves a guest's absolute path
# inside the userland first when the file exists there, so the guest reads ROOTFS/proc/cpuinfo instead: no
# mount namespace and no privileges needed (check.py stops with a clear message if it ever sees an x86 one).
mkdir -p "$RFS/proc"
CPUINFO=$RFS/proc/cpuinfo
{
    for i in 0 1 2 3; do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: c03111\nSerial\t\t: 100000000a1b2c3d\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
} > "$CPUINFO"

CHECK_ARGS=(--faces "$FACES" --frames "$FRAMES" --threads "$THREADS" --expect-package "$RUN/pkg")

phase "check x86_64"
PYTHONPATH=$RUN/pkg PYTHONNOUSERSITE=1 "$PY" "$HERE/check.py" run --out "$RUN/x86_64.json" "${CHECK_ARGS[@]}" \
    || die "the native x86_64 check failed (see above); not running the emulated one"
done_phase "check x86_64"

phase "check aarch64 (qemu)"
arm_check() {  # OUT PARTS: check.py under qemu-aarch64 in the arm64 userland
    # qemu -L: the guest's absolute paths resolve inside the userland first (its loader, libc, stdlib,
    # /proc/cpuinfo), then on the host (the project, the data, the cache)
    env -u PYTHONHOME -u PYTHONSTARTUP PYTHONNOUSERSITE=1 PYTHONPATH="$RUN/pkg:$SITE" \
        qemu-aarch64-static -cpu "$QEMU_CPU" -L "$RFS" "$ARM_PY" -s "$HERE/check.py" run \
        --out "$1" --parts "$2" "${CHECK_ARGS[@]}"
}
# emulation is slow (fp32 NEON goes through softfloat: BlazeFace took ~2 s a frame, the int8 classifier ~0.25 s a
# face), so the parts run as separate processes that share the cores: the sample image and the stream | the LiteRT
# classifier | the ONNX Runtime classifier (each takes about as long as the others)
case $JOBS in
    1) ARM_PARTS=(sample,litert,onnxruntime,stream) ;;
    2) ARM_PARTS=(sample,stream litert,onnxruntime) ;;
    *) ARM_PARTS=(sample,stream litert onnxruntime) ;;
esac
pids=()
for i in "${!ARM_PARTS[@]}"; do
    arm_check "$RUN/aarch64-$i.json" "${ARM_PARTS[$i]}" > "$RUN/aarch64-$i.log" 2>&1 &
    pids+=($!)
done
crashed=0
for i in "${!pids[@]}"; do
    rc=0; wait "${pids[$i]}" || rc=$?
    grep -v 'XNNPACK delegate' "$RUN/aarch64-$i.log" || true
    if [ ! -f "$RUN/aarch64-$i.json" ]; then
        say "the aarch64 process for ${ARM_PARTS[$i]} exited with $rc without writing its result"
        crashed=1
    fi
done
[ $crashed = 0 ] || die "the aarch64 check crashed (logs: $RUN/aarch64-*.log)"
done_phase "check aarch64 (qemu)"

# ------------------------------------------------------------------------------------------ 6. compare
phase compare
set +e
"$PY" "$HERE/check.py" compare "$RUN/x86_64.json" "$RUN"/aarch64-*.json
rc=$?
set -e
done_phase compare

say "timings:"
for p in "${PHASES[@]}"; do say "  $p"; done
say "$(printf '%-22s %s' total "$(since "$T_ALL")")"
say "results: $RUN/x86_64.json $RUN/aarch64-*.json"
[ $rc = 0 ] || die "aarch64 results differ from x86_64 (see above)"
say "OK"
