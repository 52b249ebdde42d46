"""Reliability: nothing outside its folder, nothing loaded from a recipe, one run per directory, no half files."""

import os
import stat

import pytest

from ablate import rundir
from ablate.files import atomic_write, atomic_write_text
from ablate.models import build_model
from ablate.registry import AblateError

TINY = ["--dataset", "synthetic", "--set", "data.train_size=100", "--set", "data.val_size=50",
        "--set", "data.test_size=50", "--set", "model.width=4", "--set", "train.threads=1", "--batch-size", "50",
        "--epochs", "1", "-q"]


@pytest.mark.parametrize("key", ["checkpoint_path", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "file"])
def test_timm_options_that_load_files_are_refused_before_anything_is_written(cli, tmp_path, key):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\narch = "timm:resnet18"\n{key} = "{tmp_path / "evil.pt"}"\n')
    out = tmp_path / "run"
    result = cli("run", str(recipe), "--out", str(out), *TINY)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"unknown key 'model.{key}' for architecture 'timm:resnet18'; valid: arch, norm, shortcut, drop_rate" \
        in result.stderr
    assert not out.exists()
    with pytest.raises(AblateError, match=f"timm option '{key}' is not allowed"):
        build_model("timm:resnet18", num_classes=10, **{key: "x"})


def test_an_architectural_timm_option_still_applies():
    model = build_model("timm:resnet18", num_classes=10, drop_rate=0.25)
    assert model.drop_rate == 0.25


@pytest.mark.parametrize("name", ["../../x", "/abs/olute", "a/b", ".."])
def test_a_recipe_name_cannot_move_the_output_outside_runs(cli, tmp_path, name):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = "{name}"\n[model]\narch = "vgg08"\n[[arms]]\nname = "a"\n[[arms]]\nname = "b"\n')
    for command in ("run", "sweep"):
        result = cli(command, str(recipe), *(TINY if command == "run" else TINY[:-3]), cwd=tmp_path)
        assert result.returncode == 2 and "must be a plain folder name" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]


def test_a_timm_name_cannot_be_a_path(cli, tmp_path):
    result = cli("run", "recipes/vgg08.toml", "--arch", "timm:/../../x", "--out", str(tmp_path / "run"), *TINY)
    assert result.returncode == 2 and "may hold only letters, digits" in result.stderr
    assert not (tmp_path / "run").exists()


def test_two_runs_never_share_a_directory(cli, tmp_path):
    out = tmp_path / "run"
    with rundir.locked(out):
        busy = cli("run", "recipes/vgg08.toml", "--out", str(out), *TINY)
        assert busy.returncode == 2 and "Traceback" not in busy.stderr
        assert f"{out} is in use by another ablate run (pid {os.getpid()})" in busy.stderr
        assert not rundir.is_run(out)
    done = cli("run", "recipes/vgg08.toml", "--out", str(out), *TINY)
    assert done.returncode == 0, done.stderr and rundir.is_complete(out)


def test_a_run_that_fails_before_writing_leaves_no_directory(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("run", "recipes/vgg08.toml", "--out", str(out), "--data-dir", str(tmp_path / "nothing"), "-q")
    assert result.returncode == 2 and "no valid copy" in result.stderr
    assert not out.exists()


def test_atomic_writes_use_unique_temporaries_and_leave_none(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fails)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o666 & ~_umask(), oct(mode)  # as open() would create it, not mkstemp's private 0600


def test_leftover_temporaries_are_removed_when_a_run_takes_its_directory(tmp_path):
    (tmp_path / ".metrics.csv.abcd.tmp").write_text("killed mid-write")
    (tmp_path / "mine.txt").write_text("a user's file")
    with rundir.locked(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.LOCK, "mine.txt"]


def test_restart_removes_only_what_ablate_wrote(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("run", "recipes/vgg08.toml", "--out", str(out), *TINY).returncode == 0
    (out / "figures" / "my-own-figure.png").write_bytes(b"mine")
    (out / "notes.txt").write_text("mine")
    again = cli("run", "recipes/vgg08.toml", "--out", str(out), "--restart", *TINY)
    assert again.returncode == 0, again.stderr
    assert (out / "figures" / "my-own-figure.png").read_bytes() == b"mine" and (out / "notes.txt").exists()
    assert (out / "figures" / "training_curves.png").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_kill_between_the_checkpoint_and_the_metrics_loses_no_row(cli, tmp_path):
    out = tmp_path / "run"
    args = ["run", "recipes/vgg08.toml", "--out", str(out), *TINY[:-3], "--epochs", "2", "-q"]
    assert cli(*args).returncode == 0
    metrics, summary = out / "metrics.csv", out / "summary.json"
    full = metrics.read_text()
    metrics.write_text("".join(full.splitlines(keepends=True)[:-1]))  # as if killed after the last checkpoint
    summary.write_text(summary.read_text().replace('"status": "complete"', '"status": "running"'))
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert metrics.read_text() == full and rundir.is_complete(out)
