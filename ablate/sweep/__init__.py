"""Sweeps: a recipe's arms x ``[sweep]`` grid x seeds, each run in a content-addressed directory.

``grid`` expands a recipe into runs, ``runner`` plans (skip, resume, start), executes
and keeps ``sweep.json`` current, ``executors`` trains runs in local processes or
on Ray, ``slurm`` as Slurm jobs through submitit, and ``view`` shows progress.
``ablate sweep`` (ablate/cli/sweep.py) ties them up.
"""
