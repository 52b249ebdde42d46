"""``ablate sweep --executor slurm``: resources, the submitted job array, and real jobs through submitit's
LocalExecutor (separate processes, the same pickles and checkpointing as on Slurm): a preempted job is
requeued and resumes its run, a killed run resumes on the next sweep, complete runs are never submitted."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablate.recipe import RecipeError, load_recipe
from ablate.sweep.grid import load_sweep
from ablate.sweep.slurm import SlurmOptions, minutes, slurm_options
from ablate.testing import TINY_RECIPE

REPO = Path(__file__).resolve().parents[1]
TINY = TINY_RECIPE + "[sweep]\nseeds = [0, 1, 2]\n"
HOLD = '''
import os
import time
from pathlib import Path

from ablate.hookspecs import hookimpl


class Hold:
    """As epoch 2 starts, the first time only: write the pid to RUN_DIR/held and wait for RUN_DIR/release."""

    def on_epoch_start(self, state):
        held = Path(state.run_dir) / "held"
        if state.epoch == 2 and not held.exists():
            (held.parent / "held.tmp").write_text(str(os.getpid()))
            (held.parent / "held.tmp").rename(held)
            while not (held.parent / "release").exists():
                time.sleep(0.1)


@hookimpl
def register_callbacks(register):
    register("hold", Hold)
'''


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_executor_options_from_the_table_and_the_command_line():
    table = {"partition": "gpu", "gpus_per_job": 1, "time": "1-02:30:00", "sbatch": ["--account=lab", "#SBATCH --exclusive"]}
    found = slurm_options(table, "r.toml", {"partition": "debug", "cpus_per_job": 4, "mem": None, "sbatch": []})
    assert found == SlurmOptions(partition="debug", gpus_per_job=1, cpus_per_job=4, time=1590,
                                 sbatch=("--account=lab", "#SBATCH --exclusive"))
    assert slurm_options({}, "r.toml", {}) == SlurmOptions()
    assert (minutes(90, "r"), minutes("00:00:30", "r"), minutes("04:00:00", "r")) == (90, 1, 240)


@pytest.mark.parametrize("table, message", [
    ({"partiton": "gpu"}, "r.toml: unknown key 'executor.partiton'; valid keys in [executor]: partition, gpus_per_job"),
    ({"gpus_per_job": "1"}, "r.toml: executor.gpus_per_job = '1' has the wrong type; see gpus_per_job = 1"),
    ({"cpus_per_job": 0}, "r.toml: executor.cpus_per_job = 0 is too small; see cpus_per_job = 8"),
    ({"time": "4h"}, "r.toml: executor.time = '4h': give minutes or [D-]HH:MM:SS, like time = \"04:00:00\""),
    ({"mem": "lots"}, "r.toml: executor.mem = 'lots': give a Slurm size, like mem = \"32G\""),
    ({"sbatch": ["-A lab"]}, "r.toml: executor.sbatch line '-A lab': write one long option, like --account=lab"),
    ({"cluster": "k8s"}, "r.toml: executor.cluster = 'k8s': choose one of slurm, local"),
    ("gpu", "r.toml: [executor] must be a table"),
])
def test_bad_executor_options_are_one_line_errors(table, message):
    with pytest.raises(RecipeError) as err:
        slurm_options(table, "r.toml", {})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_executor_table_belongs_to_the_sweep_not_to_a_run(tmp_path):
    path = write(tmp_path, TINY + '[executor]\npartition = "gpu"\n')
    (tmp_path / "other").mkdir()
    plain = write(tmp_path / "other", TINY)
    assert [a.dirname() for a in load_recipe(path)] == [a.dirname() for a in load_recipe(plain)]
    assert "executor" not in load_recipe(path)[0].config
    arm = write(tmp_path, TINY + '[[arms]]\nname = "a"\nexecutor = { partition = "gpu" }\n')
    with pytest.raises(RecipeError, match=r"arm 'a'\): \[sweep\] and \[executor\] belong to the whole recipe"):
        load_recipe(arm)


def test_a_bad_command_line_value_is_named_by_its_option():
    with pytest.raises(RecipeError, match=r"^--time = '4h': give minutes or \[D-\]HH:MM:SS"):
        slurm_options({"time": 60}, "r.toml", {"time": "4h"})


def test_slurm_options_need_the_slurm_executor(cli, tmp_path):
    path = write(tmp_path, TINY)
    result = cli("sweep", str(path), "--partition", "gpu", "--time", "60", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --partition, --time apply to --executor slurm only (this sweep uses --executor local)"
    noted = cli("sweep", str(write(tmp_path, TINY + '[executor]\npartition = "gpu"\n')), "--dry-run")
    assert noted.returncode == 0 and "--executor local does not use it" in noted.stdout


def test_without_slurm_the_slurm_executor_is_one_line(cli, tmp_path):
    pytest.importorskip("submitit")
    path = write(tmp_path, TINY)
    result = cli("sweep", str(path), "--executor", "slurm", "--out", str(tmp_path / "sw"),
                 env={"PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: --executor slurm: srun is not on PATH, so this is no Slurm cluster;")


def fake_slurm(folder: Path) -> dict[str, str]:
    """srun, sbatch (keeps the script, answers job 4242), sacct (knows nothing yet) and scancel (keeps its arguments)."""
    folder.mkdir()
    scripts = {"srun": "exit 0", "sbatch": f'cp "$1" {folder}/job.sh; echo "Submitted batch job 4242"',
               "sacct": 'echo "JobID|State|NodeList"', "scancel": f'echo "$@" >> {folder}/cancelled'}
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


def test_runs_are_submitted_as_one_job_array_with_the_resources(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from ablate.sweep.slurm import SlurmExecutor

    for key, value in fake_slurm(tmp_path / "bin").items():
        monkeypatch.setenv(key, value)
    _, runs = load_sweep(write(tmp_path, TINY), {}, tmp_path / "sw")
    options = slurm_options({"partition": "gpu", "gpus_per_job": 1, "cpus_per_job": 4, "mem": "16G", "time": "01:30:00",
                             "sbatch": ["--account=lab", "--exclusive"]}, "r.toml", {"jobs": 2})
    executor = SlurmExecutor(tmp_path / "sw", options)
    for run in runs:
        executor.submit(run)
    assert executor.poll() == [] and executor.busy()
    assert executor.job_states() == {run.path: (f"4242_{i}", "UNKNOWN") for i, run in enumerate(runs)}
    lines = set((tmp_path / "bin" / "job.sh").read_text().splitlines())
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=4", "--mem=16G", "--time=90", "--account=lab",
                 "--exclusive", "--array=0-2%2", "--job-name=ablate-sw", "--signal=USR2@90"):
        assert f"#SBATCH {line}" in lines, line
    executor.close(cancel=True)
    assert (tmp_path / "bin" / "cancelled").read_text().split() == ["4242_0", "4242_1", "4242_2"]


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_for(paths: list[Path], proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, "the sweep ended early: " + proc.stdout.read() if proc.stdout else ""
        assert time.time() < deadline, f"waited {seconds} s for {paths}"
        time.sleep(0.2)


def submitted(sweep_dir: Path) -> int:
    return len(list((sweep_dir / "submitit").glob("*_submitted.pkl")))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the job's process through /proc")
def test_a_sweep_of_local_jobs_requeues_a_preempted_run_and_resumes_a_killed_one(tmp_path, distribution, monkeypatch,
                                                                                   register_plugin):
    pytest.importorskip("submitit")
    site = distribution("ablate-hold", "ablate_hold", HOLD, {"hold": "ablate_hold"})
    monkeypatch.syspath_prepend(str(site))
    register_plugin(importlib.import_module("ablate_hold"), name="hold")
    recipe = write(tmp_path, TINY + '[[callbacks]]\nname = "hold"\n[executor]\ncluster = "local"\ncpus_per_job = 1\n')
    out = tmp_path / "sw"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "ablate", "sweep", str(recipe), "--out", str(out), "--executor", "slurm"]
    _, runs = load_sweep(recipe, {}, out)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for([run.path / "held" for run in runs], proc)  # every run saved epoch 1 and waits
        status = subprocess.run([*cmd, "--status"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert "(3 running); a sweep is running there" in status.stdout, status.stdout + status.stderr
        assert [line.split()[3:5] for line in status.stdout.splitlines()[2:]] == [["running", "1/3"]] * 3
        first_epoch = (runs[1].path / "metrics.csv").read_text()
        pids = [int((run.path / "held").read_text()) for run in runs]
        (runs[0].path / "release").touch()
        os.kill(parent_of(pids[1]), signal.SIGUSR2)  # Slurm's preemption signal, to the job's process
        os.kill(pids[2], signal.SIGKILL)  # the run dies in the middle of its job
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, output
    records = json.loads((out / "sweep.json").read_text())["runs"]
    assert [r["state"] for r in records] == ["complete", "complete", "failed"], output
    assert records[2]["error"] == "killed by SIGKILL"
    jobs = [r["job_id"] for r in records]
    assert len(set(jobs)) == 3 and all(jobs) and [r["job_state"] for r in records] == ["FINISHED"] * 3
    log = (runs[1].path / "sweep.log").read_text()
    assert log.count("\n== ") + log.startswith("== ") == 2 and "(resuming)" in log  # requeued, resumed in the same job
    assert (runs[1].path / "metrics.csv").read_text().startswith(first_epoch)  # epoch 1 was kept, not trained again
    assert submitted(out) == 3

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(1 resume, 2 complete)" in again.stdout
    records = json.loads((out / "sweep.json").read_text())["runs"]
    assert [r["state"] for r in records] == ["complete"] * 3 and [r["action"] for r in records] == ["skip", "skip", "resume"]
    assert [r["job_id"] for r in records[:2]] == jobs[:2] and records[2]["job_id"] not in jobs
    assert json.loads((runs[2].path / "summary.json").read_text())["epochs_completed"] == 3 and submitted(out) == 4

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "3 complete (3 already)" in done.stdout, done.stdout + done.stderr
    assert submitted(out) == 4  # nothing submitted for complete runs
