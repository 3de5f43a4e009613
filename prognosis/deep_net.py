"""The deep prognosis network and its losses (torch).

:class:`PrognosisNet` has two branches fused before one output:

* image: a small 3-D residual CNN on the crop's four channels (CT, PET, GTVp, GTVn; see
  :mod:`~hecktor_nnunet.prognosis.deep_crops`): a stride-2 stem of ``width`` channels, then residual
  blocks (two 3x3x3 convolutions, batch norm, ReLU; a 1x1x1 projection on the shortcut) that halve the
  grid and double the channels (at most ``8 * width``) until it is 4 voxels a side, then global
  average and max pooling;
* tabular: the clinical vector and the PET measures (imputed, with missing indicators, standardised)
  through a two-layer MLP of ``hidden`` units;
* fusion: the two concatenated, dropout, a ``hidden``-unit layer (the penultimate features,
  :meth:`PrognosisNet.embed`), and one linear output: a log relative hazard (rfs) or a logit (hpv),
  to which a linear function of the tabular inputs is added ("wide and deep";
  :meth:`PrognosisNet.set_baseline` fixes it to a penalised linear model, so the network learns what
  that model misses, and starts as that model: its own output layer starts at zero).

Batch norm rather than instance or group norm: those rescale each patient's image by its own
statistics and would erase the absolute uptake (SUV) that carries the signal.

Losses: :func:`cox_loss` (negative Cox partial log-likelihood, Breslow's ties) for rfs;
:func:`binary_loss` (class-weighted binary cross-entropy, or focal) for hpv.

Training (:func:`train_network`): AdamW, random left-right flips and small CT/PET intensity jitter
(:func:`augment`), early stopping on a validation set's loss with the best epoch's weights kept.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class ResBlock(nn.Module):
    """Two 3x3x3 convolutions with batch norm and a (projected) shortcut; ``stride`` 2 halves the grid."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(c_out)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(c_out)
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv3d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm3d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.skip(x))


class PrognosisNet(nn.Module):
    """Image CNN + tabular MLP, fused; one output per patient.

    Parameters
    ----------
    in_channels : int
        Image channels (4: CT, PET, GTVp, GTVn).
    crop_size : int
        Voxels per side of the input cube (a multiple of 8, at least 16).
    n_tabular : int
        Tabular inputs (0: image only).
    width : int
        Channels of the stem; each block doubles them, up to ``8 * width``.
    hidden : int
        Units of the tabular MLP and of the penultimate layer.
    dropout : float
    """

    def __init__(self, *, in_channels: int = 4, crop_size: int = 32, n_tabular: int = 0, width: int = 8,
                 hidden: int = 32, dropout: float = 0.3):
        super().__init__()
        if crop_size < 16 or crop_size % 8:
            raise ValueError(f"crop_size must be a multiple of 8 and at least 16, got {crop_size}")
        self.stem = nn.Sequential(nn.Conv3d(in_channels, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm3d(width), nn.ReLU())
        blocks, c, side = [], width, crop_size // 2
        while side > 4:
            c_out = min(2 * c, 8 * width)
            blocks.append(ResBlock(c, c_out, stride=2))
            c, side = c_out, (side + 1) // 2
        self.blocks = nn.Sequential(*blocks)
        self.n_image_features = 2 * c
        self.tabular = (nn.Sequential(nn.Linear(n_tabular, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
                        if n_tabular else None)
        fused = self.n_image_features + (hidden if n_tabular else 0)
        self.penultimate = nn.Sequential(nn.Dropout(dropout), nn.Linear(fused, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 1)
        # the tabular inputs also reach the output linearly ("wide and deep"); set_baseline puts a
        # penalised linear model there, which the network then only has to improve on
        self.linear = nn.Linear(n_tabular, 1) if n_tabular else None
        # the network's part starts at 0 for every patient rather than at a random function
        for layer in (self.head, self.linear):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def set_baseline(self, weight: np.ndarray, bias: float = 0.0) -> None:
        """Fix the linear term to a fitted linear model of the tabular inputs (not trained further)."""
        if self.linear is None:
            raise ValueError("the network has no tabular inputs")
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(np.asarray(weight, dtype=np.float32)).view(1, -1))
            self.linear.bias.fill_(float(bias))
        self.linear.requires_grad_(False)

    def embed(self, image: torch.Tensor, tabular: torch.Tensor | None = None) -> torch.Tensor:
        """Penultimate features, shape (n, hidden)."""
        x = self.blocks(self.stem(image))
        parts = [x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))]
        if self.tabular is not None:
            parts.append(self.tabular(tabular))
        return self.penultimate(torch.cat(parts, dim=1))

    def forward(self, image: torch.Tensor, tabular: torch.Tensor | None = None) -> torch.Tensor:
        """Log relative hazard (rfs) or logit (hpv), shape (n,)."""
        out = self.head(self.embed(image, tabular))
        if self.linear is not None:
            out = out + self.linear(tabular)
        return out.squeeze(1)


def n_parameters(net: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def cox_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood with Breslow's handling of ties, per event.

    ``-(1/d) sum_{i: event} [risk_i - log sum_{j: time_j >= time_i} exp(risk_j)]`` with ``d`` the
    number of events: every patient tied at an event time is in that time's risk set.

    Parameters
    ----------
    risk : Tensor (n,)
        Log relative hazards (higher = earlier relapse).
    time : Tensor (n,)
        Follow-up (days).
    event : Tensor (n,)
        1 relapse, 0 censored.

    Returns
    -------
    Tensor
        Scalar; 0 (still attached to the graph) when there is no event.
    """
    event = event.to(risk.dtype)
    n_events = event.sum()
    if n_events.item() == 0:
        return risk.sum() * 0.0
    order = torch.argsort(time)
    t, r, e = time[order], risk[order], event[order]
    # log sum of exp(risk) over each suffix of the ascending times
    suffix = torch.logcumsumexp(r.flip(0), dim=0).flip(0)
    first = torch.searchsorted(t.contiguous(), t.contiguous(), right=False)  # first index with time >= t_i
    return -((r - suffix[first]) * e).sum() / n_events


def binary_loss(logit: torch.Tensor, label: torch.Tensor, pos_weight: float, gamma: float = 0.0) -> torch.Tensor:
    """Class-weighted binary cross-entropy (``gamma`` 0) or focal loss (``gamma`` > 0), mean over patients.

    Positives are weighted ``pos_weight`` (n negative / n positive balances the classes). The focal
    term ``(1 - p_t) ** gamma`` (Lin et al. 2017) down-weights patients already classified well.
    """
    label = label.to(logit.dtype)
    weight = torch.where(label > 0.5, torch.full_like(label, pos_weight), torch.ones_like(label))
    ce = F.binary_cross_entropy_with_logits(logit, label, reduction="none")
    if gamma > 0:
        p_t = torch.exp(-ce)
        ce = (1 - p_t) ** gamma * ce
    return (weight * ce).sum() / weight.sum()



# -- training and inference (called by DeepPrognosisModel) ---------------------------------------
#: Intensity jitter of the augmentation: CT shift (scaled units: 0.04 = 10 HU) and PET factor range (+-10%).
CT_JITTER = 0.04
PET_JITTER = 0.1


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device; use -device cpu")
    return dev


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (0: unchanged), then restore the previous number."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _to(images: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """A batch on ``dev`` in the channels-last layout (about a third faster 3-D convolutions on the CPU)."""
    return images.to(dev).contiguous(memory_format=torch.channels_last_3d)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random left-right flip (the cube's x axis) per patient, a CT shift and a PET factor (a copy)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    x[:, 0] += (torch.rand(n, generator=gen) * 2 - 1).view(n, 1, 1, 1) * CT_JITTER
    x[:, 1] *= (1 + (torch.rand(n, generator=gen) * 2 - 1) * PET_JITTER).view(n, 1, 1, 1)
    return x


def network_outputs(net: PrognosisNet, images: torch.Tensor, tabular: torch.Tensor, dev: torch.device,
                    embed: bool = False, batch: int = 64) -> np.ndarray:
    """Outputs (n,) or penultimate features (n, hidden) in eval mode, in batches."""
    net.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            sl = slice(start, start + batch)
            args = (_to(images[sl], dev), tabular[sl].to(dev) if tabular.shape[1] else None)
            outs.append((net.embed(*args) if embed else net(*args)).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros(0)


def train_network(net: PrognosisNet, images: torch.Tensor, tabular: torch.Tensor,
                  loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], train: np.ndarray,
                  validation: np.ndarray, *, epochs: int, patience: int, batch_size: int, learning_rate: float,
                  weight_decay: float, augmentation: bool, seed: int, device: torch.device
                  ) -> tuple[PrognosisNet, dict]:
    """Train ``net`` on the ``train`` rows with AdamW; keep the weights of the epoch with the lowest validation loss.

    Epoch 0 (the network as given, before any step) competes too: a network that never beats its
    starting point on the validation rows is returned as it started.

    Parameters
    ----------
    net : PrognosisNet
        Freshly initialised.
    images : Tensor (n, 4, s, s, s)
    tabular : Tensor (n, p)
    loss : callable
        ``loss(output, rows)``: the task's loss of the outputs of patients ``rows`` (a LongTensor).
    train, validation : ndarray of int
        Row indices.
    epochs, patience : int
        Most epochs; epochs without a lower validation loss before stopping.
    augmentation : bool
        :func:`augment` each training batch.
    seed : int
        Seeds the batch order and the augmentation (the caller seeds the initial weights and dropout).

    Returns
    -------
    (PrognosisNet, dict)
        The network on the CPU in eval mode, and its record (epochs run, best epoch (0: the start),
        validation loss and its history from epoch 0, seconds).
    """
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    net = net.to(device, memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=learning_rate,
                            weight_decay=weight_decay)
    tr, va = torch.from_numpy(np.asarray(train)), torch.from_numpy(np.asarray(validation))
    def validation_loss() -> float:
        out = torch.from_numpy(network_outputs(net, images[va], tabular[va], device))
        with torch.no_grad():
            return float(loss(out, va))

    # epoch 0: the network as initialised (with a baseline: that linear model alone)
    best, best_state, best_epoch, wait = validation_loss(), copy.deepcopy(net.state_dict()), 0, 0
    history = [round(best, 5)]
    for epoch in range(1, epochs + 1):
        net.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            if len(rows) < 2:  # batch norm needs two patients
                continue
            x = images[rows]
            x = _to(augment(x, gen) if augmentation else x, device)
            out = net(x, tabular[rows].to(device) if tabular.shape[1] else None)
            value = loss(out, rows)
            opt.zero_grad()
            value.backward()
            opt.step()
        val = validation_loss()
        history.append(round(val, 5))
        if val < best - 1e-4:
            best, best_state, best_epoch, wait = val, copy.deepcopy(net.state_dict()), epoch, 0
        else:
            wait += 1
            if wait >= patience:
                break
    net.load_state_dict(best_state)
    info = {"n_train": int(len(tr)), "n_validation": int(len(va)), "epochs_run": len(history) - 1,
            "best_epoch": best_epoch, "validation_loss": float(best), "validation_history": history,
            "seconds": round(time.perf_counter() - t0, 2)}
    return net.cpu().eval(), info
