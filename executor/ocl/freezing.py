"""Adaptive layer freezing (aL-SAR, SPEC §10.2): per batch, how many leading layers take no backward.

Layers are the model's planner layers (`LayeredModel.layers`); a prefix `0..n-1` may be frozen,
the classifier (the last layer) never. Per batch, after the forward:

- the batch informativeness `s_t = ‖G‖²_F / EMA(‖G‖²_F)` with `G = (softmax(z) − onehot(y))·W_fc`,
  the gradient with respect to the penultimate features (no backward needed);
- with `FF_l` the layer forward FLOPs, `UC = 3·Σ FF`, `BF_{≤n} = 2·Σ_{l<n} FF_l`, `F_l` the Fisher
  trace EMA of layer `l` (all layers but the classifier), `F_tot = Σ F_l`, `F_{≤n} = Σ_{l<n} F_l`,
  `R_n = (F_tot − F_{≤n}) / F_tot`:
  `score_0 = s_t`, `score_n = s_t·R_n + (BF_{≤n}/UC)·max_m[UC/(UC − BF_{≤m})·R_m]`;
  freeze `n* = argmax score_n` (ties: the fewest layers);
- with probability `unfreeze_rate` the batch trains every layer anyway;
- the first `WARMUP_BATCHES` batches train every layer (the reference's `train_count > 2`).

After the backward of a batch that froze nothing, `F_l ← F_l + FISHER_EMA·(Σ_{p∈l} clamp(∂ℓ/∂p, −1, 1)² − F_l)`
(`observe_gradients`: a learner gives every layer's gradients at once, a pipeline stage its own).
**Decision:** the EMA of `‖G‖²` is bias-corrected (divided by `1 − (1 − r)^k` after `k`
updates). The reference starts it at 0 uncorrected, so `s_t ≈ 1/(r·k)` — about 1000/k — for
the first thousand batches and nothing freezes over a stream of our length; the corrected
EMA has the same fixed point. `R_n` only needs ratios of `F`, which a common start at 0 does
not change, so the Fisher EMA is left as the paper has it. `F_tot` gets `+1e-10` as in the
reference (no Fisher yet: `R_n = 0`, nothing freezes).

The caller makes the saving real: `Learner.apply` back-propagates only into layers `n*..`.
`state_dict` / `load_state_dict` carry everything a later decision depends on (Fisher traces,
the EMA and its count, the counters, the generator) through a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FISHER_EMA = 0.001
GRAD_EMA = 0.001
WARMUP_BATCHES = 3
EPS = 1e-10


class AdaptiveFreezing:
    """aL-SAR's per-batch choice of how many leading layers skip the backward (see the module docstring).

    Never freezes the classifier; needs at least two layers (`ValueError`). Keeps per-layer Fisher
    traces and the ‖G‖² EMA (`nbytes`) and counts how many batches froze layers.
    """

    def __init__(self, layer_flops: Sequence[float], unfreeze_rate: float, rng: np.random.Generator) -> None:
        if len(layer_flops) < 2:
            raise ValueError("freezing needs a model of at least two layers (a prefix and the classifier)")
        self.layer_flops = np.asarray(layer_flops, dtype=np.float64)
        self.unfreeze_rate = unfreeze_rate
        self.rng = rng
        self.fisher = np.zeros(len(layer_flops) - 1)
        self.grad_ema = 0.0
        self.grad_updates = 0
        self.batches = 0
        self.frozen_batches = 0
        self.frozen_layers_total = 0

    @property
    def nbytes(self) -> int:
        """Fisher traces plus the ‖G‖² EMA (float64)."""
        return self.fisher.nbytes + 8

    @staticmethod
    def bytes_for(num_layers: int) -> int:
        return 8 * (num_layers - 1) + 8

    def scores(self, informativeness: float) -> np.ndarray:
        """`score_n` for `n = 0 .. L-1` frozen layers."""
        ff = self.layer_flops
        uc = 3.0 * ff.sum()
        backward = 2.0 * np.concatenate([[0.0], np.cumsum(ff[:-1])])
        fisher_prefix = np.concatenate([[0.0], np.cumsum(self.fisher)])
        total = self.fisher.sum()
        remaining = (total - fisher_prefix) / (total + EPS)
        best = float(np.max(uc / (uc - backward) * remaining))
        score = informativeness * remaining + backward / uc * best
        score[0] = informativeness
        return score

    def informativeness(self, logits: torch.Tensor, labels: torch.Tensor, classifier: nn.Linear) -> float | None:
        """`s_t` for this batch (then the EMA moves); `None` before the EMA holds anything."""
        with torch.no_grad():
            error = F.softmax(logits.float(), dim=1) - F.one_hot(labels, logits.shape[1]).float()
            squared = float((error @ classifier.weight.float()).pow(2).sum())
        ema = self.grad_ema / (1.0 - (1.0 - GRAD_EMA) ** self.grad_updates) if self.grad_updates else None
        self.grad_ema += GRAD_EMA * (squared - self.grad_ema)
        self.grad_updates += 1
        return None if ema is None else squared / (ema + EPS)

    def choose(self, logits: torch.Tensor, labels: torch.Tensor, classifier: nn.Linear) -> int:
        """How many leading layers this batch freezes."""
        self.batches += 1
        if self.batches <= WARMUP_BATCHES:
            return 0
        s = self.informativeness(logits, labels, classifier)
        frozen = 0 if s is None else int(np.argmax(self.scores(s)))
        if self.rng.random() < self.unfreeze_rate:
            frozen = 0
        if frozen:
            self.frozen_batches += 1
            self.frozen_layers_total += frozen
        return frozen

    def decision_flops(self, rows: int, classes: int, features: int) -> float:
        """Softmax, `G` (rows·classes·features MACs) and its squared norm; none during warm-up."""
        if self.batches <= WARMUP_BATCHES:
            return 0.0
        return float(rows * (classes * features + features + 3 * classes))

    def observe_gradients(self, first_layer: int, layer_grads: Sequence[Sequence[torch.Tensor]]) -> float:
        """Update the Fisher traces of layers `first_layer..` (one list of gradients per layer,
        the classifier's ignored) from an unfrozen batch — all layers at once in a learner, one
        stage's share in a pipeline, whose stages back-propagate at different times. FLOPs."""
        stop = min(first_layer + len(layer_grads), len(self.fisher))
        if stop <= first_layer:
            return 0.0
        traces, elements = np.zeros(stop - first_layer), 0
        with torch.no_grad():
            sums = {}
            for index, grads in enumerate(layer_grads[: stop - first_layer]):
                if grads:
                    elements += sum(g.numel() for g in grads)
                    clamped = torch._foreach_clamp_min(torch._foreach_clamp_max(list(grads), 1.0), -1.0)
                    sums[index] = torch.stack(torch._foreach_norm(clamped)).pow(2).sum()
            if sums:
                traces[list(sums)] = torch.stack(list(sums.values())).double().cpu().numpy()
        fisher = self.fisher[first_layer:stop]
        fisher += FISHER_EMA * (traces - fisher)
        return 2.0 * elements

    def state_dict(self) -> dict[str, Any]:
        """Everything a later decision depends on (copies; the generator by its state)."""
        return {
            "fisher": self.fisher.copy(),
            "grad_ema": self.grad_ema,
            "grad_updates": self.grad_updates,
            "batches": self.batches,
            "frozen_batches": self.frozen_batches,
            "frozen_layers_total": self.frozen_layers_total,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` of a freezing over a model of the same layers."""
        fisher = np.asarray(state["fisher"], dtype=np.float64)
        if fisher.shape != self.fisher.shape:
            raise ValueError(f"freezing state of {len(fisher) + 1} layers, this model has {len(self.fisher) + 1}")
        self.fisher = fisher.copy()
        self.grad_ema = float(state["grad_ema"])
        self.grad_updates = int(state["grad_updates"])
        self.batches = int(state["batches"])
        self.frozen_batches = int(state["frozen_batches"])
        self.frozen_layers_total = int(state["frozen_layers_total"])
        self.rng.bit_generator.state = state["rng"]

    def details(self) -> dict[str, float]:
        batches = max(self.batches, 1)
        return {
            "frozen_step_fraction": self.frozen_batches / batches,
            "mean_frozen_layers": self.frozen_layers_total / batches,
        }
