"""helpers.gap: ablation arms gathered from the results store by their settings, and the
early-stopping choice (validation split or test set) they vary."""

import math
from pathlib import Path

import numpy as np
import pytest

from helpers.gap import (
    ARMS,
    LR_BUDGET,
    ORIGINAL,
    ORIGINAL_DECAY,
    QUOTED,
    Arm,
    ArmResult,
    arm_named,
    best_arm,
    difference,
    format_ablation,
    format_share,
    format_shares,
    gap_closed,
    gap_intervals,
    gather_arms,
    lr_budget_cells,
    lr_budget_table,
    missing_runs,
    percent_step,
    plot_ablation,
    plot_stuck,
    recorded_curve,
    recorded_devices,
    share_of_gap,
)
from helpers.profiles import PROFILES, override_profile, override_tag
from helpers.results import record
from helpers.runs import parse_run, parse_runs


def _store(tmp_path, key, loss, seed, acc, overrides=None, **extra):
    row = {"loss": loss, "seed": seed, "true_accuracy": acc, "epochs": 10 + seed,
           "overrides": overrides or {}, **extra}  # fmt: skip
    record("complementary_sweep", key, row, profile="laptop", directory=tmp_path)


@pytest.fixture
def store(tmp_path):
    _store(tmp_path, "article/seed0", "article", 0, 0.60, history={"stuck": [0.1, 0.3]},
           wall_time_s=180.0)  # fmt: skip
    _store(tmp_path, "article/seed1", "article", 1, 0.70, wall_time_s=300.0)
    _store(tmp_path, "article/seed0/image_size160", "article", 0, 0.80, {"image_size": 160})
    _store(tmp_path, "article/seed0/stop_ontest", "article", 0, 0.75, {"stop_on": "test"})
    _store(tmp_path, "article/seed0/learning_rate0.0001", "article", 0, 0.5,
           {"learning_rate": 0.0001})  # fmt: skip
    # Neither another precision nor other classes may join an arm.
    _store(tmp_path, "article/seed2/mixed_bfloat16", "article", 2, 0.1,
           precision="mixed_bfloat16")  # fmt: skip
    _store(tmp_path, "article/seed3/a-b-c-d", "article", 3, 0.2, classes=["a", "b", "c", "d"])
    _store(tmp_path, "crossentropy/seed0", "crossentropy", 0, 0.95)
    record("complementary_sweep", "article/summary", {"n": 2}, profile="laptop",
           directory=tmp_path)  # fmt: skip
    return tmp_path


def test_arms_gather_their_runs_by_settings(store):
    results = {r.arm.label: r for r in gather_arms("laptop", store)}
    base = results["laptop settings (96 px)"]
    assert base.seeds == (0, 1) and base.accuracies == (0.60, 0.70)
    assert base.mean == pytest.approx(0.65) and base.sd == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert results["160 px"].accuracies == (0.80,) and results["160 px"].sd == 0.0
    assert results["stopping on the test set"].accuracies == (0.75,)
    assert results["learning rate 1e-4"].accuracies == (0.5,)
    assert results["regular, 96 px"].accuracies == (0.95,)
    assert results["299 px"].n == 0 and math.isnan(results["299 px"].mean)
    assert base.wall_s == (180.0, 300.0) and base.minutes == pytest.approx(4.0)
    assert math.isnan(results["299 px"].minutes)
    missing = missing_runs(list(results.values()), seeds=(0, 1))
    assert (results["160 px"].arm, 1) in missing and (results["160 px"].arm, 0) not in missing
    assert sum(arm.label == "laptop settings (96 px)" for arm, _ in missing) == 0
    assert len(missing) == 2 * len(ARMS) - 6  # six recorded runs of seeds 0-1


def test_gap_closed_shares_and_table(store):
    results = gather_arms("laptop", store)
    found = gap_closed(results)
    assert found["baseline"] == pytest.approx(0.65)
    assert found["gap"] == pytest.approx(ORIGINAL["article"] - 0.65)
    assert found["shares"]["160 px"] == pytest.approx(0.15 / (ORIGINAL["article"] - 0.65))
    assert found["shares"]["learning rate 1e-4"] < 0  # widens the gap
    assert "regular, 96 px" not in found["shares"] and "299 px" not in found["shares"]
    table = format_ablation(results)
    assert "not run" in table and "s0 60.0%, s1 70.0%" in table
    fig = plot_ablation(results)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [arm.label for arm in ARMS]


def test_recorded_devices(tmp_path):
    record("complementary_sweep", "article/seed0", {"loss": "article"}, profile="laptop",
           directory=tmp_path, device="CPU (AMD EPYC, x86_64, 2 cores)")  # fmt: skip
    record("complementary_sweep", "article/summary", {}, profile="laptop", directory=tmp_path,
           device="elsewhere")  # fmt: skip
    assert recorded_devices("laptop", tmp_path) == ["CPU (AMD EPYC, x86_64, 2 cores)"]


def test_gap_closed_needs_the_baseline(tmp_path):
    _store(tmp_path, "article/seed0/image_size160", "article", 0, 0.8, {"image_size": 160})
    with pytest.raises(ValueError, match="baseline arm has no runs"):
        gap_closed(gather_arms("laptop", tmp_path))


def test_recorded_curve_and_its_errors(store):
    assert recorded_curve("article/seed0", directory=store) == [0.1, 0.3]
    with pytest.raises(KeyError, match="No 'stuck' history for run 'article/seed1'"):
        recorded_curve("article/seed1", directory=store)
    with pytest.raises(KeyError, match="No 'val_stuck' history for run 'article/seed0'"):
        recorded_curve("article/seed0", "val_stuck", directory=store)
    with pytest.raises(ValueError, match="No stuck-fraction history"):
        plot_stuck({"article": []})
    assert plot_stuck({"article": [0.1, 0.3]}).axes[0].get_lines()


def test_every_arm_is_a_valid_queue_line_with_its_own_key():
    base = PROFILES["laptop"]
    keys = [parse_run(arm.run_line(0)).key(base, "float32") for arm in ARMS]
    assert len(set(keys)) == len(ARMS)
    assert (
        parse_run(Arm("x", "y", overrides={"stop_on": "test"}).run_line(1)).key(base, "float32")
        == "article/seed1/stop_ontest"
    )
    assert [arm.key(0) for arm in ARMS] == keys
    assert arm_named(QUOTED["lr5"]).key(2) == "article/seed2/learning_rate1e-05-max_epochs150"
    with pytest.raises(KeyError, match="No arm 'lr 1e-3'; the arms are: laptop settings"):
        arm_named("lr 1e-3")


def test_stop_on_is_an_overridable_choice():
    base = PROFILES["laptop"]
    assert base.stop_on == "validation"
    assert override_profile(base, {"stop_on": "test"}).stop_on == "test"
    assert override_tag(override_profile(base, {"stop_on": "test"})) == "stop_ontest"
    with pytest.raises(ValueError, match="stop_on must be one of validation, test"):
        override_profile(base, {"stop_on": "train"})


class TinyData:
    """Six training and three test images: enough for train_run to hand them on."""

    class_names = ("a", "b", "c")
    x_train = np.zeros((6, 4, 4, 3), np.uint8)
    y_train = np.array([0, 1, 2, 0, 1, 2])
    x_test = np.ones((3, 4, 4, 3), np.uint8)
    y_test = np.array([0, 1, 2])


def test_stopping_on_test_feeds_the_test_set_to_early_stopping(monkeypatch):
    import helpers.training
    from helpers.experiment import Experiment, train_run
    from helpers.training import _training_fields

    exp = Experiment(TinyData(), np.arange(4), np.arange(4, 6), np.array([1, 2, 0]))
    seen = {}
    monkeypatch.setattr(
        helpers.training,
        "train_model",
        lambda name, x_fit, y_fit, x_val, y_val, **kw: seen.update(x=x_val, y=y_val, **kw),
    )
    test = override_profile(PROFILES["smoke"], {"stop_on": "test"})
    train_run(exp, "article", 0, test)
    assert seen["x"].shape[0] == 3 and (seen["y"] == exp.ybar_test).all()
    train_run(exp, "crossentropy", 0, test)
    assert (seen["y"] == TinyData.y_test).all()
    train_run(exp, "crossentropy", 0, PROFILES["smoke"])
    assert seen["x"].shape[0] == 2 and (seen["y"] == TinyData.y_train[4:]).all()
    assert seen["num_classes"] == 3
    train_run(exp, "article", 0, override_profile(PROFILES["smoke"], {"extra_outputs": 1}))
    assert seen["num_classes"] == 4
    # The default stays out of a run's identity, so runs saved before the field still load.
    assert "stop_on" not in _training_fields(PROFILES["laptop"].as_dict())
    assert _training_fields(test.as_dict())["stop_on"] == "test"


def test_the_article_loss_accepts_a_head_with_an_unused_output():
    import keras

    from helpers.training import resolve_loss

    loss, _, _ = resolve_loss("article", 4)
    logits = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(5, 4)), "float32")
    value = float(loss(np.array([0, 1, 2, 0, 1]), logits))
    assert np.isfinite(value) and 0 < value < 0.5  # p / (1 + p) of the named class


def test_quotable_values_name_the_arm_that_closes_most(store, tmp_path_factory):
    from helpers.gap import quotable

    values = quotable(gather_arms("laptop", store))
    assert values["gap_baseline"] == "65.0%" and values["gap_target"] == "91.41%"
    assert values["gap_size160"] == "80.0% (1 seed)" and values["gap_size299"] == "not run yet"
    assert values["gap_regular"] == "95.0% (1 seed)"
    share = (0.80 - 0.65) / (ORIGINAL["article"] - 0.65)
    assert values["gap_largest"] == (
        "160 px (the highest mean test accuracy of the arms, so picked after seeing it), which "
        f"moves about {round(share * 10) * 10}% of the gap, without an interval (1 and 2 seeds: "
        "too few to tell)"
    )
    assert best_arm(gather_arms("laptop", store)).arm.label == "160 px"
    left = ORIGINAL["article"] - 0.80
    assert values["gap_remaining"] == f"{left * 100:.1f} points"
    article_arms = sum(arm.loss == "article" for arm in ARMS) - 1  # all but the baseline
    assert values["gap_arms_run"] == "3" and values["gap_arms_total"] == str(article_arms)
    lone = tmp_path_factory.mktemp("lone")
    _store(lone, "article/seed0", "article", 0, 0.6)
    assert quotable(gather_arms("laptop", lone))["gap_largest"] == "none has run yet"
    assert best_arm(gather_arms("laptop", lone)) is None
    assert quotable(gather_arms("laptop", lone))["gap_remaining"].startswith("all of it (")
    _store(lone, "article/seed0/patience15", "article", 0, 0.5, {"patience": 15})
    assert quotable(gather_arms("laptop", lone))["gap_largest"].startswith("none moves it closer")
    _store(lone, "article/seed0/learning_rate0.0001", "article", 0, 0.95, {"learning_rate": 1e-4})
    values = quotable(gather_arms("laptop", lone))
    assert values["gap_largest"].startswith("learning rate 1e-4 (the highest mean test accuracy")
    assert values["gap_remaining"] == "none: that arm alone reaches the original's accuracy"


def test_a_head_with_an_extra_output_is_also_scored_on_the_real_classes(monkeypatch):
    import helpers.training
    from helpers.experiment import Experiment, score_run

    class Data:
        class_names = ("a", "b", "c")
        x_test = np.zeros((4, 2, 2, 3), np.uint8)
        y_test = np.array([0, 1, 2, 0])

    scores = np.array(
        [[0.3, 0.1, 0.1, 0.5], [0.1, 0.3, 0.1, 0.5], [0.3, 0.1, 0.2, 0.4], [0.5, 0.2, 0.2, 0.1]]
    )
    monkeypatch.setattr(helpers.training, "predict_proba", lambda model, x, batch_size: scores)
    exp = Experiment(Data(), np.arange(0), np.arange(0), np.array([1, 2, 0, 1]))
    row = score_run(exp, model=None)
    assert row["true_accuracy"] == 0.25  # the extra output wins three images
    assert row["true_accuracy_real_classes"] == 0.75 and row["extra_output_share"] == 0.75
    monkeypatch.setattr(helpers.training, "predict_proba", lambda m, x, batch_size: scores[:, :3])
    assert "true_accuracy_real_classes" not in score_run(exp, model=None)


def test_an_unfinished_run_is_kept_apart_and_said_as_how_far_it_got(store):
    recipe = next(arm for arm in ARMS if arm.factor == "(e) original recipe")
    _store(store, "article/seed0/recipe", "article", 0, 0.72, dict(recipe.overrides),
           finished=False, wall_time_s=5400.0)  # fmt: skip
    _store(store, "article/seed1/recipe", "article", 1, 0.70, dict(recipe.overrides))
    results = {r.arm.label: r for r in gather_arms("laptop", store)}
    arm = results[recipe.label]
    assert arm.seeds == (1,) and arm.accuracies == (0.70,)  # only finished runs count
    (stopped,) = arm.unfinished
    assert (stopped.seed, stopped.epochs, stopped.max_epochs) == (0, 10, 200)
    assert stopped.describe() == "stopped after 10 of at most 200 epochs (1.5 h): 72.0% so far"
    assert "s0 stopped after 10 of at most 200" in format_ablation(list(results.values()))
    assert arm.epoch_minutes == pytest.approx(5400 / 10 / 60)  # the one with a wall time
    base = results["laptop settings (96 px)"]
    assert base.epoch_minutes == pytest.approx((180 / 10 + 300 / 11) / 2 / 60)
    assert math.isnan(results["299 px"].epoch_minutes)
    assert (recipe, 0) in missing_runs(list(results.values()))  # still to finish

    from helpers.gap import quotable

    only = {k: v for k, v in results.items() if k != recipe.label}
    only[recipe.label] = type(arm)(recipe, (), (), (), (), arm.unfinished)
    values = quotable(list(only.values()))
    assert values["gap_original"] == f"{stopped.describe()} (seed 0)"
    fig = plot_ablation(list(only.values()))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "unfinished (10 of ≤200 epochs)" in texts
    head4 = arm_named("4 outputs for 3 classes")
    only[head4.label] = type(arm)(head4, (0,), (0.0,), (25,))
    texts = [t.get_text() for t in plot_ablation(list(only.values())).axes[0].texts]
    assert "← 0.0%, below the scale" in texts


# ------------------------------------------------------------------ issue 33: de-confounded

QUEUE = Path(__file__).resolve().parents[1] / "scripts" / "runs" / "gap-ablation.txt"
NEW_ARMS = (
    "learning rate 1e-5, at most 25 epochs",
    "up to 150 epochs, patience 15 (learning rate 3e-4)",
    "original recipe at 96 px, 4 outputs",
    "original recipe at 96 px, 3 outputs",
    "regular, 1e-5, up to 150 epochs",
    "forward, 1e-5, up to 150 epochs",
)


def test_the_queue_runs_every_new_arm_with_three_seeds_seed_0_first():
    laptop = PROFILES["laptop"]
    specs = parse_runs(QUEUE.read_text(encoding="utf-8"))
    keys = [spec.key(laptop, "float32") for spec in specs]
    assert len(keys) == len(set(keys))  # no run twice
    for label in NEW_ARMS:
        positions = [keys.index(arm_named(label).key(seed)) for seed in (0, 1, 2)]
        assert positions == sorted(positions), label
    new = [keys.index(arm_named(label).key(0)) for label in NEW_ARMS]
    later = [keys.index(arm_named(label).key(s)) for label in NEW_ARMS for s in (1, 2)]
    assert max(new) < min(later)  # seed 0 of every new arm before any other seed
    assert min(new) > keys.index(QUOTED_KEYS["recipe299"])  # appended: old lines kept first
    assert {arm_named("forward, 96 px").key(s) for s in (0, 1, 2)} <= set(keys)
    recipe = specs[keys.index(arm_named("original recipe at 96 px, 4 outputs").key(0))]
    settings = recipe.profile(laptop)
    assert (settings.learning_rate, settings.lr_decay, settings.recalibrate_bn) == (
        1e-5, ORIGINAL_DECAY, False
    )  # fmt: skip
    assert (settings.extra_outputs, settings.patience, settings.stop_on) == (1, 3, "test")
    assert (settings.max_epochs, settings.amsgrad, settings.image_size) == (200, True, 96)
    three = specs[keys.index(arm_named("original recipe at 96 px, 3 outputs").key(0))]
    assert three.profile(laptop).extra_outputs == 0 and three.profile(laptop).lr_decay == 1e-6
    budget = specs[keys.index(arm_named(NEW_ARMS[1]).key(0))].profile(laptop)
    assert (budget.learning_rate, budget.max_epochs, budget.patience) == (3e-4, 150, 15)


QUOTED_KEYS = {
    "recipe299": "article/seed0/image_size299-learning_rate1e-05-max_epochs200-patience3-stop_ontest"
}


def test_the_new_arms_keys_and_the_original_recipes_settings():
    assert arm_named(NEW_ARMS[0]).key(0) == "article/seed0/learning_rate1e-05"
    assert arm_named(NEW_ARMS[1]).key(1) == "article/seed1/max_epochs150-patience15"
    assert arm_named(NEW_ARMS[2]).key(2) == (
        "article/seed2/extra_outputs1-learning_rate1e-05-lr_decay1e-06-max_epochs200-patience3"
        "-recalibrate_bnFalse-stop_ontest"
    )
    assert arm_named(NEW_ARMS[4]).key(0) == "crossentropy/seed0/learning_rate1e-05-max_epochs150"
    assert arm_named(QUOTED["original"]).key(0) == QUOTED_KEYS["recipe299"]  # unchanged
    assert {arm.label for arm in ARMS if arm.factor == LR_BUDGET} == {
        QUOTED["lr5"], NEW_ARMS[0], NEW_ARMS[1]
    }  # fmt: skip


def test_train_run_hands_the_test_images_to_the_extra_output_monitor(monkeypatch):
    import helpers.training
    from helpers.experiment import Experiment, train_run

    seen = {}
    monkeypatch.setattr(helpers.training, "train_model", lambda *a, **kw: seen.update(kw))
    exp = Experiment(TinyData(), np.arange(4), np.arange(4, 6), np.array([1, 2, 0]))
    train_run(exp, "article", 0, override_profile(PROFILES["smoke"], {"extra_outputs": 1}))
    assert seen["extra_output_images"] is TinyData.x_test  # the test set, whatever stops training
    assert seen["num_classes"] == 4


def _result(label, accuracies, loss="article", factor="x", overrides=None, epochs=None, best=()):
    arm = Arm(label, factor, loss, overrides or {})
    n = len(accuracies)
    return ArmResult(arm, tuple(range(n)), tuple(accuracies), tuple(epochs or [10] * n),
                     best_epochs=tuple(best))  # fmt: skip


# The numbers: the baseline's three seeds and the 1e-5 / 150-epoch arm's.
BASE = (0.8125, 0.6953, 0.7734)
LR5 = (0.9297, 0.9063, 0.8906)


def test_share_of_gap_with_a_welch_interval_matches_scipy():
    from scipy import stats

    base, arm = _result("b", BASE, factor="baseline"), _result("a", LR5)
    gap = ORIGINAL["article"] - np.mean(BASE)
    share = share_of_gap(arm, base, method="welch")
    assert share.point == pytest.approx((np.mean(LR5) - np.mean(BASE)) / gap)
    low, high = stats.ttest_ind(LR5, BASE, equal_var=False).confidence_interval(0.95)
    assert (share.low, share.high) == pytest.approx((low / gap, high / gap))
    assert 0 < share.low < 0.2 and share.high > 1.5  # the "about 10% to 183%"
    assert (share.n_arm, share.n_base, share.method) == (3, 3, "welch")
    assert share.excludes_zero
    d = difference(arm, base, method="welch")
    assert (d.low, d.high) == pytest.approx((low, high))


def test_the_bootstrap_resamples_each_sides_seeds_independently():
    base = _result("b", (0.5, 0.7), factor="baseline")
    arm = _result("a", (0.8, 0.8))
    share = share_of_gap(arm, base, method="bootstrap")
    # The baseline's resampled means are 0.5, 0.6 or 0.7 (a quarter, a half, a quarter of
    # resamples), so the 95% interval runs exactly between the shares at 0.7 and at 0.5.
    t = ORIGINAL["article"]
    assert share.low == pytest.approx((0.8 - 0.7) / (t - 0.7))
    assert share.high == pytest.approx((0.8 - 0.5) / (t - 0.5))
    assert share.point == pytest.approx((0.8 - 0.6) / (t - 0.6))
    assert share_of_gap(arm, base, method="bootstrap", seed=1) == share_of_gap(
        arm, base, method="bootstrap", seed=1
    )
    flat = share_of_gap(_result("a", (0.8, 0.8)), _result("b", (0.6, 0.6)), method="bootstrap")
    assert flat.low == pytest.approx(flat.point) == pytest.approx(flat.high)
    lone = share_of_gap(_result("a", (0.8,)), base)
    assert not lone.has_interval and not lone.excludes_zero
    with pytest.raises(ValueError, match="method must be one of bootstrap, welch"):
        share_of_gap(arm, base, method="normal")
    with pytest.raises(ValueError, match="no runs to compare"):
        share_of_gap(_result("a", ()), base)
    welch = share_of_gap(arm, base)  # the default: the cautious interval with three seeds
    assert welch.method == "welch" and welch.high - welch.low > share.high - share.low


def test_format_share_rounds_to_the_interval_and_claims_only_what_excludes_0():
    from helpers.gap import Interval

    wide = Interval(0.967, 0.08, 1.83, 3, 3, "welch")
    assert percent_step(wide) == 10
    assert format_share(wide) == (
        "closes about 100% of the gap (95% interval 10% to 180%; 3 and 3 seeds, welch)"
    )
    middle = Interval(0.423, 0.31, 0.55, 3, 3, "bootstrap")
    assert percent_step(middle) == 5 and format_share(middle).startswith("closes about 40% ")
    narrow = Interval(0.423, 0.40, 0.45, 3, 3, "bootstrap")
    assert format_share(narrow).startswith("closes about 42% of the gap (95% interval 40% to 45%")
    unclear = Interval(0.4, -0.2, 1.1, 3, 3, "bootstrap")
    text = format_share(unclear)
    assert text.startswith("does not measurably close the gap: about 40% of it, the interval")
    assert "closes" not in text and "includes 0" in text
    worse = Interval(-0.5, -0.9, -0.1, 3, 3, "bootstrap")
    assert format_share(worse).startswith("widens the gap: about -50% of it")
    none = Interval(0.43, float("nan"), float("nan"), 1, 3, "bootstrap")
    assert format_share(none) == (
        "moves about 40% of the gap, without an interval (1 and 3 seeds: too few to tell)"
    )


def test_every_article_arm_gets_its_share_with_epochs_and_best_epochs(tmp_path):
    for seed, acc in enumerate(BASE):
        _store(tmp_path, f"article/seed{seed}", "article", seed, acc, best_epoch=5)
    lr5 = arm_named(QUOTED["lr5"])
    for seed, (acc, epochs, best) in enumerate(zip(LR5, (61, 41, 150), (56, 36, 145), strict=True)):
        _store(tmp_path, lr5.key(seed), "article", seed, acc, dict(lr5.overrides),
               epochs=epochs, best_epoch=best)  # fmt: skip
    results = gather_arms("laptop", tmp_path)
    found = {r.arm.label: r for r in results}[QUOTED["lr5"]]
    assert found.best_epochs == (56, 36, 145) and found.epochs == (61, 41, 150)
    shares = gap_intervals(results)
    assert set(shares) == {QUOTED["lr5"]}
    assert shares[QUOTED["lr5"]].point == pytest.approx(
        (np.mean(LR5) - np.mean(BASE)) / (ORIGINAL["article"] - np.mean(BASE))
    )
    text = format_shares(results)
    assert f"{QUOTED['lr5']}: 90.9% ± 2.0%, closes about" in text
    assert "epochs run 61, 41, 150* (of at most 150); best epochs 56, 36, 145" in text
    assert "160 px: not run yet" in text and "regular" not in text


def test_the_lr_budget_square_separates_the_two_effects(tmp_path):
    budget = arm_named(NEW_ARMS[1])
    short = arm_named(NEW_ARMS[0])
    lr5 = arm_named(QUOTED["lr5"])
    for seed in range(3):
        _store(tmp_path, f"article/seed{seed}", "article", seed, BASE[seed], epochs=25,
               best_epoch=20)  # fmt: skip
        _store(tmp_path, lr5.key(seed), "article", seed, LR5[seed], dict(lr5.overrides),
               best_epoch=5)  # fmt: skip
        _store(tmp_path, short.key(seed), "article", seed, 0.70 + 0.01 * seed,
               dict(short.overrides), epochs=25, best_epoch=25)  # fmt: skip
    results = gather_arms("laptop", tmp_path)
    cells = lr_budget_cells(results)
    assert set(cells) == {(3e-4, 25), (3e-4, 150), (1e-5, 25), (1e-5, 150)}
    assert cells[3e-4, 25].arm.factor == "baseline" and cells[3e-4, 150].arm is budget
    table = lr_budget_table(results)
    assert "at most 25 epochs" in table and "at most 150 epochs" in table
    grid = table.splitlines()[2:4]
    assert grid[0].startswith("3e-4") and "76.0% ± 6.0% (n=3)" in grid[0]
    assert "not run yet" in grid[0]  # 3e-4 up to 150 epochs
    assert grid[1].startswith("1e-5") and "71.0% ± 1.0% (n=3)" in grid[1]
    assert "90.9% ± 2.0% (n=3)" in grid[1]
    assert "3e-4, ≤25 epochs, patience 5: epochs run 25*, 25*, 25*, best epochs 20, 20, 20" in table
    assert "3e-4, ≤25 epochs, patience 5: epochs run" in table and "the baseline" in table
    assert "3e-4, ≤150 epochs, patience 15: not run yet" in table
    effect_25 = difference(cells[1e-5, 25], cells[3e-4, 25])
    line = next(
        x
        for x in table.splitlines()
        if x.startswith("learning rate 1e-5 instead of 3e-4, at most 25")
    )
    assert f"{100 * effect_25.point:+.1f} points" in line
    assert "at most 150 instead of 25 epochs, learning rate 1e-5: +19.9 points" in table
    assert "at most 150 instead of 25 epochs, learning rate 3e-4: not measured yet" in table
    assert "patience differs" in table
    with pytest.raises(ValueError, match="do not make a 2 x 2 square"):
        lr_budget_cells([r for r in results if r.arm is not short])


def _square(tmp_path, budget_accuracies):
    """The baseline, 1e-5 up to 150 epochs and 1e-5 at most 25 epochs, three seeds each, and
    the 3e-4 up-to-150 cell with the given accuracies (one per seed)."""
    cells = {
        None: BASE,
        QUOTED["lr5"]: LR5,
        NEW_ARMS[0]: (0.70, 0.71, 0.72),
        NEW_ARMS[1]: budget_accuracies,
    }
    for label, accuracies in cells.items():
        arm = arm_named(label) if label else None
        for seed, acc in enumerate(accuracies):
            key = arm.key(seed) if arm else f"article/seed{seed}"
            _store(tmp_path, key, "article", seed, acc, dict(arm.overrides) if arm else None)
    return gather_arms("laptop", tmp_path)


def test_the_lr_budget_verdict_names_only_the_effects_whose_interval_excludes_0(tmp_path):
    from helpers.gap import lr_budget_effects, lr_budget_verdict

    partial = _square(tmp_path / "partial", (0.80,))
    assert lr_budget_verdict(partial) == (
        "the two are not separated: 1 of the four cells of the learning rate × epoch budget "
        "square have fewer than two seeds"
    )
    results = _square(tmp_path / "full", (0.74, 0.78, 0.76))
    effects = dict(lr_budget_effects(results))
    lr_long = effects["learning rate 1e-5 instead of 3e-4, at most 150 epochs"]
    assert lr_long.point == pytest.approx(np.mean(LR5) - 0.76)
    budget_slow = effects["at most 150 instead of 25 epochs, learning rate 1e-5"]
    assert budget_slow.excludes_zero and budget_slow.point == pytest.approx(np.mean(LR5) - 0.71)
    budget_fast = effects["at most 150 instead of 25 epochs, learning rate 3e-4"]
    assert not budget_fast.excludes_zero  # 76% against 76.0% ± 6.0%
    verdict = lr_budget_verdict(results)
    assert verdict.startswith("the article loss is measurably moved by ")
    assert "at most 150 instead of 25 epochs, learning rate 1e-5: +19.9 points (95%" in verdict
    rest = [(what, d) for what, d in effects.items() if not d.excludes_zero]
    assert verdict.endswith(
        f"; the other {('two', 'three')[len(rest) - 2]} effects' intervals include 0 ("
        + "; ".join(f"{what}: {100 * d.point:+.1f} points" for what, d in rest)
        + ")"
    )
    assert verdict.index("learning rate 3e-4: ") > verdict.index("include 0")  # among the rest


def test_a_verdict_without_a_clear_effect_still_says_how_the_estimates_lean(tmp_path):
    from helpers.gap import lr_budget_effects, lr_budget_verdict

    cells = {None: BASE, QUOTED["lr5"]: LR5, NEW_ARMS[0]: (0.75, 0.97), NEW_ARMS[1]: (0.62, 0.90)}
    for label, accuracies in cells.items():
        arm = arm_named(label) if label else None
        for seed, acc in enumerate(accuracies):
            key = arm.key(seed) if arm else f"article/seed{seed}"
            _store(tmp_path, key, "article", seed, acc, dict(arm.overrides) if arm else None)
    results = gather_arms("laptop", tmp_path)
    effects = lr_budget_effects(results)
    assert not any(d.excludes_zero for _, d in effects)
    lr, budget = ([f"{100 * d.point:+.1f}" for what, d in effects if what.startswith(factor)]
                  for factor in ("learning rate", "at most"))  # fmt: skip
    assert lr_budget_verdict(results) == (
        "neither factor measurably moves the article loss where the other is held fixed "
        f"(point estimates: the smaller learning rate {lr[0]} and {lr[1]} points, the longer "
        f"budget {budget[0]} and {budget[1]} points; every interval includes 0)"
    )


def test_the_controls_say_whether_1e5_helps_every_loss(tmp_path):
    from helpers.gap import control_effects, format_control_effects

    for seed, (a, b) in enumerate(zip(BASE, LR5, strict=True)):
        _store(tmp_path, f"article/seed{seed}", "article", seed, a)
        _store(tmp_path, arm_named(QUOTED["lr5"]).key(seed), "article", seed, b,
               dict(arm_named(QUOTED["lr5"]).overrides))  # fmt: skip
        _store(tmp_path, f"crossentropy/seed{seed}", "crossentropy", seed, 0.93 + 0.01 * seed)
    slow_regular = arm_named(NEW_ARMS[4])
    _store(tmp_path, slow_regular.key(0), "crossentropy", 0, 0.95, dict(slow_regular.overrides))
    effects = control_effects(gather_arms("laptop", tmp_path))
    assert effects["article"].excludes_zero and effects["article"].point > 0
    assert effects["crossentropy"].point == pytest.approx(0.95 - 0.94)
    assert not effects["crossentropy"].has_interval  # one seed at 1e-5
    assert effects["forward"] is None
    table = format_control_effects(gather_arms("laptop", tmp_path)).splitlines()
    assert table[0].startswith("loss") and len(table) == 4
    assert table[2].startswith("crossentropy") and "too few seeds for an interval" in table[2]
    assert table[3].startswith("forward") and table[3].endswith("not measured yet")
    slow_forward = arm_named(NEW_ARMS[5])
    _store(tmp_path, slow_forward.key(0), "forward", 0, 0.9, dict(slow_forward.overrides),
           finished=False)  # fmt: skip
    table = format_control_effects(gather_arms("laptop", tmp_path)).splitlines()
    assert "unfinished (10 epochs)" in table[3] and table[3].endswith("not measured yet")


def test_the_extra_outputs_share_per_epoch_is_read_and_said(tmp_path):
    from helpers.gap import describe_takeover, extra_output_curves, plot_extra_output_share

    recipe = arm_named(NEW_ARMS[2])
    assert recipe.overrides["extra_outputs"] == 1 and recipe.overrides["learning_rate"] == 1e-5
    assert extra_output_curves(recipe, directory=tmp_path) == {}
    assert describe_takeover({}).startswith("has not been measured yet")
    with pytest.raises(ValueError, match="run the 4-output arm first"):
        plot_extra_output_share({})
    for seed, curve in ((0, [0.1, 0.6, 0.9]), (2, [0.0, 0.2])):
        _store(tmp_path, recipe.key(seed), "article", seed, 0.5, dict(recipe.overrides),
               history={"extra_output_share": curve})  # fmt: skip
    curves = extra_output_curves(recipe, directory=tmp_path)
    assert curves == {0: [0.1, 0.6, 0.9], 2: [0.0, 0.2]}
    assert describe_takeover(curves) == (
        "takes over in 1 of 2 seeds: at the last epoch it wins on 55% of the test images (mean "
        "over seeds), and on at most 90% in any epoch"
    )
    assert describe_takeover({0: [0.7]}).startswith("takes over in the one seed recorded: at")
    assert describe_takeover({0: [0.7, 0.2]}).startswith("does not take over in the one seed")
    assert describe_takeover({0: [0.7], 1: [0.9]}).startswith("takes over in every one of 2 seeds")
    assert describe_takeover({0: [0.1], 1: [0.2]}).startswith("takes over in none of 2 seeds")
    fig = plot_extra_output_share(curves)
    assert len(fig.axes[0].lines) == 3  # two seeds and the half line


def test_an_arm_is_described_by_its_runs_and_the_head_by_what_it_did():
    from helpers.gap import describe_arm, takeover_reading

    arm = arm_named(NEW_ARMS[2])
    assert describe_arm(ArmResult(arm, (0, 1), (0.5, 0.7), (9, 11))) == "60.0% (2 seeds)"
    assert describe_arm(ArmResult(arm, (), (), ())) == "not run yet"
    assert "still queued" in takeover_reading({})
    assert "no contradiction" in takeover_reading({0: [0.9, 0.1], 1: [0.2]})
    assert "cannot come from this recipe" in takeover_reading({0: [0.9], 1: [0.6]})
    assert "depends on the seed" in takeover_reading({0: [0.9], 1: [0.1]})


def test_the_introductions_answer_names_the_factor_and_its_clear_effect(tmp_path):
    from helpers.gap import lr_budget_answer, lr_budget_effects, lr_budget_verdict

    def square(name, lr_short, budget_fast):
        cells = {None: BASE, QUOTED["lr5"]: LR5, NEW_ARMS[0]: lr_short, NEW_ARMS[1]: budget_fast}
        for label, accuracies in cells.items():
            arm = arm_named(label) if label else None
            for seed, acc in enumerate(accuracies):
                key = arm.key(seed) if arm else f"article/seed{seed}"
                _store(tmp_path / name, key, "article", seed, acc,
                       dict(arm.overrides) if arm else None)  # fmt: skip
        results = gather_arms("laptop", tmp_path / name)
        return results, [(w, d) for w, d in lr_budget_effects(results) if d.excludes_zero]

    partial, _ = square("partial", (0.70, 0.71, 0.72), (0.80,))
    assert lr_budget_answer(partial) == lr_budget_verdict(partial)  # a cell still lacks seeds
    one, clear = square("one", (0.60, 0.97, 0.85), (0.74, 0.78, 0.76))
    assert [w for w, _ in clear] == ["learning rate 1e-5 instead of 3e-4, at most 150 epochs"]
    d = clear[0][1]
    assert lr_budget_answer(one) == (
        f"the learning rate, not the epoch budget: {clear[0][0]}, {100 * d.point:+.1f} points "
        f"(95% interval {100 * d.low:+.1f} to {100 * d.high:+.1f}), the only one of the four "
        "effects whose interval excludes 0"
    )
    both, clear = square("both", (0.70, 0.71, 0.72), (0.74, 0.78, 0.76))
    assert len(clear) == 2 and lr_budget_answer(both).startswith(
        "the learning rate and the epoch budget: at most 150 instead of 25 epochs, learning "
        "rate 1e-5, +19.9 points"
    )  # the larger of the two clear effects (+14.9 for the learning rate)
    none, _ = square("none", (0.75, 0.97), (0.62, 0.90))
    assert lr_budget_answer(none).startswith("neither, measurably")
