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

from collections.abc import Sequence

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
        layer_flops: Sequence[float] = (),
    ) -> None:
        self.model = model
        self.ledger = ledger if ledger is not None else ByteLedger()
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._named_params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.optimizer = optimizer.validate().build(self._params)
        context = AlgorithmContext(num_classes, bytes_per_sample, self.ledger, rng, optimizer.lr, tuple(layer_flops))
        self.algorithm: OCLAlgorithm = build_algorithm(algorithm, context)
        self.version = 0
        # (input bytes, activation bytes) per step kind, measured the first time a kind is seen.
        self._step_bytes: dict[tuple[torch.Size, bool, bool], tuple[int, int]] = {}
        self._gradient_bytes = tensor_bytes(*self._params)
        self._suffix: dict[int, tuple[list[nn.Parameter], int]] = {}
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
        batch_rows: int | None = None,
    ) -> TrainBatch:
        return self.algorithm.observe(
            self.model, x, y, weight=weight, num_new=num_new, task=task, batch_rows=batch_rows
        )

    def apply(self, batch: TrainBatch) -> torch.Tensor:
        """Train on `batch`; return the detached logits of its new rows from before the update.

        When the algorithm freezes layers `0..n-1` for this batch (`frozen_layers`, aL-SAR),
        the backward runs only into the parameters of layers `n..` (`torch.autograd.backward`
        with `inputs=`), so autograd executes no backward op of the frozen prefix; their
        parameters get no gradient, and `torch.optim` skips a parameter without one — no
        update, no momentum or Adam moment moves, no step count. `batch.frozen_layers` records n.
        """
        ledger, x, y, algorithm = self.ledger, batch.x, batch.y, self.algorithm
        # What autograd saves depends on the batch shape and on which loss terms are active.
        key = (x.shape, batch.teacher_logits is not None, algorithm.has_penalty())
        sizes = self._step_bytes.get(key)
        with algorithm.training_forward(self.model):
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
        frozen = batch.frozen_layers = algorithm.frozen_layers(self.model, logits, batch)
        params, gradient_bytes = self._trainable_from(frozen)
        self.optimizer.zero_grad(set_to_none=True)
        if frozen:
            torch.autograd.backward(loss, inputs=params)
        else:
            loss.backward()
        ledger.alloc("gradients", gradient_bytes)
        algorithm.after_backward(self.model, batch)
        self.optimizer.step()
        if self.version == 0:
            ledger.set("optimizer", optimizer_state_bytes(self.optimizer))
        ledger.free("gradients", gradient_bytes)
        ledger.free("activations", activation_bytes)
        ledger.free("inputs", input_bytes)
        algorithm.after_update(self.model, batch)
        self.version += 1
        logits = logits.detach()
        return logits if batch.num_new == batch.rows else logits[: batch.num_new]

    def _trainable_from(self, layer: int) -> tuple[list[nn.Parameter], int]:
        """The trainable parameters of layers `layer..` (all of them for 0) and their bytes."""
        if layer == 0:
            return self._params, self._gradient_bytes
        cached = self._suffix.get(layer)
        if cached is None:
            layers = self.model.layers[layer:]  # type: ignore[index]
            params = [p for module in layers for p in module.parameters() if p.requires_grad]
            cached = self._suffix[layer] = (params, tensor_bytes(*params))
        return cached

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
