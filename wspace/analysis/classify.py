"""Classifying networks by their weights: Naive Bayes, random forest, SVM and MLP baselines.

The reference zoo reports Naive Bayes at 72 % on its 10 classes (87 % on the dataset card)
against 10 % chance, a dense network at 19 %, and random forest and SVM, on a 70/30 split.
:func:`classify_weights` runs the same experiment on any zoo: one split of the networks,
shared by every classifier, and accuracies with 95 % Wilson intervals beside the chance rates.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from wspace.analysis.features import (
    DEFAULT_MAX_BYTES,
    Features,
    extract,
    feature_width,
    reduce_streamed,
)
from wspace.analysis.intervals import wilson_interval
from wspace.analysis.split import chance_rates, encode_target, select_rows, split_models
from wspace.analysis.threads import limit_threads
from wspace.errors import SchemaMismatchError, listing
from wspace.query import Zoo

__all__ = ["CLASSIFIERS", "ClassificationResult", "classify_weights", "make_classifier"]

log = logging.getLogger(__name__)

CLASSIFIERS: tuple[str, ...] = ("naive_bayes", "random_forest", "svm", "mlp")
"""Names :func:`make_classifier` knows."""


def make_classifier(name: str, *, seed: int = 0, n_jobs: int | None = None) -> Any:
    """A fresh scikit-learn classifier by name.

    ``naive_bayes``: Gaussian Naive Bayes; ``random_forest``: 300 trees; ``svm``: an SVM with
    an RBF kernel (``gamma="scale"``); ``mlp``: one hidden layer of 128 ReLU units, Adam,
    early stopping off, at most 300 epochs.

    Examples
    --------
    >>> make_classifier("naive_bayes")
    GaussianNB()
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    if name == "naive_bayes":
        return GaussianNB()
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=n_jobs)
    if name == "svm":
        return SVC(kernel="rbf", gamma="scale", C=1.0, random_state=seed)
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(128,), max_iter=300, random_state=seed)
    raise ValueError(f"unknown classifier {name!r}; known: {listing(CLASSIFIERS)}")


@dataclass(frozen=True)
class ClassificationResult:
    """Accuracies of weight classifiers on one split, with chance rates."""

    table: pd.DataFrame
    """One row per classifier: ``accuracy``, ``ci_low``, ``ci_high`` (95 % Wilson),
    ``correct``, ``n_test``, ``seconds`` (fit and predict)."""
    target: str
    """The target column."""
    classes: tuple[Any, ...]
    """Class labels, in code order."""
    features: str
    """What the features are (``'flat'``, ``'stats'``, layer names, with the reduction)."""
    n_features: int
    """Feature columns the classifiers saw (after PCA if any)."""
    n_train: int
    """Training rows."""
    n_test: int
    """Test rows."""
    train_models: tuple[str, ...]
    """Networks in the training split."""
    test_models: tuple[str, ...]
    """Networks in the test split."""
    chance: dict[str, float]
    """``majority`` (share of the test split's largest class) and ``uniform`` (1 / classes)."""
    stratified: bool
    """Whether the split is stratified by the target."""
    explained_variance: float | None = None
    """Variance fraction kept by PCA, if PCA was used."""
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    """Predicted class codes of the test rows, per classifier."""

    def to_markdown(self, digits: int = 3) -> str:
        """The table as Markdown, with a chance line."""
        rows = [
            "| classifier | accuracy | 95% CI | correct / test |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, r in self.table.iterrows():
            rows.append(
                f"| {name} | {r.accuracy:.{digits}f} | [{r.ci_low:.{digits}f}, "
                f"{r.ci_high:.{digits}f}] | {int(r.correct)} / {int(r.n_test)} |"
            )
        rows.append(
            f"| *chance* (majority / 1/k) | {self.chance['majority']:.{digits}f} / "
            f"{self.chance['uniform']:.{digits}f} | | |"
        )
        return "\n".join(rows)


def classify_weights(
    zoo: Zoo,
    target: str = "cls",
    models: Sequence[str] | Mapping[str, Any] = CLASSIFIERS,
    features: Features = "flat",
    *,
    test_size: float = 0.3,
    seed: int = 0,
    standardize: bool = True,
    pca: int | None = None,
    steps: Iterable[int] | slice | None = None,
    bins: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    n_jobs: int | None = None,
    threads: int | None = 1,
) -> ClassificationResult:
    """Predict ``target`` from weights with each classifier, on one train/test split.

    Parameters
    ----------
    zoo
        The networks (any selection of a store).
    target
        Metadata column to predict (categorical; numeric with ``bins``).
    models
        Classifier names (:data:`CLASSIFIERS`) or a mapping name -> unfitted scikit-learn
        estimator.
    features
        ``"flat"`` (all parameters), a layer name or list of layer names, or ``"stats"``
        (per-tensor statistics); see :mod:`wspace.analysis.features`.
    test_size
        Fraction of the networks in the test split (0.3: the papers' 70/30 split).
    seed
        Seed of the split and of the classifiers.
    standardize
        Scale every feature to zero mean and unit variance (fitted on the training rows).
    pca
        Project on this many principal components (fitted on the training rows). When the
        raw matrix exceeds ``max_bytes`` this is streamed block by block and required.
    steps
        Rows to use: ``None`` for each network's final row; steps (``range(6, 11)``) for
        snapshots — the split still keeps every network on one side.
    bins
        Classify a numeric target in this many quantile bins.
    max_bytes
        Largest raw feature matrix held in memory.
    n_jobs
        Parallel jobs for the random forest.
    threads
        BLAS/OpenMP threads while fitting (see :mod:`wspace.analysis.threads`; ``None``: the
        libraries' settings).

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> zoo = wspace.open(tiny_zoo("memory://doc-classify", 12))
    >>> result = classify_weights(zoo, models=["naive_bayes"], features="dense_1", seed=0)
    >>> result.n_train + result.n_test, result.chance["uniform"]
    (12, 0.5)
    """
    rows = select_rows(zoo, steps)
    meta = rows.models
    encoded = encode_target(meta, target, bins=bins)
    if len(encoded.classes) < 2:
        raise SchemaMismatchError(
            f"store {zoo.url!r}: target {target!r} has {len(encoded.classes)} class(es) among "
            "the selected rows; classification needs at least 2"
        )
    split = split_models(meta, encoded.codes, test_size=test_size, seed=seed)
    used = np.sort(np.concatenate([split.train, split.test]))
    rows = rows.isel(used)
    codes = encoded.codes[used]
    train = np.searchsorted(used, split.train)
    test = np.searchsorted(used, split.test)
    description = features if isinstance(features, str) else "+".join(features)
    width = feature_width(zoo.layout, features)
    explained: float | None = None
    if len(rows) * width * 4 > max_bytes:
        if pca is None:
            raise SchemaMismatchError(
                f"store {zoo.url!r}: features={description!r} for {len(rows)} rows is "
                f"{len(rows) * width * 4 / 2**20:.0f} MiB (max_bytes {max_bytes / 2**20:.0f} "
                "MiB); pass pca=N to project them on N components block by block, or use "
                "features='stats'"
            )
        with limit_threads(threads):
            matrix, explained = reduce_streamed(
                rows, features, train, n_components=pca, standardize=standardize
            )
        x_train, x_test = matrix[train], matrix[test]
    else:
        matrix = extract(rows, features, max_bytes=max_bytes)
        with limit_threads(threads):
            x_train, x_test, explained = _prepare(matrix[train], matrix[test], standardize, pca)
    if pca is not None:
        description += f", PCA {x_train.shape[1]}"
    y_train, y_test = codes[train], codes[test]
    estimators = (
        dict(models)
        if isinstance(models, Mapping)
        else {name: make_classifier(name, seed=seed, n_jobs=n_jobs) for name in models}
    )
    records = []
    predictions: dict[str, np.ndarray] = {}
    for name, estimator in estimators.items():
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught, limit_threads(threads):
            warnings.simplefilter("always", ConvergenceWarning)
            estimator.fit(x_train, y_train)
        for warning in caught:  # an unconverged MLP is a result to report, not a failure
            log.info("%s on %s: %s", name, description, warning.message)
        with limit_threads(threads):
            predicted = np.asarray(estimator.predict(x_test))
        seconds = time.perf_counter() - start
        correct = int((predicted == y_test).sum())
        low, high = wilson_interval(correct, len(y_test))
        records.append(
            {
                "classifier": name,
                "accuracy": correct / max(len(y_test), 1),
                "ci_low": low,
                "ci_high": high,
                "correct": correct,
                "n_test": len(y_test),
                "seconds": seconds,
            }
        )
        predictions[name] = predicted
        log.info(
            "%s on %s: accuracy %.3f (%.1f s)", name, description, records[-1]["accuracy"], seconds
        )
    return ClassificationResult(
        table=pd.DataFrame.from_records(records).set_index("classifier"),
        target=target,
        classes=encoded.classes,
        features=description,
        n_features=int(x_train.shape[1]),
        n_train=len(train),
        n_test=len(test),
        train_models=split.train_models,
        test_models=split.test_models,
        chance=chance_rates(y_test, len(encoded.classes)),
        stratified=split.stratified,
        explained_variance=explained,
        predictions=predictions,
    )


def _prepare(
    x_train: np.ndarray, x_test: np.ndarray, standardize: bool, pca: int | None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Scale and project in memory, fitted on the training rows."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if standardize:
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    if pca is None:
        return x_train, x_test, None
    k = max(1, min(pca, *x_train.shape))
    projection = PCA(n_components=k, random_state=0).fit(x_train)
    explained = float(np.sum(projection.explained_variance_ratio_))
    return projection.transform(x_train), projection.transform(x_test), explained
