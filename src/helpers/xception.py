"""Xception (Chollet, 2017) written out as one flat functional graph.

Every layer carries the name ``keras.applications.Xception`` gives it (``block1_conv1`` ...
``block14_sepconv2_act``), so any intermediate layer can be picked for Grad-CAM by name. The
layers that Keras leaves anonymous get explicit names too, because auto-numbered names
(``add_8``, ``conv2d_3``) change with whatever else was built in the session:

- the residual additions: ``block2_add`` ... ``block13_add`` (twelve of them);
- the 1x1 shortcut convolutions and their batch norms: ``blockN_shortcut_conv`` and
  ``blockN_shortcut_bn`` for N = 2, 3, 4, 13;
- the head: ``avg_pool`` (global average pooling), a linear ``Dense`` named ``logits`` and a
  softmax ``Activation`` named ``predictions``. Splitting the usual softmax ``Dense`` in two
  changes no parameter but gives losses (and Grad-CAM) direct access to the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers

MIN_SIZE = 71  # the smallest input for which every stride-2 stage still has pixels left
MIDDLE_BLOCKS = range(5, 13)  # blocks 5..12: the eight middle-flow blocks
RESIDUAL_BLOCKS = (2, 3, 4, *MIDDLE_BLOCKS, 13)
STAGES = (
    ("input", ()),
    ("entry flow (blocks 1-4)", (1, 2, 3, 4)),
    ("middle flow (blocks 5-12)", tuple(MIDDLE_BLOCKS)),
    ("exit flow (blocks 13-14)", (13, 14)),
    ("head (pooling, logits, softmax)", ()),
)
HEAD_LAYERS = ("avg_pool", "logits", "predictions")


class _Initialisers:
    """Hands out kernel initialisers, each with its own seed derived from one base seed.

    Seeding every initialiser (instead of calling ``keras.utils.set_random_seed``) makes the
    weights depend on ``seed`` alone, without touching the global random state.
    """

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.count = 0

    def __call__(self) -> Any:
        if self.seed is None:
            return "glorot_uniform"
        self.count += 1
        return keras.initializers.GlorotUniform(seed=self.seed * 1009 + self.count)


def _check_input_shape(input_shape: tuple[int, int, int], num_classes: int) -> None:
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ValueError(
            f"input_shape must be (height, width, 3) for RGB images, got {input_shape!r}."
        )
    if min(input_shape[:2]) < MIN_SIZE:
        raise ValueError(
            f"Xception needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels, got "
            f"{input_shape[0]}x{input_shape[1]}; resize the images (e.g. image_size={MIN_SIZE})."
        )
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}.")


def build_xception(
    input_shape: tuple[int, int, int] = (299, 299, 3),
    num_classes: int = 3,
    bn_momentum: float = 0.99,
    seed: int | None = None,
    precision: str = "float32",
    middle_blocks: int = len(MIDDLE_BLOCKS),
) -> keras.Model:
    """Build an untrained Xception classifier as one flat functional graph.

    Parameters
    ----------
    input_shape
        ``(height, width, 3)``, at least 71x71. Inputs are ``helpers.data.preprocess``-ed
        images (values in [-1, 1]).
    num_classes
        Number of output classes.
    bn_momentum
        Momentum of every BatchNormalization's moving statistics. Keras' default 0.99 suits
        long runs; short from-scratch runs need a faster one (see
        ``helpers.training``).
    seed
        Seeds every kernel initialiser, so the same seed gives the same weights
        (``None``: Keras' unseeded defaults).
    precision
        Keras dtype policy of the body: ``"float32"`` or ``"mixed_bfloat16"``
        (``helpers.precision``). The ``logits`` and ``predictions`` layers are float32
        either way, and every variable is float32, so weights load into either precision.
    middle_blocks
        How many of the eight middle-flow blocks to build (the first ones: ``block5`` on).
        The book's models have all eight. Fewer gives a shallower network of the same design,
        which the tests of the training machinery train in a fraction of the time.

    Returns
    -------
    keras.Model
        Named ``"xception"``; its output is the softmax layer ``predictions``. The parameter
        count equals ``keras.applications.Xception(weights=None, classes=num_classes)``
        (with the eight middle blocks).
    """
    _check_input_shape(tuple(input_shape), num_classes)  # type: ignore[arg-type]
    if not 0 <= middle_blocks <= len(MIDDLE_BLOCKS):
        raise ValueError(
            f"middle_blocks must lie in 0..{len(MIDDLE_BLOCKS)} (Xception has eight), "
            f"not {middle_blocks}."
        )
    if precision not in ("float32", "mixed_bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'mixed_bfloat16', got {precision!r}.")
    init = _Initialisers(seed)

    def bn(name: str) -> layers.Layer:
        return layers.BatchNormalization(momentum=bn_momentum, name=name, dtype=precision)

    def conv(filters: int, kernel: int, name: str, strides: int = 1, pad: str = "valid") -> Any:
        return layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding=pad,
            use_bias=False,
            kernel_initializer=init(),
            name=name,
            dtype=precision,
        )

    def sepconv(filters: int, name: str) -> Any:
        return layers.SeparableConv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            depthwise_initializer=init(),
            pointwise_initializer=init(),
            name=name,
            dtype=precision,
        )

    def relu(name: str) -> layers.Layer:
        return layers.Activation("relu", name=name, dtype=precision)

    def shortcut(x: Any, filters: int, block: int) -> Any:
        """The strided 1x1 projection that lets a downsampling block add its input."""
        r = conv(filters, 1, f"block{block}_shortcut_conv", strides=2, pad="same")(x)
        return bn(f"block{block}_shortcut_bn")(r)

    def sep_bn(x: Any, filters: int, block: int, k: int, act_first: bool = True) -> Any:
        """(ReLU) -> separable conv -> BN, with the keras-applications names."""
        p = f"block{block}_sepconv{k}"
        if act_first:
            x = relu(f"{p}_act")(x)
        x = sepconv(filters, p)(x)
        return bn(f"{p}_bn")(x)

    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = conv(32, 3, "block1_conv1", strides=2)(inputs)
    x = relu("block1_conv1_act")(bn("block1_conv1_bn")(x))
    x = conv(64, 3, "block1_conv2")(x)
    x = relu("block1_conv2_act")(bn("block1_conv2_bn")(x))

    # Entry flow: three downsampling blocks. Block 2 starts right after block 1's ReLU,
    # so (as in keras.applications) its first separable conv has no activation of its own.
    for block, filters in ((2, 128), (3, 256), (4, 728)):
        residual = shortcut(x, filters, block)
        x = sep_bn(x, filters, block, 1, act_first=block != 2)
        x = sep_bn(x, filters, block, 2)
        x = layers.MaxPooling2D(
            3, strides=2, padding="same", name=f"block{block}_pool", dtype=precision
        )(x)
        x = layers.Add(name=f"block{block}_add", dtype=precision)([x, residual])

    # Middle flow: eight identity-shortcut blocks of three separable convolutions.
    for block in MIDDLE_BLOCKS[:middle_blocks]:
        residual = x
        for k in (1, 2, 3):
            x = sep_bn(x, 728, block, k)
        x = layers.Add(name=f"block{block}_add", dtype=precision)([x, residual])

    # Exit flow.
    residual = shortcut(x, 1024, 13)
    x = sep_bn(x, 728, 13, 1)
    x = sep_bn(x, 1024, 13, 2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="block13_pool", dtype=precision)(x)
    x = layers.Add(name="block13_add", dtype=precision)([x, residual])
    x = relu("block14_sepconv1_act")(sep_bn(x, 1536, 14, 1, act_first=False))
    x = relu("block14_sepconv2_act")(sep_bn(x, 2048, 14, 2, act_first=False))

    x = layers.GlobalAveragePooling2D(name="avg_pool", dtype=precision)(x)
    # The head stays float32: losses, metrics and scores read float32 logits.
    logits = layers.Dense(num_classes, kernel_initializer=init(), name="logits", dtype="float32")(x)
    outputs = layers.Activation("softmax", name="predictions", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name="xception")


def logits_model(model: keras.Model) -> keras.Model:
    """A model sharing ``model``'s weights whose output is its ``logits`` layer.

    Training this sub-model trains ``model`` too (the layers are the same objects), which
    is how losses defined on logits are used while the saved model keeps its softmax.

    Raises
    ------
    ValueError
        If ``model`` has no layer named ``logits`` (build it with :func:`build_xception`).
    """
    names = {layer.name for layer in model.layers}
    if "logits" not in names:
        raise ValueError(
            f"Model {model.name!r} has no layer named 'logits'; build it with build_xception()."
        )
    return keras.Model(model.input, model.get_layer("logits").output, name=f"{model.name}_logits")


def _block_of(layer_name: str) -> int | None:
    """14 for ``block14_sepconv1``; ``None`` for layers outside the numbered blocks."""
    if not layer_name.startswith("block"):
        return None
    digits = layer_name[5:].split("_", 1)[0]
    return int(digits) if digits.isdigit() else None


def _stage_output(model: keras.Model, stage: str) -> str:
    """Name of the layer whose output ends ``stage``."""
    ends = {
        "input": str(model.layers[0].name),
        "entry flow (blocks 1-4)": "block4_add",
        "middle flow (blocks 5-12)": "block12_add",
        "exit flow (blocks 13-14)": "block14_sepconv2_act",
        "head (pooling, logits, softmax)": "predictions",
    }
    return ends[stage]


def stage_summary(model: keras.Model) -> list[tuple[str, tuple[int | None, ...], int]]:
    """A compact per-stage summary of an Xception built by :func:`build_xception`.

    Parameters
    ----------
    model
        The model to summarise.

    Returns
    -------
    list of (stage, output shape, parameters)
        One row per stage: input, entry flow (blocks 1-4), middle flow (blocks 5-12),
        exit flow (blocks 13-14) and head. Parameters include the non-trainable batch-norm
        statistics, so the column adds up to ``model.count_params()``.
    """
    totals: dict[str, int] = {stage: 0 for stage, _ in STAGES}
    for layer in model.layers:
        stage = _stage_name(layer.name)
        totals[stage] += layer.count_params() if layer.built else 0
    rows = []
    for stage, _ in STAGES:
        shape = tuple(model.get_layer(_stage_output(model, stage)).output.shape)
        rows.append((stage, shape, totals[stage]))
    return rows


def _stage_name(layer_name: str) -> str:
    block = _block_of(layer_name)
    if block is None:
        return STAGES[-1][0] if layer_name in HEAD_LAYERS else STAGES[0][0]
    return next(stage for stage, blocks in STAGES if block in blocks)


def format_stage_summary(model: keras.Model, printer: Callable[[str], None] = print) -> None:
    """Print :func:`stage_summary` as a small aligned table (plus the total)."""
    rows = stage_summary(model)
    printer(f"{'stage':<34}{'output shape':<22}{'parameters':>12}")
    for stage, shape, params in rows:
        printer(f"{stage:<34}{str(shape):<22}{params:>12,}")
    printer(f"{'total':<34}{'':<22}{model.count_params():>12,}")
