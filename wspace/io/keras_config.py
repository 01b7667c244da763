"""What Keras 2.15 writes about the LeNet-5 besides its weights: layer names and configs.

These are the exact ``model_config`` and ``training_config`` JSON of the zoo's ``Sequential``
model as Keras 2.15 serialises them (``json.dumps`` of these dicts equals the attributes of
the published files byte for byte), used by :mod:`wspace.io.keras_h5` to write files that
``keras.models.load_model`` rebuilds.

Examples
--------
>>> import json
>>> len(json.dumps(model_config())) > 1000, LAYER_NAMES[-1]
(True, 'dense_1')
"""

from __future__ import annotations

from typing import Any

__all__ = ["KERAS_VERSION", "LAYER_NAMES", "model_config", "training_config"]

KERAS_VERSION = "2.15.0"
"""Keras version written into exported files (the version family of the published zoo)."""
LAYER_NAMES: tuple[str, ...] = (
    "conv2d",
    "average_pooling2d",
    "conv2d_1",
    "average_pooling2d_1",
    "conv2d_2",
    "flatten",
    "dense",
    "dense_1",
)
"""Every layer of the Keras LeNet-5, weightless ones included, in model order."""


def model_config() -> dict[str, Any]:
    """The Keras 2.15 ``model_config`` of the LeNet-5 (``Sequential``), as Keras writes it.

    Examples
    --------
    >>> [layer["class_name"] for layer in model_config()["config"]["layers"]][:3]
    ['InputLayer', 'Conv2D', 'AveragePooling2D']
    """
    base: dict[str, Any] = {"trainable": True, "dtype": "float32"}
    glorot = {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None},
        "registered_name": None,
    }
    zeros: dict[str, Any] = {
        "module": "keras.initializers",
        "class_name": "Zeros",
        "config": {},
        "registered_name": None,
    }
    tail = {
        "use_bias": True,
        "kernel_initializer": glorot,
        "bias_initializer": zeros,
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
    }
    shape = [None, 32, 32, 3]

    def conv(name: str, filters: int, padding: str, first: bool = False) -> dict[str, Any]:
        config = {"name": name, **base, **({"batch_input_shape": shape} if first else {})}
        config |= {
            "filters": filters,
            "kernel_size": [5, 5],
            "strides": [1, 1],
            "padding": padding,
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "groups": 1,
            "activation": "tanh",
            **tail,
        }
        return {"class_name": "Conv2D", "config": config}

    def pool(name: str) -> dict[str, Any]:
        config = {"name": name, **base, "pool_size": [2, 2], "padding": "valid"}
        config |= {"strides": [2, 2], "data_format": "channels_last"}
        return {"class_name": "AveragePooling2D", "config": config}

    def dense(name: str, units: int, activation: str) -> dict[str, Any]:
        config = {"name": name, **base, "units": units, "activation": activation, **tail}
        return {"class_name": "Dense", "config": config}

    layers = [
        {
            "class_name": "InputLayer",
            "config": {
                "batch_input_shape": shape,
                "dtype": "float32",
                "sparse": False,
                "ragged": False,
                "name": "conv2d_input",
            },
        },
        conv("conv2d", 6, "same", first=True),
        pool("average_pooling2d"),
        conv("conv2d_1", 16, "valid"),
        pool("average_pooling2d_1"),
        conv("conv2d_2", 120, "valid"),
        {
            "class_name": "Flatten",
            "config": {"name": "flatten", **base, "data_format": "channels_last"},
        },
        dense("dense", 84, "tanh"),
        dense("dense_1", 1, "sigmoid"),
    ]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def training_config() -> dict[str, Any]:
    """The Keras 2.15 ``training_config`` of the zoo's training (Adam 1e-3, binary
    cross-entropy; docs/formats.md), as ``model.compile`` records it.

    Examples
    --------
    >>> training_config()["loss"]
    'binary_crossentropy'
    """
    adam = {
        "name": "Adam",
        "weight_decay": None,
        "clipnorm": None,
        "global_clipnorm": None,
        "clipvalue": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "jit_compile": False,
        "is_legacy_optimizer": False,
        "learning_rate": 0.0010000000474974513,  # float32(1e-3), as Keras writes it
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-07,
        "amsgrad": False,
    }
    return {
        "loss": "binary_crossentropy",
        "metrics": None,
        "weighted_metrics": None,
        "loss_weights": None,
        "optimizer_config": {"class_name": "Custom>Adam", "config": adam},
    }
