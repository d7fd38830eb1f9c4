#!/usr/bin/env bash
# Benchmark the course on a CUDA machine without network.
#
# Runs every chapter notebook (notebooks/[0-9]*.ipynb) in full mode (MMCOURSE_FAST=0)
# with nbclient, then `python -m mmcourse bench` (all recipes), reading the data and
# weights from an offline bundle (`python -m mmcourse pack DIR`, MMCOURSE_DATA_ROOT=DIR),
# and prints the wall time of each next to the 2-core CPU's (benchmarks/cpu-times.tsv).
# The packages missing from the machine come as wheels (benchmarks/wheels.txt), installed
# with --no-index --no-deps into a temporary folder on PYTHONPATH.
#
#   benchmarks/gpu.sh --fetch [--wheels DIR]     on a machine with network: download wheels
#   benchmarks/gpu.sh [options]                  on the CUDA machine: run the benchmark
#
# Options:
#   --bundle DIR      the offline bundle (default: benchmarks/bundle)
#   --wheels DIR      folder of wheels (default: benchmarks/wheels); "none": install
#                     nothing, the Python environment already has every package
#   --out DIR         results folder (default: $OUT when set, else benchmarks/results)
#   --notebooks F...  run these notebooks instead of every chapter (until the next option)
#   --recipes R...    bench only these recipes (until the next option)
#   --skip-bench      do not run `python -m mmcourse bench`
#   --skip-finetune   do not run chapter 06's `finetune` (full mode, timed) and
#                     benchmarks/throughput.py (course loop vs naive loop vs ceiling,
#                     eager and with --compile)
#   --table           also run `finetune --table` (every strategy on 5 folds, ~10 min)
#   --budget S        seconds for the whole run (default 540); a notebook or the bench
#                     that would pass it is stopped and reported as "timeout"
#   --cpu             allow running without a CUDA device (to test this script)
#   --fast            MMCOURSE_FAST=1 instead of full mode (to test this script)
# Environment: PYTHON (default python3) is the interpreter that holds torch.
#
# Results: table.txt (the table printed at the end), times.tsv, run.log (every
# notebook's and the bench's output), manifest.json (what the bundle holds), and from
# chapter 06 finetune/ (metrics.json, model.pt, figures), throughput.json,
# throughput-compiled.json and, with
# --table, finetune-table/table.json.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-python3}"
bundle="$here/bundle"
wheels="$here/wheels"
out="${OUT:-$here/results}"
budget=540
fetch=0 cpu=0 fast=0 bench=1 finetune=1 table=0
notebooks=() recipes=()

die() { echo "gpu.sh: $*" >&2; exit 2; }

while (($#)); do
    case "$1" in
        --fetch) fetch=1; shift ;;
        --bundle) bundle="${2:?--bundle needs a folder}"; shift 2 ;;
        --wheels) wheels="${2:?--wheels needs a folder}"; shift 2 ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --budget) budget="${2:?--budget needs seconds}"; shift 2 ;;
        --skip-bench) bench=0; shift ;;
        --skip-finetune) finetune=0; shift ;;
        --table) table=1; shift ;;
        --cpu) cpu=1; shift ;;
        --fast) fast=1; shift ;;
        --notebooks) shift; while (($#)) && [[ "$1" != --* ]]; do notebooks+=("$1"); shift; done ;;
        --recipes) shift; while (($#)) && [[ "$1" != --* ]]; do recipes+=("$1"); shift; done ;;
        -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if ((fetch)); then
    mkdir -p "$wheels"
    platforms=()
    for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_24_x86_64 \
             manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
        platforms+=(--platform "$p")
    done
    exec "$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" -d "$wheels" -r "$here/wheels.txt"
fi

[[ -d "$bundle/tuxpaint/stamps" && -d "$bundle/weights" ]] \
    || die "no offline bundle at $bundle: make one with \`python -m mmcourse pack DIR\` and pass --bundle DIR"
if ((!cpu)); then
    "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
        || die "no CUDA device is visible to $python (torch.cuda.is_available() is False); pass --cpu to run on the CPU anyway"
fi

mkdir -p "$out" || die "cannot create the results folder $out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ "$wheels" != none ]]; then
    compgen -G "$wheels/*.whl" >/dev/null \
        || die "no wheels in $wheels: run \`benchmarks/gpu.sh --fetch --wheels $wheels\` where there is network, or pass --wheels none"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$work/site" "$wheels"/*.whl || die "installing the wheels from $wheels failed"
    export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export MMCOURSE_DATA_ROOT="$(cd "$bundle" && pwd)" MMCOURSE_CACHE="$work/cache"
export MMCOURSE_FAST=$((fast)) HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
export PYTHONUNBUFFERED=1 PYDEVD_DISABLE_FILE_VALIDATION=1
"$python" -c 'import mmcourse, nbclient, nbformat, ipykernel, soundfile' \
    || die "a package the course needs is missing (see benchmarks/wheels.txt)"
((${#notebooks[@]})) || notebooks=("$repo"/notebooks/[0-9]*.ipynb)

log="$out/run.log" times="$out/times.tsv"
export STATUS_FILE="$work/status"
: >"$log"
printf 'item\tseconds\tstatus\n' >"$times"
cp "$MMCOURSE_DATA_ROOT/MANIFEST.json" "$out/manifest.json" 2>/dev/null
"$python" -c 'import mmcourse.runtime.config as c; c.print_settings()' >>"$log" 2>&1
start=$(date +%s)

# run ITEM SECONDS_LEFT COMMAND...: time COMMAND (stopped after SECONDS_LEFT), log its
# output and append "ITEM seconds status" to times.tsv. COMMAND may write a status line
# to $STATUS_FILE (a notebook whose cells raised: how many, and the first error).
run() {
    local item="$1" left="$2" status t0 t1 rc tenths
    shift 2
    if ((left <= 0)); then
        printf '%s\t-\tskipped (budget spent)\n' "$item" >>"$times"
        return
    fi
    echo "== $item" | tee -a "$log"
    rm -f "$STATUS_FILE"
    t0=$(date +%s%N)
    timeout --kill-after=15 "$left" "$@" >>"$log" 2>&1
    rc=$?
    t1=$(date +%s%N)
    case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status="failed (exit $rc)" ;; esac
    [[ -s "$STATUS_FILE" ]] && status="$(head -c 200 "$STATUS_FILE")"
    tenths=$(((t1 - t0) / 100000000))
    printf '%s\t%d.%d\t%s\n' "$item" $((tenths / 10)) $((tenths % 10)) "$status" | tee -a "$times"
}

for nb in "${notebooks[@]}"; do
    run "$(basename "$nb" .ipynb)" $((budget - ($(date +%s) - start))) "$python" - "$nb" <<'EOF'
import sys
from pathlib import Path

import os

import nbformat
from nbclient import NotebookClient

# Every cell runs even when one raises (an assert on a result that the bundle's smaller
# data does not reach, say), so the wall time covers the whole chapter.
path = Path(sys.argv[1])
notebook = nbformat.read(path, as_version=4)
NotebookClient(notebook, timeout=None, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": str(path.parent)}}).execute()
errors = [(i, o) for i, c in enumerate(notebook.cells) if c.cell_type == "code"
          for o in c.get("outputs", []) if o.output_type == "error"]
for i, error in errors:
    print(f"cell {i} raised {error.ename}: {error.evalue}")
print(f"{path.name}: {sum(c.cell_type == 'code' for c in notebook.cells)} code cells ran, "
      f"{len(errors)} raised")
if errors:
    first = errors[0][1]
    message = " ".join(f"{first.ename}: {first.evalue}".split())
    Path(os.environ["STATUS_FILE"]).write_text(f"ran, {len(errors)} cell(s) raised; "
                                               f"first {message}")
    sys.exit(3)
EOF
done
if ((finetune)); then
    run finetune $((budget - ($(date +%s) - start))) "$python" -m mmcourse finetune \
        --out "$out/finetune"
    run throughput $((budget - ($(date +%s) - start))) "$python" "$here/throughput.py" \
        --json "$out/throughput.json"
    run throughput-compiled $((budget - ($(date +%s) - start))) "$python" \
        "$here/throughput.py" --compile --json "$out/throughput-compiled.json"
fi
if ((table)); then
    run finetune-table $((budget - ($(date +%s) - start))) "$python" -m mmcourse finetune \
        --table --out "$out/finetune-table"
fi
if ((bench)); then
    run bench $((budget - ($(date +%s) - start))) "$python" -m mmcourse bench "${recipes[@]}"
fi

"$python" - "$times" "$here/cpu-times.tsv" "$out/table.txt" "$out/manifest.json" <<'EOF'
import csv
import json
import os
import sys

import torch

times, cpu_file, table, manifest = sys.argv[1:]
cpu = {row["item"]: row for row in csv.DictReader(open(cpu_file), delimiter="\t")}
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
rows = [("item", f"{device} s", "status", "2-core CPU s")]
for row in csv.DictReader(open(times), delimiter="\t"):
    cpu_seconds = cpu.get(row["item"], {}).get("cpu_seconds", "not measured")
    rows.append((row["item"], row["seconds"], row["status"], cpu_seconds))
widths = [max(len(r[i]) for r in rows) for i in range(4)]
text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
bundle = json.load(open(manifest)) if os.path.exists(manifest) else {}
if bundle:
    clips = sorted(set(bundle["clips"].values()))
    text += (f"\nbundle: {bundle['stamps']} stamps, Fashion-MNIST {bundle['fashion']['train']} "
             f"train / {bundle['fashion']['test']} test images, {clips[0]}-{clips[-1]} spoken "
             f"captions per language ({len(bundle['clips'])} languages); the 2-core CPU "
             f"times are on the installed data")
open(table, "w").write(text + "\n")
print(text)
EOF
echo "results: $out (table.txt, times.tsv, run.log, manifest.json)"
! grep -qv -e '	ok$' -e '^item	' "$times"
