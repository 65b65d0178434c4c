#!/usr/bin/env bash
# tools/app_cuda_smoke.sh BUILD_DIR OUT_DIR [DEVICE] — every image2gps subcommand end to end on
# one device (default cuda), each result that depends on the device held against the same
# command on the CPU. Sized for well under a minute on an H100 machine (16 cores); the GPU
# check (tools/gpu_check.sh) runs it. With DEVICE=cpu it proves the script's own logic on a
# machine without a GPU (the CPU-vs-DEVICE comparisons are then trivially equal): 9-20 s on
# the 2-core build machine. OUT_DIR is emptied first (only a new, empty or earlier smoke's one).
#
#   demo       render a small synthetic campus, train small_cnn, evaluate (regression, k-NN)
#   dataset    split the demo's test folder again, plot it (dataset build: only with
#              SMOKE_PHOTOS=DIR of geotagged JPEGs; no command of `dataset` touches the device)
#   train      one epoch; then train --resume it to 2 epochs: its log gains epoch 2, and
#              BatchNorm's num_batches_tracked in last.ckpt counts every training batch of both
#              (the first epoch with --profile 3: profile.txt holds the convolutions and one
#              AdamW update per step, on a GPU with the host's column; the trace is valid JSON)
#   grid       two 1-epoch runs (weight decay 0 and 1e-4), results.csv with both
#   eval       --knn on DEVICE and on the CPU, same checkpoint: the baseline equal, every
#              method's mean and RMSE in meters close, per-image regression within 1 m, and
#              per-image k-NN within 1 m for at least 90% of the images (a near-tie among the
#              neighbours may pick another one); on CUDA the bank search is the fused k-NN
#              kernel (engine::knn_search -> kernels/cuda/knn.cu)
#   export     a bundle built on DEVICE (its k-NN bank embedded there), then eval --bundle
#   predict    regression, knn and cosine on DEVICE and on the CPU: the same rules as eval
#   forward    the trained model's weights (the checkpoint's "model.*" tensors, conv weights
#              back in PyTorch's OIHW, as weights/convert.py would write them) through
#              `forward` and `forward --features` on DEVICE and on the CPU: within 1e-4 of
#              the output's scale
# Prints one line per step and, on the first failure, `app_smoke: FAIL <step>: <why>` (the
# step's full output is OUT_DIR/logs/<step>.log) and exits 1; `app_smoke: PASS ...` and 0 when
# everything held. Needs python3 (standard library only) for the JSON/CSV/safetensors checks.
set -uo pipefail

build=${1:?usage: tools/app_cuda_smoke.sh BUILD_DIR OUT_DIR [DEVICE]}
out=${2:?usage: tools/app_cuda_smoke.sh BUILD_DIR OUT_DIR [DEVICE]}
dev=${3:-${SMOKE_DEVICE:-cuda}}
exe=${SMOKE_EXE:-$build/apps/image2gps}  # SMOKE_EXE: another binary (the emulated one)
# Small enough for seconds on a GPU, large enough that k-NN and the splits are not degenerate.
views=${SMOKE_VIEWS:-800}
px=${SMOKE_PX:-64}
epochs=${SMOKE_EPOCHS:-2}
batch=${SMOKE_BATCH:-32}
workers=${SMOKE_WORKERS:-4}
py=${PYTHON:-python3}

fail() {
  echo "app_smoke: FAIL $1: $2" >&2
  exit 1
}
[ -x "$exe" ] || fail setup "no $exe (cmake --build $build --target image2gps)"
command -v "$py" >/dev/null || fail setup "no $py for the checks (set PYTHON=...)"
# OUT_DIR is emptied first, so it must be new, empty, or an earlier smoke's (marked).
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/.app_smoke" ]; then
  fail setup "$out exists, is not empty and is not an earlier smoke's output: give a new folder"
fi
rm -rf "$out"
mkdir -p "$out/logs" || fail setup "cannot create $out"
touch "$out/.app_smoke"
out=$(cd "$out" && pwd)
start=$(date +%s)

# step NAME [--stdout FILE] CMD...: runs CMD with its output in logs/NAME.log (stdout in FILE
# instead, when given); fails the smoke if CMD fails.
step() {
  local name=$1 t0=$(date +%s) log=$out/logs/$1.log stdout=$out/logs/$1.log
  shift
  if [ "$1" = --stdout ]; then
    stdout=$2
    shift 2
  fi
  echo "\$ $*" >"$log"
  if [ "$stdout" = "$log" ]; then "$@" >>"$log" 2>&1; else "$@" >"$stdout" 2>>"$log"; fi
  local rc=$?
  [ $rc -eq 0 ] || fail "$name" "exit $rc: $(grep -v '^\$ ' "$log" | tail -n 2 | tr '\n' ' ')"
  printf 'app_smoke: %-28s ok  %3ds\n' "$name" $(($(date +%s) - t0))
}
# check NAME PYTHON-CHECK ARGS...: one of the checks below; its last line is the reason.
check() {
  local name=$1 what=$2
  shift 2
  local msg
  msg=$("$py" - "$what" "$@" <<<"$CHECKS" 2>&1) || fail "$name" "$(echo "$msg" | tail -n 1)"
  printf 'app_smoke: %-28s ok  %s\n' "$name" "$msg"
}
need() {  # need STEP FILE...: every file exists and is not empty
  local s=$1
  shift
  for f in "$@"; do [ -s "$f" ] || fail "$s" "missing or empty: $f"; done
}

CHECKS=$(
  cat <<'PY'
import csv, json, math, struct, sys

def die(msg):
    print(msg)
    sys.exit(1)

def meters(a, b):  # equirectangular: exact enough for differences of a few meters
    dlat = (a[0] - b[0]) * 111320.0
    dlon = (a[1] - b[1]) * 111320.0 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return header, data[8 + n:]

def per_image(name, pairs, exact_share):
    """pairs: (ours, cpu) positions; exact_share of them must be within 1 m."""
    d = sorted(meters(a, b) for a, b in pairs)
    if not d:
        die(f"{name}: no rows")
    close = sum(1 for x in d if x <= 1.0) / len(d)
    if close < exact_share:
        die(f"{name}: only {close:.0%} of {len(d)} images within 1 m of the CPU's "
            f"(need {exact_share:.0%}); worst {d[-1]:.1f} m")
    return f"{name} worst {d[-1]:.3g} m"

def eval_json(a, b):
    ja, jb = json.load(open(a)), json.load(open(b))
    if ja["images"] != jb["images"]:
        die(f"{ja['images']} images vs the CPU's {jb['images']}")
    ma, mb = ja["methods"], jb["methods"]
    if sorted(ma) != sorted(mb) or len(ma) < 4:
        die(f"methods {sorted(ma)} vs the CPU's {sorted(mb)}")
    notes = []
    for m in ma:
        for key in ("mean_m", "rmse_m"):
            x, y = ma[m][key], mb[m][key]
            if not (math.isfinite(x) and math.isfinite(y)):
                die(f"{m} {key}: {x} vs CPU {y}")
            if m.startswith("mean-position"):
                tol = 0.0  # the training split's mean: no model involved
            elif m.startswith("regression"):
                tol = 1e-3 * abs(y) + 0.05
            else:  # k-NN: a near-tie may swap one of k neighbours for a few images
                tol = 0.02 * abs(y) + 0.5
            if abs(x - y) > tol:
                die(f"{m} {key}: {x:.3f} m here vs {y:.3f} m on the CPU (tolerance {tol:.3g})")
        notes.append(f"{m.split(' (')[0]} {ma[m]['mean_m']:.1f}/{mb[m]['mean_m']:.1f} m")
    print("; ".join(notes))

def eval_csv(a, b):
    ra, rb = list(csv.DictReader(open(a))), list(csv.DictReader(open(b)))
    if [r["image_file"] for r in ra] != [r["image_file"] for r in rb]:
        die("the rows differ from the CPU's")
    f = lambda r, k: (float(r[k + "_lat"]), float(r[k + "_lon"]))
    print(per_image("regression", [(f(x, "pred"), f(y, "pred")) for x, y in zip(ra, rb)], 1.0)
          + "; " + per_image("k-NN", [(f(x, "knn"), f(y, "knn")) for x, y in zip(ra, rb)], 0.9))

def predict_csv(a, b, mode):
    ra, rb = list(csv.DictReader(open(a))), list(csv.DictReader(open(b)))
    if len(ra) < 2 or [r["image"] for r in ra] != [r["image"] for r in rb]:
        die(f"{len(ra)} rows vs the CPU's {len(rb)}")
    p = lambda r: (float(r["latitude"]), float(r["longitude"]))
    print(per_image(mode, [(p(x), p(y)) for x, y in zip(ra, rb)],
                    1.0 if mode == "regression" else 0.9))

def forward_txt(a, b):
    va = [float(v) for v in open(a).read().split()]
    vb = [float(v) for v in open(b).read().split()]
    if len(va) != len(vb) or not va:
        die(f"{len(va)} values vs the CPU's {len(vb)}")
    scale = max(abs(v) for v in vb)
    err = max(abs(x - y) for x, y in zip(va, vb))
    if not all(math.isfinite(v) for v in va) or err > 1e-4 * scale + 1e-7:
        die(f"max|diff| {err:.3g} vs scale {scale:.3g} (tolerance 1e-4 of the scale)")
    print(f"{len(va)} values, max|diff|/scale {err / scale if scale else err:.2g}")

def strip_checkpoint(src, dst):
    """An image2gps checkpoint's model tensors as `forward --weights` reads them (weights/
    convert.py's output): PyTorch names (no "model." prefix) and layouts (the checkpoint keeps
    the engine's conv weights [K, R, S, C]; PyTorch's are OIHW [K, C, R, S])."""
    import array
    header, body = read_safetensors(src)
    keep = {k[6:]: v for k, v in header.items() if k.startswith("model.")}
    if not keep:
        die(f"{src}: no model.* tensors")
    out_header, blobs, off = {}, [], 0
    for k in sorted(keep):
        b, e = keep[k]["data_offsets"]
        raw, shape = body[b:e], keep[k]["shape"]
        if len(shape) == 4:  # every 4-D tensor of these models is a conv weight
            if keep[k]["dtype"] != "F32":
                die(f"{k}: {keep[k]['dtype']} conv weight, expected F32")
            a = array.array("f", raw)
            K, R, S, C = shape
            a = array.array("f", (a[((o * R + r) * S + s) * C + c] for o in range(K)
                                  for c in range(C) for r in range(R) for s in range(S)))
            raw, shape = a.tobytes(), [K, C, R, S]
        blobs.append(raw)
        out_header[k] = {"dtype": keep[k]["dtype"], "shape": shape,
                         "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(out_header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    print(f"{len(keep)} tensors")

def batches_counted(ckpt, metadata, epochs, batch):
    """Every BatchNorm's num_batches_tracked = training batches run (drop_last)."""
    header, body = read_safetensors(ckpt)
    n = sum(1 for _ in open(metadata)) - 1
    want = int(epochs) * (n // int(batch) if n > int(batch) else 1)
    keys = [k for k in header if k.endswith("num_batches_tracked")]
    if not keys:
        die(f"{ckpt}: no num_batches_tracked")
    for k in keys:
        b, e = header[k]["data_offsets"]
        got = struct.unpack("<q", body[b:e])[0]
        if got != want:
            die(f"{k} = {got}, expected {want} ({epochs} epochs x {n // int(batch)} batches)")
    print(f"{len(keys)} BatchNorms counted {want} batches")

def log_epochs(log, want):
    ep = [json.loads(l)["epoch"] for l in open(log) if l.strip()]
    if ep != list(range(1, int(want) + 1)):
        die(f"{log}: epochs {ep}, expected 1..{want}")
    print(f"epochs {ep}")

def grid_rows(path, want):
    rows = list(csv.DictReader(open(path)))
    bad = [r["run"] for r in rows if not math.isfinite(float(r["val_rmse_m"]))]
    if len(rows) != int(want) or bad:
        die(f"{path}: {len(rows)} runs (expected {want}), non-finite RMSE in {bad}")
    print(f"{len(rows)} runs, best val RMSE {float(rows[0]['val_rmse_m']):.1f} m")

def profile_table(table, trace, device):
    """train --profile 3: the table holds small_cnn's convolutions and one AdamW update per step
    (on a GPU with the host's column), and the trace is JSON with both timelines on a GPU."""
    text = open(table).read()
    lines = {ln.split()[0] + " " + ln.split()[1]: ln.split() for ln in text.splitlines()[2:]
             if len(ln.split()) > 3}
    if "conv2d forward" not in lines or "conv2d backward" not in lines:
        die(f"{table}: no conv2d rows:\n{text}")
    if lines.get("adamw_step optimizer", [None, None, "0"])[2] != "3":
        die(f"{table}: expected 3 adamw_step calls:\n{text}")
    gpu = device.startswith("cuda")
    if gpu and "host ms" not in text:
        die(f"{table}: a GPU profile without the host's column:\n{text}")
    events = json.load(open(trace))["traceEvents"]
    pids = {e["pid"] for e in events if e.get("ph") == "X"}
    if pids != ({0, 1} if gpu else {0}):
        die(f"{trace}: timelines {sorted(pids)}")
    print(f"{sum(1 for e in events if e.get('ph') == 'X')} op events; {text.splitlines()[-1][:80]}")

what, args = sys.argv[1], sys.argv[2:]
globals()[what](*args)
PY
)

echo "app_smoke: image2gps on $dev ($views views at ${px}px, $epochs epochs, batch $batch) in $out"
common=(--device "$dev" --workers "$workers")

# ---- demo: render, split, train, evaluate, plot ---------------------------------------------------
step demo "$exe" demo --out "$out/demo" --images "$views" --image-size "$px" --epochs "$epochs" \
  --batch-size "$batch" "${common[@]}"
d=$out/demo
need demo "$d"/data/{train,val,test}/metadata.csv "$d"/labels.svg "$d"/run/{best,last}.ckpt \
  "$d"/run/log.jsonl "$d"/test_regression.svg "$d"/test_knn.svg
grep -q '^5/5 results' "$out/logs/demo.log" || fail demo "no results table in its output"
check demo-log log_epochs "$d/run/log.jsonl" "$epochs"
check demo-batchnorm-count batches_counted "$d/run/last.ckpt" "$d/data/train/metadata.csv" \
  "$epochs" "$batch"

# ---- dataset: split and plot (device-independent; build only with photos) ------------------------
step dataset-split "$exe" dataset split "$d/data/test" --out "$out/split" --seed 3
need dataset-split "$out"/split/{train,val,test}/metadata.csv
step dataset-plot "$exe" dataset plot "$out/split" --out "$out/split.svg"
need dataset-plot "$out/split.svg"
if [ -n "${SMOKE_PHOTOS:-}" ]; then
  step dataset-build "$exe" dataset build "$SMOKE_PHOTOS" --out "$out/built"
  need dataset-build "$out/built/metadata.csv"
else
  echo "app_smoke: dataset-build                skipped (set SMOKE_PHOTOS=DIR of geotagged JPEGs)"
fi

# ---- train one epoch, resume it for a second; grid (two more 1-epoch runs) ------------------------
train_opts=(--data "$d/data" --arch small_cnn --image-size "$px" --batch-size "$batch" --epochs 1
  --optimizer adamw --scheduler none "${common[@]}")
step train "$exe" train "${train_opts[@]}" --out "$out/train" --lr 3e-3 --profile 3
check train-log log_epochs "$out/train/log.jsonl" 1
check train-profile profile_table "$out/train/profile.txt" "$out/train/profile.trace.json" "$dev"
step resume "$exe" train --resume "$out/train" --epochs 2
check resume-log log_epochs "$out/train/log.jsonl" 2
check resume-batchnorm-count batches_counted "$out/train/last.ckpt" \
  "$d/data/train/metadata.csv" 2 "$batch"
step grid "$exe" grid "${train_opts[@]}" --out "$out/grid" --lrs 3e-3 --weight-decays 0,1e-4
check grid-results grid_rows "$out/grid/results.csv" 2

# ---- eval --knn here and on the CPU ---------------------------------------------------------------
ck=$d/run/best.ckpt
others=(cpu)  # the devices each result is compared with
[ "$dev" = cpu ] && others=()
for where in "$dev" "${others[@]}"; do
  step "eval-$where" "$exe" eval --data "$d/data/test" --ckpt "$ck" --knn 15 --device "$where" \
    --json "$out/eval_$where.json" --csv "$out/eval_$where.csv" --plot "$out/eval_$where.svg"
done
check eval-meters eval_json "$out/eval_$dev.json" "$out/eval_cpu.json"
check eval-per-image eval_csv "$out/eval_$dev.csv" "$out/eval_cpu.csv"

# ---- export, eval --bundle, predict -----------------------------------------------------------------
step export "$exe" export "$d/run" --out "$out/bundle.safetensors" "${common[@]}"
need export "$out/bundle.safetensors"
step eval-bundle "$exe" eval --data "$d/data/test" --bundle "$out/bundle.safetensors" --knn 15 \
  --device "$dev" --json "$out/eval_bundle.json"
check eval-bundle-meters eval_json "$out/eval_bundle.json" "$out/eval_cpu.json"
mapfile -t imgs < <(ls "$d"/data/test/*.png | head -n 12)
[ ${#imgs[@]} -ge 2 ] || fail predict "fewer than 2 test images in $d/data/test"
for mode in regression knn cosine; do
  for where in "$dev" "${others[@]}"; do
    step "predict-$mode-$where" --stdout "$out/predict_${mode}_$where.csv" "$exe" predict \
      --bundle "$out/bundle.safetensors" --mode "$mode" --device "$where" "${imgs[@]}"
  done
  check "predict-$mode" predict_csv "$out/predict_${mode}_$dev.csv" "$out/predict_${mode}_cpu.csv" \
    "$mode"
done

# ---- forward on the trained weights -----------------------------------------------------------------
check forward-weights strip_checkpoint "$ck" "$out/small_cnn.safetensors"
for flag in "" --features; do
  for where in "$dev" "${others[@]}"; do
    name=forward${flag:+-features}-$where
    step "$name" --stdout "$out/$name.txt" "$exe" forward --arch small_cnn \
      --weights "$out/small_cnn.safetensors" $flag --device "$where" "${imgs[0]}"
  done
  check "forward${flag:+-features}" forward_txt "$out/forward${flag:+-features}-$dev.txt" \
    "$out/forward${flag:+-features}-cpu.txt"
done

echo "app_smoke: PASS on $dev in $(($(date +%s) - start)) s (logs in $out/logs)"
