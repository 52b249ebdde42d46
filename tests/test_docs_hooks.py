"""docs/plugins.md documents every hook of ablate.hookspecs, some test exercises each, and every public name it mentions imports."""

import importlib
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


def mentioned_names(text: str) -> list[str]:
    """Every ``ablate.x.y`` the guide spells out, and every name it imports with ``from ablate.x import a, b``."""
    dotted = set(re.findall(r"\bablate(?:\.[A-Za-z_]\w*)+", text))
    for module, names in re.findall(r"from (ablate(?:\.\w+)*) import ([\w, ]+)", text):
        dotted |= {f"{module}.{name.strip()}" for name in names.split(",") if name.strip()}
    return sorted(dotted)


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted``, then look the rest up as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_public_name_the_guide_mentions_is_importable():
    names = mentioned_names(DOCS.read_text())
    assert {"ablate.data.Split", "ablate.data.stratified_split", "ablate.registry.Registry",
            "ablate.plugins.registry", "ablate.testing.check_norm"} <= set(names)
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert missing == [], f"docs/plugins.md mentions names that do not import: {missing}"


def test_the_name_checker_catches_a_misspelt_name():
    with pytest.raises(AttributeError):
        resolve("ablate.data.Splitz")
    assert mentioned_names("see `ablate.data.Split` and\nfrom ablate.testing import check_norm, train_state") == [
        "ablate.data.Split", "ablate.testing", "ablate.testing.check_norm", "ablate.testing.train_state"]
