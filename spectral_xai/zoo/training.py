"""Training the ICCV25 small CNN (Fashion-MNIST, or any given model) to an accuracy cap (for the reproduction
scripts)."""
from __future__ import annotations

import torch

from .fashion_mnist import fashion_cnn


def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (in eval mode; its mode is restored)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    model.train(was_training)
    return hits / len(x)


def train_to_cap(beta, xtr, ytr, xcheck, ycheck, *, cap: float = 0.85, check_every: int = 100,
                 max_epochs: int = 5, batch: int = 128, lr: float = 3e-4, seed: int = 0,
                 activation: str = "relu", model_of=None, max_steps: int | None = None):
    """Train ``fashion_cnn(beta, activation=activation)`` (or ``model_of(beta)``, built after seeding) with Adam
    until the first check (every ``check_every`` steps, on xcheck/ycheck) whose accuracy exceeds ``cap``
    (ICCV25's protocol), or ``max_steps`` steps.  Returns (model in eval mode, info)."""
    torch.manual_seed(seed)
    model = fashion_cnn(beta, activation=activation) if model_of is None else model_of(beta)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step, acc = 0, 0.0
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(max_epochs):
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if max_steps is not None and step >= max_steps:
                return model.eval(), {"steps": step, "epochs": epoch + (i + batch) / len(xtr),
                                      "check_accuracy": accuracy(model, xcheck, ycheck)}
            if step % check_every == 0:
                acc = accuracy(model, xcheck, ycheck)
                if acc > cap:
                    return model.eval(), {"steps": step, "epochs": epoch + i / len(xtr), "check_accuracy": acc}
    return model.eval(), {"steps": step, "epochs": max_epochs, "check_accuracy": acc, "cap_not_reached": True}
