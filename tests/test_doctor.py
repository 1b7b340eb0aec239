"""``edge-emotion doctor`` and ``EmotionDetector(backend="fastest")``: the report, the measured choice and its cache.

Every test points ``EDGE_EMOTION_CACHE_DIR`` at a temporary folder, so nothing is written to the real home."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap

import pytest

from edge_emotion import doctor
from edge_emotion.errors import ModelError

# ------------------------------------------------------------------ the real report, through the CLI, in a fresh process
_CLI = textwrap.dedent("""
    import sys
    from edge_emotion.cli import main
    rc = main(["doctor", "--json", "--seconds", "0.2"])
    print("TENSORFLOW_IMPORTED=%s" % ("tensorflow" in sys.modules or "keras" in sys.modules), file=sys.stderr)
    sys.exit(rc)
""")


@pytest.fixture(scope="module")
def cli_doctor(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    env = dict(os.environ, EDGE_EMOTION_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, "-c", _CLI], capture_output=True, text=True, env=env, timeout=300)
    return r, cache


@pytest.fixture(scope="module")
def report(cli_doctor):
    r, _ = cli_doctor
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cli_doctor_json_exits_0_with_valid_json(cli_doctor, report):
    assert set(report) >= {"machine", "runtimes", "backends", "models", "measurement", "recommendation"}
    assert report["machine"]["arch"] and report["machine"]["cores"] >= 1


def test_every_available_backend_has_a_measured_latency(report):
    runnable = {b for b, why in report["backends"].items() if why == "ok" and b != "keras"}
    assert {"litert", "onnxruntime"} <= runnable  # both are installed in the dev venv
    rows = report["measurement"]["rows"]
    for backend in runnable:
        ok = [r for r in rows if r["backend"] == backend and r["status"] == "ok"]
        assert ok, f"{backend}: no measured row in {rows}"
        for r in ok:
            for key in ("p50_ms_b1", "per_face_ms_b8"):
                assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, (backend, key, r)
    for r in rows:  # rows that did not run say why
        assert r["status"] == "ok" or r["status"].startswith(("skipped: ", "failed: ")) and len(r["status"]) > 12


def test_recommendation_is_the_fastest_measured_row(report):
    rec = report["recommendation"]
    ok = [r for r in report["measurement"]["rows"] if r["status"] == "ok" and r["backend"] != "keras"]
    assert (rec["backend"], rec["artifact"]) in {(r["backend"], r["artifact"]) for r in ok}
    assert rec["p50_ms_b1"] == min(r["p50_ms_b1"] for r in ok)
    assert "lowest batch-1 p50" in rec["rule"]


def test_keras_tensorrt_rows_say_why(report):
    rows = {r["backend"]: r for r in report["measurement"]["rows"]}
    assert "TensorFlow" in rows["keras"]["status"] or "not installed" in rows["keras"]["status"]
    if report["backends"]["tensorrt"] == "ok":
        assert "edge-emotion export" in rows["tensorrt"]["status"]
    else:
        assert rows["tensorrt"]["status"] == f"skipped: {report['backends']['tensorrt']}"


def test_doctor_does_not_import_tensorflow_or_write_the_cache(cli_doctor):
    r, cache = cli_doctor
    assert "TENSORFLOW_IMPORTED=False" in r.stderr
    assert not (cache / doctor.CACHE_NAME).exists()  # only --refresh stores a choice


def test_text_rendering(report):
    # a report rebuilt from plain values renders; the real one was checked above
    rep = doctor.DoctorReport(
        report["edge_emotion"], doctor.Machine(**report["machine"]),
        [doctor.RuntimeInfo(**r) for r in report["runtimes"]], report["backends"],
        [doctor.BundledModel(**m) for m in report["models"]],
        doctor.Measurement(**{**report["measurement"], "rows": [doctor.MeasureRow(**r) for r in report["measurement"]["rows"]]}),
        doctor.Recommendation(**report["recommendation"]), report["fastest_cache"])
    text = doctor.render_text(rep)
    assert "Recommended: " in text and "b1 p50" in text and "Bundled models" in text


# ------------------------------------------------------------------ backend="fastest" and its cache
@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_EMOTION_CACHE_DIR", str(tmp_path / "cache"))
    doctor._MEMO.clear()
    yield tmp_path / "cache" / doctor.CACHE_NAME
    doctor._MEMO.clear()


@pytest.fixture
def fake_measure(monkeypatch):
    """Replace the timing with fixed figures (onnxruntime int8 fastest) and count the calls."""
    calls = []

    def fake(model=None, seconds=doctor.DEFAULT_SECONDS, threads=None, include_keras=False):
        calls.append(model)
        rows = [doctor.MeasureRow("litert", "tflite_int8", None, "ok", p50_ms_b1=2.0, per_face_ms_b8=1.0),
                doctor.MeasureRow("onnxruntime", "onnx_int8", None, "ok", p50_ms_b1=1.0, per_face_ms_b8=0.8),
                doctor.MeasureRow("keras", "keras", None, "ok", p50_ms_b1=0.1, per_face_ms_b8=0.1),  # never recommended
                doctor.MeasureRow("tensorrt", "engine", None, "skipped: no GPU")]
        return doctor.Measurement(str(model), "x", seconds, threads, "fake", "fake", rows)

    monkeypatch.setattr(doctor, "measure_backends", fake)
    return calls


def _detector(**kw):
    from edge_emotion import EmotionDetector

    return EmotionDetector(backend="fastest", face_detector="haar", threads=1, **kw)


def test_fastest_measures_once_and_reuses_the_cache(cache, fake_measure, astronaut):
    det = _detector()
    assert len(fake_measure) == 1
    assert det.classifier.backend.name == "onnxruntime" and det.model_path.name == "model_int8.onnx"
    assert det.detect(astronaut)  # the chosen artifact really runs
    data = json.loads(cache.read_text())
    (entry,) = data["entries"].values()
    assert (entry["backend"], entry["artifact"], entry["threads"]) == ("onnxruntime", "onnx_int8", 1)

    doctor._MEMO.clear()  # a new process: only the file remains
    det2 = _detector()
    assert len(fake_measure) == 1, "the second EmotionDetector(backend='fastest') measured again"
    assert det2.model_path == det.model_path
    assert doctor.fastest_backend(threads=1) == ("onnxruntime", det.model_path)
    assert len(fake_measure) == 1


def test_changed_device_model_or_refresh_measures_again(cache, fake_measure, monkeypatch):
    doctor.fastest_backend()
    doctor.fastest_backend()
    assert len(fake_measure) == 1
    real_fp = doctor.device_fingerprint
    monkeypatch.setattr(doctor, "device_fingerprint", lambda: {**real_fp(), "runtimes": {"onnxruntime": "onnxruntime 9.9"}})
    doctor.fastest_backend()
    assert len(fake_measure) == 2
    monkeypatch.setattr(doctor, "model_sha256", lambda model=None: "0" * 64)
    doctor.fastest_backend()
    assert len(fake_measure) == 3
    doctor.fastest_backend(refresh=True)
    assert len(fake_measure) == 4
    assert len(json.loads(cache.read_text())["entries"]) == 3  # one per (device, model sha)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"format": 1, "entries": 7}', ""])
def test_corrupt_cache_is_ignored_and_rewritten(cache, fake_measure, caplog, content):
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    with caplog.at_level(logging.WARNING, logger="edge_emotion.doctor"):
        assert doctor.fastest_backend()[0] == "onnxruntime"
    assert "corrupt" in caplog.text
    assert len(fake_measure) == 1
    assert len(json.loads(cache.read_text())["entries"]) == 1


def test_unusable_cache_entry_is_measured_again(cache, fake_measure, caplog):
    doctor.fastest_backend()
    for n, change in enumerate([{"artifact": "tflite_int4"}, {"backend": "keras"}, {"backend": None}], start=2):
        data = json.loads(cache.read_text())  # the valid entry written by the previous measurement
        for e in data["entries"].values():
            e.update(change)
        cache.write_text(json.dumps(data))
        doctor._MEMO.clear()
        with caplog.at_level(logging.WARNING, logger="edge_emotion.doctor"):
            assert doctor.fastest_backend()[0] == "onnxruntime"
        assert len(fake_measure) == n and "unusable" in caplog.text


def test_unwritable_cache_dir_warns_and_still_works(monkeypatch, tmp_path, fake_measure, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("EDGE_EMOTION_CACHE_DIR", str(blocker / "cache"))  # a folder under a file: never writable
    doctor._MEMO.clear()
    with caplog.at_level(logging.WARNING, logger="edge_emotion.doctor"):
        backend, path = doctor.fastest_backend()
        assert (backend, path.name) == ("onnxruntime", "model_int8.onnx")
        doctor.fastest_backend()
    assert "cannot write the fastest-backend cache" in caplog.text
    assert len(fake_measure) == 1  # remembered for the process
    doctor._MEMO.clear()


def test_fastest_with_a_model_file_means_auto(cache, fake_measure):
    from edge_emotion.runtime.zoo import artifact_path

    path = artifact_path("edge_cnn_fer7", "tflite_int8")
    det = _detector(model=str(path))
    assert det.classifier.backend.name == "litert" and not fake_measure and not cache.exists()
    with pytest.raises(ModelError, match="bundled model"):
        doctor.fastest_backend(str(path))


def test_recommend_rule():
    rows = [doctor.MeasureRow("keras", "keras", None, "ok", p50_ms_b1=0.1),
            doctor.MeasureRow("litert", "tflite_int8", None, "ok", p50_ms_b1=1.0),
            doctor.MeasureRow("onnxruntime", "onnx_int8", None, "ok", p50_ms_b1=1.0),
            doctor.MeasureRow("litert", "tflite_fp32", None, "failed: x")]
    rec = doctor.recommend(rows)
    assert (rec.backend, rec.artifact, rec.runner_up) == ("litert", "tflite_int8", "onnxruntime onnx_int8")
    assert "tie" in rec.note
    assert doctor.recommend(rows[3:]) is None


def test_cache_dir_per_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_EMOTION_CACHE_DIR", str(tmp_path / "x"))
    assert doctor.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("EDGE_EMOTION_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert doctor.cache_dir() == tmp_path / "xdg" / "edge-emotion"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert doctor.cache_dir() == tmp_path / ".cache" / "edge-emotion"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert doctor.cache_dir() == tmp_path / "Library" / "Caches" / "edge-emotion"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert doctor.cache_dir() == tmp_path / "Local" / "edge-emotion"


# ------------------------------------------------------------------ CPU features from /proc/cpuinfo
X86_VNNI = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 106
model name	: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single ssbd ibrs ibpb stibp ibrs_enhanced fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves wbnoinvd ida arat avx512vbmi pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq rdpid md_clear flush_l1d arch_capabilities

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags		: fpu avx2 avx512f avx512_vnni
"""

X86_AVX2 = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 60
model name	: Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid sse4_1 sse4_2 movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm cpuid_fault epb invpcid_single pti ssbd ibrs ibpb stibp tpr_shadow vnmi flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid xsaveopt dtherm ida arat pln pts md_clear flush_l1d
"""

PI4_A72 = """\
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Revision	: c03114
Serial		: 100000002a5b6c7d
Model		: Raspberry Pi 4 Model B Rev 1.4
"""

PI5_A76 = """\
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1

Revision	: d04170
Serial		: 2bd7e6b8c1f1a2b3
Model		: Raspberry Pi 5 Model B Rev 1.0
"""

PI4_32BIT = """\
processor	: 0
model name	: ARMv7 Processor rev 3 (v7l)
BogoMIPS	: 108.00
Features	: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
CPU implementer	: 0x41
CPU architecture: 7
CPU part	: 0xd08

Model		: Raspberry Pi 4 Model B Rev 1.5
"""


def test_cpuinfo_x86_vnni():
    cpu = doctor.parse_cpuinfo(X86_VNNI)
    assert cpu.family == "x86" and cpu.model.startswith("Intel(R) Xeon(R) Platinum 8375C")
    assert cpu.features == {"avx2": True, "avx512f": True, "avx512_vnni": True, "avx_vnni": False, "amx_int8": False,
                            "avx512_bf16": False}
    assert cpu.board is None
    assert "VNNI" in doctor.int8_note(cpu)


def test_cpuinfo_x86_avx2_only():
    cpu = doctor.parse_cpuinfo(X86_AVX2)
    assert cpu.family == "x86" and "i7-4770" in cpu.model
    assert [k for k, v in cpu.features.items() if v] == ["avx2"]
    assert "without VNNI" in doctor.int8_note(cpu)


def test_cpuinfo_pi4_cortex_a72_has_neon_without_dot_product():
    cpu = doctor.parse_cpuinfo(PI4_A72)
    assert (cpu.family, cpu.model, cpu.board) == ("arm", "Cortex-A72", "Raspberry Pi 4 Model B Rev 1.4")
    assert cpu.features == {"asimd": True, "asimddp": False, "i8mm": False, "bf16": False, "fphp": False}
    assert "slower than fp32" in doctor.int8_note(cpu)
    cpu32 = doctor.parse_cpuinfo(PI4_32BIT)  # a 32-bit kernel says "neon"
    assert cpu32.model == "Cortex-A72" and cpu32.features["asimd"] and not cpu32.features["asimddp"]


def test_cpuinfo_pi5_cortex_a76_has_dot_product():
    cpu = doctor.parse_cpuinfo(PI5_A76)
    assert (cpu.family, cpu.model, cpu.board) == ("arm", "Cortex-A76", "Raspberry Pi 5 Model B Rev 1.0")
    assert cpu.features == {"asimd": True, "asimddp": True, "i8mm": False, "bf16": False, "fphp": True}
    assert "dot product" in doctor.int8_note(cpu)


def test_cpuinfo_big_little():
    a55 = PI5_A76.replace("0xd0b", "0xd05").split("\n\nRevision")[0]
    cpu = doctor.parse_cpuinfo(a55 + "\n\n" + PI5_A76)
    assert cpu.model == "2x Cortex-A55 + 2x Cortex-A76"


def test_int8_class_names_the_kernels_a_cpu_runs():
    """The accuracy floors compare machines by this class: it must tell VNNI from AVX2, and a Pi 5 from a Pi 4."""
    from edge_emotion.doctor import int8_class, parse_cpuinfo

    assert int8_class(parse_cpuinfo(X86_AVX2)) == "x86-avx2"
    assert int8_class(parse_cpuinfo(PI4_A72)) == "arm-neon"
    assert int8_class(parse_cpuinfo(PI5_A76)) == "arm-dotprod"
    assert int8_class(parse_cpuinfo(X86_VNNI)) == "x86-vnni"
