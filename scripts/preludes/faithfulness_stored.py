# Prelude for `run_book.py 06_agreement_lab --only be3c3801 145a5150 aca24bb9 --prelude scripts/preludes/faithfulness_stored.py`
# (see the appendix "Reproducing every number"): the variables the lab chapter's faithfulness
# cells need when they read the curves stored by scripts/save_faithfulness.py, on a machine
# that lacks the chapter's six models (the cells then use neither models nor images).
from helpers.gradcam import DEEP, MIDDLE, SHALLOW
from helpers.manifest import start_run
from helpers.results import glue  # noqa: F401  (the cells glue their numbers)

run = start_run("agreement")
DEPTHS = {"shallow": SHALLOW, "middle": MIDDLE, "deep": DEEP}
models, x, n, idx = {}, None, 0, None
