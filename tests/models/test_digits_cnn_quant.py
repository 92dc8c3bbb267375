"""int8 convolutions on real data: a small CNN trained here (seconds) on sklearn's bundled digits (8x8 images,
1797 samples), then compiled with int8-static (calibrated on 256 training images, min-max) and int8-dynamic. The
issue's bound: top-1 on the 497 held-out images drops by at most 0.5 points. Every conv (BatchNorm folded in) and
the classifier run as int8 kernels (named explicitly, so none stays float for speed), none through torch."""

from __future__ import annotations

import pytest
import torch

import lepton_graph

datasets = pytest.importorskip("sklearn.datasets")


class DigitsCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16)
        self.c2, self.b2 = torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32)
        self.c3 = torch.nn.Conv2d(32, 64, 3, padding=1)
        self.fc = torch.nn.Linear(64 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.max_pool2d(torch.relu(self.b2(self.c2(x))), 2)
        x = torch.max_pool2d(torch.relu(self.c3(x)), 2)
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def trained() -> tuple[DigitsCNN, torch.Tensor, torch.Tensor, list[tuple[torch.Tensor]]]:
    d = datasets.load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    train, test = perm[:1300], perm[1300:]
    torch.manual_seed(0)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(8):
        order = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(order), 64):
            b = order[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    calibration = [(x[train[i : i + 32]],) for i in range(0, 256, 32)]
    return model, x[test], y[test], calibration


def _top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == y).float().mean())


@pytest.mark.parametrize("scheme", ["int8-static", "int8-dynamic"])
def test_int8_cnn_keeps_top1(trained, scheme: str) -> None:
    model, x, y, calibration = trained
    with torch.no_grad():
        fp32 = _top1(model(x), y)
    assert fp32 >= 95.0, f"the fp32 CNN only reaches {fp32:.1f}%: training went wrong"
    kw = {"calibration": calibration} if scheme == "int8-static" else {}
    # every layer named, so every conv is int8 even where fp32 Winograd is the faster kernel (AVX2 without VNNI)
    cfg = lepton_graph.QuantConfig(scheme, layers={"*": scheme})
    q = lepton_graph.compile(model, quantize=cfg, **kw)
    got = _top1(q(x), y)
    print(f"digits CNN top-1: fp32 {fp32:.2f}%, {scheme} {got:.2f}% ({len(y)} held-out images)")
    assert got >= fp32 - 0.5
    rep = q.report().as_dict()
    layers = {layer["layer"]: layer["scheme"] for layer in rep["quantization"]["layers"]}
    assert layers == {"c1": scheme, "c2": scheme, "c3": scheme, "fc": scheme}
    assert rep["fallback_nodes"] == 0
