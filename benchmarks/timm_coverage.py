"""How far timm surgery reaches, measured (not a test).

    python benchmarks/timm_coverage.py                   # the 54 models below, CPU, a few minutes
    python benchmarks/timm_coverage.py --models resnet18,efficientnet_b0 --markdown

Each timm CNN is built untrained (10 classes) as timm builds it, then with norm surgery
``gn`` and ``none`` and shortcut surgery ``none`` through ``ablate.models.build_model``, and
each model runs a forward and a backward pass on a (2, 3, 32, 32) batch. A cell is

- ``ok``: the surgery is verified, not just reported: after ``gn`` every normalisation layer
  is a GroupNorm, after ``none`` none is left, after shortcut ``none`` every residual block's
  skip is a ``NoShortcut``; the output and every gradient are finite (else ``non-finite``);
- ``refused``: a one-line ``SurgeryRefused`` (the reason is listed under the table);
- ``CRASH``: any other exception, or a surgery that left something unchanged (a silent no-op).

The goal: no crash anywhere, and norm surgery ``ok`` on at least 90% of the models.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Callable

import torch
from torch import nn

from ablate.models import build_model
from ablate.models.surgery import RESIDUAL_BLOCKS, NoShortcut, SurgeryRefused, is_norm
from ablate.plugins import get_plugins

MODELS = (
    # timm's ResNet family (shortcut surgery applies)
    "resnet10t resnet14t resnet18 resnet18d resnet26d resnet34 resnet50 resnet50d resnet50_gn resnetblur18 "
    "resnext50_32x4d seresnet18 seresnext26d_32x4d wide_resnet50_2 ecaresnet26t skresnet18 res2net50_26w_4s resnest14d "
    # other CNN families
    "efficientnet_b0 tf_efficientnet_b0 efficientnet_lite0 mobilenetv2_050 mobilenetv3_small_050 mobilenetv3_large_100 "
    "mobilenetv4_conv_small mnasnet_small fbnetc_100 spnasnet_100 tinynet_e lcnet_050 mixnet_s semnasnet_050 "
    "hardcorenas_a ghostnet_100 rexnet_100 regnetx_002 regnety_002 densenet121 dla34 dpn48b repvgg_a0 "
    "mobileone_s0 gernet_s cspresnet50 cs3darknet_focus_s darknet17 selecsls42b ese_vovnet19b_dw hrnet_w18_small "
    "resnetv2_50 resnetv2_50x1_bit convnext_atto edgenext_xx_small nf_regnet_b0"
).split()
SURGERIES = {"norm gn": {"norm": "gn"}, "norm none": {"norm": "none"}, "shortcut none": {"shortcut": "none"}}


def forward_backward(model: nn.Module) -> bool:
    """One forward and backward pass on a (2, 3, 32, 32) batch; True if the output and gradients are finite."""
    torch.manual_seed(0)
    out = model(torch.randn(2, 3, 32, 32))
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(g).all()) for g in grads)


def unchanged(model: nn.Module, surgery: str) -> str:
    """What the surgery left behind ("" if nothing): the check that no flag was a silent no-op."""
    if surgery == "norm gn":
        left = Counter(type(m).__name__ for m in model.modules() if is_norm(m) and type(m) is not nn.GroupNorm)
    elif surgery == "norm none":
        left = Counter(type(m).__name__ for m in model.modules() if is_norm(m))
    else:
        left = Counter(type(b).__name__ for b in model.modules()
                       if type(b) in RESIDUAL_BLOCKS and not isinstance(getattr(b, "downsample"), NoShortcut))
    return ", ".join(f"{n} {name}" for name, n in left.items())


def cell(name: str, surgery: str, options: dict[str, str], reasons: dict[str, int]) -> str:
    try:
        model = build_model(f"timm:{name}", num_classes=10, **options)
    except SurgeryRefused as exc:
        reason = str(exc).partition("cannot apply: ")[2]
        reasons[reason if len(reason) < 70 else reason[:reason.index(" (")]] += 1
        return "refused"
    except Exception as exc:  # a crash is what the table reports
        return f"CRASH {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
    left = unchanged(model, surgery)
    if left:
        return f"CRASH unchanged: {left}"
    try:
        return "ok" if forward_backward(model) else "non-finite"
    except Exception as exc:  # a crash is what the table reports
        return f"CRASH {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"


def baseline(name: str) -> str:
    try:
        return "ok" if forward_backward(build_model(f"timm:{name}", num_classes=10)) else "non-finite"
    except Exception as exc:  # a model that fails as timm builds it is reported, not operated on
        return f"fails: {type(exc).__name__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated timm model names.")
    parser.add_argument("--markdown", action="store_true", help="Print the table as Markdown.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (one is fastest for batches of 2).")
    args = parser.parse_args()
    if "gn" not in get_plugins()["norms"]:
        raise SystemExit("norm 'gn' comes from the ablate-extra-norms plugin: install it (or put it on PYTHONPATH)")
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    reasons: Counter[str] = Counter()
    rows, start = [], time.perf_counter()
    for name in args.models.split(","):
        t0 = time.perf_counter()
        row = [name, baseline(name), *(cell(name, s, o, reasons) for s, o in SURGERIES.items())]
        rows.append(row + [f"{time.perf_counter() - t0:.1f}"])
        print(" | ".join(rows[-1]), flush=True)
    print_table(rows, args.markdown)
    print_totals(rows, reasons, time.perf_counter() - start)


def print_table(rows: list[list[str]], markdown: bool) -> None:
    header = ["model", "as built", *SURGERIES, "s"]
    line: Callable[[list[str]], str] = (lambda r: "| " + " | ".join(r) + " |") if markdown else (lambda r: "  ".join(r))
    print()
    print(line(header))
    if markdown:
        print(line(["---"] * len(header)))
    for row in rows:
        print(line(row))


def print_totals(rows: list[list[str]], reasons: Counter[str], seconds: float) -> None:
    print()
    for i, surgery in enumerate(SURGERIES, start=2):
        outcomes = Counter(row[i].split()[0] for row in rows)
        print(f"{surgery}: {outcomes['ok']}/{len(rows)} ok ({100 * outcomes['ok'] / len(rows):.0f}%), "
              f"{outcomes['refused']} refused, {outcomes['non-finite']} non-finite, {outcomes['CRASH']} crashed")
    for reason, n in reasons.most_common():
        print(f"refused {n}x: {reason}")
    print(f"{len(rows)} models in {seconds:.0f} s, torch {torch.__version__}")


if __name__ == "__main__":
    main()
