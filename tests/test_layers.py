"""The layering holds: the contracts in pyproject.toml are kept, every module has its place in
a layer, and no module of Veritas reaches itself through its imports (a cycle means a boundary
is in the wrong place)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_every_module_is_in_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    graph = grimp.build_graph("veritas")
    unplaced = sorted(
        module for module in graph.modules
        if module != "veritas" and not graph.find_children(module)  # packages hold modules
        and not any(module == p or module.startswith(p + ".") for p in placed)
    )
    assert not unplaced, f"put these in a layer of pyproject.toml's contract: {unplaced}"


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("veritas")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if graph.chain_exists(imported, importer):
                chain = graph.find_shortest_chain(imported, importer) or ()
                cycles.append(" -> ".join((importer, *chain)))
    assert not cycles, "\n".join(cycles)
