import itertools
import json

import pytest
import torch

from ablate.models import build_model, count_params
from ablate.plugins import registry
from ablate.registry import AblateError

TABLE_1 = [
    ("vgg08", "none", "none", 59_716),
    ("vgg38", "none", "none", 336_196),
    ("vgg38", "bn", "none", 338_500),
    ("vgg38", "none", "identity", 336_196),
    ("vgg38", "bn", "identity", 338_500),
]


@pytest.mark.parametrize("arch,norm,shortcut,params", TABLE_1)
def test_parameter_counts_match_table_1(arch, norm, shortcut, params):
    assert count_params(build_model(arch, norm=norm, shortcut=shortcut)) == params


def test_vgg38_has_38_weight_layers():
    model = build_model("vgg38")
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 38


def test_projection_adds_a_1x1_conv_and_norm_per_downsampling_block():
    plain = count_params(build_model("vgg38", norm="bn", shortcut="identity"))
    proj = count_params(build_model("vgg38", norm="bn", shortcut="proj"))
    assert proj - plain == 3 * (32 * 32 + 2 * 32)
    assert count_params(build_model("vgg38", norm="bn", shortcut="zeropad")) == plain


@pytest.mark.parametrize("depth", [8, 14, 38])
@pytest.mark.parametrize("width", [8, [4, 8, 12]])
def test_forward_backward_every_norm_and_shortcut(depth, width):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for norm, shortcut in itertools.product(registry("norms").names(), registry("shortcuts").names()):
        model = build_model("vgg", depth=depth, width=width, norm=norm, shortcut=shortcut, num_classes=5)
        out = model(x)
        assert out.shape == (2, 5)
        out.square().mean().backward()
        first = model.entry[0].weight.grad
        assert first is not None and torch.isfinite(first).all(), (norm, shortcut)


def test_zeropad_and_proj_carry_signal_across_channel_growth():
    x = torch.randn(2, 3, 32, 32)
    for shortcut in ("zeropad", "proj"):
        model = build_model("vgg", depth=8, width=[4, 8, 16], shortcut=shortcut, num_classes=3)
        down = model.blocks[0]
        assert down.shortcut is not None
        assert down.shortcut(torch.randn(2, 4, 32, 32)).shape == (2, 8, 16, 16)
        assert model(x).shape == (2, 3)


def test_identity_has_no_shortcut_across_downsampling():
    model = build_model("vgg38", shortcut="identity")
    shortcuts = [b.shortcut for b in model.blocks]
    assert sum(s is None for s in shortcuts) == 3
    assert sum(isinstance(s, torch.nn.Identity) for s in shortcuts) == 15


def test_bad_model_options_are_one_line_errors():
    with pytest.raises(AblateError, match="model vgg: depth 9 is not reachable with 3 stages; valid: 8, 14, 20"):
        build_model("vgg", depth=9)
    with pytest.raises(AblateError, match="model vgg08: give depth or blocks_per_stage, not both"):
        build_model("vgg08", depth=38)
    with pytest.raises(AblateError, match="model vgg: width must be one positive int or 3 of them"):
        build_model("vgg", width=0)


def test_timm_models_are_built_offline():
    model = build_model("timm:resnet18", num_classes=10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_the_entry_block_keeps_batchnorm_by_default_and_follows_entry_norm():
    assert [type(m) for m in build_model("vgg38").entry] == [torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.LeakyReLU]
    assert len(batch_norms(build_model("vgg38", entry_norm="bn"))) == 1
    plain = build_model("vgg38", norm="none", entry_norm="same")
    assert batch_norms(plain) == [] and count_params(plain) == 336_196 - 2 * 32
    assert len(batch_norms(build_model("vgg38", norm="bn", entry_norm="none"))) == 36


def test_entry_norm_is_checked_and_recorded_in_the_recipe(register_plugin):
    from ablate.hookspecs import hookimpl
    from ablate.recipe import resolve
    from ablate.registry import RecipeError

    class Probe:
        @hookimpl
        def register_norms(self, register):
            register("probe_frn", lambda c: torch.nn.GroupNorm(1, c))

        @hookimpl
        def register_architectures(self, register):
            register("tiny", lambda *, norm, shortcut, num_classes, in_channels: torch.nn.Flatten())

    register_plugin(Probe(), name="probe", version="0.3", distribution="ablate-probe")
    arm = resolve({"model": {"arch": "vgg38", "entry_norm": "probe_frn"}}, "r.toml", {})[0]
    assert arm.config["required_plugins"] == ["ablate-probe>=0.3"]
    with pytest.raises(RecipeError, match=r"^r.toml: model.entry_norm = 'bnn': choose 'same' \(follow model.norm\) "
                                          r"or a norm: bn \(ablate\), none \(ablate\), probe_frn \(probe\)$"):
        resolve({"model": {"arch": "vgg38", "entry_norm": "bnn"}}, "r.toml", {})
    with pytest.raises(RecipeError, match="unknown key 'model.entry_norm' for architecture 'tiny'"):
        resolve({"model": {"arch": "tiny", "entry_norm": "same"}}, "r.toml", {})


def test_describe_shows_no_batchnorm_with_entry_norm_same_and_no_norm(cli):
    plain = cli("describe", "vgg38", "--norm", "none", "--set", "model.entry_norm=same", "--json")
    assert plain.returncode == 0, plain.stderr
    info = json.loads(plain.stdout)
    assert [layer["type"] for layer in info["layers"]].count("BatchNorm2d") == 0 and info["params"] == 336_132
    default = json.loads(cli("describe", "vgg38", "--norm", "none", "--json").stdout)
    assert [layer["type"] for layer in default["layers"]].count("BatchNorm2d") == 1 and default["params"] == 336_196
