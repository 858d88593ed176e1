# Prelude for `run_book.py 08_four_classes --only 7213208a --prelude
# scripts/preludes/four_classes_grid.py` (see the appendix "Reproducing every number"): the
# variables the Motorbikes grid needs (`np`, `ds`, `chosen`, `seeds`, `models`), from the
# seed-0 regular and chosen four-class models on this machine, as the chapter's own cells make
# them. The grid draws only seed 0 of each kind; the chapter's other cells, and the "loaded ..."
# lines that name the models its agreement section used, are not re-run. `chosen` is the loss
# cell 9af7bfe2 picks on validation and records in the results store.
import numpy as np  # noqa: F401  (the grid cell uses np, which an earlier cell imports)

from helpers.experiment import is_trained, prepare_experiment, train_run
from helpers.profiles import get_profile
from helpers.results import value

_profile = get_profile()
FOUR = ("airplanes", "watch", "Leopards", "Motorbikes")  # as the chapter's data cell names them
exp = prepare_experiment(_profile, classes=FOUR)
ds = exp.dataset
chosen = value("four_classes", "chosen_loss", _profile.name)
seeds = _profile.seeds[:2]
_kinds = {"regular": "crossentropy", chosen: chosen}
_missing = [loss for loss in _kinds.values() if not is_trained(exp, loss, seeds[0], _profile)]
if _missing:  # never start a long training from a prelude
    raise RuntimeError(
        f"seed {seeds[0]} of {', '.join(_missing)} at four classes is not on this machine: "
        "train it with scripts/runs/maps-across-k.txt first"
    )
models = {f"{kind} s{seeds[0]}": train_run(exp, loss, seeds[0], _profile).model
          for kind, loss in _kinds.items()}  # fmt: skip
