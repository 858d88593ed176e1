"""Explore Grad-CAM maps of two models over test images and layers.

1. :func:`precompute` runs every model call up front (batched, all layers at once);
2. :func:`interactive_explorer` shows them with ipywidgets; moving a slider only redraws;
3. :func:`static_explorer_html` writes a self-contained HTML snippet (embedded JPEGs, a few
   lines of inline JavaScript, no external URL) for the built book, which has no kernel.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from helpers.gradcam import (
    DEEP,
    MIDDLE,
    ORIGINAL_LAYERS,
    SHALLOW,
    Floats,
    Score,
    depth_sorted,
    grad_cam,
    normalise,
    overlay,
    residual_stages,
    upsample,
)

MODELS = ("regular", "complementary")
CHOICES = ("predicted", "true")
Scale = Literal["per_map", "shared"]
_TAGS = {SHALLOW: "shallow", MIDDLE: "middle", DEEP: "deep"}


@dataclass(frozen=True)
class ExplorerData:
    """Everything the explorers draw; holds no model, so drawing never calls one.

    Attributes
    ----------
    images
        uint8 RGB test images (N, H, W, 3).
    labels
        (N,) true classes.
    class_names
        Class names, indexed by class.
    layers
        Layer names in depth order.
    maps
        ``maps[model][choice][layer]``: raw Grad-CAM maps (N, h, w) at the layer's resolution;
        ``model`` in ``MODELS``, ``choice`` in ``CHOICES``.
    probabilities
        ``probabilities[model]``: (N, num_classes) softmax outputs.
    score
        The differentiated score (``"logit"`` or ``"softmax"``).
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]
    class_names: tuple[str, ...]
    layers: tuple[str, ...]
    maps: dict[str, dict[str, dict[str, Floats]]]
    probabilities: dict[str, Floats]
    score: str

    def predicted(self, model: str) -> NDArray[np.int64]:
        """(N,) class predicted by ``model``."""
        return np.asarray(self.probabilities[model].argmax(axis=-1), np.int64)

    def explained(self, model: str, choice: str) -> NDArray[np.int64]:
        """(N,) class whose score the maps of ``model`` and ``choice`` explain."""
        return self.predicted(model) if choice == "predicted" else self.labels

    def cams(
        self, index: int, layer: str, choice: str, scale: Scale, size: int
    ) -> dict[str, Floats]:
        """``model -> (size, size)`` map in [0, 1] for one image, layer and class choice.

        ``scale="shared"`` puts both models on one scale (per image and layer), so a weak
        map looks weak; ``"per_map"`` stretches each map to its own max, as the original did.
        """
        raw = {m: self.maps[m][choice][layer][index] for m in MODELS}
        return normalise({m: upsample(v, (size, size)) for m, v in raw.items()}, scale)

    def caption(self, index: int, model: str, choice: str) -> str:
        """E.g. ``regular: predicts watch (p=0.91); map explains watch``."""
        p = self.probabilities[model][index]
        pred = int(p.argmax())
        shown = int(self.explained(model, choice)[index])
        return (
            f"{model}: predicts {self.class_names[pred]} (p={p[pred]:.2f}); "
            f"map explains {self.class_names[shown]} (p={p[shown]:.2f})"
        )


def explorer_layers(model: keras.Model) -> list[str]:
    """Every residual stage plus the original's three layers, in depth order."""
    return depth_sorted(model, [*residual_stages(model), *ORIGINAL_LAYERS])


def layer_title(layer: str) -> str:
    """``block2_add (shallow)`` for the original's layers, else the name."""
    return f"{layer} ({_TAGS[layer]})" if layer in _TAGS else layer


def precompute(
    regular: keras.Model,
    complementary: keras.Model,
    images: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    *,
    layers: Sequence[str] | None = None,
    preprocess: Callable[[ArrayLike], Floats] | None = None,
    score: Score = "logit",
    batch_size: int = 32,
) -> ExplorerData:
    """All maps of both models, all layers, predicted and true class, in batched calls.

    Parameters
    ----------
    regular, complementary
        The two trained models (same architecture).
    images
        uint8 RGB test images (N, H, W, 3), NOT preprocessed.
    labels
        (N,) true classes.
    class_names
        Names of the classes.
    layers
        Default :func:`explorer_layers` (every residual stage + the original three).
    preprocess
        Pixels -> model input; default :func:`helpers.data.preprocess`.
    score, batch_size
        As in :func:`helpers.gradcam.grad_cam`.
    """
    if preprocess is None:
        from helpers.data import preprocess as default_preprocess

        preprocess = default_preprocess
    pixels = np.asarray(images)
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise ValueError("images must be uint8 RGB pixels (N, H, W, 3), not preprocessed.")
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(y) != len(pixels):
        raise ValueError(f"Need one label per image: {len(pixels)} images, {len(y)} labels.")
    chosen = tuple(depth_sorted(regular, layers or explorer_layers(regular)))
    x = preprocess(pixels)
    maps: dict[str, dict[str, dict[str, Floats]]] = {}
    probabilities = {}
    for name, model in zip(MODELS, (regular, complementary), strict=True):
        maps[name] = {}
        for choice in CHOICES:
            result = grad_cam(
                model,
                x,
                chosen,
                class_index=choice,
                labels=y,
                score=score,
                upsample_maps=False,
                batch_size=batch_size,
            )
            maps[name][choice] = result.maps["gradcam"]
        probabilities[name] = result.probabilities
    return ExplorerData(pixels, y, tuple(class_names), chosen, maps, probabilities, score)


def _encode(rgb01: Floats, fmt: str = "PNG", quality: int = 70) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(rgb01 * 255).astype(np.uint8)).save(buffer, fmt, quality=quality)
    return buffer.getvalue()


def _thumbnail(image: NDArray[np.uint8], size: int) -> Floats:
    small = Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(small, np.float32) / np.float32(255)


def render(
    data: ExplorerData,
    index: int,
    layer: str,
    choice: str = "predicted",
    scale: Scale = "per_map",
    size: int | None = None,
    alpha: float = 0.4,
) -> dict[str, Floats]:
    """``{"image": ..., "regular": ..., "complementary": ...}`` RGB [0, 1] pictures."""
    side = size or data.images.shape[1]
    image = _thumbnail(data.images[index], side)
    cams = data.cams(index, layer, choice, scale, side)
    return {"image": image, **{m: overlay(image, cams[m], alpha) for m in MODELS}}


def interactive_explorer(
    data: ExplorerData, *, scale: Scale = "per_map", size: int = 224, alpha: float = 0.4
) -> Any:
    """ipywidgets explorer: image slider, layer slider (depth order), class and scale toggles.

    Shows the image, the regular model's CAM and the complementary model's CAM, with labels
    and probabilities.  Every map is in ``data`` already, so a change only redraws (results
    are memoised, revisiting is instant).  Returns the widget (display it, or leave it last in
    a cell).
    """
    import ipywidgets as w

    image = w.IntSlider(0, 0, len(data.images) - 1, description="image", continuous_update=True)
    layer = w.SelectionSlider(
        options=[(layer_title(n), n) for n in data.layers],
        description="layer",
        layout={"width": "520px"},
    )
    choice = w.ToggleButtons(options=list(CHOICES), description="class")
    scaling = w.ToggleButtons(options=["per_map", "shared"], value=scale, description="scale")
    pictures = {k: w.Image(format="png", width=size, height=size) for k in ("image", *MODELS)}
    titles = {k: w.HTML() for k in pictures}
    memo: dict[tuple[Any, ...], dict[str, bytes]] = {}

    def redraw(_: Any = None) -> None:
        key = (image.value, layer.value, choice.value, scaling.value)
        if key not in memo:
            drawn = render(data, *key, size=size, alpha=alpha)
            memo[key] = {k: _encode(v) for k, v in drawn.items()}
        i = image.value
        for k, png in memo[key].items():
            pictures[k].value = png
        titles["image"].value = html.escape(f"#{i} true: {data.class_names[data.labels[i]]}")
        for m in MODELS:
            titles[m].value = html.escape(data.caption(i, m, choice.value))

    for control in (image, layer, choice, scaling):
        control.observe(redraw, names="value")
    redraw()
    panels = [w.VBox([titles[k], pictures[k]]) for k in pictures]
    return w.VBox([image, layer, w.HBox([choice, scaling]), w.HBox(panels)])


_SCRIPT = """(function () {
  var id = %s, root = document.getElementById(id);
  var d = JSON.parse(document.getElementById(id + "-data").textContent);
  var image = document.getElementById(id + "-image"), layer = document.getElementById(id + "-layer");
  function show() {
    var i = +image.value, l = +layer.value;
    document.getElementById(id + "-picture-image").src = d.images[i];
    document.getElementById(id + "-layer-name").textContent = d.layers[l];
    document.getElementById(id + "-caption-image").textContent = d.captions.image[i];
    d.models.forEach(function (m) {
      document.getElementById(id + "-picture-" + m).src = d.cams[m][i][l];
      document.getElementById(id + "-caption-" + m).textContent = d.captions[m][i];
    });
    root.setAttribute("data-image", i);
    root.setAttribute("data-layer", d.layers[l]);
  }
  image.addEventListener("input", show);
  layer.addEventListener("input", show);
  show();
})();"""


def _data_uri(rgb01: Floats, quality: int) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(_encode(rgb01, "JPEG", quality)).decode()


def static_explorer_html(
    data: ExplorerData,
    *,
    indices: Sequence[int] | None = None,
    layers: Sequence[str] | None = None,
    choice: str = "predicted",
    scale: Scale = "per_map",
    size: int = 96,
    quality: int = 70,
    alpha: float = 0.4,
    element_id: str = "cam-explorer",
) -> str:
    """A self-contained HTML explorer for pages without a kernel (and offline).

    Every picture is an embedded JPEG (``data:`` URI); a dozen lines of inline JavaScript
    swap them when a slider moves; there is no external URL (no CDN, no fonts).  Show it in
    a notebook with ``IPython.display.HTML(static_explorer_html(data))``.

    Stable hooks for browser tests (``ID`` = ``element_id``):

    * ``#ID`` (class ``cam-explorer``): the container; attributes ``data-image`` (index) and
      ``data-layer`` (name) follow the sliders;
    * ``#ID-image``, ``#ID-layer``: ``<input type="range">`` over images and layers
      (classes ``cam-explorer-image``, ``cam-explorer-layer``);
    * ``#ID-picture-image``, ``#ID-picture-regular``, ``#ID-picture-complementary``:
      the ``<img>`` elements (class ``cam-explorer-picture``) whose ``src`` changes;
    * ``#ID-caption-image``, ``#ID-caption-regular``, ``#ID-caption-complementary``,
      ``#ID-layer-name``: the texts;
    * ``#ID-data``: the JSON payload (``layers``, ``indices``, ``images``, ``cams``).

    Parameters
    ----------
    indices
        Which images (default: the first 12).
    layers
        Which layers (default: all of ``data.layers``), shown in depth order.
    choice
        ``"predicted"`` or ``"true"``: the class the maps explain.
    size, quality
        Thumbnail side in pixels and JPEG quality; 12 images x 13 layers x 2 models at 96 px
        and quality 70 came to about 1.0-1.1 MB (under the 1.5 MB aim).
    """
    chosen = [int(i) for i in (range(min(12, len(data.images))) if indices is None else indices)]
    names = [n for n in data.layers if layers is None or n in layers]
    missing = set(layers or ()) - set(names)
    if missing or not names or not chosen or choice not in CHOICES:
        raise ValueError(
            f"Bad selection: unknown layers {sorted(missing)} (have {list(data.layers)}), "
            f"{len(chosen)} images, choice {choice!r} (one of {CHOICES})."
        )
    payload: dict[str, Any] = {
        "layers": [layer_title(n) for n in names],
        "indices": chosen,
        "images": [],
        "models": list(MODELS),
        "cams": {m: [] for m in MODELS},
        "captions": {"image": [], **{m: [] for m in MODELS}},
    }
    for i in chosen:
        payload["images"].append(_data_uri(_thumbnail(data.images[i], size), quality))
        payload["captions"]["image"].append(f"#{i} true: {data.class_names[data.labels[i]]}")
        for m in MODELS:
            payload["captions"][m].append(data.caption(i, m, choice))
            payload["cams"][m].append([])
        for n in names:
            for m, picture in render(data, i, n, choice, scale, size, alpha).items():
                if m != "image":
                    payload["cams"][m][-1].append(_data_uri(picture, quality))
    return _html(payload, element_id, size, scale, choice)


def _html(payload: dict[str, Any], eid: str, size: int, scale: str, choice: str) -> str:
    e = html.escape(eid, quote=True)
    n, k = len(payload["indices"]), len(payload["layers"])
    figures = "".join(
        f'<figure style="margin:0"><img id="{e}-picture-{key}" class="cam-explorer-picture" '
        f'src="{payload["images"][0] if key == "image" else payload["cams"][key][0][0]}" '
        f'width="{size}" height="{size}" alt="{key}" style="width:{2 * size}px;height:auto">'
        f'<figcaption id="{e}-caption-{key}" style="font-size:80%;max-width:{2 * size}px">'
        f"</figcaption></figure>"
        for key in ("image", *MODELS)
    )
    data_json = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    note = html.escape(f"Grad-CAM of the {choice} class, {scale.replace('_', '-')} scale.")
    return (
        f'<div id="{e}" class="cam-explorer" data-image="0" data-layer="{payload["layers"][0]}">'
        f'<div><label>image <input type="range" id="{e}-image" class="cam-explorer-image" '
        f'min="0" max="{n - 1}" step="1" value="0"></label> '
        f'<label>layer <input type="range" id="{e}-layer" class="cam-explorer-layer" '
        f'min="0" max="{k - 1}" step="1" value="0"></label> '
        f'<code id="{e}-layer-name">{html.escape(payload["layers"][0])}</code></div>'
        f'<div style="display:flex;gap:8px;flex-wrap:wrap">{figures}</div>'
        f'<div style="font-size:80%">{note}</div>'
        f'<script type="application/json" id="{e}-data">{data_json}</script>'
        f"<script>{_SCRIPT % json.dumps(eid)}</script></div>"
    )
