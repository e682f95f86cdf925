"""A frozen encoder's outputs: its features, and its I-Con loss on held-out images.

    features             x_i = f(image_i) (backbone) or z_i = g(f(image_i)) / ||.|| (projection),
                         computed in eval mode, batch by batch
    held-out I-Con loss  1/n sum_i KL(p(.|i) || q(.|i)) of ``IConLoss(temperature=0.5,
                         debias=0.2)`` on fixed two-view batches of held-out images: the same
                         static yardstick for every training method

Both run the model in eval mode and restore each submodule's own train/eval flag afterwards.
The protocols that turn these into metrics are :mod:`rkdo.evaluation.protocols`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rkdo._validation import check_int
from rkdo.losses import IConLoss
from rkdo.vision.augment import to_float

__all__ = ["Augment", "extract_features", "heldout_icon_loss"]

Augment = Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]
"""A two-view augmentation: ``augment(images, generator) -> (view1, view2)``."""


def _model_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _EvalMode:
    """Put every submodule in eval mode; restore each one's own flag on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        for module, training in self.modes:
            module.training = training


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 512,
    projection: bool = False,
    device: torch.device | str | None = None,
    image_size: int | None = None,
) -> Tensor:
    """Frozen features of ``images``, computed batch by batch in eval mode.

    Args:
        model: an encoder with ``features(x)`` (backbone) and ``forward(x)`` (projection,
            L2-normalized embedding), e.g. :class:`rkdo.vision.models.EmbeddingModel`.
        images: ``(N, C, H, W)`` uint8 images (converted per batch with
            :func:`rkdo.vision.augment.to_float`, i.e. to [-1, 1], resized to ``image_size`` if
            given), or float images already in the model's input range (passed unchanged).
        batch_size: images per forward pass.
        projection: return ``model(x)`` (the projection embedding) instead of
            ``model.features(x)``.
        device: where to run the model; default: where its parameters are.
        image_size: side length to resize uint8 images to (the training resolution).

    Returns:
        ``(N, D)`` float32 features on the CPU. The model's train/eval flags are restored.
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    is_uint8 = images.dtype == torch.uint8
    if not is_uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point, got dtype {images.dtype}")
    if not is_uint8 and image_size is not None:
        raise ValueError("image_size resizes uint8 images only; pass float images at the model's "
                         "input size, or uint8 images")
    if not projection and not callable(getattr(model, "features", None)):
        raise ValueError("model has no features(x) method; pass projection=True to use model(x)")
    device = _model_device(model, device)
    encode = model if projection else model.features
    chunks = []
    with _EvalMode(model):
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            x = to_float(batch, size=image_size) if is_uint8 else batch
            chunks.append(encode(x).float().cpu())
    if not chunks:
        raise ValueError("images is empty")
    return torch.cat(chunks)


@torch.no_grad()
def heldout_icon_loss(
    model: nn.Module,
    images: Tensor,
    augment: Augment,
    *,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> float:
    """The static I-Con loss on held-out images: one yardstick for every training method.

    The images are shuffled by a generator seeded with ``seed``, cut into
    ``len(images) // batch_size`` full batches, and each batch gives two views
    ``augment(batch, generator)`` from the same generator, so every model sees the same views.
    Returns the mean over batches of ``IConLoss(temperature=0.5, debias=0.2)(model(v1),
    model(v2))``, computed in eval mode (the model's train/eval flags are restored).
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    n_batches = images.shape[0] // batch_size
    if n_batches == 0:
        raise ValueError(f"batch_size must be <= the number of images ({images.shape[0]}), got "
                         f"{batch_size}")
    device = _model_device(model, device)
    loss_fn = IConLoss(temperature=0.5, debias=0.2)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    order = torch.randperm(images.shape[0], generator=generator, device=images.device)
    total = 0.0
    with _EvalMode(model):
        for b in range(n_batches):
            batch = images[order[b * batch_size : (b + 1) * batch_size]]
            view1, view2 = augment(batch, generator)
            z1 = model(view1.to(device, non_blocking=True))
            z2 = model(view2.to(device, non_blocking=True))
            total += float(loss_fn(z1, z2))
    return total / n_batches
