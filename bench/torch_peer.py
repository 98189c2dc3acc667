"""PyTorch peer of `jaxws.models.cnn.JetCNN`, for the training-throughput benchmark only.

The same network as arXiv:2312.06152 Table 2 (and the slim CPU variant): each jet's image gets
its own input BatchNorm2d(1) (Keras defaults: momentum 0.99, i.e. torch momentum 0.01, eps
1e-3), then one subnetwork shared by both jets (conv 'same' + ReLU, 2x2 max-pool, flatten,
dense + ReLU, dense 1); the event probability is the product of the two jets' sigmoids,
trained with binary cross-entropy and Adam (b1 0.9, b2 0.999, eps 1e-7). The two jets go
through the shared layers as one batch of 2B images, as in the JAX model. Trained serially
(one model at a time): that is what a PyTorch user runs.

Torch is imported only here, so the library never depends on it (`bench` extra).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


class TorchJetCNN(nn.Module):
    """(B, 2, R, R) images -> (B,) logit of sigmoid(jet 1) * sigmoid(jet 2)."""

    def __init__(
        self,
        image_size: int,
        conv_features: tuple[int, ...],
        kernel_sizes: tuple[int, ...],
        pool_after: tuple[bool, ...],
        dense_features: tuple[int, ...],
    ):
        super().__init__()
        self.input_norm = nn.ModuleList(
            [nn.BatchNorm2d(1, eps=1e-3, momentum=0.01) for _ in range(2)]
        )
        layers: list[nn.Module] = []
        channels, size = 1, image_size
        for features, kernel, pool in zip(conv_features, kernel_sizes, pool_after, strict=True):
            layers += [nn.Conv2d(channels, features, kernel, padding="same"), nn.ReLU()]
            channels = features
            if pool:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        layers.append(nn.Flatten())
        width = channels * size * size
        for features in dense_features:
            layers += [nn.Linear(width, features), nn.ReLU()]
            width = features
        layers.append(nn.Linear(width, 1))
        self.shared = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        jets = [norm(images[:, jet : jet + 1]) for jet, norm in enumerate(self.input_norm)]
        jet_logits = self.shared(torch.cat(jets, dim=0)).reshape(2, batch)
        log_p = nn.functional.logsigmoid(jet_logits).sum(dim=0)
        # logit of the product: log p - log(1 - p), with a stable log(1 - p).
        log_1mp = torch.where(
            log_p > -0.6931471805599453,
            torch.log(-torch.expm1(log_p)),
            torch.log1p(-torch.exp(log_p)),
        )
        return log_p - log_1mp


def make_step(
    model_spec: dict,
    image_size: int,
    batch_size: int,
    threads: int = 2,
    seed: int = 0,
    device: str = "cpu",
):
    """A function that runs one PyTorch training step on random jet images.

    Args:
      model_spec: `PAPER_CNN`-like dict (conv_features, kernel_sizes, pool_after,
        dense_features).
      image_size: R of the (R, R) jet images.
      batch_size: events per step.
      threads: `torch.set_num_threads`.
      seed: seed of the weights and the random data.
      device: "cpu", or "cuda" (cuDNN convolutions; `step` then waits for the GPU).

    Returns:
      `step()`, which trains on one minibatch and returns when it is done.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TorchJetCNN(image_size, **model_spec).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()
    pool = torch.from_numpy(
        rng.exponential(size=(4 * batch_size, 2, image_size, image_size)).astype(np.float32)
    ).to(device)
    labels = torch.from_numpy(rng.integers(0, 2, 4 * batch_size).astype(np.float32)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    model.train()

    def step() -> None:
        index = torch.from_numpy(rng.integers(0, pool.shape[0], batch_size)).to(device)
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model(pool[index]), labels[index])
        loss.backward()
        optimiser.step()
        sync()

    return step


def train_throughput(
    model_spec: dict,
    image_size: int,
    batch_size: int,
    steps: int,
    repeats: int,
    threads: int = 2,
    seed: int = 0,
) -> dict:
    """Time steady-state training steps of one PyTorch model (args as `make_step`).

    Returns:
      dict with `step_s` (seconds per training step, fastest of `repeats` runs of `steps`)
      and `setup_s` (first step, warm-up).
    """
    step = make_step(model_spec, image_size, batch_size, threads, seed)
    start = time.perf_counter()
    step()
    setup = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return {"step_s": best, "setup_s": setup}
