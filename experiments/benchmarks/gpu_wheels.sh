#!/usr/bin/env bash
# Downloads, on a machine with pip and network, the wheels that the GPU machines lack (the pinned list of
# experiments/benchmarks/gpu_wheels.txt) for CPython 3.12 on manylinux x86_64, into the git-ignored .whl/ folder,
# and prints each with its size and the total (at most 60 MiB, else it fails). Carry .whl/ to the GPU machine with
# the checkout; experiments/benchmarks/gpu_suite.sh installs them there offline before anything else.
#
#   bash experiments/benchmarks/gpu_wheels.sh            # download into .whl/ (replacing what is there)
#   bash experiments/benchmarks/gpu_wheels.sh --check    # and install them into a scratch folder, import each
#
# --check is the dry run of gpu_suite.sh's install (`pip install --no-index --no-deps --target`): every wheel into
# a fresh temporary folder, then each top-level module imported from there, with that folder first on PYTHONPATH
# and this machine's other packages behind it, as the GPU image's would be. PYTHON (default python3) must have pip,
# and for --check what the wheels import (jax, chex, absl-py, ...): the project's .venv. With PYTHON312 set to a
# bare CPython 3.12, the modules are imported by it too (the compiled charset-normalizer wheel loads there; a
# module that needs a package of the GPU image says so).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${DEST:-.whl}
PY=${PYTHON:-python3}
LIST=experiments/benchmarks/gpu_wheels.txt
LIMIT_MIB=60

mapfile -t PINS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep -v '^$')
rm -rf "$DEST"
mkdir -p "$DEST"
# --no-deps: exactly the list (their dependencies are in it, or on the GPU image). Pure-Python wheels
# (py3-none-any) match these tags too.
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$DEST" "${PINS[@]}"

"$PY" - "$DEST" "$LIMIT_MIB" "${#PINS[@]}" <<'EOF'
import pathlib, sys
dest, limit_mib, expected = pathlib.Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
wheels = sorted(dest.glob("*.whl"))
total = sum(w.stat().st_size for w in wheels)
print(f"{'wheel':<60} {'KiB':>8}")
for w in wheels:
  print(f"{w.name:<60} {w.stat().st_size / 1024:>8.1f}")
print(f"{len(wheels)} wheels, {total / 2**20:.2f} MiB in all (limit {limit_mib:.0f} MiB) in {dest}/")
if len(wheels) != expected:
  sys.exit(f"expected {expected} wheels (one per line of gpu_wheels.txt), got {len(wheels)}")
if total > limit_mib * 2**20:
  sys.exit(f"the wheels take {total / 2**20:.2f} MiB, over the {limit_mib:.0f} MiB limit")
EOF

if [[ "${1:-}" == "--check" ]]; then
  SCRATCH=$(mktemp -d)
  # gpu_suite.sh's install; the target tags are spelled out so that a Python other than 3.12 installs the 3.12 wheels.
  "$PY" -m pip install --quiet --no-index --no-deps --target "$SCRATCH" --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux1_x86_64 "$DEST"/*.whl
  echo "installed offline into $SCRATCH"
  status=0
  PYTHONPATH="$SCRATCH${PYTHONPATH:+:$PYTHONPATH}" "$PY" experiments/benchmarks/gpu_wheels.py check "$SCRATCH" \
    || status=1
  if [[ -n "${PYTHON312:-}" ]]; then
    PYTHONPATH="$SCRATCH" "$PYTHON312" experiments/benchmarks/gpu_wheels.py check "$SCRATCH" --bare || status=1
  fi
  rm -rf "$SCRATCH"
  exit $status
fi
