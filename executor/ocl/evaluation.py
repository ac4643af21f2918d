"""Held-out evaluation during a run: correct test predictions per group.

A group is a class, or a (domain, class) cell when the stream labels its test rows with the
domain they belong to (`Stream.test_task`, domain-incremental streams). Test accuracy on what
was seen so far, A_AUC, A_last and forgetting (SPEC §9) are all functions of these counts and
of which groups the stream had shown. Results are cached by the learner's update count:
between two updates the model is the same, so is its evaluation.
"""

from __future__ import annotations

import numpy as np
import torch

from executor.data import Stream
from executor.ocl.learner import Learner


class Evaluator:
    """Counts correct test-set predictions per group (class, or domain × class) for one run.

    Built from the stream and the device; results are cached per learner update count, so repeated
    checkpoints between two updates cost nothing.
    """

    def __init__(self, stream: Stream, device: torch.device) -> None:
        dataset = stream.dataset
        classes = dataset.num_classes
        domain = stream.test_task
        self.num_domains = int(domain.max()) + 1 if domain is not None and len(domain) else 1
        self.num_groups = classes * self.num_domains
        group = dataset.y_test if domain is None else domain * classes + dataset.y_test
        self.x = torch.from_numpy(dataset.x_test).to(device)
        self.y = torch.from_numpy(dataset.y_test).to(device)
        self.group = torch.from_numpy(np.asarray(group, dtype=np.int64)).to(device)
        self.group_total = np.bincount(group, minlength=self.num_groups).astype(np.int64)
        self.first_seen = self._first_seen(stream, classes, domain is not None)
        self._cached_version = -1
        self._cached = np.zeros(self.num_groups, dtype=np.int64)

    def _first_seen(self, stream: Stream, classes: int, by_domain: bool) -> np.ndarray:
        """Per group, the stream position at which it is first shown (`len(stream)` if never):
        a group is seen after `c` arrivals iff `first_seen < c`."""
        n = len(stream)
        first_class = np.full(classes, n, dtype=np.int64)
        labels, positions = np.unique(stream.labels, return_index=True)
        first_class[labels] = positions
        first_domain = np.zeros(self.num_domains, dtype=np.int64)
        if by_domain:
            first_domain[:] = n
            tasks, positions = np.unique(stream.task, return_index=True)
            known = tasks < self.num_domains
            first_domain[tasks[known]] = positions[known]
        return np.maximum(first_domain[:, None], first_class[None, :]).reshape(-1)

    def seen_after(self, arrivals: int) -> np.ndarray:
        return self.first_seen < arrivals

    def group_correct(self, learner: Learner) -> np.ndarray:
        """Correct test predictions per group of the learner's model as it is now."""
        if learner.version != self._cached_version:
            if len(self.y):
                hits = learner.predict(self.x) == self.y
                counts = torch.bincount(self.group[hits], minlength=self.num_groups)
                self._cached = counts.cpu().numpy().astype(np.int64)
            self._cached_version = learner.version
        return self._cached.copy()
