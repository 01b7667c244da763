"""The 1-D CNN of the NWS meta-classifiers (Eilertsen et al., "Classifying the classifier").

It reads one contiguous slice of a flat weight vector. The reference network for slices up to
40,000 weights (``cnn1D_small`` in the authors' code): 1-D convolutions of width 5, each
followed by ReLU then batch normalisation, with channels 8, 16, 32, 64, 128, 256 and 2x max
pooling between blocks; then up to six more 256-channel convolutions, pooling before each while
the sequence is longer than 50; a final pooling; four fully connected layers of 1,024 units and
one of 64 (ReLU, batch normalisation, dropout 0.5); a linear output; Glorot-normal weights and
zero biases (torch's default biases, up to 0.45 for a width-5 kernel, would drown weights of
size 0.05 and make the first ReLU nearly linear). ``width`` scales every
channel count and hidden size (``width=1`` is the reference; smaller widths train in minutes
on a CPU).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SliceCNN"]


class SliceCNN(nn.Module):
    """1-D CNN from a weight slice ``(batch, length)`` to ``n_out`` logits (or values).

    Parameters
    ----------
    length
        Slice length (the reference default is 5,000).
    n_out
        Classes (or 1 for regression).
    width
        Scale of channel counts and hidden sizes; 1.0 is the reference network.
    dropout
        Dropout before each fully connected layer's successor (0.5 in the reference).

    Examples
    --------
    >>> net = SliceCNN(5000, 10, width=0.25)
    >>> net(torch.zeros(4, 5000)).shape
    torch.Size([4, 10])
    """

    def __init__(self, length: int, n_out: int, *, width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        if length < 8:
            raise ValueError(f"slice length must be >= 8, got {length}")

        def ch(c: int) -> int:
            return max(2, round(c * width))

        layers: list[nn.Module] = []
        size = length
        channels = 1

        def conv(out: int) -> None:
            nonlocal channels
            layers.extend([nn.Conv1d(channels, out, 5, padding=2), nn.ReLU(), nn.BatchNorm1d(out)])
            channels = out

        def pool() -> None:
            nonlocal size
            if size >= 2:
                layers.append(nn.MaxPool1d(2))
                size //= 2

        conv(ch(8))
        pool()
        conv(ch(16))
        pool()
        conv(ch(32))
        conv(ch(64))
        pool()
        conv(ch(128))
        conv(ch(256))
        for _ in range(6):
            if size > 50:
                pool()
            conv(ch(256))
        pool()
        self.features = nn.Sequential(*layers)
        hidden = [ch(1024)] * 4 + [ch(64)]
        head: list[nn.Module] = [nn.Flatten()]
        inputs = channels * size
        for units in hidden:
            head.extend(
                [nn.Linear(inputs, units), nn.ReLU(), nn.BatchNorm1d(units), nn.Dropout(dropout)]
            )
            inputs = units
        head.append(nn.Linear(inputs, n_out))
        self.head = nn.Sequential(*head)
        for module in self.modules():  # the reference's init: Glorot-normal weights, zero biases
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_out)`` of slices ``(batch, length)``."""
        logits: torch.Tensor = self.head(self.features(x.unsqueeze(1)))
        return logits
