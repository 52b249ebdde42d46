"""Side by side, one process: ablate's trainer against the limit, a coursework loop and PyTorch Lightning.

    python benchmarks/compare.py                                   # VGG08 + VGG38 (BN+RC), CPU, ~16 min
    python benchmarks/compare.py --arch vgg38 --contenders limit,limit-bf16 --rounds 5   # CPU bf16 vs fp32
    python benchmarks/compare.py --device cuda --compile reduce-overhead --steps 200     # on a GPU

Every contender trains the same architecture (``--norm``/``--shortcut``, default BN+RC) with Adam
1e-3, batch ``--batch-size``, on the ``synthetic`` dataset's uint8 training split of
steps x ``--batch-size`` images, one epoch per round.

Rounds last ``--round-seconds`` (10 s) of the bare step unless ``--steps`` is given: 50 steps of
VGG38 or about 150 of VGG08 on a 2-core CPU.

* ``limit``: the bare training step (forward, cross-entropy, ``zero_grad``, ``backward``, Adam)
  over batches built before timing, already normalised and on the device, in ablate's memory
  format; no augmentation, no bookkeeping. Nothing that trains on these images can be faster.
* ``ablate``: ``ablate.train.trainer.train`` with the recipe defaults (augmentation and
  gradient-flow recording on), one epoch into a fresh run directory; its row's
  ``images_per_second`` (training only: validation, checkpoints and compilation excluded).
* ``coursework``: PIL images, torchvision ``RandomCrop(32, 4)`` + ``RandomHorizontalFlip`` +
  ``ToTensor`` + ``Normalize``, a ``DataLoader`` (shuffle, no workers), ``.item()`` every step.
* ``lightning``: a ``LightningModule`` with the same model and optimiser, ``self.log`` of loss
  and accuracy every step with the progress bar on, fed by the same ``DataLoader`` as the
  coursework loop, as Lightning's docs show; timed from the epoch's start to its end by a
  callback (its console output goes to /dev/null). Needs ``pip install 'ablate-cnn[bench]'``.
* ``limit-bf16``, ``ablate-bf16``, ...: any contender under bf16 (or ``-fp16``) autocast;
  ``ablate-nogradflow``: the trainer without gradient-flow recording (its cost).

The process is set up as ablate's trainer sets up its own (``configure_cpu``: threads, flushed
denormals, glibc keeping freed memory for the next step), so every contender gets the same.
The contenders run interleaved (the order rotates every round) after one untimed warm-up
round each. It prints each contender's median and interquartile range (IQR) of images/s (and its
minor page faults per step: ``ablate``'s include building its model, data and run directory), and
for each ratio against ``ablate`` the median and IQR of the per-round ratios; a ratio whose IQR
reaches beyond +-5 % of its median is flagged as too noisy to be a result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ablate import rundir
from ablate.bench.measure import sync
from ablate.data import Split
from ablate.data.augment import DeviceLoader, channel_stats
from ablate.data.synthetic import synthetic
from ablate.models import build_model
from ablate.recipe import resolve
from ablate.registry import AblateError
from ablate.train.setup import (
    configure_cpu,
    configure_cuda,
    make_optimizer,
    maybe_compile,
    pick_device,
    pick_precision,
)
from ablate.train.trainer import train

ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}
NOISY = 0.05
MIN_STEPS = 50
AMPS = ("bf16", "fp16")
GOALS = {  # (ratio, arch or None for any, at least): from issue 16
    ("ablate/limit", None): 0.95,
    ("ablate/coursework", "vgg08"): 1.3, ("ablate/lightning", "vgg08"): 1.3,
    ("ablate/coursework", "vgg38"): 1.0, ("ablate/lightning", "vgg38"): 1.0,
}

Epoch = Callable[[], float]  # one timed epoch -> images per second


class PILImages(Dataset):
    """uint8 ``(N, C, H, W)`` images as PIL images, transformed on access (the coursework way)."""

    def __init__(self, split: Split, transform: transforms.Compose) -> None:
        self.images = [transforms.functional.to_pil_image(img) for img in split.x]
        self.labels = split.y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]


def pil_loader(split: Split, batch_size: int) -> DataLoader:
    mean, std = channel_stats(split.x)
    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(mean.tolist(), std.tolist())])
    return DataLoader(PILImages(split, transform), batch_size=batch_size, shuffle=True, drop_last=True)


def fresh_model(args: argparse.Namespace, device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(args.arch, norm=args.norm, shortcut=args.shortcut, num_classes=args.num_classes,
                        **({"width": args.width} if args.width else {}))
    return model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)


def limit(args: argparse.Namespace, split: Split, device: torch.device, amp: str) -> Epoch:
    """The bare step over pre-built, pre-normalised device batches."""
    mean, std = channel_stats(split.x)
    batches = list(DeviceLoader(split.to(device), args.batch_size, mean, std, drop_last=True,
                                channels_last=True).batches())
    model = fresh_model(args, device, channels_last=True)
    optimizer = make_optimizer(model, ADAM, device)
    step_model = maybe_compile(model, args.compile)
    precision = pick_precision(amp, device)

    def epoch() -> float:
        sync(device)
        start = time.perf_counter()
        for x, y in batches:
            with precision.autocast(device):
                loss = F.cross_entropy(step_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        return len(batches) * args.batch_size / (time.perf_counter() - start)
    return epoch


def steps_per_round(args: argparse.Namespace, device: torch.device) -> int:
    """``--steps``, else enough steps for a round of the bare step to last ``--round-seconds`` (at least MIN_STEPS):
    a short round measures the machine's hiccups as much as the contenders."""
    if args.steps:
        return args.steps
    probe = limit(args, synthetic(num_classes=args.num_classes, train_size=3 * args.batch_size, val_size=0,
                                  test_size=0).train, device, args.amp)
    probe()  # warms up
    return max(MIN_STEPS, math.ceil(args.round_seconds * probe() / args.batch_size))


def ablate(args: argparse.Namespace, split: Split, device: torch.device, amp: str, gradflow: bool = True) -> Epoch:
    """ablate's trainer, one epoch into a fresh run directory; training images/s from its row."""
    recipe = {"model": {"arch": args.arch, "norm": args.norm, "shortcut": args.shortcut,
                        **({"width": args.width} if args.width else {})},
              "data": {"dataset": "synthetic", "num_classes": args.num_classes, "train_size": len(split),
                       "val_size": args.batch_size, "test_size": args.batch_size},
              "train": {"epochs": 1, "batch_size": args.batch_size, "device": device.type, "amp": amp,
                        "compile": args.compile or False, "threads": torch.get_num_threads()},
              "gradflow": {} if gradflow else {"every": 0}}
    config = resolve(recipe, "compare", {})[0].config

    def epoch() -> float:
        with tempfile.TemporaryDirectory() as run_dir:
            train(config, Path(run_dir))
            return float(rundir.read_metrics(Path(run_dir))[0]["images_per_second"])
    return epoch


def coursework(args: argparse.Namespace, split: Split, device: torch.device, amp: str) -> Epoch:
    """PIL transforms, a DataLoader and ``.item()`` per step."""
    loader = pil_loader(split, args.batch_size)
    model = maybe_compile(fresh_model(args, device), args.compile)
    optimizer = torch.optim.Adam(model.parameters(), lr=ADAM["lr"])
    precision = pick_precision(amp, device)

    def epoch() -> float:
        model.train()
        start = time.perf_counter()
        total_loss = correct = seen = 0.0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            with precision.autocast(device):
                logits = model(images)
                loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
        return seen / (time.perf_counter() - start)
    return epoch


def lightning(args: argparse.Namespace, split: Split, device: torch.device, amp: str) -> Epoch:
    """A LightningModule fed by a DataLoader of PIL transforms, logging loss and accuracy per step."""
    import lightning as L

    for logger in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    loader = pil_loader(split, args.batch_size)
    net = maybe_compile(fresh_model(args, device), args.compile)

    class Classifier(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
            self.log("train_loss", loss, prog_bar=True)
            self.log("train_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=ADAM["lr"])

    class Clock(L.Callback):
        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            sync(device)
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            sync(device)
            self.seconds = time.perf_counter() - self.start

    module = Classifier()
    precision = {"off": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}[amp]

    def epoch() -> float:
        clock = Clock()
        with tempfile.TemporaryDirectory() as root, open(os.devnull, "w") as null, \
                contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            trainer = L.Trainer(max_epochs=1, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                                precision=precision, default_root_dir=root, callbacks=[clock],
                                num_sanity_val_steps=0)
            trainer.fit(module, loader)
        return len(loader) * args.batch_size / clock.seconds
    return epoch


CONTENDERS: dict[str, Callable[..., Epoch]] = {"limit": limit, "ablate": ablate, "coursework": coursework,
                                               "lightning": lightning}


def build(name: str, args: argparse.Namespace, split: Split, device: torch.device) -> Epoch:
    """A contender from its name: ``limit``, ``ablate``, ... optionally ``-bf16``/``-fp16``, ``ablate-nogradflow``."""
    base, *variants = name.split("-")
    unknown = [v for v in variants if v not in AMPS and not (base == "ablate" and v == "nogradflow")]
    if base not in CONTENDERS or unknown:
        raise SystemExit(f"--contenders: unknown {name!r}; valid: {', '.join(CONTENDERS)}, each may end in -bf16 "
                         f"or -fp16, and ablate-nogradflow")
    amp = next((v for v in variants if v in AMPS), args.amp)
    options = {"gradflow": "nogradflow" not in variants} if base == "ablate" else {}
    try:
        return CONTENDERS[base](args, split, device, amp, **options)
    except AblateError as exc:
        raise SystemExit(f"--contenders {name}: {exc}") from None


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def counting_faults(epoch: Epoch, faults: list[int]) -> Epoch:
    """``epoch``, appending the minor page faults the process took during it to ``faults``."""
    def counted() -> float:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        speed = epoch()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return speed
    return counted


def run_rounds(epochs: dict[str, Epoch], rounds: int) -> dict[str, list[float]]:
    """One untimed warm-up epoch each, then ``rounds`` rounds of one epoch each, the order rotating."""
    names = list(epochs)
    for name in names:
        epochs[name]()
    speeds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            speeds[name].append(epochs[name]())
    return speeds


def summarise(arch: str, speeds: dict[str, list[float]], base: str, faults: dict[str, list[int]] | None = None,
              steps: int = 1) -> dict[str, Any]:
    """Median/IQR per contender, and median/IQR of per-round ratios base/other (and limit: base/limit); with
    ``faults`` (per epoch, the untimed warm-up first), each contender's median page faults per step."""
    result: dict[str, Any] = {"arch": arch, "contenders": {}, "ratios": {}}
    for name, values in speeds.items():
        q1, median, q3 = quartiles(values)
        result["contenders"][name] = {"median": median, "q1": q1, "q3": q3, "rounds": values}
        if faults and faults.get(name):
            result["contenders"][name]["page_faults_per_step"] = statistics.median(faults[name][1:] or faults[name]) / steps
    for name, values in speeds.items():
        if name == base or base not in speeds:
            continue
        ratios = [a / b for a, b in zip(speeds[base], values)]
        q1, median, q3 = quartiles(ratios)
        noisy = q1 < median * (1 - NOISY) or q3 > median * (1 + NOISY)
        goal = GOALS.get((f"{base}/{name}", arch), GOALS.get((f"{base}/{name}", None)))
        result["ratios"][f"{base}/{name}"] = {"median": median, "q1": q1, "q3": q3, "noisy": noisy, "goal": goal,
                                              "met": None if goal is None or noisy else median >= goal}
    return result


def report(result: dict[str, Any], steps: int) -> str:
    lines = [f"{result['arch']}: {steps} steps per round"]
    for name, c in result["contenders"].items():
        faults = f"  {c['page_faults_per_step']:,.0f} page faults/step" if "page_faults_per_step" in c else ""
        lines.append(f"  {name:>12}: {c['median']:9.1f} img/s  (IQR {c['q1']:.1f}-{c['q3']:.1f}){faults}")
    for name, r in result["ratios"].items():
        line = f"  {name:>18}: {r['median']:.3f}  (IQR {r['q1']:.3f}-{r['q3']:.3f})"
        if r["noisy"]:
            line += "  NOISY: IQR beyond +-5%, the machine was too busy; not a result"
        elif r["goal"] is not None:
            line += f"  goal >= {r['goal']}: {'met' if r['met'] else 'MISSED'}"
        lines.append(line)
    if steps < MIN_STEPS:
        lines.append(f"  (only {steps} steps per round, fewer than {MIN_STEPS}: a smoke test, not a result)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg08,vgg38")
    parser.add_argument("--norm", default="bn")
    parser.add_argument("--shortcut", default="identity")
    parser.add_argument("--width", type=int, default=0, help="model width (0: the architecture's)")
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--contenders", default="limit,ablate,coursework,lightning")
    parser.add_argument("--baseline", default=None, help="the contender ratios are taken of (default: the second)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=0,
                        help=f"training steps per round (0: enough for --round-seconds, at least {MIN_STEPS})")
    parser.add_argument("--round-seconds", type=float, default=None,
                        help="with --steps 0: how long a round of the limit should last (default 10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--compile", default=None, help="torch.compile mode for every contender's model")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    if args.steps and args.round_seconds is not None:
        raise SystemExit(f"--round-seconds {args.round_seconds:g} cannot apply with --steps {args.steps}: give one of them")
    args.round_seconds = 10.0 if args.round_seconds is None else args.round_seconds

    device = pick_device(args.device)
    threads = configure_cpu(0) if device.type == "cpu" else None
    if device.type == "cuda":
        configure_cuda()
    names = args.contenders.split(",")
    base = args.baseline or (names[1] if len(names) > 1 else names[0])
    if base not in names:
        raise SystemExit(f"--baseline {base!r} is not one of --contenders: {', '.join(names)}")
    print(f"{args.norm}+{args.shortcut}, batch {args.batch_size}, {args.rounds} rounds (+1 warm-up), {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{threads} threads'}), "
          f"amp {args.amp}, compile {args.compile or 'off'}, torch {torch.__version__}", flush=True)
    results = []
    for arch in args.arch.split(","):
        args.arch = arch
        steps = steps_per_round(args, device)
        split = synthetic(num_classes=args.num_classes, train_size=steps * args.batch_size, val_size=0,
                          test_size=0).train
        faults: dict[str, list[int]] = {name: [] for name in names}
        epochs = {name: counting_faults(build(name, args, split, device), faults[name]) for name in names}
        result = summarise(arch, run_rounds(epochs, args.rounds), base, faults, steps) | {"steps": steps}
        print(report(result, steps), flush=True)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "threads": threads, "args": vars(args) | {"json": None},
                                         "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
