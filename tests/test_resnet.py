"""He et al.'s CIFAR ResNets, composed from the norm and shortcut registries."""

import itertools
import json

import pytest
import torch

from ablate.models import build_model, count_params
from ablate.models.shortcuts import ZeroPadShortcut
from ablate.recipe import load_recipe
from ablate.registry import AblateError

HE_ET_AL = [  # 10 classes unless said otherwise
    ("resnet20", "zeropad", 10, 269_722),
    ("resnet20", "proj", 10, 272_474),
    ("resnet32", "zeropad", 10, 464_154),
    ("resnet56", "zeropad", 10, 853_018),
    ("resnet110", "zeropad", 10, 1_727_962),
    ("resnet20", "zeropad", 100, 275_572),
]


@pytest.mark.parametrize("arch,shortcut,classes,params", HE_ET_AL)
def test_parameter_counts_match_he_et_al(arch, shortcut, classes, params):
    assert count_params(build_model(arch, norm="bn", shortcut=shortcut, num_classes=classes)) == params


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_nets_count_as_option_a_and_have_6n_plus_2_weight_layers(depth):
    plain = build_model(f"resnet{depth}", norm="bn", shortcut="none", num_classes=10)
    assert count_params(plain) == count_params(build_model("resnet", depth=depth, norm="bn", shortcut="zeropad", num_classes=10))
    assert sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in plain.modules()) == depth


def test_shortcut_semantics_on_the_downsampling_blocks():
    """Blocks 3 and 6 of resnet20 change width and stride: none there for identity, option A for zeropad."""
    kinds = {}
    for shortcut in ("none", "identity", "zeropad", "proj"):
        blocks = build_model("resnet20", norm="bn", shortcut=shortcut).blocks
        kinds[shortcut] = [type(b.shortcut).__name__ for b in blocks]
    assert kinds["none"] == ["NoneType"] * 9
    assert kinds["identity"] == ["Identity"] * 3 + ["NoneType"] + ["Identity"] * 2 + ["NoneType"] + ["Identity"] * 2
    assert kinds["zeropad"] == [k if k == "Identity" else "ZeroPadShortcut" for k in kinds["identity"]]
    assert kinds["proj"] == [k if k == "Identity" else "Sequential" for k in kinds["identity"]]
    down = build_model("resnet20", norm="bn", shortcut="zeropad").blocks[3]
    assert isinstance(down.shortcut, ZeroPadShortcut) and down.conv1.stride == (2, 2)
    assert down(torch.randn(2, 16, 32, 32)).shape == (2, 32, 16, 16)


@pytest.mark.parametrize("arch", ["resnet20", "resnet56"])
def test_every_norm_and_shortcut_with_the_plugins_trains_a_step(installed_plugins, arch):
    """Each pair (at width 4, 8, 16 to stay fast) gets finite gradients everywhere and a finite loss after a step."""
    norms, shortcuts = installed_plugins["norms"].names(), installed_plugins["shortcuts"].names()
    assert {"gn", "ln"} <= set(norms) and "rezero" in shortcuts  # the first-party plugins take part
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    for norm, shortcut in itertools.product(norms, shortcuts):
        model = build_model(arch, norm=norm, shortcut=shortcut, num_classes=10, width=4)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), (norm, shortcut)
        optimizer.step()
        assert torch.isfinite(torch.nn.functional.cross_entropy(model(x), y)), (norm, shortcut)


def test_rezero_merges_on_the_processing_blocks(installed_plugins):
    model = build_model("resnet20", norm="bn", shortcut="rezero", num_classes=10)
    merged = [b for b in model.blocks if hasattr(b.shortcut, "merge")]
    assert len(merged) == 7
    x = torch.randn(2, 16, 32, 32)
    assert torch.equal(model.blocks[0].eval()(x), torch.relu(x))  # alpha = 0: the block starts as the identity


def test_options_activation_width_and_depth():
    leaky = build_model("resnet", depth=8, width=[4, 8, 12], activation="leaky_relu", norm="bn", num_classes=3)
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in leaky.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in leaky.modules())
    assert leaky.classifier.in_features == 12 and leaky(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert build_model("resnet", width=4).classifier.in_features == 16  # one int doubles per stage


def test_bad_options_are_one_line_errors():
    with pytest.raises(AblateError, match=r"model resnet: depth 21 is not 6n \+ 2; valid: 8, 14, 20"):
        build_model("resnet", depth=21)
    with pytest.raises(AblateError, match="model resnet20: give depth or blocks_per_stage, not both"):
        build_model("resnet20", depth=56)
    with pytest.raises(AblateError, match="model resnet: activation 'gelu' is not valid; choose one of: relu, leaky_relu"):
        build_model("resnet", activation="gelu")
    with pytest.raises(AblateError, match="model resnet: width must be one positive int .* or 3 of them"):
        build_model("resnet", width=[16, 32])


def test_describe_resnet56_without_a_recipe(cli):
    result = cli("describe", "resnet56", "--norm", "bn", "--shortcut", "zeropad", "--dataset", "cifar10", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["params"] == 853_018 and info["surgery"] is None
    assert (info["arch"], info["norm"], info["shortcut"]) == ("resnet56", "bn", "zeropad")
    small = cli("describe", "resnet", "--set", "model.depth=8", "--set", "model.width=4", "--dataset", "synthetic",
                "--set", "data.num_classes=5", "--json")
    assert small.returncode == 0, small.stderr
    assert json.loads(small.stdout)["layers"][-1]["output_shape"] == [5]


def test_the_resnet_recipe_is_he_et_als_six_arms():
    arms = load_recipe("resnet-shortcuts")
    assert [(a.name, a.config["model"]["arch"], a.config["model"]["shortcut"]) for a in arms] == [
        ("Plain-20", "resnet20", "none"), ("ResNet-20 A", "resnet20", "zeropad"), ("ResNet-20 B", "resnet20", "proj"),
        ("Plain-56", "resnet56", "none"), ("ResNet-56 A", "resnet56", "zeropad"), ("ResNet-56 B", "resnet56", "proj")]
    for arm in arms:
        assert arm.config["model"]["norm"] == "bn" and arm.config["data"]["dataset"] == "cifar10"
        assert {k: arm.config["train"][k] for k in ("optimizer", "lr", "weight_decay", "batch_size")} == {
            "optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4, "batch_size": 128}


@pytest.mark.slow
def test_the_resnet_recipe_runs_offline_end_to_end(cli, tmp_path):
    tiny = ["--dataset", "synthetic", "--set", "data.num_classes=4", "--set", "data.train_size=32", "--set",
            "data.val_size=16", "--set", "data.test_size=16", "--epochs", "1", "--set", "model.width=2",
            "--set", "train.threads=1", "-q"]
    result = cli("run", "resnet-shortcuts", *tiny, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "resnet-shortcuts").glob("*/summary.json")]
    assert sorted((s["arch"], s["shortcut"], s["status"]) for s in summaries) == sorted(
        (arch, shortcut, "complete") for arch in ("resnet20", "resnet56") for shortcut in ("none", "zeropad", "proj"))
    assert "ResNet56 BN+RC(proj)" in (tmp_path / "runs" / "resnet-shortcuts" / "report.md").read_text()
