"""docs/plugins.md documents every hook of ablate.hookspecs, and some test exercises each."""

import inspect
import re
from pathlib import Path

import pytest

from ablate import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins.md"
HOOKS = sorted(name for name, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "ablate_spec"))


def signature(hook: str) -> str:
    """``def register_norms(register: Register) -> None`` from the hookspec itself."""
    sig = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {hook}({params}) -> {sig.return_annotation}"


def contracts(hook: str) -> list[str]:
    """The factory contracts quoted in the hookspec's docstring, e.g. ``factory(num_channels: int) -> nn.Module``."""
    return re.findall(r"``(factory\(.*?)``", inspect.getdoc(getattr(hookspecs, hook)))


def test_every_hookspec_is_found():
    assert HOOKS == ["register_architectures", "register_callbacks", "register_commands", "register_datasets",
                     "register_norms", "register_shortcuts"]


@pytest.mark.parametrize("hook", HOOKS)
def test_docs_give_each_hooks_signature_and_contract(hook):
    text = DOCS.read_text()
    assert f"### `{hook}`" in text, f"docs/plugins.md has no section for {hook}"
    assert signature(hook) in text, f"docs/plugins.md lacks the signature {signature(hook)!r}"
    for contract in contracts(hook):
        assert contract in text, f"docs/plugins.md lacks {hook}'s contract {contract!r}"
    assert contracts(hook) or hook == "register_commands"


@pytest.mark.parametrize("hook", HOOKS)
def test_each_hook_is_implemented_in_some_test(hook):
    sources = [*REPO.glob("tests/**/*.py"), *REPO.glob("plugins/*/tests/**/*.py")]
    users = [p.relative_to(REPO) for p in sources if re.search(rf"def {hook}\(", p.read_text())]
    assert users, f"no test implements the hook {hook} (def {hook}(...) in tests/ or plugins/*/tests/)"
