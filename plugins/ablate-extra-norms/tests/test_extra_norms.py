"""ablate-extra-norms: the gn and ln norms, and the rezero shortcut."""

import pytest
import torch
from torch import nn

from ablate.models import build_model, count_params
from ablate.testing import check_architecture, check_norm, check_shortcut

ablate_extra_norms = pytest.importorskip("ablate_extra_norms", reason="pip install -e plugins/ablate-extra-norms")
from ablate_extra_norms import groups_for, rezero  # noqa: E402
from ablate_extra_norms.skip import ReZero  # noqa: E402


@pytest.fixture
def plugin(register_plugin, fresh_plugins):
    register_plugin(ablate_extra_norms, name="extra-norms")
    return fresh_plugins


@pytest.mark.parametrize("channels,groups", [(64, 32), (32, 32), (48, 24), (24, 24), (40, 20), (8, 8), (1, 1)])
def test_gn_uses_the_largest_divisor_up_to_32_groups(channels, groups):
    assert groups_for(channels) == groups
    module = check_norm(ablate_extra_norms.group_norm, channels)
    assert isinstance(module, nn.GroupNorm) and module.num_groups == groups


def test_ln_is_groupnorm_with_one_group_over_c_h_w():
    module = check_norm(ablate_extra_norms.layer_norm, 8)
    assert isinstance(module, nn.GroupNorm) and module.num_groups == 1
    x = torch.randn(2, 8, 4, 4)
    expected = nn.functional.layer_norm(x, x.shape[1:])
    assert torch.allclose(module(x), expected, atol=1e-5)


def test_rezero_is_an_identity_skip_on_processing_blocks_only():
    modules = check_shortcut(rezero)
    assert isinstance(modules["processing"], ReZero) and modules["downsampling"] is None
    assert rezero(8, 8, 2, nn.BatchNorm2d) is None


def test_rezero_merge_starts_as_the_identity_and_learns_alpha():
    gate = ReZero()
    skip, residual = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    assert gate.alpha.item() == 0.0
    assert torch.equal(gate.merge(gate(skip), residual), skip)
    gate.merge(skip, residual).sum().backward()
    assert torch.allclose(gate.alpha.grad, residual.sum())
    with torch.no_grad():
        gate.alpha.fill_(0.5)
    assert torch.allclose(gate.merge(skip, residual), skip + 0.5 * residual)


@pytest.mark.usefixtures("plugin")
@pytest.mark.parametrize("norm,shortcut", [("gn", "none"), ("ln", "identity"), ("none", "rezero"), ("gn", "rezero")])
def test_vgg_trains_forward_and_backward_with_each_component(norm, shortcut):
    check_architecture("vgg", norm=norm, shortcut=shortcut, depth=14, width=8)


@pytest.mark.usefixtures("plugin")
def test_parameter_counts_on_vgg38():
    base = count_params(build_model("vgg38", norm="bn"))
    assert base == 338_500
    assert count_params(build_model("vgg38", norm="gn")) == base
    assert count_params(build_model("vgg38", norm="ln")) == base
    plain = count_params(build_model("vgg38"))
    assert count_params(build_model("vgg38", shortcut="rezero")) == plain + 15 == 336_211


@pytest.mark.usefixtures("plugin")
def test_rezero_network_starts_as_its_plain_skips():
    model = build_model("vgg", depth=14, width=8, shortcut="rezero", num_classes=3)
    gates = [b.shortcut for b in model.blocks if b.shortcut is not None]
    assert len(gates) == 3 and all(isinstance(g, ReZero) for g in gates)
    x = torch.randn(2, 8, 32, 32)
    block = model.blocks[0]
    assert torch.equal(block(x), block.act2(x))


def test_installed_entry_point_registers_every_component(installed_plugins):
    info = installed_plugins.info["extra-norms"]
    assert info.error is None and info.distribution == "ablate-extra-norms"
    assert info.components == {"norms": ["gn", "ln"], "shortcuts": ["rezero"]}
