import pytest
import torch
from torch import nn

from executor.ledger import ByteLedger, module_bytes, optimizer_state_bytes, tensor_bytes


def test_ledger_tracks_current_and_peak():
    ledger = ByteLedger()
    ledger.alloc("weights", 100)
    ledger.alloc("activations", 50)
    ledger.free("activations", 50)
    ledger.alloc("activations", 20)
    assert ledger.current == 120
    assert ledger.peak == 150
    assert ledger.peak_of("activations") == 50
    assert ledger.snapshot() == {"activations": 20, "weights": 100}
    ledger.set("weights", 10)
    assert ledger.held("weights") == 10 and ledger.current == 30


def test_ledger_refuses_to_go_negative():
    ledger = ByteLedger()
    ledger.alloc("x", 8)
    with pytest.raises(RuntimeError, match="only 8 B are held"):
        ledger.free("x", 9)
    with pytest.raises(ValueError):
        ledger.alloc("x", -1)


def test_byte_counts_match_tensor_sizes():
    lin = nn.Linear(3, 4)  # 12 weights + 4 biases, float32
    assert module_bytes(lin) == 16 * 4
    bn = nn.BatchNorm1d(5)  # 10 params + running mean/var (10 floats) + num_batches_tracked (int64)
    assert module_bytes(bn) == 20 * 4 + 8
    assert tensor_bytes(torch.zeros(2, 3, dtype=torch.float64), None) == 48
    opt = torch.optim.Adam(lin.parameters())
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    # Adam keeps exp_avg and exp_avg_sq per parameter plus a scalar step per parameter tensor.
    assert optimizer_state_bytes(opt) == 2 * 16 * 4 + 2 * 4
