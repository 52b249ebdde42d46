"""ablate-gradamp: which gradients are amplified, by how much, and when."""

import pytest
import torch

from ablate.models import build_model
from ablate.registry import AblateError
from ablate.testing import drive_callback, train_state

ablate_gradamp = pytest.importorskip("ablate_gradamp", reason="pip install -e plugins/ablate-gradamp")
from ablate_gradamp import GradAmp, eligible_layers  # noqa: E402


@pytest.fixture
def model(fresh_plugins):
    torch.manual_seed(0)
    return build_model("vgg", depth=14, width=8, norm="bn", num_classes=3)


def backward(model):
    model.zero_grad(set_to_none=True)
    model(torch.randn(2, 3, 32, 32)).square().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def amplified_step(model, cb, epoch, config=None):
    state = train_state(model, epoch=epoch, config=config)
    cb.on_run_start(state)
    cb.on_epoch_start(state)
    before = backward(model)
    cb.on_after_backward(state)
    after = {n: p.grad for n, p in model.named_parameters()}
    return before, after


def test_layers_group_parameters_by_module(model):
    layers = eligible_layers(model, ["*"])
    assert layers["blocks.0.first.conv"] == [model.blocks[0].first.conv.weight]
    assert len(layers["blocks.0.first.norm"]) == 2 and len(layers["classifier"]) == 2
    assert len(layers) == 2 + 2 * 12 + 1  # entry conv + BN, a conv and a norm per ConvNormAct, classifier
    norms = eligible_layers(model, ["*norm*"])
    assert set(norms) == {f"blocks.{b}.{c}.norm" for b in range(6) for c in ("first", "second")}


@pytest.mark.parametrize("factor", [2.0, 0.5, 3.7])
def test_chosen_gradients_are_multiplied_exactly_and_others_untouched(model, factor):
    cb = GradAmp(factor=factor, ratio=0.3, seed=1)
    before, after = amplified_step(model, cb, epoch=1)
    modules = dict(model.named_modules())
    chosen = {f"{layer}.{n}" for layer in cb.chosen for n, _ in modules[layer].named_parameters(recurse=False)}
    assert len(cb.chosen) == round(0.3 * 27) == 8
    assert chosen
    for name, grad in after.items():
        expected = before[name] * factor if name in chosen else before[name]
        assert torch.equal(grad, expected), name


def test_the_draw_depends_only_on_seed_and_epoch(model):
    a, b = GradAmp(ratio=0.3, seed=7), GradAmp(ratio=0.3, seed=7)
    for cb in (a, b):
        cb.on_run_start(train_state(model))
    draws = [a.choose(epoch, 7) for epoch in range(1, 6)]
    assert draws == [b.choose(epoch, 7) for epoch in (1, 2, 3, 4, 5)]
    assert len({tuple(d) for d in draws}) > 1, "the set must be redrawn each epoch"
    assert draws[0] != a.choose(1, 8)


def test_seed_defaults_to_the_runs_seed(model):
    default = GradAmp(ratio=0.5)
    amplified_step(model, default, epoch=3, config={"train": {"seed": 5}})
    explicit = GradAmp(ratio=0.5, seed=5)
    amplified_step(model, explicit, epoch=3)
    assert default.chosen == explicit.chosen


def test_nothing_is_amplified_outside_the_epoch_window(model):
    cb = GradAmp(factor=4.0, ratio=1.0, start_epoch=2, end_epoch=3, seed=0)
    for epoch, active in [(1, False), (2, True), (3, True), (4, False)]:
        before, after = amplified_step(model, cb, epoch=epoch)
        changed = [n for n in after if not torch.equal(after[n], before[n])]
        assert bool(changed) is active, epoch
        assert cb.on_epoch_end(train_state(model, epoch=epoch)) == {"gradamp_layers": 27.0 if active else 0.0}


def test_glob_restricts_amplification_to_norm_layers(model):
    cb = GradAmp(factor=2.0, ratio=1.0, layers="*norm*")
    before, after = amplified_step(model, cb, epoch=1)
    for name in after:
        expected = before[name] * 2 if ".norm." in name else before[name]
        assert torch.equal(after[name], expected), name


def test_ratio_counts_round_half_up_with_at_least_one_layer(model):
    cb = GradAmp(ratio=0.01)
    cb.on_run_start(train_state(model))
    assert cb.count() == 1
    assert GradAmp(ratio=0.0).choose(1, 0) == []


def test_the_trainers_event_order_reports_one_metric_per_epoch(model):
    cb = GradAmp(ratio=0.3, end_epoch=2, seed=0)
    batches = [(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))]
    rows = drive_callback(cb, train_state(model), batches, epochs=3)
    assert rows == [{"gradamp_layers": 8.0}, {"gradamp_layers": 8.0}, {"gradamp_layers": 0.0}]


@pytest.mark.parametrize("options,message", [
    ({"ratio": 1.5}, "ratio = 1.5 must be between 0 and 1"),
    ({"start_epoch": 3, "end_epoch": 2}, "start_epoch <= end_epoch"),
])
def test_invalid_options_are_one_line_errors(options, message):
    with pytest.raises(AblateError, match=message):
        GradAmp(**options)


def test_no_matching_layer_is_an_error(model):
    with pytest.raises(AblateError, match="no trainable parameter matches"):
        GradAmp(layers="*nothing*").on_run_start(train_state(model))


def test_installed_entry_point_builds_from_a_recipe(installed_plugins, tmp_path):
    from ablate.recipe import load_recipe
    from ablate.train.callbacks import build_callbacks

    info = installed_plugins.info["gradamp"]
    assert info.error is None and info.components == {"callbacks": ["gradamp"]}
    recipe = tmp_path / "amp.toml"
    recipe.write_text('[model]\narch = "vgg08"\n\n[[callbacks]]\nname = "gradamp"\nfactor = 2.0\nlayers = "*norm*"\n')
    (cb,) = build_callbacks(load_recipe(recipe)[0].config["callbacks"])
    assert isinstance(cb, GradAmp) and (cb.factor, cb.patterns) == (2.0, ["*norm*"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_after_backward_does_not_synchronise_with_the_host(fresh_plugins):
    model = build_model("vgg", depth=14, width=8, norm="bn", num_classes=3).cuda()
    cb = GradAmp(ratio=0.5, seed=0)
    state = train_state(model, epoch=1)
    cb.on_run_start(state)
    cb.on_epoch_start(state)
    model(torch.randn(2, 3, 32, 32, device="cuda")).square().mean().backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        cb.on_after_backward(state)
    finally:
        torch.cuda.set_sync_debug_mode("default")
