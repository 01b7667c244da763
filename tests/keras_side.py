"""The Keras side of tests/test_keras_real.py, run by the Keras 2.15 environment's python.

Usage: ``python keras_side.py JOB.json`` where the job is::

    {"inputs": "x_nhwc.npy",
     "predict": [{"file": "a.h5", "out": "a.npz", "load_model": true}, ...],
     "save": {"dir": "folder", "models": [["church", 5], ...], "seed": 0}}

``predict``: the reference LeNet-5 (docs/formats.md) built in Keras loads each file with
``model.load_weights`` and, for full-model files, ``keras.models.load_model`` also loads it;
both predictions on the inputs go to ``out`` (npz: ``load_weights``, ``load_model``).
``save``: models with random weights, compiled and trained one step (so the files carry an
optimizer state, like the published ones), written by ``model.save(..., save_format="h5")`` as
``binary_oneVall_{cls}_{count}_model.h5``, with their weights (``get_weights`` order) and
predictions in ``binary_oneVall_{cls}_{count}.npz`` beside them. Prints versions as JSON.

TensorFlow is imported only when the script runs, so that pytest can import this module (for
doctests) in an environment without it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def lenet5(keras: Any) -> Any:
    keras.backend.clear_session()  # fresh layer names: conv2d, ..., dense_1
    layers = keras.layers
    return keras.Sequential(
        [
            layers.Conv2D(6, 5, activation="tanh", padding="same", input_shape=(32, 32, 3)),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Conv2D(120, 5, activation="tanh"),
            layers.Flatten(),
            layers.Dense(84, activation="tanh"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )


def predict(keras: Any, job: dict, x: Any) -> None:
    import numpy as np

    for item in job.get("predict", []):
        model = lenet5(keras)
        model.load_weights(item["file"])
        result = {"load_weights": model.predict(x, verbose=0)[:, 0]}
        if item.get("load_model", True):
            keras.backend.clear_session()
            loaded = keras.models.load_model(item["file"])
            result["load_model"] = loaded.predict(x, verbose=0)[:, 0]
        np.savez(item["out"], **result)


def save(keras: Any, job: dict, x: Any) -> None:
    import numpy as np

    spec = job.get("save")
    if not spec:
        return
    rng = np.random.default_rng(spec.get("seed", 0))
    os.makedirs(spec["dir"], exist_ok=True)
    for cls, count in spec["models"]:
        model = lenet5(keras)
        model.set_weights(
            [rng.normal(0, 0.2, w.shape).astype(np.float32) for w in model.get_weights()]
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        y = rng.integers(0, 2, size=(len(x), 1)).astype(np.float32)
        model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
        stem = os.path.join(spec["dir"], f"binary_oneVall_{cls}_{count}")
        model.save(f"{stem}_model.h5", save_format="h5")
        weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
        np.savez(f"{stem}.npz", predictions=model.predict(x, verbose=0)[:, 0], **weights)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras

    with open(sys.argv[1]) as f:
        job = json.load(f)
    x = np.load(job["inputs"]).astype(np.float32)
    predict(keras, job, x)
    save(keras, job, x)
    import keras as keras_package  # tf.keras has no __version__

    print(json.dumps({"tensorflow": tf.__version__, "keras": keras_package.__version__}))


if __name__ == "__main__":
    main()
