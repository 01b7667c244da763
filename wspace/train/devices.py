"""Training devices: check a device name before any work is done on it."""

from __future__ import annotations

import torch

from wspace.errors import WspaceError

__all__ = ["available_devices", "resolve_device"]


def available_devices() -> list[str]:
    """Device kinds torch can train on here: always ``cpu``, then ``cuda``/``mps`` if present.

    Examples
    --------
    >>> available_devices()[0]
    'cpu'
    """
    kinds = ["cpu"]
    if torch.cuda.is_available():
        kinds.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        kinds.append("mps")
    return kinds


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``), checked to exist.

    Raises
    ------
    WspaceError
        The name is not a torch device, or that device is not available on this machine.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    wspace.errors.WspaceError: unknown training device 'tpu'; ...
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise WspaceError(
            f"unknown training device {str(name)!r}; use one of {', '.join(available_devices())}"
        ) from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise WspaceError(
            f"unknown training device {str(name)!r}; use one of {', '.join(available_devices())}"
        )
    if device.type not in available_devices():
        raise WspaceError(
            f"training device {str(name)!r} is not available on this machine (torch sees "
            f"{', '.join(available_devices())})"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise WspaceError(
            f"training device {str(name)!r}: this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    return device
