"""Norm and shortcut surgery on timm models: what the flags do, what they leave alone, what they refuse."""

import json
from collections import Counter

import pytest
import timm
import torch
from timm.layers import BatchNormAct2d
from torch import nn

from ablate import rundir
from ablate.models import build_model, count_params
from ablate.models.surgery import NoNorm, NormAct, NoShortcut, SurgeryRefused, replace_norms
from ablate.models.timm import surgery_of
from ablate.recipe import resolve
from ablate.registry import RecipeError

X = torch.randn(2, 3, 32, 32)


def types(model: nn.Module) -> Counter:
    return Counter(type(m).__name__ for m in model.modules())


def test_without_a_flag_the_model_is_exactly_timms():
    torch.manual_seed(0)
    ours = build_model("timm:resnet18", num_classes=10)
    torch.manual_seed(0)
    theirs = timm.create_model("resnet18", pretrained=False, num_classes=10)
    assert surgery_of(ours) is None and types(ours) == types(theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert resolve({"model": {"arch": "timm:resnet18"}}, "t", {})[0].config["model"]["norm"] == "keep"


@pytest.mark.parametrize("arch", ["timm:resnet18", "timm:efficientnet_b0"])
def test_bn_to_bn_is_bit_identical(arch):
    """Identity surgery: BatchNorm2d (resnet18) and BatchNormAct2d (efficientnet_b0) replaced by BN."""
    torch.manual_seed(0)
    kept = build_model(arch, num_classes=10)
    torch.manual_seed(0)
    swapped = build_model(arch, norm="bn", num_classes=10)
    assert "BatchNorm2d" in surgery_of(swapped) and not any(type(m) is BatchNormAct2d for m in swapped.modules())
    assert torch.equal(kept(X), swapped(X))
    assert torch.equal(kept.eval()(X), swapped.eval()(X))


def test_gn_leaves_no_batchnorm_and_says_so(installed_plugins):
    model = build_model("timm:resnet18", norm="gn", num_classes=10)
    assert surgery_of(model) == "norm: 20 BatchNorm2d -> GroupNorm"
    assert types(model)["GroupNorm"] == 20 and not any("BatchNorm" in name for name in types(model))
    assert model(X).shape == (2, 10)


def test_norm_act_layers_keep_their_activation():
    model = build_model("timm:efficientnet_b0", norm="none", num_classes=10)
    replaced = [m for m in model.modules() if isinstance(m, NormAct)]
    assert surgery_of(model) == "norm: 49 BatchNormAct2d removed (activation kept)"
    assert len(replaced) == 49 and all(isinstance(m.norm, NoNorm) for m in replaced)
    assert Counter(type(m.act).__name__ for m in replaced) == {"SiLU": 33, "Identity": 16}  # as timm built them


def test_an_inplace_activation_after_a_removed_norm_leaves_its_input_alone():
    """Pre-activation and dense blocks read a norm's input again; timm's in-place act must not overwrite it."""
    x = torch.randn(2, 4, 3, 3, requires_grad=True) * 1.0
    before = x.detach().clone()
    out = NormAct(NoNorm(), nn.Identity(), nn.ReLU(inplace=True))(x)
    assert torch.equal(x, before) and torch.equal(out, before.relu())
    dpn = build_model("timm:dpn48b", norm="none", num_classes=10)  # a dual-path net: crashed in backward before
    dpn(X).square().mean().backward()


def test_shortcut_none_removes_every_residual_add():
    """The operated model equals a block-by-block plain reference: no block adds its input any more."""
    model = build_model("timm:resnet18", shortcut="none", num_classes=10).eval()
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    assert surgery_of(model) == "shortcut: 8 residual adds removed"
    assert len(blocks) == 8 and all(isinstance(b.downsample, NoShortcut) for b in blocks)
    # timm zero-inits each block's last BN (a residual block starts as the identity); a plain block must not output 0
    assert all(torch.equal(b.bn2.weight, torch.ones(b.bn2.num_features)) for b in blocks)
    assert build_model("timm:resnet18", shortcut="identity").layer1[0].bn2.weight.abs().sum() == 0  # skips kept

    def plain(block, x):
        x = block.aa(block.act1(block.drop_block(block.bn1(block.conv1(x)))))
        return block.act2(block.bn2(block.conv2(x)))

    with torch.no_grad():
        x = model.maxpool(model.act1(model.bn1(model.conv1(X))))
        for block in blocks:
            x = plain(block, x)
        reference = model.fc(model.global_pool(x))
        out = model(X)
        assert torch.allclose(out, reference, atol=1e-6, rtol=1e-5) and not torch.allclose(out[0], out[1])


def test_downsampling_shortcuts_are_set_by_the_chosen_strategy():
    identity = build_model("timm:resnet18", shortcut="identity", num_classes=10)
    assert surgery_of(identity) == "shortcut: 3 residual adds removed"
    zeropad = build_model("timm:resnet14t", shortcut="zeropad", num_classes=10)
    assert surgery_of(zeropad) == "shortcut: 4 downsampling shortcuts -> zeropad"  # bottlenecks: layer1 widens too
    assert types(zeropad)["ZeroPadShortcut"] == 4 and zeropad(X).shape == (2, 10)
    proj = build_model("timm:resnet18", shortcut="proj", num_classes=10)
    downsample = proj.layer2[0].downsample
    assert [type(m).__name__ for m in downsample] == ["Conv2d", "BatchNorm2d"] and downsample[0].kernel_size == (1, 1)
    assert count_params(proj) == count_params(build_model("timm:resnet18", num_classes=10))


def test_what_cannot_apply_is_one_line(installed_plugins):
    refusals = {
        ("timm:efficientnet_b0", "keep", "none"): "shortcut 'none' cannot apply: shortcut surgery supports timm's ResNet family",
        ("timm:vgg11", "gn", "keep"): "norm 'gn' cannot apply: the model has no normalisation layers",
        ("timm:resnet18", "keep", "rezero"): "shortcut 'rezero' cannot apply: it combines the paths with merge()",
    }
    for (arch, norm, shortcut), message in refusals.items():
        with pytest.raises(SurgeryRefused, match=f"^{arch}: {message}") as refused:
            build_model(arch, norm=norm, shortcut=shortcut)
        assert "\n" not in str(refused.value)
    with pytest.raises(RecipeError, match="model.norm = 'keep': norm 'keep' .* applies only to timm:<name> architectures"):
        resolve({"model": {"arch": "vgg08", "norm": "keep"}}, "r.toml", {})


def test_unknown_norms_are_refused_before_anything_changes():
    class ScaledBN(nn.BatchNorm2d):  # a subclass with its own behaviour is not a BatchNorm2d to replace
        pass

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), ScaledBN(8), nn.Flatten(), nn.LazyLinear(4), nn.BatchNorm1d(4))
    with pytest.raises(SurgeryRefused, match="the model has 1 ScaledBN, 1 BatchNorm1d, which norm surgery does not replace"):
        replace_norms(model, nn.Identity)
    assert type(model[1]) is nn.BatchNorm2d


def test_describe_reports_the_surgery(cli):
    done = cli("describe", "timm:resnet18", "--norm", "gn", "--shortcut", "none", "--json")  # gn: ablate-extra-norms
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["surgery"] == "norm: 20 BatchNorm2d -> GroupNorm; shortcut: 8 residual adds removed"
    assert not any("BatchNorm" in layer["type"] for layer in info["layers"])
    refused = cli("describe", "timm:mobilenetv3_small_050", "--shortcut", "zeropad")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "resnet*, resnext*, seresnet*" in refused.stderr and "not MobileNetV3" in refused.stderr


def test_the_run_summary_records_the_surgery(tmp_path):
    from ablate.train.trainer import train

    config = resolve({"model": {"arch": "timm:resnet10t", "norm": "none", "shortcut": "none"},
                      "data": {"dataset": "synthetic", "num_classes": 4, "train_size": 32, "val_size": 16, "test_size": 16},
                      "train": {"epochs": 1, "batch_size": 16, "device": "cpu"}, "gradflow": {"every": 0}}, "t", {})[0].config
    train(config, tmp_path)
    summary = rundir.read_summary(tmp_path)
    assert summary["surgery"] == "norm: 14 BatchNorm2d removed; shortcut: 4 residual adds removed"
