"""Store deletion and insertion curves of every model of a profile on this machine.

    python scripts/save_faithfulness.py --profile laptop

For each kind (regular, article, forward) and each seed whose run is complete under
``artifacts/``, measures the curves of its Grad-CAM maps at the shallow, middle and deep layer
with the book's settings (``helpers.faithfulness_store.SETTINGS``: a blurred baseline, scores
relative to the intact image, three random orders) on the first images of the chapter's
balanced test subset, and adds them to ``book/results/faithfulness/<profile>.npz``. The file
is written after every model, so an interrupted run keeps what it measured; models already
stored are skipped (``--replace`` measures them again). About 5 minutes per model on 2 cores.
"""

from __future__ import annotations

import argparse

from helpers.data import preprocess
from helpers.experiment import cam_subset, is_trained, prepare_experiment, train_run
from helpers.faithfulness_store import (
    SETTINGS,
    faithfulness_path,
    load_faithfulness,
    measure,
    save_faithfulness,
)
from helpers.gradcam import DEEP, MIDDLE, SHALLOW
from helpers.manifest import device_name
from helpers.map_store import AGREEMENT_KINDS
from helpers.profiles import get_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--replace", action="store_true", help="measure stored models again")
    args = parser.parse_args(argv)

    profile = get_profile(args.profile)
    out = faithfulness_path(profile.name)
    exp = prepare_experiment(profile)
    ds = exp.dataset
    idx = cam_subset(ds.y_test, SETTINGS["images"])
    x = preprocess(ds.x_test[idx])
    results, devices = {}, {}
    if out.exists():
        results, devices, stored_idx = load_faithfulness(out)
        if list(stored_idx) != list(idx):
            raise SystemExit(f"{out} holds other test images; move it away first")
    for kind, loss in AGREEMENT_KINDS.items():
        for seed in args.seeds:
            name = f"{kind} s{seed}"
            if not is_trained(exp, loss, seed, profile) or (name in results and not args.replace):
                continue
            model = train_run(exp, loss, seed, profile, verbose=False).model
            results[name] = measure(model, x, [SHALLOW, MIDDLE, DEEP])
            devices[name] = device_name()
            save_faithfulness(out, results, devices, idx)
            print(f"{name}: measured on {len(idx)} images -> {out}", flush=True)
    print(f"{len(results)} models in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
