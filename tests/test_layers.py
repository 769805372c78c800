"""The layering holds: `lint-imports` keeps the contracts in pyproject.toml, and no module
of Veritas reaches itself through its imports (a cycle means a boundary is in the wrong place)."""

from __future__ import annotations

import grimp


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("veritas")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if graph.chain_exists(imported, importer):
                chain = graph.find_shortest_chain(imported, importer) or ()
                cycles.append(" -> ".join((importer, *chain)))
    assert not cycles, "\n".join(cycles)
