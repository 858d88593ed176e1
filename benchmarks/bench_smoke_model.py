"""How long does one ``smoke`` model take to train?  (A benchmark, not a test.)

CI trains about a dozen smoke models (the chapters under nbval), so their cost sets CI's time.
Each repeat trains cross-entropy seed 0 at the ``smoke`` profile in a fresh artifacts folder
(nothing cached), with the epochs and the mode asked for, and prints its wall time. Run it
with nothing else busy, e.g. the two measurements behind smoke's single epoch::

    python benchmarks/bench_smoke_model.py --max-epochs 2 1 --repeats 2
    python benchmarks/bench_smoke_model.py --eager  # Keras' eager mode instead of a traced step
    python benchmarks/bench_smoke_model.py --repeats 2 --grappler  # the graph optimizer kept on

The child runs as CI's do, with ``BOOK_PROFILE=smoke``, so TensorFlow's graph optimizer is
off (``helpers.skip_graph_optimizer``) unless ``--grappler`` keeps it on.

The last printed line is ``max_epochs=<n>: <median> s`` per setting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import os, sys, time
from dataclasses import replace
from helpers import training
from helpers.experiment import prepare_experiment, train_run
from helpers.profiles import PROFILES

if sys.argv[2] == "eager":  # every compiled trainer runs eagerly
    compile_for_training = training.compile_for_training

    def eager(*args, **kwargs):
        trainer = compile_for_training(*args, **kwargs)
        trainer.run_eagerly = True
        return trainer

    training.compile_for_training = eager
profile = replace(PROFILES["smoke"], max_epochs=int(sys.argv[1]))
exp = prepare_experiment(profile)
start = time.perf_counter()
train_run(exp, "crossentropy", 0, profile, verbose=False)
print(time.perf_counter() - start)
"""


def train_once(max_epochs: int, eager: bool, grappler: bool = False) -> float:
    """Seconds to train one smoke model in a fresh process and artifacts folder."""
    with tempfile.TemporaryDirectory() as artifacts:
        env = {**os.environ, "BOOK_ARTIFACTS_DIR": artifacts, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env["BOOK_PROFILE"] = "smoke"
        if grappler:  # without BOOK_PROFILE=smoke, importing helpers leaves the optimizer on
            del env["BOOK_PROFILE"]
        mode = "eager" if eager else "traced"
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(max_epochs), mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-epochs", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--eager", action="store_true", help="run the training steps eagerly")
    parser.add_argument(
        "--grappler", action="store_true", help="keep TensorFlow's graph optimizer on"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    medians = {}
    for epochs in args.max_epochs:
        times = [train_once(epochs, args.eager, args.grappler) for _ in range(args.repeats)]
        print(f"max_epochs={epochs}: " + ", ".join(f"{t:.1f} s" for t in times), flush=True)
        medians[epochs] = statistics.median(times)
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
    print("  ".join(f"max_epochs={e}: {m:.1f} s" for e, m in medians.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
