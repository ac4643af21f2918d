"""`Learner`: one model, its optimizer and an OCL algorithm, with an exact byte ledger.

A step has two halves so that a virtual-time loop can cost it before running it:
`prepare(...)` lets the algorithm assemble the batch (and reports what the step will cost);
`apply(batch)` runs forward, loss (+ penalty), backward and the optimizer step. Nothing may
touch the model between the two, so preparing at the step's start and applying at its end is
the same computation as doing both at once.

The ledger holds what the learner stores: "weights", "optimizer" (after the first step),
the algorithm's state, and during a step the batch "inputs", the "activations" autograd saves
for backward (measured with saved-tensor hooks once per batch shape and set of active loss
terms, parameters excluded) and
the "gradients". The batch ("inputs": its rows and labels) is charged at the model's dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from executor.ledger import ByteLedger, module_bytes, optimizer_state_bytes, tensor_bytes
from executor.ocl.algorithms import AlgorithmConfig, AlgorithmContext, OCLAlgorithm, build_algorithm
from executor.ocl.batch import TrainBatch
from executor.ocl.modes import eval_mode
from executor.stage.optim import OptimizerConfig

PREDICT_CHUNK = 1024


class Learner:
    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        algorithm: AlgorithmConfig,
        *,
        num_classes: int,
        bytes_per_sample: int,
        rng: np.random.Generator,
        ledger: ByteLedger | None = None,
    ) -> None:
        self.model = model
        self.ledger = ledger if ledger is not None else ByteLedger()
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._named_params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.optimizer = optimizer.validate().build(self._params)
        context = AlgorithmContext(num_classes, bytes_per_sample, self.ledger, rng, optimizer.lr)
        self.algorithm: OCLAlgorithm = build_algorithm(algorithm, context)
        self.version = 0
        # (input bytes, activation bytes) per step kind, measured the first time a kind is seen.
        self._step_bytes: dict[tuple[torch.Size, bool, bool], tuple[int, int]] = {}
        self._gradient_bytes = tensor_bytes(*self._params)
        self._param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.ledger.set("weights", module_bytes(model))
        model.train()

    def prepare(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        weight: torch.Tensor | None = None,
        num_new: int | None = None,
        task: int = 0,
    ) -> TrainBatch:
        return self.algorithm.observe(self.model, x, y, weight=weight, num_new=num_new, task=task)

    def apply(self, batch: TrainBatch) -> torch.Tensor:
        """Train on `batch`; return the detached logits of its new rows from before the update."""
        ledger, x, y = self.ledger, batch.x, batch.y
        # What autograd saves depends on the batch shape and on which loss terms are active.
        key = (x.shape, batch.teacher_logits is not None, self.algorithm.has_penalty())
        sizes = self._step_bytes.get(key)
        if sizes is None:
            excluded = self._param_storages | {x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()}
            with SavedTensorMeter(excluded) as meter:
                logits = self.model(x)
                loss = self._loss(logits, batch)
            sizes = self._step_bytes[key] = (tensor_bytes(x, y), meter.bytes)
        else:
            logits = self.model(x)
            loss = self._loss(logits, batch)
        input_bytes, activation_bytes = sizes
        ledger.alloc("inputs", input_bytes)
        ledger.alloc("activations", activation_bytes)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ledger.alloc("gradients", self._gradient_bytes)
        self.optimizer.step()
        if self.version == 0:
            ledger.set("optimizer", optimizer_state_bytes(self.optimizer))
        ledger.free("gradients", self._gradient_bytes)
        ledger.free("activations", activation_bytes)
        ledger.free("inputs", input_bytes)
        self.algorithm.after_update(self.model, batch)
        self.version += 1
        logits = logits.detach()
        return logits if batch.num_new == batch.rows else logits[: batch.num_new]

    def _loss(self, logits: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
        loss = self.algorithm.loss(logits, batch)
        if not self.algorithm.has_penalty():
            return loss
        penalty = self.algorithm.penalty(self._named_params)
        return loss if penalty is None else loss + penalty

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode class predictions of the model as it is now."""
        with eval_mode(self.model):
            return torch.cat([self.model(chunk).argmax(dim=1) for chunk in x.split(PREDICT_CHUNK)])

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode penultimate features (the classifier's input), one row per input."""
        features = getattr(self.model, "features", None)
        if features is None:
            raise TypeError("the learner's model has no features(x) method (a LayeredModel does)")
        with eval_mode(self.model):
            return torch.cat([features(chunk) for chunk in x.split(PREDICT_CHUNK)])


class SavedTensorMeter:
    """Bytes of the distinct tensors autograd saves for backward.

    Tensors living in an excluded storage (parameters, the batch itself) are not counted; a
    tensor saved twice (a ReLU output that is also the next layer's input) counts once.
    """

    def __init__(self, exclude_storages: set[int]) -> None:
        self.bytes = 0
        self._exclude = exclude_storages
        self._seen: set[tuple[int, int]] = set()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = (tensor.data_ptr(), tensor.numel())
        if key not in self._seen and tensor.untyped_storage().data_ptr() not in self._exclude:
            self._seen.add(key)
            self.bytes += tensor.numel() * tensor.element_size()
        return tensor

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
