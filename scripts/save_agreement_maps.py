"""Store the Grad-CAM maps chapters 5 and 8 compare, for every model of a profile on this machine.

    python scripts/save_agreement_maps.py --profile laptop
    python scripts/save_agreement_maps.py --profile laptop --losses scl_exp
    python scripts/save_agreement_maps.py --profile laptop \
        --classes airplanes watch Leopards Motorbikes --losses crossentropy article forward scl_exp
    python scripts/save_agreement_maps.py --profile laptop --set image_size=299 \
        --losses crossentropy article

For each loss (by default chapter 5's three: cross-entropy, stored as ``regular``, article
and forward) and each seed whose run is complete under ``artifacts/``, computes the
true-class maps at all 13 residual stages on the chapter's test images, the model's predicted
class on each of them and its true test accuracy, and writes them to the folder
``book/results/maps/<profile>/``, one file per model (``helpers.map_store``). Maps of other
classes than the book's three go to ``<profile>-<classes>/``, and those of runs trained with
overridden profile fields (``--set image_size=299``, as in a run queue) to
``<profile>-<overrides>/``. Only new models' files are written: models already stored and not
on this machine stay as they are, so seeds trained on different machines pool in one folder,
each with the device it was trained on. A model on this machine replaces its stored namesake
only with ``--replace``: two runs of one seed on two machines are different models, and the
stored one may be what the stored chapter shows. To tell, every model on the machine is
computed again; ``--new-only`` computes only the models not stored yet (at 299 px a model
takes about 1.5 minutes on two CPU cores), for a queue whose earlier models are stored already.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from helpers.complementary import LOSS_NAMES
from helpers.data import DEFAULT_CLASSES
from helpers.experiment import REFERENCE, prepare_experiment
from helpers.manifest import device_name
from helpers.map_store import (
    AGREEMENT_KINDS,
    compute_agreement_maps,
    load_maps,
    maps_tag,
    save_model_maps,
    stored_maps_path,
)
from helpers.profiles import get_profile, override_profile, parse_overrides


def same_maps(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two models' maps are the same up to the store's float16 rounding."""
    return list(a) == list(b) and all(
        a[layer].shape == b[layer].shape
        and np.allclose(a[layer], b[layer], rtol=0, atol=2e-3 * max(np.abs(b[layer]).max(), 1e-12))
        for layer in a
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument(
        "--losses",
        nargs="+",
        default=list(AGREEMENT_KINDS.values()),
        choices=[REFERENCE, *LOSS_NAMES],
        help="losses whose models to store (cross-entropy is stored as 'regular')",
    )
    parser.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES))
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="profile fields the runs were trained with, as in a run queue (image_size=299)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the folder; default: book/results/maps/<profile>[-<overrides>][-<classes>]",
    )
    parser.add_argument("--replace", action="store_true", help="replace stored namesakes")
    parser.add_argument(
        "--new-only",
        action="store_true",
        help="compute only the models not stored yet (their stored namesakes are kept unchecked)",
    )
    parser.add_argument("--device", default=None, help="default: this machine's description")
    args = parser.parse_args(argv)

    try:
        profile = override_profile(get_profile(args.profile), parse_overrides(args.set))
    except ValueError as error:  # an unknown field or a malformed FIELD=VALUE
        parser.error(str(error))
    kinds = {("regular" if loss == REFERENCE else loss): loss for loss in args.losses}
    tag = maps_tag(profile)
    out = args.out or stored_maps_path(profile.name, classes=args.classes, overrides=tag)
    if args.new_only and args.replace:
        parser.error("--new-only keeps every stored model; it cannot --replace one")
    exp = prepare_experiment(profile, classes=tuple(args.classes))
    old = load_maps(out) if out.is_dir() and any(out.glob("*.npz")) else None
    skip = old.maps if args.new_only and old is not None else {}
    new = compute_agreement_maps(exp, profile, args.seeds, kinds, train=False, skip=skip)
    device = args.device or device_name()
    write = list(new.maps)
    if old is not None:
        if (old.image_indices != new.image_indices).any():
            raise SystemExit(f"{out} holds other test images; move it away or pass --out")
        for name in set(old.maps) & set(new.maps):
            if same_maps(old.maps[name], new.maps[name]):
                # the stored model is this machine's: rewrite it only to add its predictions
                if name in old.predictions or name not in new.predictions:
                    write.remove(name)
            elif not args.replace:
                raise SystemExit(
                    f"{name} is stored already (trained on {old.devices[name]}) and on this "
                    "machine too: two different models of one seed. Pass --replace to store "
                    "this machine's, or move its run out of artifacts/ to keep the stored one."
                )
    save_model_maps(
        out,
        {m: new.maps[m] for m in write},
        new.image_indices,
        device,
        labels=new.labels,
        accuracies=new.accuracies,
        predictions=new.predictions,
        note=f"profile {profile.name}{f' ({tag})' if tag else ''}; "
        "Grad-CAM of the true class at every residual stage",
    )
    stored = load_maps(out)
    for m in stored.maps:
        new_here = " (written now)" if m in write else ""
        accuracy = stored.accuracies.get(m, float("nan"))
        print(f"{m:<12} {accuracy:6.1%}  {stored.devices[m]}{new_here}")
    size = sum(f.stat().st_size for f in out.glob("*.npz")) / 1e6
    print(f"{len(stored.maps)} model{'s' * (len(stored.maps) != 1)} in {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
