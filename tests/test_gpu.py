"""GPU checks: skipped on machines without CUDA (CI has none); run them on the device machine."""

import pytest
import torch

from explorer.analysis.complexity import time_forward
from explorer.models.cost import check_fits
from explorer.device import resolve_device
from explorer.models import build_model

pytestmark = pytest.mark.gpu


def test_auto_picks_cuda_and_models_agree_with_the_cpu():
    assert resolve_device("auto").type == "cuda"
    model = build_model("cifar-resnet56").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        got = model.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)


def test_timing_and_memory_check_on_cuda():
    timings = time_forward("resnet50", [1, 32], "cuda", warmup=3, repeats=5)
    assert timings[1] > 0 and timings[32] > 0
    with pytest.raises(ValueError, match="needs about"):
        check_fits("vgg19", 65_536, "cuda")
