"""Trainability diagnostics: statistics against closed-form answers, the verdict, ``ablate diagnose``, the run's file."""

import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from ablate import rundir
from ablate.diagnose.arm import diagnose_model, random_batch
from ablate.diagnose.blocks import blocks
from ablate.diagnose.jacobian import effective_rank, jacobian_norm
from ablate.diagnose.record import load_signal
from ablate.diagnose.signal import signal_profile
from ablate.models import build_model
from ablate.recipe import load_recipe
from ablate.registry import AblateError
from ablate.testing import TINY_RECIPE


class Identity(nn.Module):
    signal_block = True

    def forward(self, x):
        return x


class Residual(nn.Module):
    """x + conv(x), the conv zero-initialised: the block starts as the identity."""

    signal_block = True

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def residual_branch(self):
        return self.conv

    def forward(self, x):
        return x + self.conv(x)


class Net(nn.Module):
    def __init__(self, *body, channels=3):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.classifier = nn.Linear(channels, 4)

    def forward(self, x):
        return self.classifier(self.body(x).mean(dim=(2, 3)))


def test_identity_blocks_keep_the_input_statistics():
    x = 2 + 3 * torch.randn(16, 3, 8, 8)
    profile = signal_profile(Net(Identity(), Identity(), Identity()), x)
    assert profile.positions == ["input", "entry", "body.0", "body.1", "body.2", "classifier input"]
    want_var = x.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=False).mean().item()
    want_sq = (x.mean(dim=(0, 2, 3)) ** 2).mean().item()
    assert profile.column("variance")[:5] == pytest.approx([want_var] * 5, rel=1e-5)
    assert profile.column("sq_mean")[:5] == pytest.approx([want_sq] * 5, rel=1e-5)
    assert profile.relative_variance()[:5] == pytest.approx([1.0] * 5)
    assert all(math.isnan(v) for v in profile.column("branch_variance"))  # no block has a branch
    assert profile.column("dead_fraction") == [0.0] * 6


def test_a_zero_initialised_residual_branch_has_variance_zero_and_the_block_keeps_the_signal():
    x = torch.randn(8, 3, 8, 8)
    profile = signal_profile(Net(Residual(3), Residual(3)), x)
    assert profile.column("branch_variance")[2:4] == [0.0, 0.0]
    assert profile.relative_variance()[2:4] == pytest.approx([1.0, 1.0], rel=1e-5)


def test_dead_units_are_those_zero_for_every_image():
    x = torch.randn(8, 3, 4, 4)
    x[:, 0] = 0.0  # one channel of three is dead everywhere
    profile = signal_profile(Net(Identity()), x)
    assert profile.column("dead_fraction")[2] == pytest.approx(1 / 3)


def test_a_linear_net_has_the_spectral_norm_of_its_weight_product():
    torch.manual_seed(0)
    first, second = nn.Linear(12, 7, bias=False), nn.Linear(7, 5)
    model = nn.Sequential(nn.Flatten(), first, second)
    x = torch.randn(3, 3, 2, 2)
    want = torch.linalg.matrix_norm(second.weight @ first.weight, ord=2).item()
    assert jacobian_norm(model, x, steps=50, images=None) == pytest.approx(want, rel=1e-4)
    assert all(p.requires_grad for p in model.parameters())  # left as it was


def test_effective_rank_of_known_matrices():
    p = torch.tensor([0.75, 0.25])
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    assert effective_rank(torch.eye(6)) == pytest.approx(6.0)
    assert effective_rank(torch.ones(10, 4)) == pytest.approx(1.0)  # every row the same direction
    assert effective_rank(torch.zeros(3, 3)) == 0.0


def test_every_architecture_marks_its_blocks():
    assert len(blocks(build_model("vgg38", width=8, num_classes=10))) == 18
    residual = blocks(build_model("resnet20", norm="bn", shortcut="zeropad", num_classes=10))
    assert len(residual) == 9 and all(b.branch is not None for b in residual)
    assert all(b.branch is None for b in blocks(build_model("resnet20", num_classes=10)))
    rc = blocks(build_model("vgg", depth=14, width=8, shortcut="identity", num_classes=10))
    assert [b.branch is not None for b in rc] == [True, False] * 3  # none across downsampling
    with pytest.raises(AblateError, match="marks no blocks: set `signal_block = True`"):
        blocks(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_dense_vgg_needs_nothing_of_its_own():
    dense = pytest.importorskip("ablate_dense.model")
    model = dense.DenseVGG(lambda c: nn.Identity(), lambda *args: None, blocks_per_stage=1, width=8, num_classes=10)
    profile = signal_profile(model, torch.randn(4, 3, 32, 32))
    assert profile.positions[2:-1] == [f"stages.{i}.{part}" for i in range(3) for part in ("blocks.0", "down")]
    assert all(v > 0 for v in profile.column("variance"))


def test_timm_models_have_their_stage_blocks():
    pytest.importorskip("timm")
    kept = blocks(build_model("timm:resnet18", num_classes=10))
    assert [b.name for b in kept][:3] == ["layer1.0", "layer1.1", "layer2.0"] and len(kept) == 8
    assert all(b.branch is not None for b in kept)
    plain = blocks(build_model("timm:resnet18", shortcut="none", num_classes=10))
    assert all(b.branch is None for b in plain)


def test_the_statistics_leave_the_model_as_it_was():
    model = build_model("vgg08", norm="bn", width=8, num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    x, y = random_batch(8, 10, (3, 32, 32), 0)
    diagnose_model(model, x, y)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def vgg38_verdicts():
    x, y = random_batch(16, 10, (3, 32, 32), 0)
    out = {}
    for norm in ("none", "bn"):
        torch.manual_seed(0)
        model = build_model("vgg38", norm=norm, width=8, num_classes=10)
        out[norm] = diagnose_model(model, x, y)
    return out


def test_plain_vgg38_is_untrainable_and_the_reason_names_the_block(vgg38_verdicts):
    plain = vgg38_verdicts["none"]
    assert plain.verdict.verdict == "untrainable"
    assert plain.verdict.died_at.startswith("block ") and plain.verdict.died_at in plain.verdict.reason
    assert plain.jacobian_norm < 1e-8


def test_vgg38_with_bn_is_not_untrainable(vgg38_verdicts):
    bn = vgg38_verdicts["bn"]
    assert bn.verdict.verdict == "trainable" and bn.verdict.died_at is None
    assert bn.jacobian_norm > 1e-2 and bn.effective_rank > 2


def ablate(*args, cwd, capsys, monkeypatch):
    """``ablate ARGS`` in this process, in ``cwd``: (exit code, stdout, stderr)."""
    from ablate.cli import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    return exited.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def two_arms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diagnose")
    recipe = folder / "two.toml"
    recipe.write_text(TINY_RECIPE.replace('arch = "vgg08"', 'arch = "vgg"\ndepth = 26') + """
[[arms]]
name = "plain [/x]"
[[arms]]
name = "BN"
model = { norm = "bn" }
""")
    return folder, recipe


def test_diagnose_prints_a_row_per_arm_and_writes_both_figures(two_arms, capsys, monkeypatch):
    folder, recipe = two_arms
    code, out, err = ablate("diagnose", str(recipe), "--out", "diag [/x]", cwd=folder, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "figures: diag [/x]/signal_propagation.png, diag [/x]/gradient_flow.png" in out  # a path is no markup
    assert "Trainability at initialisation" in out
    assert "plain [/x]: untrainable: signal variance collapses" in out and "BN: trainable" in out
    assert (folder / "diag [/x]" / "signal_propagation.png").stat().st_size > 10_000
    assert (folder / "diag [/x]" / "gradient_flow.png").stat().st_size > 10_000


def test_diagnose_json_has_every_seed_of_an_architecture(tmp_path, capsys, monkeypatch):
    code, out, err = ablate("diagnose", "vgg08", "--set", "model.width=8", "--json", "--seeds", "0,1", "--norm", "bn",
                            "--out", "j", cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    assert [(a["arm"], a["seed"], a["norm"]) for a in report["arms"]] == [("vgg08", 0, "bn"), ("vgg08", 1, "bn")]
    arm = report["arms"][0]
    assert arm["verdict"] == "trainable" and arm["jacobian_norm"] > 0 and arm["effective_rank"] > 1
    assert len(arm["signal"]["variance"]) == len(arm["signal"]["positions"]) == 3 + 3
    assert "untrainable if" in report["rule"] and [p.rsplit("/", 1)[-1] for p in report["written"]] == [
        "signal_propagation.png", "gradient_flow.png"]
    assert (tmp_path / "j" / "signal_propagation.png").exists()


@pytest.mark.parametrize("args, message", [
    (["vgg08", "--seeds", "0,x"], "--seeds '0,x': expected integers from 0 to below 2**32"),
    (["vgg08", "--seeds", "100000000000000"], "--seeds '100000000000000': expected integers from 0 to below 2**32"),
    (["vgg08", "--norm", "bnn"], "unknown norm 'bnn'"),
    (["nosuch"], "nosuch"),
])
def test_diagnose_errors_are_one_line(tmp_path, args, message, capsys, monkeypatch):
    code, out, err = ablate("diagnose", *args, cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert code != 0 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_out_that_cannot_be_written_is_one_line_before_any_arm_is_diagnosed(tmp_path, capsys, monkeypatch):
    (tmp_path / "taken").write_text("a file, not a folder")
    monkeypatch.setattr("ablate.diagnose.arm.diagnose_config", lambda *a, **k: pytest.fail("diagnosed first"))
    code, out, err = ablate("diagnose", "vgg08", "--out", "taken", cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and "cannot write the run directory taken" in err and "choose another --out" in err, err
    assert len(err.strip().splitlines()) == 1


def test_diagnose_help_imports_no_torch():
    code = ("import sys\nfrom ablate.cli import main\ntry:\n    main(['diagnose', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'matplotlib') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "--seeds" in done.stdout and done.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_a_run_with_signal_records_every_epoch_and_draws_the_figure(tmp_path):
    from ablate.report.plots import write_run_figures
    from ablate.train.trainer import train

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.replace("epochs = 3", "epochs = 2") + "[gradflow]\nsignal = true\n")
    (arm,) = load_recipe(recipe)
    plain = load_recipe(recipe, {"gradflow.signal": False})[0]
    assert arm.dirname() == plain.dirname()  # recording does not change the run's identity
    train(arm.config, tmp_path / "run")
    table = load_signal(tmp_path / "run")
    assert sorted(table.epochs) == [0, 1, 2] and table.positions[0] == "input" and len(table.positions) == 6
    assert (tmp_path / "run" / rundir.GRADFLOW).exists()
    header = (tmp_path / "run" / rundir.SIGNAL).read_text().splitlines()[0]
    assert header == "epoch,position_index,position,statistic,value"
    assert table.epochs[1].column("variance") != table.epochs[0].column("variance")  # the weights changed
    paths = write_run_figures(tmp_path / "run")
    assert tmp_path / "run" / rundir.FIGURES / f"{rundir.SIGNAL_FIGURE}.png" in paths


def test_a_run_without_signal_writes_no_file(tmp_path):
    from ablate.train.trainer import train

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.replace("epochs = 3", "epochs = 1"))
    train(load_recipe(recipe)[0].config, tmp_path / "run")
    assert not (tmp_path / "run" / rundir.SIGNAL).exists()


def test_a_bf16_run_records_its_signal_under_bf16_autocast(tmp_path):
    from types import SimpleNamespace

    from ablate.diagnose.record import SignalRecorder
    from ablate.train.setup import Precision

    torch.manual_seed(0)
    model, x = build_model("vgg08", norm="bn", width=4, num_classes=5), torch.randn(8, 3, 32, 32)
    bf16 = Precision(torch.bfloat16, None)
    variances = {}
    for name, precision in (("fp32", None), ("bf16", bf16)):
        (tmp_path / name).mkdir()
        recorder = SignalRecorder((x, None), precision=precision)
        recorder.on_run_start(SimpleNamespace(run_dir=tmp_path / name, epoch=0, model=model))
        variances[name] = load_signal(tmp_path / name).epochs[0].column("variance")
    assert variances["bf16"] == pytest.approx(signal_profile(model, x, bf16).column("variance"), rel=1e-6)
    assert variances["fp32"] == pytest.approx(signal_profile(model, x).column("variance"), rel=1e-6)
    assert variances["fp32"] != pytest.approx(variances["bf16"], rel=1e-4)  # bf16's rounding shows
