"""The shape of bot/: no import cycle, and no arrow up the layers — the root of the bot's
exceptions imports nothing of the bot's, the adapters (kie, store) nothing above it nor each
other, services never import handlers, and nothing below the wiring imports it. Read from the
source (every import, those made only for type checking too), so a new module is checked as
soon as it exists."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "bot"

# Lower first; a module may import its own layer and those below it. The root (the bot's
# exceptions) imports nothing of the bot's. Modules not named here (config, i18n, catalog,
# texts, keyboards, ...) are the bot's shared ground: they may be imported by any layer above
# the adapters, and import only the root, the adapters and each other.
LAYERS = (
    ("root", ("bot.errors",)),
    ("adapters", ("bot.kie", "bot.store")),
    ("services", ("bot.services",)),
    ("handlers", ("bot.handlers", "bot.middlewares", "bot.dashboard")),  # the dashboard: web handlers
    ("wiring", ("bot.app", "bot.web", "bot.runners", "bot.__main__")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The bot modules `path` imports: `from bot.store import models` is bot.store.models,
    `from bot.store import Store` the package bot.store."""
    found = set()
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package up
                parts = package.split(".")
                base = ".".join([*parts[:len(parts) - node.level + 1],
                                 *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                      for alias in node.names}
    return {target for target in found if target in modules} - {name}


@functools.cache
def graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    return {name: imports(path, set(paths)) for name, path in paths.items()}


def layer_of(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    return None


ROOT_LAYER, ADAPTERS = 0, 1


def adapter_of(module: str) -> str | None:
    return next((prefix for prefix in LAYERS[ADAPTERS][1]
                 if module == prefix or module.startswith(prefix + ".")), None)


def test_there_is_no_import_cycle():
    edges = graph()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for target in sorted(edges[module]):
            if seen.get(target) == 1:  # back on the path: a cycle from `target` round to it
                start = path.index(target) if target in path else len(path)
                cycles.append([*path[start:], module, target])
            elif target not in seen:
                visit(target, [*path, module])
        seen[module] = 2

    for module in sorted(edges):
        if module not in seen:
            visit(module, [])
    assert cycles == [], "\n".join(" → ".join(cycle) for cycle in cycles)


def allowed(module: str, target: str) -> bool:
    own, theirs = layer_of(module), layer_of(target)
    if theirs == ROOT_LAYER:
        return own != ROOT_LAYER
    if own == ADAPTERS:  # an adapter knows nothing of the bot above it, nor the other adapter
        return adapter_of(target) == adapter_of(module)
    if own is None:  # the shared ground: the adapters and itself
        return theirs in (None, ADAPTERS)
    return own != ROOT_LAYER and (theirs is None or theirs <= own)


@pytest.mark.parametrize("module", sorted(graph()))
def test_no_module_imports_a_higher_layer(module):
    wrong = [target for target in sorted(graph()[module]) if not allowed(module, target)]
    assert wrong == [], f"{module} imports {wrong}"
