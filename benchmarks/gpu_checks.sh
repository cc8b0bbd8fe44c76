#!/usr/bin/env bash
# The GPU checks of issue 18 (item 4) as one short script for a lent GPU machine: the tests marked
# `cuda`, then the benchmarks on the device (stacks of 64 and 256 members vs serial, the lr probe
# vs deepcopy, evaluation, generation). Each step has its own time limit; the whole takes ~8 minutes
# on one H100-class GPU with 16 cores. Every step's output goes to $OUT (or ./gpu_out), one file each;
# each benchmark's last line is its JSON figures.
#
# The device image has PyTorch and every dependency but pydantic. Before the run, here (package
# registries reachable), fetch its wheels for that machine's Python (3.12) into .whl/, ignored:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       pydantic pydantic-core annotated-types typing-inspection
#
# and run `bash benchmarks/gpu_checks.sh` there with `.whl` carried. DEVICE=cpu runs the same steps
# on the CPU, briefly (a check of this script).
set -u -o pipefail
out=${OUT:-gpu_out}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
mkdir -p "$out"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
steps=500 points=1000000
[ "$device" = cpu ] && steps=20 points=100000

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, output to $out/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    echo "   rc $?; last line: $(tail -n 1 "$out/$name.txt" | cut -c1-300)"
}

step device 30 $py -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
if [ "$device" = cuda ]; then
    step cuda_tests 150 $py -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py
fi
step sweep64 120 $py benchmarks/sweep.py --device "$device" --steps $steps --seeds 4 --executors serial,processes,ensemble,autograd
step sweep256 180 $py benchmarks/sweep.py --device "$device" --steps $steps --seeds 16 --executors serial,ensemble
step lr_probe 60 $py benchmarks/lr_probe.py --device "$device"
step eval 60 $py benchmarks/eval.py --device "$device" --points $points --rounds 3
step tasks 60 $py benchmarks/tasks.py --device "$device"
