"""Outside references: other libraries' losses behind the same call as ours.

``lightly-ntxent`` is lightly's ``NTXentLoss`` (SimCLR's normalised-temperature cross-entropy
over the 2B views), so ``rkdo train`` and ``rkdo bench`` can put the library users already
know beside I-Con and RKDO with the same encoder, augmentations and budget. For the 2B
embeddings ``z`` (view 1 then view 2) and ``j(i)`` the other view of sample ``i``:

    L = -1/(2B) sum_i log( exp(cos(z_i, z_j(i)) / tau) / sum_{k != i} exp(cos(z_i, z_k) / tau) )

Needs ``pip install rkdo[baselines]``; the preset ``simclr`` computes the same number.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["LightlyNTXent"]


class LightlyNTXent(nn.Module):
    """lightly's ``NTXentLoss(temperature)``, called as ``loss(z1, z2)`` (other facts ignored)."""

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        try:
            from lightly.loss import NTXentLoss
        except ImportError as error:
            raise ValueError(
                "method 'lightly-ntxent' needs lightly: pip install 'rkdo[baselines]'"
            ) from error
        self.loss = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)

    def forward(self, z1: Tensor, z2: Tensor, **_: object) -> Tensor:
        return self.loss(z1, z2)
