"""Every model against every other: the pairwise Grad-CAM agreement matrix, and map health.

Chapter 6 compares three chosen pairs. This script loads (or trains) each listed model,
computes its Grad-CAM maps of the true class at every residual stage on the chapter's test
images, and prints, per layer band (shallow, middle, deep stages):

- each model's map health (``helpers.diagnostics.map_health``): the share of all-zero and
  of constant maps, and how spread the others are;
- the mean rank correlation of every pair of models.

Usage::

    python scripts/agreement_matrix.py --profile laptop
    python scripts/agreement_matrix.py --profile laptop --models crossentropy:0 article:0 \\
        --figure artifacts/agreement-matrix.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from helpers.data import preprocess
from helpers.diagnostics import (
    depth_bands,
    health_table,
    matrix_table,
    pairwise_agreement,
    plot_agreement_matrices,
)
from helpers.experiment import cam_subset, prepare_experiment, train_run
from helpers.gradcam import grad_cam, residual_stages
from helpers.profiles import get_profile

DEFAULT_MODELS = (
    "crossentropy:0",
    "crossentropy:1",
    "article:0",
    "article:1",
    "forward:0",
    "forward:1",
)


def parse_model(text: str) -> tuple[str, int]:
    """``"article:1"`` as ``("article", 1)``."""
    loss, sep, seed = text.partition(":")
    if not sep or not seed.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write a model as LOSS:SEED, e.g. article:1")
    return loss, int(seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="run profile (default: $BOOK_PROFILE)")
    parser.add_argument("--models", nargs="+", type=parse_model, default=None,
                        help="LOSS:SEED of each model (default: regular, article and forward, "
                        "seeds 0 and 1)")  # fmt: skip
    parser.add_argument("--figure", default=None, help="save the matrices' heatmaps here")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    models = args.models or [parse_model(m) for m in DEFAULT_MODELS]
    exp = prepare_experiment(profile)
    ds = exp.dataset
    idx = cam_subset(ds.y_test, profile.cam_images)
    x, y = preprocess(ds.x_test[idx]), ds.y_test[idx]
    maps, layers = {}, []
    for loss, seed in models:
        model = train_run(exp, loss, seed, profile, verbose=False).model
        layers = residual_stages(model)
        cams = grad_cam(model, x, layers, class_index="true", labels=y, upsample_maps=False)
        name = f"{'regular' if loss == 'crossentropy' else loss} s{seed}"
        maps[name] = {layer: cams.map(layer) for layer in layers}
    print(f"{len(idx)} test images, profile {profile.name}; maps of the true class\n")
    matrices = {}
    for band, members in depth_bands(layers).items():
        print(f"== {band}: {members[0]} ... {members[-1]}")
        print(health_table(maps, members))
        names, matrix = pairwise_agreement(maps, members)
        matrices[band] = matrix
        print("\nmean rank correlation")
        print(matrix_table(names, matrix), end="\n\n")
    if args.figure:
        plot_agreement_matrices(list(maps), matrices).savefig(args.figure)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
