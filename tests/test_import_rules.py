"""The layers, as imports: a small AST check over bridge/ that fails when one leaks.

- `web` and `cli` reach the database only through services: they never import `store`.
- `domain` is pure: the standard library, its JSON library (orjson), other `domain`
  modules and the one error root — nothing that does I/O.
- `settings` imports no adapter (sinks' broker clients, the store, the Zoho client), so
  reading configuration loads none of them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bridge"
STDLIB = sys.stdlib_module_names


def imports_of(path: Path, package: str = "") -> set[str]:
    """Every module `path` imports, including imports inside functions and
    `TYPE_CHECKING` blocks; relative imports are resolved against `package`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parents, *([base] if base else [])])
            found.add(base)
            # `from bridge import store` names a module too.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parent.parts)


def _files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _violations(layer: str, allowed: Callable[[str], bool]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _files(layer)
        for name in sorted(imports_of(path, _package_of(path)))
        if not allowed(name)
    ]


def _is_store(name: str) -> bool:
    return name == "bridge.store" or name.startswith("bridge.store.")


@pytest.mark.parametrize("layer", ["web", "cli"])
def test_web_and_cli_never_import_the_store(layer: str) -> None:
    assert _violations(layer, lambda name: not _is_store(name)) == []


def _pure(name: str) -> bool:
    top = name.split(".")[0]
    if top in STDLIB or top in ("__future__", "orjson"):
        return True
    return name == "bridge" or name.startswith(("bridge.domain", "bridge.errors"))


def test_domain_imports_only_the_standard_library_and_json() -> None:
    assert _violations("domain", _pure) == []


ADAPTERS = ("bridge.store", "bridge.zoho", "bridge.sinks.factory", "bridge.sinks.redis",
            "bridge.sinks.nats", "bridge.sinks.amqp", "bridge.sinks.webhook", "bridge.web",
            "bridge.services", "redis", "nats", "aio_pika", "httpx", "sqlalchemy", "asyncpg")  # fmt: skip


def test_settings_imports_no_adapter() -> None:
    """Statically (the module and what it imports from bridge), and as loaded: importing
    the settings in a fresh interpreter loads no broker client, store or HTTP client."""
    code = (
        "import sys, bridge.settings; "
        f"print(sorted(m for m in sys.modules if m.startswith({ADAPTERS!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_the_checker_sees_a_leak(tmp_path: Path) -> None:
    """The rules above would catch a leak written in each of the usual forms."""
    sample = tmp_path / "leak.py"
    sample.write_text(
        "from bridge.store import outbox\n"
        "def f():\n    import bridge.store.models\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bridge.store.sources import SourceInfo\n"
        "from ..store import writer\n",
        encoding="utf-8",
    )
    found = {name for name in imports_of(sample, "bridge.web") if _is_store(name)}
    assert {"bridge.store", "bridge.store.outbox", "bridge.store.models",
            "bridge.store.sources", "bridge.store.writer"} <= found  # fmt: skip
    assert not _pure("sqlalchemy") and not _pure("bridge.store.models") and _pure("orjson")
