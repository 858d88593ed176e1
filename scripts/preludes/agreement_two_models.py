# Prelude for `run_book.py 05_agreement --only ... --prelude scripts/preludes/agreement_two_models.py` (see the appendix "Reproducing every number"):
# the variables chapter 5's written-out agreement cells need, from the two seed-0 models only,
# for a machine that has those but not the chapter's six. The same code as the chapter's cells.
from helpers.comparisons import true_class_maps
from helpers.data import preprocess
from helpers.experiment import cam_subset, prepare_experiment, train_run
from helpers.gradcam import residual_stages
from helpers.profiles import get_profile

_profile = get_profile()
exp = prepare_experiment(_profile)
ds = exp.dataset
idx = cam_subset(ds.y_test, _profile.cam_images)
x, y = preprocess(ds.x_test[idx]), ds.y_test[idx]
models = {
    f"{kind} s0": train_run(exp, loss, 0, _profile, verbose=False).model
    for kind, loss in (("regular", "crossentropy"), ("article", "article"))
}
layers = residual_stages(models["regular s0"])
maps = true_class_maps(models, x, y, layers)
