"""Does the trainability verdict at initialisation predict whether an arm learns? (not a test)

    python benchmarks/verdict_vs_outcome.py [--seeds 0,1,2,3,4] [--train-size 600] [--epochs 3]
                                            [--jsonl results.jsonl] [--from-jsonl results.jsonl]

Arms: the quickstart's five (VGG08, VGG38 plain, BN, RC, BN+RC) and He et al.'s ResNet-20 and
ResNet-56, plain (``none``) and residual (``zeropad``), without and with BN: 13 arms x seeds.
Each arm is diagnosed at initialisation (``ablate.diagnose``: the same model and first batch
as the run) and trained for 3 epochs with the quickstart's protocol (Adam, lr 1e-3, cosine) on
a small synthetic set (600 training images, batch 50: 36 steps; 200 validation images), on
one thread. An arm *left chance level* when, in any of its epochs, its training or validation
accuracy reached 15%: the 10 classes are exactly balanced, so a network at chance scores 10%,
and 15% is over 4 standard errors above that on an epoch's 600 training images.
Prints one line per run and the confusion table of verdict x outcome.
``--jsonl`` keeps every diagnosis and outcome; ``--from-jsonl`` re-judges saved results
without training (for tuning the rule).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ARMS = [("VGG08", "vgg08", "none", "none"), ("VGG38", "vgg38", "none", "none"), ("VGG38 BN", "vgg38", "bn", "none"),
        ("VGG38 RC", "vgg38", "none", "identity"), ("VGG38 BN+RC", "vgg38", "bn", "identity")]
ARMS += [(f"ResNet{d} {n}/{s}", f"resnet{d}", n, s) for d in (20, 56) for n in ("none", "bn")
         for s in ("none", "zeropad")]
CHANCE_EXIT = 0.15


def config_for(arch: str, norm: str, shortcut: str, seed: int, args: argparse.Namespace):
    from ablate.recipe import resolve

    recipe = {"model": {"arch": arch, "norm": norm, "shortcut": shortcut},
              "data": {"dataset": "synthetic", "num_classes": 10, "train_size": args.train_size, "val_size": 200,
                       "test_size": 100},
              "train": {"epochs": args.epochs, "batch_size": 50, "lr": 1e-3, "seed": seed, "device": "cpu",
                        "threads": args.threads}}
    return resolve(recipe, "verdict_vs_outcome", {})[0].config


def measure(name: str, arch: str, norm: str, shortcut: str, seed: int, args: argparse.Namespace) -> dict:
    from ablate import rundir
    from ablate.diagnose.arm import diagnose_config
    from ablate.train.trainer import train

    config = config_for(arch, norm, shortcut, seed, args)
    start = time.perf_counter()
    diagnosis = diagnose_config(config)
    diagnose_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        try:
            summary = train(config, Path(tmp))
            rows = rundir.read_metrics(Path(tmp))
            best = max(max(r["train_acc"], r["val_acc"]) for r in rows)
            failure = None
        except Exception as exc:  # a run that diverges has not learned
            best, failure, summary = 0.0, str(exc).splitlines()[0], {}
    return {"arm": name, "seed": seed, "diagnosis": diagnosis.as_dict(), "diagnose_seconds": diagnose_seconds,
            "best_acc": best, "learned": best >= CHANCE_EXIT, "failure": failure,
            "gradflow_verdict": (summary.get("gradflow") or {}).get("verdict")}


def rejudge(result: dict) -> str:
    """The verdict of a saved diagnosis under the current rule."""
    from ablate.diagnose.signal import SignalProfile
    from ablate.diagnose.verdict import judge_trainability

    d = result["diagnosis"]
    signal = d["signal"]
    profile = SignalProfile(signal["positions"], {k: [float("nan") if v is None else v for v in signal[k]]
                                                 for k in signal if k != "positions"})
    gradflow = {"verdict": d["gradflow_verdict"], "ratio": d["grad_ratio"]}
    rank = d["effective_rank"] if d["effective_rank"] is not None else float("nan")
    return judge_trainability(profile, gradflow, rank, d["jacobian_norm"]).verdict


def print_table(results: list[dict]) -> None:
    from ablate.diagnose.verdict import LABELS

    counts = Counter((rejudge(r), r["learned"]) for r in results)
    print("\n| verdict at init | runs | left chance | stayed at chance |")
    print("| --- | ---: | ---: | ---: |")
    for label in LABELS:
        learned, stayed = counts[(label, True)], counts[(label, False)]
        print(f"| {label} | {learned + stayed} | {learned} | {stayed} |")
    per_arm: dict[str, list[dict]] = {}
    for r in results:
        per_arm.setdefault(r["arm"], []).append(r)
    print("\n| arm | verdicts (seeds) | left chance (seeds) | best accuracy % (min-max) |")
    print("| --- | --- | --- | --- |")
    for arm, rs in per_arm.items():
        verdicts = Counter(rejudge(r) for r in rs)
        accs = [100 * r["best_acc"] for r in rs]
        print(f"| {arm} | {', '.join(f'{k} x{v}' for k, v in verdicts.items())} | "
              f"{sum(r['learned'] for r in rs)}/{len(rs)} | {min(accs):.0f}-{max(accs):.0f} |")
    wrong = [r for r in results if (rejudge(r) == "untrainable" and r["learned"])
             or (rejudge(r) == "trainable" and not r["learned"])]
    print(f"\ngoal: no untrainable arm learns, no trainable arm stays at chance: "
          f"{'met' if not wrong else f'{len(wrong)} run(s) against it'}")
    for r in wrong:
        print(f"  {r['arm']} seed {r['seed']}: {rejudge(r)}, best accuracy {100 * r['best_acc']:.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arms", default="", help="comma-separated arm names (default: all 13)")
    parser.add_argument("--jsonl", type=Path, help="append each result to this file")
    parser.add_argument("--from-jsonl", type=Path, help="re-judge saved results; train nothing")
    args = parser.parse_args()
    if args.from_jsonl:
        print_table([json.loads(line) for line in args.from_jsonl.read_text().splitlines() if line.strip()])
        return
    chosen = [a for a in ARMS if not args.arms or a[0] in args.arms.split(",")]
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, arch, norm, shortcut in chosen:
            start = time.perf_counter()
            result = measure(name, arch, norm, shortcut, seed, args)
            results.append(result)
            d = result["diagnosis"]
            print(f"{name:22s} seed {seed}  {rejudge(result):11s}  best acc {100 * result['best_acc']:5.1f}%  "
                  f"({time.perf_counter() - start:.0f} s)  {d['reason']}", flush=True)
            if args.jsonl:
                with args.jsonl.open("a") as fh:
                    fh.write(json.dumps(result) + "\n")
    print_table(results)


if __name__ == "__main__":
    sys.exit(main())
