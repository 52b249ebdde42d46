"""On the CPU a training process keeps freed activation memory instead of faulting it in again every step."""

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from ablate.train.setup import configure_cpu
if sys.argv[1] == "configured":
    configure_cpu(1)
def step(k):  # a step's activations: 20 blocks of about 3.5 MB (a little bigger each step), allocated, then freed
    blocks = [torch.ones(800_000 + 10_000 * k) for _ in range(20)]
    del blocks
for k in range(5):
    step(k)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for k in range(5, 10):
    step(k)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's allocator only")
def test_configured_cpu_reuses_freed_activation_memory_instead_of_page_faulting_it_in():
    default, configured = page_faults("default"), page_faults("configured")
    assert default > 5 * 20 * 800  # glibc's default maps and unmaps each block: every step faults its pages in
    assert configured < default / 20
