#!/usr/bin/env bash
# Run the complementary-loss sweep on a GPU node that has JAX but no TensorFlow and no network.
#
# Prepare on a machine with pip (see CONTRIBUTING.md, "GPU runs"):
#   .whl/          wheels of keras, namex, optree, pooch, tqdm, platformdirs for the node's Python
#   .gpu/caltech/  a copy of 101_ObjectCategories holding the three classes
# Then on the node, from the repository root:  OUT=/some/dir bash scripts/gpu_sweep.sh [profile]
# Every loss trains in its own process (the GPU has room for all of them), each over the profile's
# seeds; each writes $OUT/<loss>/<profile>.json as runs finish (kept even if the node is taken back).
set -uo pipefail
profile="${1:-laptop}"
budget="${SWEEP_SECONDS:-330}"   # wall-clock cap per process: partial results are kept
OUT="${OUT:?set OUT to the folder that receives the results}"

if [ -z "${SKIP_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
export CALTECH101_DIR="$PWD/.gpu/caltech/101_ObjectCategories"
export BOOK_CACHE_DIR=/tmp/book-cache BOOK_ARTIFACTS_DIR=/tmp/book-artifacts
export JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache
nvidia-smi -L || true

# Prepare the data cache once, so the parallel processes only read it.
python3 -c "from helpers.data import load_dataset; from helpers.profiles import get_profile; \
ds = load_dataset(profile=get_profile('$profile')); print('data', ds.x_train.shape, ds.x_test.shape)" \
  || exit 1

logs=/tmp/sweep-logs; mkdir -p "$logs"
start=$(date +%s)
for loss in ${SWEEP_LOSSES:-crossentropy article pc nn forward scl_nl scl_exp}; do
  BOOK_RESULTS_DIR="$OUT/$loss" timeout "$budget" \
    python3 scripts/sweep_losses.py --profile "$profile" --losses "$loss" \
    > "$logs/$loss.log" 2>&1 &
done
wait
echo "sweep wall time: $(( $(date +%s) - start )) s"
tail -n 4 "$logs"/*.log
