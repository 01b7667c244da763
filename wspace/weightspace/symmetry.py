"""The hidden-neuron permutation symmetries of a sequential network's layout.

Permuting the output neurons (channels) of a hidden layer, together with everything that is
indexed by them — the layer's bias, the per-channel tensors of the normalisation layers that
follow it, and the input axis of the next weight layer — leaves the network's function unchanged
as long as everything between two weight layers acts per channel (element-wise activations,
pooling, batch-norm, dropout, flatten). :func:`analyze` finds these groups from a
:class:`~wspace.layout.Layout` alone; the network's input and output axes are fixed.

A layout is analysed as a chain of *weight layers* (a ``weight``/``kernel`` of 2 or more
dimensions and an optional 1-D ``bias``) and *norm layers* (only 1-D tensors of one length:
batch-norm's ``weight``/``gamma``, ``bias``/``beta``, ``running_mean``/``moving_mean``,
``running_var``/``moving_variance``). Shapes must chain: a layer's inputs are the previous weight
layer's outputs, or — for a dense layer after a convolution — a flattened feature map of them.
The order of a flatten is read from the weight's ``flatten_shape`` (torch ``(c, h, w)``: a
channel is a contiguous block; Keras ``(h, w, c)``: channels interleave), from ``flatten_order``,
or for NWS layouts from their published format (TensorFlow's ``(h, w, c)``); anything else is
refused with :class:`~wspace.errors.SchemaMismatchError`, never guessed. The spec cannot see the
module's ``forward``: residual connections, attention or channel-mixing ops between weight layers
are the caller's to rule out (wspace's tests check the function on real inputs).

Examples
--------
>>> from wspace.architectures import lenet5_layout
>>> sym = analyze(lenet5_layout())
>>> [(g.layer, g.size) for g in sym.groups]
[('conv2d', 6), ('conv2d_1', 16), ('conv2d_2', 120), ('dense', 84)]
>>> sym.group("conv2d_2").members[-1]
AxisRef(tensor='dense/weight', axis=1, repeat=4, order='major')
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from wspace.errors import SchemaMismatchError, listing
from wspace.layout import Layout, TensorSpec

__all__ = ["SCHEMA", "AxisRef", "FlattenOrder", "NeuronGroup", "Symmetry", "WeightLayer", "analyze"]

SCHEMA = "wspace.symmetry/1"
"""Schema name written by :meth:`Symmetry.to_dict`."""

FlattenOrder: TypeAlias = Literal["chw", "hwc"]
"""How a dense layer reads a flattened map: channels-first ``"chw"`` (torch) or ``"hwc"``."""

NORM_ROLES: dict[str, str] = {
    "weight": "scale",
    "gamma": "scale",
    "bias": "shift",
    "beta": "shift",
    "running_mean": "mean",
    "moving_mean": "mean",
    "running_var": "var",
    "moving_variance": "var",
}
"""Parameter name of a per-channel (normalisation) layer -> its role."""

KNOWN_FLATTEN: tuple[tuple[str, FlattenOrder], ...] = (("nws-", "hwc"),)
"""Layout-name prefix -> flatten order of its first dense layer, from the published format
(NWS: TensorFlow reads the last feature map in ``(h, w, c)`` order; see ``wspace.io.nws_arch``)."""


@dataclass(frozen=True, slots=True)
class AxisRef:
    """One axis of one tensor that a neuron group permutes.

    The axis has ``size * repeat`` entries; with ``order="major"`` neuron ``j`` owns the block
    ``j*repeat : (j+1)*repeat`` (torch's flatten of ``(c, h, w)``), with ``"minor"`` it owns
    every entry ``r*size + j`` (a channels-last flatten). ``repeat=1`` is a plain axis.
    """

    tensor: str
    axis: int
    repeat: int = 1
    order: Literal["major", "minor"] = "major"


@dataclass(frozen=True, slots=True)
class NeuronGroup:
    """The hidden neurons (channels) of one weight layer, and every axis they index."""

    layer: str
    """The weight layer whose outputs are permuted (also the group's name)."""
    size: int
    """Number of neurons (output channels)."""
    members: tuple[AxisRef, ...]
    """Axes permuted together: the layer's output axis and bias, following norm layers' tensors,
    the next weight layer's input axis (last)."""


@dataclass(frozen=True, slots=True)
class WeightLayer:
    """One weight layer of the chain, as the views need it."""

    name: str
    kind: Literal["dense", "conv"]
    weight: str
    """The stored weight tensor (``<layer>/weight`` or ``<layer>/kernel``)."""
    bias: str | None
    n_in: int
    n_out: int
    kernel: tuple[int, ...]
    """Spatial kernel shape (``()`` for dense)."""
    in_axis: int
    out_axis: int
    flatten: tuple[FlattenOrder, tuple[int, ...]] | None = None
    """For a dense layer reading a flattened map: order and the map's ``(c, h, w)``."""
    norms: tuple[tuple[tuple[str, str], ...], ...] = ()
    """Norm layers that follow it: per norm layer, ``(role, tensor)`` pairs."""


@dataclass(frozen=True, slots=True)
class Symmetry:
    """The permutation symmetry spec of a layout (see the module docs)."""

    layout: str
    """Name of the layout it describes."""
    layers: tuple[WeightLayer, ...]
    groups: tuple[NeuronGroup, ...]
    fixed: tuple[AxisRef, ...]
    """Axes no permutation touches: the first layer's inputs, the last layer's outputs."""

    def group(self, layer: str) -> NeuronGroup:
        """The group of ``layer``'s neurons."""
        for g in self.groups:
            if g.layer == layer:
                return g
        raise SchemaMismatchError(
            f"layout {self.layout!r}: no permutable neurons in layer {layer!r}; groups: "
            f"{listing(g.layer for g in self.groups)}"
        )

    @property
    def sizes(self) -> dict[str, int]:
        """Group name -> number of neurons."""
        return {g.layer: g.size for g in self.groups}

    def to_dict(self) -> dict[str, Any]:
        """JSON form (schema :data:`SCHEMA`); :meth:`from_dict` gives an equal spec back."""

        def ref(a: AxisRef) -> dict[str, Any]:
            return {"tensor": a.tensor, "axis": a.axis, "repeat": a.repeat, "order": a.order}

        layers = []
        for w in self.layers:
            flat = None if w.flatten is None else [w.flatten[0], list(w.flatten[1])]
            layers.append(
                {
                    "name": w.name, "kind": w.kind, "weight": w.weight, "bias": w.bias,
                    "n_in": w.n_in, "n_out": w.n_out, "kernel": list(w.kernel),
                    "in_axis": w.in_axis, "out_axis": w.out_axis, "flatten": flat,
                    "norms": [[list(p) for p in norm] for norm in w.norms],
                }
            )  # fmt: skip
        groups = [
            {"layer": g.layer, "size": g.size, "members": [ref(a) for a in g.members]}
            for g in self.groups
        ]
        return {
            "schema": SCHEMA,
            "layout": self.layout,
            "layers": layers,
            "groups": groups,
            "fixed": [ref(a) for a in self.fixed],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Symmetry:
        """The spec of :meth:`to_dict`'s form."""
        if data.get("schema") != SCHEMA:
            raise SchemaMismatchError(
                f"a symmetry spec needs schema {SCHEMA!r}; got {data.get('schema')!r}"
            )

        def ref(a: Mapping[str, Any]) -> AxisRef:
            return AxisRef(str(a["tensor"]), int(a["axis"]), int(a["repeat"]), a["order"])

        layers = tuple(
            WeightLayer(
                name=str(w["name"]),
                kind=w["kind"],
                weight=str(w["weight"]),
                bias=w["bias"],
                n_in=int(w["n_in"]),
                n_out=int(w["n_out"]),
                in_axis=int(w["in_axis"]),
                out_axis=int(w["out_axis"]),
                kernel=tuple(w["kernel"]),
                flatten=None if w["flatten"] is None else (w["flatten"][0], tuple(w["flatten"][1])),
                norms=tuple(tuple((r, t) for r, t in norm) for norm in w["norms"]),
            )
            for w in data["layers"]
        )
        groups = tuple(
            NeuronGroup(g["layer"], int(g["size"]), tuple(ref(a) for a in g["members"]))
            for g in data["groups"]
        )
        return cls(str(data["layout"]), layers, groups, tuple(ref(a) for a in data["fixed"]))


def _refuse(layout: Layout, problem: str) -> SchemaMismatchError:
    return SchemaMismatchError(
        f"layout {layout.name!r}: cannot analyse its permutation symmetry: {problem}"
    )


def _weight_layer(layout: Layout, layer: str, tensors: tuple[TensorSpec, ...]) -> WeightLayer:
    by_param = {t.name.rpartition("/")[2]: t for t in tensors}
    weight = by_param.get("weight") or by_param.get("kernel")
    if weight is None or len(weight.shape) < 2:
        raise _refuse(
            layout,
            f"layer {layer!r} has tensors {listing(t.name for t in tensors)}: neither a weight "
            "layer (a 'weight'/'kernel' of 2+ dims and an optional 'bias') nor a per-channel "
            "layer (1-D tensors only)",
        )
    torch_like = weight.convention == "torch"
    out_axis, in_axis = (0, 1) if torch_like else (len(weight.shape) - 1, len(weight.shape) - 2)
    n_out, n_in = weight.shape[out_axis], weight.shape[in_axis]
    kernel = weight.shape[2:] if torch_like else weight.shape[:-2]
    bias = by_param.get("bias")
    extra = [t.name for t in tensors if t is not weight and t is not bias]
    if extra or (bias is not None and bias.shape != (n_out,)):
        what = f"tensor(s) {listing(extra)}" if extra else f"bias of shape {bias.shape}"  # type: ignore[union-attr]
        raise _refuse(
            layout, f"layer {layer!r} has {what} beside {weight.name!r} ({n_out} outputs)"
        )
    kind: Literal["dense", "conv"] = "dense" if len(weight.shape) == 2 else "conv"
    return WeightLayer(
        layer, kind, weight.name, None if bias is None else bias.name, n_in, n_out,
        tuple(kernel), in_axis, out_axis,
    )  # fmt: skip


def _flatten(
    layout: Layout, prev: WeightLayer, layer: WeightLayer, order: FlattenOrder | None
) -> tuple[FlattenOrder, tuple[int, ...]]:
    """How ``layer`` (dense) reads ``prev``'s (conv) flattened output map."""
    spec = layout[layer.weight]
    c, k = prev.n_out, layer.n_in // prev.n_out
    if spec.flatten_shape is not None:
        flat = spec.flatten_shape
        chw = flat if spec.convention == "torch" else (flat[-1], *flat[:-1])
        if chw[0] != c:
            raise _refuse(
                layout,
                f"{spec.name!r} reads a flattened map of {chw[0]} channels (flatten_shape "
                f"{flat}); the layer before it, {prev.name!r}, has {c}",
            )
        return ("chw" if spec.convention == "torch" else "hwc"), chw
    if order is None:
        order = next((o for prefix, o in KNOWN_FLATTEN if layout.name.startswith(prefix)), None)
    if order is None:
        raise _refuse(
            layout,
            f"dense layer {layer.name!r} reads {layer.n_in} inputs from the {c} channels of "
            f"{prev.name!r} (a flattened map of {k} positions), and its weight records no "
            "flatten_shape: the flatten order is unknown. Set flatten_shape on the weight (torch: "
            "the module's wspace_flatten_inputs) or pass flatten_order={"
            f"{layer.name!r}: 'chw' or 'hwc'}}",
        )
    if order not in ("chw", "hwc"):
        raise _refuse(layout, f"flatten order {order!r} of {layer.name!r} is not 'chw' or 'hwc'")
    side = math.isqrt(k)
    return order, (c, side, side) if side * side == k else (c, k, 1)


def _chain(layout: Layout, flatten_order: Mapping[str, FlattenOrder]) -> list[WeightLayer]:
    chain: list[WeightLayer] = []
    norms: list[tuple[tuple[str, str], ...]] = []
    for layer in layout.layers:
        tensors = layout.layer_tensors(layer)
        if all(len(t.shape) == 1 for t in tensors):  # a per-channel layer
            if not chain:
                raise _refuse(layout, f"per-channel layer {layer!r} comes before any weight layer")
            roles = [(NORM_ROLES.get(t.name.rpartition("/")[2]), t) for t in tensors]
            unknown = [t.name for role, t in roles if role is None]
            sizes = {t.shape[0] for t in tensors}
            if unknown or sizes != {chain[-1].n_out}:
                why = f"unknown tensor(s) {listing(unknown)}" if unknown else f"sizes {sizes}"
                raise _refuse(
                    layout,
                    f"per-channel layer {layer!r} after {chain[-1].name!r} "
                    f"({chain[-1].n_out} channels) has {why}; known: {listing(NORM_ROLES)}",
                )
            norms.append(tuple((str(role), t.name) for role, t in roles))
            chain[-1] = dataclasses.replace(chain[-1], norms=tuple(norms))
            continue
        norms = []
        current = _weight_layer(layout, layer, tensors)
        if chain:
            prev = chain[-1]
            if current.n_in == prev.n_out:
                pass
            elif prev.kind == "conv" and current.kind == "dense" and current.n_in % prev.n_out == 0:
                flat = _flatten(layout, prev, current, flatten_order.get(layer))
                current = dataclasses.replace(current, flatten=flat)
            else:
                raise _refuse(
                    layout,
                    f"layer {layer!r} ({current.kind}) takes {current.n_in} inputs but "
                    f"{prev.name!r} ({prev.kind}) gives {prev.n_out}: not a sequential chain",
                )
        chain.append(current)
    if not chain:
        raise _refuse(layout, "it has no weight layer")
    return chain


def analyze(layout: Layout, *, flatten_order: Mapping[str, FlattenOrder] | None = None) -> Symmetry:
    """The permutation symmetry spec of a sequential MLP or CNN layout.

    Parameters
    ----------
    layout
        Any layout, torch or Keras convention.
    flatten_order
        Dense layer -> ``"chw"`` or ``"hwc"``, for a dense layer after a convolution whose
        weight records no ``flatten_shape``.

    Raises
    ------
    SchemaMismatchError
        The layout is not a chain of weight and per-channel layers whose shapes connect, or a
        flatten order is unknown; the message names the layer.

    Examples
    --------
    >>> mlp = Layout.from_dict({"name": "mlp", "tensors": [
    ...     {"name": "a/weight", "shape": [5, 3]}, {"name": "a/bias", "shape": [5]},
    ...     {"name": "b/weight", "shape": [2, 5]}]})
    >>> [(m.tensor, m.axis) for m in analyze(mlp).groups[0].members]
    [('a/weight', 0), ('a/bias', 0), ('b/weight', 1)]
    """
    if flatten_order is None:
        return _cached(layout)
    return _analyze(layout, dict(flatten_order))


@functools.lru_cache(maxsize=64)
def _cached(layout: Layout) -> Symmetry:
    return _analyze(layout, {})


def _analyze(layout: Layout, flatten_order: Mapping[str, FlattenOrder]) -> Symmetry:
    chain = _chain(layout, flatten_order)
    groups = []
    for w, nxt in itertools.pairwise(chain):
        members = [AxisRef(w.weight, w.out_axis)]
        members += [AxisRef(w.bias, 0)] if w.bias else []
        members += [AxisRef(t, 0) for norm in w.norms for _, t in norm]
        if nxt.flatten is None:
            members.append(AxisRef(nxt.weight, nxt.in_axis))
        else:
            order, chw = nxt.flatten
            repeat = math.prod(chw[1:])
            members.append(
                AxisRef(nxt.weight, nxt.in_axis, repeat, "major" if order == "chw" else "minor")
            )
        groups.append(NeuronGroup(w.name, w.n_out, tuple(members)))
    last = chain[-1]
    fixed = [AxisRef(chain[0].weight, chain[0].in_axis), AxisRef(last.weight, last.out_axis)]
    fixed += [AxisRef(last.bias, 0)] if last.bias else []
    fixed += [AxisRef(t, 0) for norm in last.norms for _, t in norm]
    return Symmetry(layout.name, tuple(chain), tuple(groups), tuple(fixed))
