"""The estimators' small network: ``x -> Linear -> ReLU -> ... -> Linear -> out``.

``NeighbourEmbedding(parametric=True)`` maps inputs to the embedding with it and
``KernelClustering`` maps inputs to cluster logits ``h(x)`` (``f(c|i) = softmax_c h(x_i)``);
``hidden=()`` gives a single linear map.
"""

from __future__ import annotations

from torch import nn

__all__ = ["mlp"]


def mlp(n_features: int, hidden: tuple[int, ...], n_outputs: int) -> nn.Sequential:
    """A ReLU MLP with the given hidden widths and a linear output layer."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)
