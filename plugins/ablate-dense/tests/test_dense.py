"""ablate-dense: dense-vgg's connectivity, parameter counts, and that it trains."""

import json
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from ablate.models import build_model, count_params
from ablate.registry import AblateError
from ablate.testing import check_architecture

ablate_dense = pytest.importorskip("ablate_dense", reason="pip install -e plugins/ablate-dense")
from ablate_dense.model import DenseStage, extra_params  # noqa: E402


@pytest.fixture
def plugin(register_plugin, fresh_plugins):
    register_plugin(ablate_dense, name="dense")
    return fresh_plugins


pytestmark = pytest.mark.usefixtures("plugin")


@pytest.mark.parametrize("blocks,width", [(0, 32), (1, 8), (2, [4, 8, 12]), (5, 32), (5, [8, 16, 32])])
@pytest.mark.parametrize("norm", ["none", "bn"])
def test_parameter_count_is_the_vggs_plus_the_joins(blocks, width, norm):
    widths = [width] * 3 if isinstance(width, int) else width
    vgg = count_params(build_model("vgg", blocks_per_stage=blocks, width=width, norm=norm))
    dense = count_params(build_model("dense-vgg", blocks_per_stage=blocks, width=width, norm=norm))
    assert dense == vgg + extra_params(blocks, widths)
    assert extra_params(blocks, widths) == sum(w * w * k for w in widths for k in range(2, blocks + 2))
    assert count_params(build_model("dense-vgg-sum", blocks_per_stage=blocks, width=width, norm=norm)) == vgg


def test_default_is_vgg38_shaped_with_61440_join_parameters():
    assert count_params(build_model("dense-vgg")) == 336_196 + 61_440 == 397_636
    assert count_params(build_model("dense-vgg", norm="bn")) == 399_940
    assert count_params(build_model("dense-vgg", blocks_per_stage=0)) == 59_716  # no joins: VGG08
    vgg14 = count_params(build_model("vgg", depth=14, width=8))
    assert count_params(build_model("dense-vgg", depth=14, width=8)) == vgg14 + 3 * 8 * 8 * 2


@pytest.mark.parametrize("mode", ["concat", "sum"])
@pytest.mark.parametrize("norm,shortcut", [("bn", "none"), ("none", "none"), ("bn", "identity"), ("bn", "proj")])
def test_forward_backward(mode, norm, shortcut):
    check_architecture("dense-vgg", norm=norm, shortcut=shortcut, mode=mode, blocks_per_stage=2, width=[4, 8, 8])


def test_concat_stage_feeds_every_block_all_earlier_features():
    torch.manual_seed(0)
    model = build_model("dense-vgg", blocks_per_stage=3, width=4, norm="bn", num_classes=3).eval()
    stage: DenseStage = model.stages[0]
    assert [j.in_channels for j in stage.joins] == [8, 12, 16]
    x = torch.randn(2, 4, 8, 8)
    b = stage.blocks
    y1 = b[0](x)
    y2 = b[1](stage.joins[0](torch.cat([x, y1], 1)))
    y3 = b[2](stage.joins[1](torch.cat([x, y1, y2], 1)))
    expected = stage.down(stage.joins[2](torch.cat([x, y1, y2, y3], 1)))
    assert torch.allclose(stage(x), expected)


def test_sum_stage_adds_every_earlier_feature():
    torch.manual_seed(0)
    model = build_model("dense-vgg-sum", blocks_per_stage=3, width=4, norm="bn", num_classes=3).eval()
    stage: DenseStage = model.stages[0]
    x = torch.randn(2, 4, 8, 8)
    b = stage.blocks
    y1 = b[0](x)
    y2 = b[1](x + y1)
    y3 = b[2](x + y1 + y2)
    assert torch.allclose(stage(x), stage.down(x + y1 + y2 + y3), atol=1e-6)


def test_options_are_checked():
    with pytest.raises(AblateError, match="model dense-vgg: .*mode must be one of concat, sum"):
        build_model("dense-vgg", mode="cat")
    with pytest.raises(AblateError, match="depth 9 is not reachable"):
        build_model("dense-vgg", depth=9)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = build_model("dense-vgg", blocks_per_stage=2, width=8, norm="bn", num_classes=4)
    x, y = torch.randn(16, 3, 16, 16), torch.arange(16) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_installed_entry_point_and_describe():
    from ablate.plugins import load_plugins

    info = load_plugins(disabled=[], strict=True).info["dense"]
    assert info.error is None and info.components == {"architectures": ["dense-vgg", "dense-vgg-sum"]}
    out = subprocess.run([sys.executable, "-m", "ablate", "describe", "dense-vgg", "--norm", "bn", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    described = json.loads(out.stdout)
    assert (described["params"], described["weight_layers"]) == (399_940, 38 + 15)


def test_entry_norm_reaches_the_entry_block():
    assert isinstance(build_model("dense-vgg").entry[1], torch.nn.BatchNorm2d)
    plain = build_model("dense-vgg", norm="none", entry_norm="same")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert count_params(plain) == 397_636 - 2 * 32
