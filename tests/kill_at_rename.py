"""``python tests/kill_at_rename.py ARGS_JSON ROOT``: ``ablate ARGS`` killed at every atomic rename, then rerun.

Into ROOT/ref an uninterrupted run (counting the renames of ``ablate.files.atomic_write`` into ROOT/renames);
then, for each rename N and each side of it, into ROOT/before-N or ROOT/after-N: a run killed (``os._exit``,
as SIGKILL would, nothing flushed or cleaned up) just before or just after that rename, then the same command
run to completion. Each attempt is a fork of this process, which imported torch and ablate once, so the
50-odd attempts cost a fraction of a second each, not an interpreter start. Prints ``N WHEN KILLED_RC RERUN_RC``.
Figures are not drawn (they are no atomic rename, and drawing is most of a tiny run's time).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

KILLED = 137


def attempt(argv: list[str], kill_at: int = 0, when: str = "", count_file: Path | None = None) -> int:
    pid = os.fork()
    if pid:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    import ablate.cli.run
    from ablate.cli import main
    from ablate.files import TEMP_SUFFIX

    real, renames = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        ours = str(src).endswith(TEMP_SUFFIX)
        renames[0] += ours
        if ours and renames[0] == kill_at and when == "before":
            os._exit(KILLED)
        real(src, dst, *args, **kwargs)
        if ours and renames[0] == kill_at and when == "after":
            os._exit(KILLED)

    os.replace = replace  # type: ignore[assignment]
    ablate.cli.run.write_figures = lambda *args, **kwargs: None  # type: ignore[assignment]
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if count_file is not None:
        count_file.write_text(str(renames[0]))
    os._exit(code or (3 if kill_at else 0))  # 3: the kill point was never reached


def main() -> None:
    args, root = json.loads(sys.argv[1]), Path(sys.argv[2])
    import matplotlib.pyplot  # noqa: F401  (imported once, before the forks)
    import torch

    import ablate.cli.run  # noqa: F401
    import ablate.report.plots  # noqa: F401
    import ablate.train.trainer  # noqa: F401
    from ablate.plugins import get_plugins

    get_plugins()
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # imports what the first optimiser imports
    if attempt([*args, "--out", str(root / "ref")], count_file=root / "renames"):
        sys.exit("the uninterrupted run failed")
    for n in range(1, int((root / "renames").read_text()) + 1):
        for when in ("before", "after"):
            out = str(root / f"{when}-{n}")
            print(n, when, attempt([*args, "--out", out], n, when), attempt([*args, "--out", out]), flush=True)


if __name__ == "__main__":
    main()
