# Prelude for `run_book.py 08_four_classes --only 816534f4 9af7bfe2 --prelude scripts/preludes/four_classes_store.py`
# (see the appendix "Reproducing every number"): the run object the chapter's first cell makes,
# without printing a second manifest, for cells that read only the results store.
from helpers.manifest import start_run

run = start_run("four_classes")
FOUR = ("airplanes", "watch", "Leopards", "Motorbikes")  # as the chapter's data cell names them
PAIR = ("airplanes", "Leopards")
