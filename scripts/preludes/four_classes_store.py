# Prelude for `run_book.py 08_four_classes --only 816534f4 9af7bfe2 --prelude scripts/preludes/four_classes_store.py`
# (see the appendix "Reproducing every number"): the run object the chapter's first cell makes,
# without printing a second manifest, for cells that read only the results store.
from helpers.manifest import start_run
from helpers.results import (
    glue,  # noqa: F401  (the across-K cells glue their sentence)
    value,
)

run = start_run("four_classes")
FOUR = ("airplanes", "watch", "Leopards", "Motorbikes")  # as the chapter's data cell names them
PAIR = ("airplanes", "Leopards")
# The comparison across K and the record cell re-run with the accuracy cells, as the appendix
# says: `--only 816534f4 9af7bfe2 9c04d6ab c4a1d7e2 9e3b3f3c`. Alone, the across-K cells also
# need `chosen`, which cell 9af7bfe2 picks and records.
PROFILE = "laptop"  # the stored runs and maps the chapter reads
chosen = value("four_classes", "chosen_loss", PROFILE)
