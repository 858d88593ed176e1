"""The Grad-CAM explorers: precomputation, the widget, and the static offline HTML export."""

import concurrent.futures
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_gradcam import images, tiny_model

from helpers import explorer as ex
from helpers import gradcam as gc

CHROMIUM = Path(os.environ.get("BOOK_CHROMIUM", "/usr/bin/chromium"))
LAYERS = ["act1", "conv2", "act2"]


def preprocess(pixels):
    return np.asarray(pixels, np.float32) / 127.5 - 1


@pytest.fixture(scope="module")
def data():
    pixels = np.round((images(5) + 3) * 40).clip(0, 255).astype(np.uint8)
    labels = np.array([0, 1, 2, 0, 1])
    return ex.precompute(
        tiny_model(seed=0),
        tiny_model(seed=5),
        pixels,
        labels,
        ("airplanes", "watch", "Leopards"),
        layers=LAYERS[::-1],  # any order in, depth order out
        preprocess=preprocess,
        batch_size=2,
    )


def test_precompute_holds_every_map_of_both_models_and_class_choices(data):
    assert data.layers == tuple(LAYERS)
    x = preprocess(data.images)
    for seed, model in zip((0, 5), ex.MODELS, strict=True):
        for choice in ex.CHOICES:
            direct = gc.grad_cam(
                tiny_model(seed=seed),
                x,
                LAYERS,
                class_index=choice,
                labels=data.labels,
                upsample_maps=False,
            )
            for layer in LAYERS:
                np.testing.assert_allclose(
                    data.maps[model][choice][layer], direct.map(layer), rtol=1e-5, atol=1e-7
                )
        np.testing.assert_allclose(data.probabilities[model], direct.probabilities, rtol=1e-5)
    np.testing.assert_array_equal(data.explained("regular", "true"), data.labels)
    assert "predicts" in data.caption(0, "regular", "true")


def test_precompute_rejects_preprocessed_images():
    with pytest.raises(ValueError, match="uint8"):
        ex.precompute(tiny_model(), tiny_model(), images(2), [0, 1], ("a", "b", "c"), layers=LAYERS)


def test_shared_scale_keeps_the_ratio_between_models(data):
    per_map = data.cams(0, "act1", "predicted", "per_map", 8)
    shared = data.cams(0, "act1", "predicted", "shared", 8)
    assert max(float(m.max()) for m in shared.values()) == pytest.approx(1)
    for m in ex.MODELS:
        assert per_map[m].max() in (0, pytest.approx(1))
        assert shared[m].max() <= per_map[m].max() + 1e-6


def test_interactive_explorer_redraws_without_calling_a_model(data, monkeypatch):
    import ipywidgets as w

    def no_model_calls(*args, **kwargs):
        raise AssertionError("the explorer called a model")

    monkeypatch.setattr(ex, "grad_cam", no_model_calls)
    monkeypatch.setattr(gc, "gradient_step", no_model_calls)
    widget = ex.interactive_explorer(data, size=32)
    image, layer = widget.children[0], widget.children[1]
    choice, scale = widget.children[2].children
    pictures = [box.children[1] for box in widget.children[3].children]
    titles = [box.children[0] for box in widget.children[3].children]
    assert all(isinstance(p, w.Image) and p.value[:4] == b"\x89PNG" for p in pictures)
    before = [p.value for p in pictures]
    layer.value = "act2"
    assert pictures[1].value != before[1] and pictures[0].value == before[0]
    image.value = 3
    assert pictures[0].value != before[0]
    assert "true: airplanes" in titles[0].value
    choice.value = "true"
    assert "map explains airplanes" in titles[1].value
    scale.value = "shared"
    assert list(layer.options) == [(n, n) for n in LAYERS]


def caltech_images(n, size):
    root = Path(os.environ.get("CALTECH101_DIR", "/nonexistent"))
    paths = sorted((root / "airplanes").glob("*.jpg"))[:n]
    if len(paths) < n:  # no data set here: textured synthetic pictures instead
        rng = np.random.default_rng(1)
        ramp = np.linspace(0, 255, size)[None, :, None] * rng.random((n, 1, 1, 3))
        return (ramp + rng.normal(0, 30, (n, size, size, 3))).clip(0, 255).astype(np.uint8)
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in paths])


def book_sized_data(n=12, size=96):
    """Realistic pictures and smooth maps for 13 layers (no model needed)."""
    rng = np.random.default_rng(0)
    layers = tuple(f"block{i}_add" for i in range(2, 14)) + (gc.DEEP,)
    maps = {
        m: {
            c: {n_: gc.upsample(rng.random((n, 3, 3)), (6, 6)) for n_ in layers} for c in ex.CHOICES
        }
        for m in ex.MODELS
    }
    probs = {m: rng.dirichlet(np.ones(3), n).astype(np.float32) for m in ex.MODELS}
    return ex.ExplorerData(
        caltech_images(n, size),
        rng.integers(0, 3, n),
        ("airplanes", "watch", "Leopards"),
        layers,
        maps,
        probs,
        "logit",
    )


def payload(page_html, eid="cam-explorer"):
    match = re.search(
        rf'<script type="application/json" id="{eid}-data">(.*?)</script>', page_html, re.S
    )
    return json.loads(match.group(1))


def test_static_export_has_every_layer_of_every_image_and_no_external_url():
    data = book_sized_data()
    page_html = ex.static_explorer_html(data)
    content = payload(page_html)
    assert content["layers"] == [ex.layer_title(n) for n in data.layers]
    assert len(content["images"]) == len(content["indices"]) == 12
    for m in ex.MODELS:
        assert len(content["cams"][m]) == 12
        assert all(len(per_image) == len(data.layers) for per_image in content["cams"][m])
        uris = [u for per_image in content["cams"][m] for u in per_image]
        assert all(u.startswith("data:image/jpeg;base64,") for u in uris)
        assert len(set(uris)) == len(uris)  # every picture is a different map
    without_data = re.sub(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", "", page_html)
    assert "http" not in without_data and "//" not in without_data
    assert not re.search(r"<link|@import|url\(", without_data)
    assert all(s.startswith("data:") for s in re.findall(r'src="([^"]*)"', page_html))
    assert len(page_html.encode()) < 1_500_000, f"{len(page_html) / 1e6:.2f} MB"


def test_static_export_subset_and_bad_selection():
    data = book_sized_data()
    content = payload(
        ex.static_explorer_html(
            data, indices=[3, 5], layers=[gc.DEEP, "block9_add"], element_id="x1"
        ),
        "x1",
    )
    assert content["indices"] == [3, 5] and content["layers"] == [
        "block9_add (middle)",
        f"{gc.DEEP} (deep)",
    ]
    with pytest.raises(ValueError, match="unknown layers"):
        ex.static_explorer_html(data, layers=["block99_add"])


@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}")
def test_static_export_sliders_change_the_pictures_offline_in_a_browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    page_html = ex.static_explorer_html(book_sized_data(n=3, size=48), size=48)
    # Playwright's sync API refuses to run where an asyncio loop is running, and earlier
    # tests (kernels, widgets) can leave one on this thread: drive the browser from its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(_drive_explorer, sync_api, page_html).result()


def _drive_explorer(sync_api, page_html):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page()
        requests, errors = [], []

        def block(route):
            requests.append(route.request.url)
            route.abort()

        page.route("**/*", block)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_content(f"<html><body>{page_html}</body></html>")

        def sources():
            return page.eval_on_selector_all(".cam-explorer-picture", "els => els.map(e => e.src)")

        start = sources()
        for slider, changed in (
            ("#cam-explorer-layer", [1, 2]),
            ("#cam-explorer-image", [0, 1, 2]),
        ):
            before = sources()
            page.eval_on_selector(
                slider, "s => { s.value = s.max; s.dispatchEvent(new Event('input')); }"
            )
            after = sources()
            assert [i for i in range(3) if after[i] != before[i]] == changed, slider
        assert page.get_attribute("#cam-explorer", "data-layer") == f"{gc.DEEP} (deep)"
        assert page.text_content("#cam-explorer-caption-image").startswith("#2 true:")
        assert after != start and errors == [] and requests == []
        browser.close()


def test_explorer_grid_without_maps_says_what_to_do():
    from helpers.plots import explorer_grid

    with pytest.raises(ValueError, match="no size has both models trained yet"):
        explorer_grid({}, [0], LAYERS)  # the gap chapter before its 299-px runs


def test_explorer_grid_labels_are_readable_and_mark_right_and_wrong(data):
    from matplotlib.colors import to_rgba

    from helpers.plots import GRID_DPI, LABEL_SIZE, RIGHT, WRONG, as_jpeg, explorer_grid

    fig = explorer_grid(data, [0, 1, 2], LAYERS)
    texts = [t for ax in fig.axes for t in (ax.title, ax.yaxis.label, *ax.texts) if t.get_text()]
    assert texts and min(float(t.get_fontsize()) for t in texts) >= LABEL_SIZE - 1
    labels = [ax.yaxis.label for ax in fig.axes if ax.yaxis.label.get_text()]
    assert [t.get_text() for t in labels] == ["airplanes", "watch", "Leopards"]
    assert all(t.get_rotation() == 0 for t in labels)  # horizontal, not vertical
    badges = [t for ax in fig.axes for t in ax.texts]
    assert len(badges) == 2 * 3  # each model's prediction, once per row
    for badge in badges:
        right = "✓" in badge.get_text()
        colour = badge.get_bbox_patch().get_facecolor()
        assert colour == pytest.approx(to_rgba(RIGHT if right else WRONG))
        assert not badge.axes.images, "a badge sits beside the maps, never on one"
    assert sum("✓" in t.get_text() for t in badges) == sum(
        int((data.predicted(m)[:3] == data.labels[:3]).sum()) for m in ("regular", "complementary")
    )
    bars = [ax for ax in fig.axes if "Grad-CAM" in ax.xaxis.label.get_text()]
    assert len(bars) == 1 and "own maximum" in bars[0].xaxis.label.get_text()
    picture = as_jpeg(fig)
    width = Image.open(io.BytesIO(picture.data)).size[0]
    assert fig.get_dpi() == GRID_DPI and width >= 900
    maps_per_row = len(LAYERS)
    assert width / (maps_per_row + 2) >= 150  # each map at least 150 px at full width
