#!/usr/bin/env bash
# One GPU check in one go (under 8 minutes) on a bare GPU machine without network:
#   0. install the wheels carried in .gpu/whl into /tmp/site (transformers 5.24, peft, DeepSpeed,
#      Hydra, TRL, datasets, ...: what the machine lacks or has too old) and print the versions;
#   1. build SmolLM2-135M-Instruct's shape with random weights (seed 0) from .gpu/smollm2/config.json
#      into $VAT_CACHE, where `vat.models.smollm2.smollm2_model_dir` finds it (the real weights are
#      too big to carry: same FLOPs, meaningless scores);
#   A. launch/gpu_smoke.sh: DPO with DeepSpeed ZeRO-2 then ZeRO-3, bf16-mixed, VAT eval;
#   B. benchmarks/bench_dpo.py --device cuda: DPO pairs/s, ours vs TRL, bf16;
#   C. benchmarks/bench_mfu.py --device cuda: matmul peak and the MFU of scoring and training.
# Each step runs under its own time limit, clamped so that all of them end within
# GPU_CHECK_DEADLINE seconds (440) of the start; a failing step never stops the later ones.
# Everything is logged to $OUT/gpu_check.log; $OUT also gets smoke_report.json, one
# smoke_<strategy>.json per run (smoke.json + summary.json + metrics.csv rows), bench_dpo_gpu.md
# and bench_mfu_gpu.md (at most 6 files).
#
#   bash benchmarks/gpu_check.sh          # in the repository root, with .gpu/ carried along
# Settings (environment): OUT (/tmp/gpu_check_out), PYTHON (python3), GPU_CHECK_DEADLINE (440),
# GPU_CHECK_TMP (/tmp: where site/, vatcache/, hf/ and smoke/ go).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${OUT:-/tmp/gpu_check_out}
PY=${PYTHON:-python3}
DEADLINE=${GPU_CHECK_DEADLINE:-440}
TMPD=${GPU_CHECK_TMP:-/tmp}
SITE=$TMPD/site
SMOKE=$TMPD/smoke
mkdir -p "$OUT"

export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"   # before the preinstalled packages
export VAT_CACHE=$TMPD/vatcache HF_HOME=$TMPD/hf
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

declare -A RC=()
ORDER=()

limit_for() {  # CAP RESERVE: seconds this step may take (its cap, less if the deadline is near)
  local left=$((DEADLINE - SECONDS - $2))
  echo $(($1 < left ? $1 : left))
}

step() {  # NAME LIMIT COMMAND...: run COMMAND under `timeout LIMIT`, record its exit code
  local name=$1 limit=$2 t=$SECONDS rc
  shift 2
  ORDER+=("$name")
  if ((limit < 5)); then
    echo "=== $name: skipped (no time left before the deadline)"
    RC[$name]=skipped
    return 1
  fi
  echo "=== $name: limit ${limit}s, at ${SECONDS}s ($(date -u +%T) UTC)"
  timeout --kill-after=5 "$limit" "$@"
  rc=$?
  ((rc == 124 || rc == 137)) && echo "=== $name: TIMED OUT after ${limit}s"
  echo "=== $name: exit $rc after $((SECONDS - t))s"
  RC[$name]=$rc
  return "$rc"
}

main() {
  echo "gpu_check.sh: $(date -u) in $PWD; python: $(command -v "$PY")"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi failed"
  du -sh .gpu .gpu/whl 2>/dev/null

  # ---------------------------------------------------------------- 0. wheels and versions
  rm -rf "$SITE"
  mkdir -p "$SITE"
  step "install wheels" "$(limit_for 90 320)" "$PY" -m pip install -q --no-index --no-deps \
    --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/whl/*.whl ||
    step "unpack wheels (pip failed)" "$(limit_for 60 320)" "$PY" - "$SITE" .gpu/whl/*.whl <<'PY'
import shutil, sys, zipfile
from pathlib import Path
site = Path(sys.argv[1])
for whl in sys.argv[2:]:
    with zipfile.ZipFile(whl) as z:
        z.extractall(site)
for data in site.glob("*.data"):  # purelib/platlib of a wheel belong in the site dir itself
    for kind in ("purelib", "platlib"):
        if (data / kind).is_dir():
            shutil.copytree(data / kind, site, dirs_exist_ok=True)
    shutil.rmtree(data)
print("unpacked", len(sys.argv) - 2, "wheels into", site)
PY

  step "versions" "$(limit_for 60 300)" "$PY" - <<'PY'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
print("sys.path[:3]", sys.path[:3])
mods = ["torch", "transformers", "peft", "lightning", "pytorch_lightning", "deepspeed", "trl",
        "hydra", "omegaconf", "datasets", "accelerate", "huggingface_hub", "tokenizers",
        "safetensors", "pydantic", "numpy", "scipy", "pandas", "pyarrow", "regex", "triton"]
for m in mods:
    try:
        mod = importlib.import_module(m)
        print(f"{m:18} {getattr(mod, '__version__', '?'):16} {mod.__file__}")
    except Exception as e:  # report and go on
        print(f"{m:18} IMPORT FAILED: {type(e).__name__}: {e}")
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      "capability", torch.cuda.get_device_capability(0) if torch.cuda.is_available() else "-",
      "bf16", torch.cuda.is_available() and torch.cuda.is_bf16_supported())
import transformers
from packaging.version import Version
if Version(transformers.__version__) < Version("5.20"):
    print("WARNING: transformers", transformers.__version__, "< 5.20: /tmp/site is not first")
import vat, vat.train, vat.launch  # noqa: E401
print("vat imports ok:", vat.__file__)
PY

  # ---------------------------------------------------------------- 1. the model
  step "build random SmolLM2" "$(limit_for 90 260)" "$PY" - <<'PY'
import shutil, time
from pathlib import Path
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from vat.cache import build_once, cache_dir
from vat.models.smollm2 import smollm2_model_dir

t0 = time.perf_counter()
src = Path(".gpu/smollm2")
target = cache_dir() / "models" / "smollm2-135m-instruct"
with build_once(target) as tmp:
    if tmp is None:
        print("already there:", target)
    else:
        config = AutoConfig.from_pretrained(src)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).float()
        model.save_pretrained(tmp)
        for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                  "generation_config.json"):
            shutil.copy(src / f, Path(tmp) / f)
assert smollm2_model_dir() == target  # our loader takes it as is (no GGUF conversion)
m = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(target)
n = sum(p.numel() for p in m.parameters())
print(f"{target}: {n / 1e6:.1f}M parameters, dtype {next(m.parameters()).dtype}, tied "
      f"{m.get_input_embeddings().weight.data_ptr() == m.get_output_embeddings().weight.data_ptr()}, "
      f"vocab {len(tok)}, files {sorted(p.name for p in target.iterdir())}, "
      f"{time.perf_counter() - t0:.0f} s")
PY

  # ---------------------------------------------------------------- A. DeepSpeed smoke
  local lim
  lim=$(limit_for 210 160)
  rm -rf "$SMOKE"
  step "A: gpu_smoke (ZeRO-2, ZeRO-3)" "$lim" env PYTHON="$PY" SMOKE_STEPS=8 SMOKE_OUT="$SMOKE" \
    SMOKE_TIMEOUT=$(((lim - 30) / 2 > 30 ? (lim - 30) / 2 : 30)) bash launch/gpu_smoke.sh
  step "A: collect" "$(limit_for 30 150)" "$PY" - "$SMOKE" "$OUT" <<'PY'
import csv, json, shutil, sys
from pathlib import Path
smoke, out = Path(sys.argv[1]), Path(sys.argv[2])
report = smoke / "smoke_report.json"
runs = sorted(p for p in smoke.iterdir() if p.is_dir()) if smoke.is_dir() else []
if report.is_file():
    shutil.copy(report, out / "smoke_report.json")
elif runs:  # the report step did not run (time limit): make it here
    from vat.launch.smoke import smoke_metrics, smoke_table
    results = [smoke_metrics(d) for d in runs]
    print(smoke_table(results))
    (out / "smoke_report.json").write_text(json.dumps(results, indent=2, default=str))
for run in runs:
    rec = {"run_dir": str(run), "files": sorted(str(p.relative_to(run)) for p in run.rglob("*"))[:200]}
    for name in ("smoke.json", "summary.json"):
        if (run / name).is_file():
            rec[name] = json.loads((run / name).read_text())
    metrics = sorted(run.glob("csv/version_*/metrics.csv"))
    if metrics:
        rec["metrics.csv"] = [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(metrics[-1].open())]
    (out / f"smoke_{run.name}.json").write_text(json.dumps(rec, indent=1, default=str))
    print("wrote", out / f"smoke_{run.name}.json", "with", [k for k in rec if k not in ("files",)])
PY

  # ---------------------------------------------------------------- B. DPO throughput
  lim=$(limit_for 160 70)
  step "B: bench_dpo --device cuda" "$lim" "$PY" benchmarks/bench_dpo.py --device cuda \
    --models smollm2_135m_instruct --reps 3 --budget-s $((lim > 90 ? lim - 50 : 40)) \
    --out "$OUT/bench_dpo_gpu.md"

  # ---------------------------------------------------------------- C. MFU
  step "C: bench_mfu --device cuda" "$(limit_for 110 0)" "$PY" benchmarks/bench_mfu.py \
    --device cuda --out "$OUT/bench_mfu_gpu.md"

  # ---------------------------------------------------------------- summary
  echo "=== summary after ${SECONDS}s:"
  for name in "${ORDER[@]}"; do echo "  ${RC[$name]}  $name"; done
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null
  ls -la "$OUT"
}

main 2>&1 | tee "$OUT/gpu_check.log"
