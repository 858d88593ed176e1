"""Deletion/insertion curves on a toy "model" whose answer is known.

The toy model looks only at the top two rows of an 8x8 image: p(class 1) is a monotone
function of their mean. The true saliency is 1 on those rows and 0 elsewhere.
"""

import numpy as np
import pytest
from scipy import ndimage

from helpers.agreement import bootstrap_ci
from helpers.faithfulness import (
    Curve,
    LayerFaithfulness,
    auc,
    baseline_probability,
    beats_random,
    deletion_curve,
    faithfulness_by_layer,
    faithfulness_table,
    insertion_curve,
    pixel_ranks,
    random_reference,
    random_saliency,
    random_verdict,
    training_mean,
)

H = W = 8


def region_mean(x):
    return x[:, :2, :, :].mean(axis=(1, 2, 3))


def linear_model(x):
    p = np.clip(region_mean(x), 0.0, 1.0)
    return np.stack([1 - p, p], axis=1)


def sigmoid_model(x):
    p = 1 / (1 + np.exp(-8 * (region_mean(x) - 0.5)))
    return np.stack([1 - p, p], axis=1)


def true_saliency(n):
    s = np.zeros((n, H, W))
    s[:, :2, :] = 1.0
    return s


def test_deletion_of_the_true_region_gives_the_known_curve():
    x = np.ones((2, H, W, 1), dtype=np.float32)
    curve = deletion_curve(linear_model, x, true_saliency(2), class_index=1, steps=4)
    np.testing.assert_allclose(curve.fractions, [0, 0.25, 0.5, 0.75, 1])
    # The 16 region pixels are exactly the first quarter deleted.
    np.testing.assert_allclose(curve.scores, [[1, 0, 0, 0, 0]] * 2)
    np.testing.assert_allclose(curve.auc, 0.125)


def test_insertion_of_the_true_region_gives_the_known_curve():
    x = np.ones((1, H, W, 1), dtype=np.float32)
    curve = insertion_curve(linear_model, x, true_saliency(1), 1, steps=4, start=0.0)
    np.testing.assert_allclose(curve.scores, [[0, 1, 1, 1, 1]])
    np.testing.assert_allclose(curve.auc, 0.875)


def test_true_saliency_beats_a_random_map():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.6, 1.0, size=(6, H, W, 3)).astype(np.float32)
    true = deletion_curve(sigmoid_model, x, true_saliency(6), 1, steps=16)
    rand = deletion_curve(sigmoid_model, x, random_saliency((6, H, W), seed=1), 1, steps=16)
    assert (true.auc < rand.auc).all()
    assert true.auc.mean() < rand.auc.mean() - 0.2
    ins_true = insertion_curve(sigmoid_model, x, true_saliency(6), 1, steps=16, start=0.0)
    ins_rand = insertion_curve(
        sigmoid_model, x, random_saliency((6, H, W), seed=1), 1, steps=16, start=0.0
    )
    assert (ins_true.auc > ins_rand.auc).all()
    # Deleting the true region drops the score faster than anything else at every step.
    assert (true.scores <= rand.scores + 1e-12).all()


def test_batches_are_bounded_and_do_not_change_the_result():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(3, H, W, 1)).astype(np.float32)
    sal = rng.random((3, H, W))
    sizes = []

    def recording_model(batch):
        sizes.append(len(batch))
        assert batch.dtype == np.float32
        return sigmoid_model(batch)

    small = deletion_curve(recording_model, x, sal, [0, 1, 0], steps=5, batch_size=4)
    assert max(sizes) <= 4 and sum(sizes) == 3 * 6 and len(sizes) == 5
    big = deletion_curve(sigmoid_model, x, sal, [0, 1, 0], steps=5, batch_size=1000)
    np.testing.assert_array_equal(small.scores, big.scores)
    # One class per image: image 0 and 2 follow class 0, image 1 class 1.
    np.testing.assert_allclose(small.scores[:, 0], sigmoid_model(x)[[0, 1, 2], [0, 1, 0]])


def test_endpoints_are_the_image_and_the_fill():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(2, H, W, 3)).astype(np.float32)
    seen = []

    def recording_model(batch):
        seen.append(batch.copy())
        return sigmoid_model(batch)

    insertion_curve(recording_model, x, rng.random((2, H, W)), 0, steps=2, blur_sigma=1.5)
    batch = np.concatenate(seen)  # image-major: (img0: s0, s1, s2), (img1: ...)
    blurred = ndimage.gaussian_filter(x, sigma=(0, 1.5, 1.5, 0))
    np.testing.assert_allclose(batch[[0, 3]], blurred, atol=1e-6)
    np.testing.assert_array_equal(batch[[2, 5]], x)
    seen.clear()
    deletion_curve(recording_model, x, rng.random((2, H, W)), 0, steps=2, baseline=0.25)
    batch = np.concatenate(seen)
    np.testing.assert_array_equal(batch[[0, 3]], x)
    np.testing.assert_array_equal(batch[[2, 5]], 0.25)
    assert ((batch[1] == x[0]) | (batch[1] == 0.25)).all()
    assert (batch[1] == 0.25).all(axis=-1).sum() == H * W // 2  # whole pixels, all channels


def test_single_image_and_ties_broken_reproducibly():
    x = np.ones((H, W, 1), dtype=np.float32)
    flat = np.zeros((H, W))  # all tied: the order is the seeded random one
    a = deletion_curve(linear_model, x, flat, 1, steps=8, seed=4)
    b = deletion_curve(linear_model, x, flat, 1, steps=8, seed=4)
    assert a.scores.shape == (1, 9)
    np.testing.assert_array_equal(a.scores, b.scores)
    ranks = pixel_ranks(np.zeros((1, H, W)), seed=4)[0]
    assert sorted(ranks) == list(range(H * W))
    assert not (ranks == np.arange(H * W)).all()  # not raster order


def test_pixel_ranks_most_salient_first():
    sal = np.array([[[0.1, 0.9], [0.5, 0.3]]])
    np.testing.assert_array_equal(pixel_ranks(sal), [[3, 0, 1, 2]])


def test_auc_trapezoid_and_random_saliency():
    assert auc([0, 0.5, 1], [1, 1, 1]) == pytest.approx(1.0)
    assert auc([0, 0.5, 1], [1, 0, 0]) == pytest.approx(0.25)
    assert Curve(np.array([0.0, 1.0]), np.array([[0.0, 1.0]])).auc[0] == pytest.approx(0.5)
    r = random_saliency((2, 3, 4), seed=5)
    assert r.shape == (2, 3, 4) and ((r >= 0) & (r < 1)).all()
    np.testing.assert_array_equal(r, random_saliency((2, 3, 4), seed=5))


def test_bad_input_is_refused_with_a_clear_message():
    x = np.zeros((2, H, W, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="Resize the maps"):
        deletion_curve(linear_model, x, np.zeros((2, 4, 4)), 0)
    with pytest.raises(ValueError, match="probabilities shaped"):
        deletion_curve(lambda b: b.mean(axis=(1, 2, 3)), x, np.zeros((2, H, W)), 0)
    with pytest.raises(ValueError, match="unknown fill"):
        insertion_curve(linear_model, x, np.zeros((2, H, W)), 0, start="grey")
    with pytest.raises(ValueError, match="does not broadcast"):
        deletion_curve(linear_model, x, np.zeros((2, H, W)), 0, baseline=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="out of range"):
        deletion_curve(linear_model, x, np.zeros((2, H, W)), 2)
    with pytest.raises(ValueError, match="must match fractions"):
        auc([0, 1], [[1, 2, 3]])


# ----------------------------------------------------------------- by layer, against random


def keras_model(size=32):
    """Tiny softmax classifier with two named conv layers (shallow, deep); fixed weights."""
    import keras

    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="shallow")(inp)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="deep")(x)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, keras.layers.Activation("softmax", name="predictions")(logits))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_faithfulness_by_layer_uses_one_pass_and_the_predicted_class():
    from helpers.gradcam import grad_cam

    model = keras_model()
    x = np.random.default_rng(1).uniform(-1, 1, size=(4, 32, 32, 3)).astype(np.float32)
    out = faithfulness_by_layer(model, x, ["deep", "shallow"], steps=4, seed=3, batch_size=8)
    assert list(out) == ["deep", "shallow"]  # the order asked for
    probs = model.predict(x, verbose=0)
    cam = grad_cam(model, x, ["deep", "shallow"])

    def predict(batch):
        return model.predict(batch, verbose=0)

    for layer, r in out.items():
        for curve in (r.deletion, r.insertion, r.random_deletion, r.random_insertion):
            assert curve.fractions.shape == (5,) and curve.scores.shape == (4, 5)
            assert curve.auc.shape == (4,)
        # Deletion starts, and insertion ends, on the intact image: the predicted class's prob.
        for curve in (r.deletion, r.random_deletion):
            np.testing.assert_allclose(curve.scores[:, 0], probs.max(axis=1), rtol=1e-5)
        for curve in (r.insertion, r.random_insertion):
            np.testing.assert_allclose(curve.scores[:, -1], probs.max(axis=1), rtol=1e-5)
        # The layer's own map, deletion to grey and insertion from a blur (chapter 6's choices).
        sal = cam.map(layer)
        want_del = deletion_curve(predict, x, sal, cam.predicted, steps=4, seed=3)
        want_ins = insertion_curve(predict, x, sal, cam.predicted, steps=4, seed=3)
        np.testing.assert_allclose(r.deletion.scores, want_del.scores, rtol=1e-5)
        np.testing.assert_allclose(r.insertion.scores, want_ins.scores, rtol=1e-5)
        rand = random_saliency((4, 32, 32), seed=3)
        want_rand = deletion_curve(predict, x, rand, cam.predicted, steps=4, seed=3)
        np.testing.assert_allclose(r.random_deletion.scores, want_rand.scores, rtol=1e-5)
    # The two layers' maps differ, so their curves do; the random baseline is the same.
    assert not np.allclose(out["deep"].deletion.scores, out["shallow"].deletion.scores)
    assert out["deep"].random_insertion is out["shallow"].random_insertion


def test_faithfulness_by_layer_refuses_bad_input():
    model = keras_model()
    x = np.zeros((2, 32, 32, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\).*x\[None\]"):
        faithfulness_by_layer(model, x[0], ["deep"])
    with pytest.raises(ValueError, match="at least one layer"):
        faithfulness_by_layer(model, x, [])
    with pytest.raises(ValueError, match=r"cannot use layer\(s\) \['block14'\].*shallow, deep"):
        faithfulness_by_layer(model, x, ["deep", "block14"])
    with pytest.raises(ValueError, match="steps, batch_size and n_random must be >= 1"):
        faithfulness_by_layer(model, x, ["deep"], steps=0)
    with pytest.raises(ValueError, match="n_random must be >= 1"):
        faithfulness_by_layer(model, x, ["deep"], n_random=0)
    with pytest.raises(ValueError, match="score must be one of"):
        faithfulness_by_layer(model, x, ["deep"], score="softmax")


def region_result(saliency, n=8, steps=16):
    """Curves on the toy model that only looks at the top two rows, random map as baseline."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.6, 1.0, size=(n, H, W, 3)).astype(np.float32)
    rand = random_saliency((n, H, W), seed=1)

    def curves(sal):
        return (
            deletion_curve(sigmoid_model, x, sal, 1, steps=steps),
            insertion_curve(sigmoid_model, x, sal, 1, steps=steps, start=0.0),
        )

    return LayerFaithfulness(*curves(saliency), *curves(rand))


def test_a_map_ranking_the_true_region_first_beats_random():
    good = beats_random(region_result(true_saliency(8)))
    assert good.n == 8 and good.high < 0
    # Ranking the region last is worse than random: the interval lies above 0.
    bad = beats_random(region_result(1 - true_saliency(8)))
    assert bad.low > 0


def test_beats_random_is_the_paired_bootstrap_of_the_auc_difference():
    fr = np.array([0.0, 1.0])
    # Per-image AUCs: map (0.1, 0.3, 0.2), random (0.5, 0.4, 0.6); differences -0.4, -0.1, -0.4.
    r = LayerFaithfulness(
        deletion=Curve(fr, np.array([[0.2, 0.0], [0.6, 0.0], [0.4, 0.0]])),
        insertion=Curve(fr, np.zeros((3, 2))),
        random_deletion=Curve(fr, np.array([[1.0, 0.0], [0.8, 0.0], [1.2, 0.0]])),
        random_insertion=Curve(fr, np.zeros((3, 2))),
    )
    est = beats_random(r, n_boot=500, ci=0.9, seed=7)
    assert est.mean == pytest.approx(-0.3)
    ref = bootstrap_ci([-0.4, -0.1, -0.4], 500, 0.9, 7)
    np.testing.assert_allclose(tuple(est), tuple(ref))
    assert (est.n, est.ci) == (3, 0.9) and est.high < 0
    with pytest.raises(ValueError, match="same images and steps"):
        beats_random(
            LayerFaithfulness(r.deletion, r.insertion, Curve(fr, np.zeros((2, 2))), r.insertion)
        )


def test_faithfulness_table_one_aligned_row_per_model_and_layer():
    good, bad = region_result(true_saliency(8)), region_result(1 - true_saliency(8))
    table = faithfulness_table({"regular": {"deep": good, "middle": bad}, "comp": {"deep": bad}})
    lines = table.splitlines()
    assert len(lines) == 1 + 3
    header, *rows = lines
    assert "deletion AUC" in header and "insertion AUC" in header and "beats random" in header
    col = header.index("beats random")
    verdict = {tuple(row.split()[:2]): row[col:].split()[0] for row in rows}
    assert verdict == {
        ("regular", "deep"): "yes",
        ("regular", "middle"): "no",
        ("comp", "deep"): "no",
    }
    # Aligned: every row's beats-random cell starts at the header's column.
    assert all(row[col - 2 : col] == "  " and row[col] in "yn" for row in rows)
    d = bootstrap_ci(good.deletion.auc)
    assert f"{d.mean:.2f} [{d.low:.2f}, {d.high:.2f}]" in rows[0]
    ins = bootstrap_ci(good.random_insertion.auc)
    assert f"{ins.mean:.2f} [{ins.low:.2f}, {ins.high:.2f}]" in rows[0]
    # The insertion verdict and the baseline probability close every row.
    assert header.endswith("baseline p")
    assert [row.split()[-2:] for row in rows] == [["better", "-"], ["worse", "-"], ["worse", "-"]]
    with pytest.raises(ValueError, match="no \\(model, layer\\) pair"):
        faithfulness_table({"regular": {}})


# ------------------------------------------- baselines, scores and the per-model random reference


def flat_model(x):
    """Calls a flat image class 0, confidently (as real networks often call flat grey one
    class): the logit of class 0 falls with the image's contrast."""
    contrast = np.abs(x - x.mean(axis=(1, 2, 3), keepdims=True)).mean(axis=(1, 2, 3))
    p0 = 1 / (1 + np.exp(-(6 - 30 * contrast)))
    return np.stack([p0, 1 - p0], axis=1)


def test_blur_baseline_differs_from_grey_and_is_classified_less_confidently():
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 16, 16, 3)).astype(np.float32)
    assert (flat_model(x)[:, 1] > 0.99).all()  # the images themselves: class 1
    grey = baseline_probability(flat_model, x, None, 0.0)
    blur = baseline_probability(flat_model, x, None, "blur", blur_sigma=1.0)
    assert (grey > 0.99).all()  # flat grey is classified, confidently, as class 0
    assert (blur < grey - 0.1).all()
    # With the class a curve follows, it is where the deletion curve ends.
    sal = np.random.default_rng(1).random((4, 16, 16))
    curve = deletion_curve(flat_model, x, sal, 1, steps=4, baseline="blur", blur_sigma=1.0)
    np.testing.assert_allclose(
        curve.scores[:, -1], baseline_probability(flat_model, x, 1, "blur", blur_sigma=1.0)
    )
    np.testing.assert_allclose(baseline_probability(flat_model, x, 1, 0.0), 1 - grey)
    seen: list[np.ndarray] = []

    def recording_model(batch: np.ndarray) -> np.ndarray:
        seen.append(batch)
        return flat_model(batch)

    deletion_curve(recording_model, x, sal, 1, steps=1, baseline="blur")
    fully_deleted = np.concatenate(seen)[1::2]
    assert not np.allclose(fully_deleted, 0.0)  # a blur, not grey
    np.testing.assert_allclose(
        fully_deleted, ndimage.gaussian_filter(x, (0, 0.8, 0.8, 0)), atol=1e-6
    )


def test_mean_baseline_is_the_training_mean_image():
    rng = np.random.default_rng(2)
    train = rng.uniform(-1, 1, size=(10, H, W, 3)).astype(np.float32)
    mean = training_mean(train)
    assert mean.shape == (H, W, 3) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, train.mean(axis=0), atol=1e-6)
    x = rng.uniform(-1, 1, size=(2, H, W, 3)).astype(np.float32)
    seen = []

    def recording_model(batch):
        seen.append(batch.copy())
        return sigmoid_model(batch)

    sal = rng.random((2, H, W))
    deletion_curve(recording_model, x, sal, 1, steps=2, baseline="mean", mean_image=mean)
    np.testing.assert_array_equal(np.concatenate(seen)[[2, 5]], np.stack([mean, mean]))
    seen.clear()
    insertion_curve(recording_model, x, sal, 1, steps=2, start="mean", mean_image=mean)
    np.testing.assert_array_equal(np.concatenate(seen)[[0, 3]], np.stack([mean, mean]))
    with pytest.raises(ValueError, match="needs mean_image"):
        deletion_curve(sigmoid_model, x, sal, 1, baseline="mean")
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        training_mean(mean)


def test_relative_score_is_one_at_the_intact_image_and_a_ratio_elsewhere():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.3, 1.0, size=(3, H, W, 1)).astype(np.float32)
    sal = rng.random((3, H, W))
    for make, intact in ((deletion_curve, 0), (insertion_curve, -1)):
        prob = make(sigmoid_model, x, sal, 1, steps=4)
        rel = make(sigmoid_model, x, sal, 1, steps=4, score="relative")
        assert rel.score == "relative" and prob.score == "probability"
        np.testing.assert_allclose(rel.scores[:, intact], 1.0)
        np.testing.assert_allclose(rel.scores, prob.scores / prob.scores[:, [intact]])
    # A model twice as sure of every image has the same relative curve.
    scaled = deletion_curve(lambda b: sigmoid_model(b) / 2, x, sal, 1, steps=4, score="relative")
    np.testing.assert_allclose(
        scaled.scores, deletion_curve(sigmoid_model, x, sal, 1, steps=4, score="relative").scores
    )
    with pytest.raises(ValueError, match="score must be one of"):
        deletion_curve(sigmoid_model, x, sal, 1, score="softmax")


def test_random_reference_is_per_model_and_averages_random_orders():
    rng = np.random.default_rng(4)
    x = rng.uniform(0.6, 1.0, size=(3, H, W, 3)).astype(np.float32)
    ref = random_reference(sigmoid_model, x, 1, steps=8, n_orders=3, seed=5)
    singles = [
        deletion_curve(sigmoid_model, x, random_saliency((3, H, W), 5 + k), 1, steps=8, seed=5 + k)
        for k in range(3)
    ]
    np.testing.assert_allclose(ref.scores, np.mean([c.scores for c in singles], axis=0))
    one = random_reference(sigmoid_model, x, 1, steps=8, n_orders=1, seed=5)
    np.testing.assert_array_equal(one.scores, singles[0].scores)
    assert not np.allclose(ref.scores, one.scores)  # the orders differ
    # Per model: another model's reference on the same images and orders is another curve.
    other = random_reference(linear_model, x, 1, steps=8, n_orders=3, seed=5)
    assert not np.allclose(other.auc, ref.auc)
    ins = random_reference(sigmoid_model, x, 1, 8, "insertion", 0.0, n_orders=2, seed=5)
    want = insertion_curve(sigmoid_model, x, random_saliency((3, H, W), 6), 1, 8, 0.0, seed=6)
    first = insertion_curve(sigmoid_model, x, random_saliency((3, H, W), 5), 1, 8, 0.0, seed=5)
    np.testing.assert_allclose(ins.scores, (want.scores + first.scores) / 2)
    with pytest.raises(ValueError, match="n_orders"):
        random_reference(sigmoid_model, x, 1, n_orders=0)
    with pytest.raises(ValueError, match="kind must be"):
        random_reference(sigmoid_model, x, 1, kind="both")


def test_insertion_verdict_reads_the_sign_the_right_way():
    good, bad = region_result(true_saliency(8)), region_result(1 - true_saliency(8))
    assert random_verdict(good) == "better" and random_verdict(good, "insertion") == "better"
    assert random_verdict(bad) == "worse" and random_verdict(bad, "insertion") == "worse"
    ins = beats_random(good, kind="insertion")
    assert ins.low > 0  # a higher insertion AUC than random is the better map
    np.testing.assert_allclose(ins.mean, np.mean(good.insertion.auc - good.random_insertion.auc))
    fr = np.array([0.0, 1.0])
    same = Curve(fr, np.array([[0.5, 0.5], [0.2, 0.2]]))
    tie = LayerFaithfulness(same, same, same, same)
    assert random_verdict(tie) == "unclear" and random_verdict(tie, "insertion") == "unclear"
    with pytest.raises(ValueError, match="kind must be"):
        beats_random(good, kind="both")


def test_faithfulness_by_layer_baselines_scores_and_its_own_random_reference():
    model, other = keras_model(), keras_model()
    other.set_weights([w * 1.5 for w in model.get_weights()])
    x = np.random.default_rng(1).uniform(-1, 1, size=(3, 32, 32, 3)).astype(np.float32)
    kwargs = dict(steps=4, seed=2, baseline="blur", blur_sigma=4.0, n_random=2)
    rel = faithfulness_by_layer(model, x, ["deep"], score="relative", **kwargs)["deep"]
    probs = model.predict(x, verbose=0)
    cls = probs.argmax(axis=1)

    def predict(batch):
        return model.predict(batch, verbose=0)

    np.testing.assert_allclose(rel.deletion.scores[:, 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(rel.insertion.scores[:, -1], 1.0, rtol=1e-6)
    want = random_reference(
        predict, x, cls, 4, "deletion", "blur", n_orders=2, seed=2, score="relative", blur_sigma=4.0
    )
    np.testing.assert_allclose(rel.random_deletion.scores, want.scores, rtol=1e-5)
    np.testing.assert_allclose(
        rel.baseline_probability,
        baseline_probability(predict, x, cls, "blur", blur_sigma=4.0),
        rtol=1e-5,
    )
    np.testing.assert_allclose(rel.start_probability, rel.baseline_probability)  # both blurred
    # Each model is scored against its own random orders.
    theirs = faithfulness_by_layer(other, x, ["deep"], score="relative", **kwargs)["deep"]
    assert not np.allclose(theirs.random_deletion.scores, rel.random_deletion.scores)
    # The logit: the curve's intact end is the logit of the predicted class.
    import keras

    logits = keras.Model(model.inputs, model.get_layer("logits").output).predict(x, verbose=0)
    lg = faithfulness_by_layer(model, x, ["deep"], score="logit", **kwargs)["deep"]
    assert lg.deletion.score == "logit"
    np.testing.assert_allclose(lg.deletion.scores[:, 0], logits[np.arange(3), cls], rtol=1e-5)
    # Defaults unchanged: grey deletion, its probability reported.
    plain = faithfulness_by_layer(model, x, ["deep"], steps=4, seed=2)["deep"]
    np.testing.assert_allclose(plain.baseline_probability, plain.deletion.scores[:, -1], rtol=1e-5)
