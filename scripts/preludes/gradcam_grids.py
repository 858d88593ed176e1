# Prelude for `run_book.py 04_gradcam --only 529bccf3 8937bc14 77611039 --prelude
# scripts/preludes/gradcam_grids.py` (see the appendix "Reproducing every number"): the variables
# chapter 4's map grids need (`ds`, `labels`, `data`), computed as the chapter's own cells compute
# them, from the seed-0 regular and `article` models on this machine. The chapter's other cells,
# and the "loaded ..." lines that name the models its other outputs come from, are not re-run.
# The disagreement grid (64f53f87) needs the same variables, but it prints how many images only
# one model gets right, which the results store records for the chapter's own models: store it
# again only with those models, or with the whole chapter.
from helpers.experiment import cam_subset, prepare_experiment, train_run
from helpers.explorer import precompute
from helpers.profiles import get_profile

_profile = get_profile()
exp = prepare_experiment(_profile)
ds = exp.dataset
seed = _profile.seeds[0]
regular = train_run(exp, "crossentropy", seed, _profile).model
complementary = train_run(exp, "article", seed, _profile).model
idx = cam_subset(ds.y_test, _profile.cam_images)  # all 128 test images, except at smoke
images, labels = ds.x_test[idx], ds.y_test[idx]
data = precompute(regular, complementary, images, labels, ds.class_names)
