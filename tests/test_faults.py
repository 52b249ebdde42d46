"""Reliability: nothing outside its folder, nothing loaded from a recipe, one run per directory, no half files,
a kill anywhere repaired by a rerun, one line for every damaged file and every impossible setting."""

import csv
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli
from safetensors import SafetensorError

from ablate import rundir
from ablate.cli import main
from ablate.files import TEMP_SUFFIX, atomic_write, atomic_write_text
from ablate.hookspecs import hookimpl
from ablate.models import build_model
from ablate.registry import AblateError
from ablate.train.checkpoint import read_state, save_weights, weights_epoch
from ablate.train.trainer import _check_best

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


# -- crash consistency: a kill at any atomic rename leaves a state the rerun repairs ------------------------------

KILL_ARGS = ["run", "recipes/vgg08.toml", "--dataset", "synthetic", "--set", "data.train_size=100", "--set",
             "data.val_size=50", "--set", "data.test_size=50", "--set", "data.num_classes=4", "--set", "model.width=4",
             "--set", "train.threads=1", "--batch-size", "20", "--lr", "0.05", "--norm", "bn", "--epochs", "2", "-q"]
"""Two epochs whose validation accuracy improves in the second, so that best.safetensors is written twice."""
TIMING = {"epoch_seconds", "images_per_second", "train_seconds", "compile_seconds"}


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / rundir.METRICS).open() as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def _summary(run: Path) -> dict:
    return {k: v for k, v in rundir.read_summary(run).items() if k not in TIMING}


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_a_kill_at_any_atomic_rename_is_repaired_by_running_the_command_again(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tests" / "kill_at_rename.py"), json.dumps(KILL_ARGS),
                             str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=900,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")[:-1]
    renames = int((tmp_path / "renames").read_text())
    assert renames >= 13 and len(lines) == 2 * renames  # recipe, init gradflow, 2 x 5 per epoch, final summary
    assert all(line.split()[2:] == ["137", "0"] for line in lines), lines  # killed there, then completed
    ref = tmp_path / "ref"
    ref_best, ref_checkpoint = _tensors(ref / rundir.BEST), _tensors(ref / rundir.CHECKPOINT)
    ref_state = read_state(ref / rundir.CHECKPOINT)
    for run in sorted(p for p in tmp_path.iterdir() if p.is_dir() and p != ref):
        assert _metrics(run) == _metrics(ref), run.name
        assert _summary(run) == _summary(ref), run.name
        assert (run / rundir.GRADFLOW).read_text() == (ref / rundir.GRADFLOW).read_text(), run.name
        for path, expected in ((run / rundir.BEST, ref_best), (run / rundir.CHECKPOINT, ref_checkpoint)):
            tensors = _tensors(path)
            assert tensors.keys() == expected.keys() and all(torch.equal(tensors[k], expected[k]) for k in tensors), \
                f"{run.name}: {path.name}"
        state = read_state(run / rundir.CHECKPOINT)
        assert [{k: v for k, v in r.items() if k not in TIMING} for r in state.pop("rows")] == \
            [{k: v for k, v in r.items() if k not in TIMING} for r in dict(ref_state)["rows"]], run.name
        assert state == {k: v for k, v in ref_state.items() if k != "rows"}, run.name
        assert not [p.name for p in run.iterdir() if p.name.endswith(TEMP_SUFFIX)], run.name


# -- damaged or foreign files: one line naming the file and what to do -------------------------------------------

DAMAGE_ARGS = ["recipes/vgg08.toml", "--dataset", "synthetic", "--set", "data.train_size=100", "--set",
               "data.val_size=50", "--set", "data.test_size=50", "--set", "model.width=4", "--set", "train.threads=1",
               "--batch-size", "50", "--epochs", "2", "-q"]


def ablate(capsys, *args: str) -> tuple[int, str, str]:
    """``ablate ARGS`` in this process: exit code, stdout, stderr (an uncaught exception fails the test)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A complete two-epoch run (best epoch 1), trained once for the damaged-file tests."""
    out = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli("run", *DAMAGE_ARGS, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def unfinished(trained, tmp_path, monkeypatch):
    """A copy of ``trained`` as if killed before its last summary: a rerun reads every file of the run."""
    monkeypatch.setattr("ablate.cli.run.write_figures", lambda *args, **kwargs: None)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    summary = run / rundir.SUMMARY
    summary.write_text(summary.read_text().replace('"status": "complete"', '"status": "running"'))
    return run


def _foreign(name: str, tmp_path: Path) -> bytes:
    """A well-formed file of the right kind that ablate did not write for this run."""
    if name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({"weight": torch.zeros(3)}, str(tmp_path / "foreign"))
        return (tmp_path / "foreign").read_bytes()
    return {rundir.SUMMARY: b"[1, 2, 3]\n", rundir.RECIPE: b'title = "my notes"\n',
            rundir.GRADFLOW: b"a,b\n1,2\n", rundir.SIGNAL: b"a,b\n1,2\n"}[name]


def _damage(path: Path, kind: str, tmp_path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[:len(data) // 2 + 7], "garbage": bytes(range(256)) * 4,
                      "foreign": _foreign(path.name, tmp_path) if kind == "foreign" else b""}[kind])


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "foreign"])
@pytest.mark.parametrize("name", [rundir.CHECKPOINT, rundir.BEST, rundir.SUMMARY, rundir.RECIPE, rundir.GRADFLOW])
def test_a_damaged_run_file_is_one_line_naming_it_and_what_to_do(capsys, unfinished, tmp_path, name, kind):
    path = unfinished / name
    _damage(path, kind, tmp_path)
    code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished))
    assert code == 2, out + err
    assert str(path) in err and "--restart" in err and len(err.strip().splitlines()) == 1, err
    if kind == "garbage":  # the way out it names works
        code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished), "--restart")
        assert code == 0 and rundir.is_complete(unfinished), err


@pytest.mark.parametrize("cut", ["amp", "seed", "shortcut"])
def test_a_recipe_cut_after_a_whole_line_is_damaged_not_another_recipe(capsys, unfinished, cut):
    path = unfinished / rundir.RECIPE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:next(i for i, line in enumerate(lines) if line.startswith(f"{cut} ="))]))
    code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished))
    assert code == 2 and str(path) in err and "--restart" in err and "different recipe" not in err, err


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "foreign"])
def test_a_damaged_signal_file_is_one_line_when_a_run_recording_it_resumes(capsys, unfinished, tmp_path, kind):
    from ablate.diagnose.record import SignalTable
    from ablate.diagnose.signal import STATISTICS, SignalProfile

    positions = ["input", "entry", "block 1", "head"]
    table = SignalTable(positions, {e: SignalProfile(positions, {s: [0.5] * 4 for s in STATISTICS}) for e in (0, 1, 2)})
    path = unfinished / rundir.SIGNAL
    path.write_text(table.to_csv())
    _damage(path, kind, tmp_path)
    code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished), "--set", "gradflow.signal=true")
    assert code == 2, out + err
    assert f"{path} is damaged or not ablate's" in err and "--restart" in err and len(err.strip().splitlines()) == 1, err


def test_damaged_best_weights_fail_when_the_run_starts_not_after_training(capsys, unfinished):
    (unfinished / rundir.BEST).write_bytes(b"\0" * 100)
    code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished), "--epochs", "3", "--resume")
    assert code == 2 and f"{unfinished / rundir.BEST} is damaged" in err
    assert "epoch   3" not in out and read_state(unfinished / rundir.CHECKPOINT)["epoch"] == 2


def test_best_weights_a_kill_kept_from_being_written_are_rewritten_from_the_checkpoint(tmp_path):
    model, path = build_model("vgg08", num_classes=10, width=4), tmp_path / rundir.BEST
    save_weights(path, model, {"epoch": "1"})
    with pytest.raises(AblateError, match=r"holds the weights of epoch 1, not those of the best epoch 2\); pass --restart"):
        _check_best(path, model, 2, 3)  # the best epoch is not the checkpoint's: its weights are lost
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    _check_best(path, model, 2, 2)  # killed between the checkpoint and the best weights: the model's are those
    assert weights_epoch(path, model) == 2
    assert torch.equal(_tensors(path)[next(iter(model.state_dict()))], next(model.parameters()))
    path.unlink()
    with pytest.raises(AblateError, match=r"best.safetensors is missing \(the checkpoint's best epoch is 2\)"):
        _check_best(path, model, 2, 3)
    _check_best(path, model, 3, 3)  # killed after the first checkpoint, before the first best weights
    assert weights_epoch(path, model) == 3


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage"])
def test_damaged_metrics_are_rewritten_from_the_checkpoint_and_else_one_line(capsys, unfinished, trained,
                                                                                   tmp_path, kind):
    path = unfinished / rundir.METRICS
    _damage(path, kind, tmp_path)
    if kind != "empty":
        with pytest.raises(AblateError, match=f"^{path} is damaged or not ablate's .*; pass --restart"):
            rundir.read_metrics(unfinished)
    code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished))
    assert code == 0, err
    assert path.read_text() == (trained / rundir.METRICS).read_text()


def test_a_complete_run_with_a_damaged_summary_says_so(capsys, unfinished):
    (unfinished / rundir.SUMMARY).write_text('{"status": "compl')
    code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished))
    assert code == 2 and "delete it (the run resumes from its checkpoint and rewrites it)" in err
    (unfinished / rundir.SUMMARY).unlink()
    code, out, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(unfinished))
    assert code == 0 and rundir.is_complete(unfinished), err


# -- impossible settings: one line each, nothing written ----------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--seed", "100000000000000"], "train.seed = 100000000000000 must be below 2**32"),
    (["--seed", "-1"], "train.seed = -1 must not be negative"),
    (["--set", "data.train_size=-1"], "data.train_size = -1 must be a whole number of at least 1"),
    (["--set", "data.train_size=0"], "data.train_size = 0 must be a whole number of at least 1"),
    (["--set", "data.val_size=0"], "data.val_size = 0 must be a whole number of at least 1"),
    (["--set", "data.num_classes=0"], "data.num_classes = 0 must be a whole number of at least 1"),
    (["--set", "data.image_size=0"], "data.image_size = 0 must be a whole number of at least 1"),
    (["--set", "data.image_size=2.5"], "data.image_size = 2.5 must be a whole number of at least 1"),
    (["--set", "data.seed=4294967296"], "data.seed = 4294967296 must be a whole number from 0 to below 2**32"),
    (["--set", "data.noise=" + "[" * 40 + "]" * 40], "--set data.noise: nested more than 16 levels deep"),
])
def test_impossible_settings_are_one_line_and_write_nothing(capsys, tmp_path, args, message):
    out = tmp_path / "run"
    code, _, err = ablate(capsys, "run", *DAMAGE_ARGS, *args, "--out", str(out))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_the_largest_seed_trains(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("ablate.cli.run.write_figures", lambda *args, **kwargs: None)
    code, _, err = ablate(capsys, "run", *DAMAGE_ARGS, "--epochs", "1", "--seed", str(2**32 - 1),
                          "--set", f"data.seed={2**32 - 1}", "--out", str(tmp_path / "run"))
    assert code == 0, err


@pytest.mark.parametrize("depth", [17, 5000])
def test_a_deeply_nested_recipe_is_one_line(capsys, tmp_path, depth):
    recipe = tmp_path / "deep.toml"
    recipe.write_text("[model]\narch = \"vgg08\"\n[data]\nnoise = " + "[" * depth + "]" * depth + "\n")
    code, _, err = ablate(capsys, "run", str(recipe), "--out", str(tmp_path / "run"))
    assert code == 2 and f"{recipe}: nested more than 16 levels deep" in err, err


def test_a_binary_recipe_file_is_one_line(capsys, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_bytes(bytes(range(256)))
    code, _, err = ablate(capsys, "run", str(recipe))
    assert code == 2 and f"{recipe}: not a TOML text file (not UTF-8)" in err, err


def test_a_dataset_without_training_images_is_an_error_not_a_complete_run(capsys, tmp_path, register_plugin):
    from ablate.data.synthetic import synthetic

    class EmptyTrain:
        @hookimpl
        def register_datasets(self, register):
            def empty_train(**options):
                splits = synthetic(**options)
                splits.train = splits.train.subset(torch.arange(0))
                return splits
            register("empty-train", empty_train)

    register_plugin(EmptyTrain())
    out = tmp_path / "run"
    code, _, err = ablate(capsys, "run", *DAMAGE_ARGS, "--dataset", "empty-train", "--out", str(out))
    assert code == 2 and "dataset 'synthetic': the train split is empty" in err, err
    assert not out.exists()


# -- out of memory, disk full: one line, the last good checkpoint kept --------------------------------------------

@pytest.mark.parametrize("error", [MemoryError(), RuntimeError(
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "35184372088832 bytes. Error code 12 (Cannot allocate memory)")])
def test_out_of_cpu_memory_is_one_line(capsys, tmp_path, monkeypatch, error):
    def step(*args, **kwargs):
        raise error

    monkeypatch.setattr("ablate.train.trainer.train_step", step)
    code, _, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(tmp_path / "run"))
    assert code == 2 and "out of memory (CPU) at batch size 50" in err and "lower --batch-size" in err, err


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on '
                    'device" })')])
def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(capsys, tmp_path, monkeypatch, error):
    from ablate.train import checkpoint

    real, checkpoints = checkpoint.save_file, []

    def save_file(tensors, filename, metadata=None):
        if f".{rundir.CHECKPOINT}." in filename:
            checkpoints.append(filename)
            if len(checkpoints) == 2:
                Path(filename).write_bytes(b"half a checkpoint")
                raise error
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    monkeypatch.setattr("ablate.cli.run.write_figures", lambda *args, **kwargs: None)
    out = tmp_path / "run"
    code, _, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(out))
    assert code == 2 and f"disk full writing {out}" in err and "the last finished epoch's checkpoint is kept" in err
    assert len(err.strip().splitlines()) == 1, err
    assert read_state(out / rundir.CHECKPOINT)["epoch"] == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    monkeypatch.setattr(checkpoint, "save_file", real)
    code, out_text, err = ablate(capsys, "run", *DAMAGE_ARGS, "--out", str(out))
    assert code == 0 and "(resuming)" in out_text and rundir.is_complete(out), err
    assert [row["epoch"] for row in rundir.read_metrics(out)] == [1, 2]


# -- user strings are never read as rich markup --------------------------------------------------------------------

def test_names_and_paths_holding_markup_are_printed_as_they_are(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("ablate.cli.run.write_figures", lambda *args, **kwargs: None)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\narch = "vgg08"\n[[arms]]\nname = "arm [/x] [bold]"\n')
    out = tmp_path / "run [/x]"
    code, text, err = ablate(capsys, "run", str(recipe), *DAMAGE_ARGS[1:], "--epochs", "1", "--out", str(out))
    assert code == 0, err
    assert f"arm [/x] [bold]: vgg08 norm=none shortcut=none lr=0.001 -> {out}" in text
    code, _, err = ablate(capsys, "run", str(tmp_path / "no [/x] such.toml"))
    assert code == 2 and f"{tmp_path / 'no [/x] such.toml'}: no such recipe file" in err, err
    sweep = tmp_path / "sweep [/x]"
    code, text, err = ablate(capsys, "sweep", str(recipe), *DAMAGE_ARGS[1:-1], "--epochs", "1", "--out", str(sweep))
    assert code == 0, err
    assert "[1/1] arm [/x] [bold] (seed 0) complete" in text and f"1 runs in {sweep}: 1 complete" in text


def test_the_ray_install_hint_names_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, _, err = ablate(capsys, "sweep", *DAMAGE_ARGS[:-1], "--executor", "ray", "--out", str(tmp_path / "sweep"))
    assert code == 2 and "--executor ray needs Ray: pip install 'ablate-cnn[ray]'" in err, err
