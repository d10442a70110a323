"""The layering of docs/architecture.md holds: no import circle between modules (imports inside
functions and under TYPE_CHECKING included), the import contracts of pyproject.toml kept, and the
registry complete (every model bound to a config class and a processor)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import grimp
import pytest

from mmie.features.settings import InputSettings
from mmie.models import get_model_entry, list_models

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> grimp.ImportGraph:
    # grimp reads every import statement, the ones inside functions and TYPE_CHECKING blocks too.
    return grimp.build_graph("mmie", exclude_type_checking_imports=False)


def import_circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    edges = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in modules:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if child < len(edges[node]):
                work.append((node, child + 1))
                target = edges[node][child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            for target in edges[node]:
                if target in on_stack:
                    low[node] = min(low[node], low[target])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_no_import_circles():
    assert import_circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = import_graph()
    graph.add_import(importer="mmie.errors", imported="mmie.io")  # mmie.io imports mmie.errors
    assert ["mmie.errors", "mmie.io"] in import_circles(graph)


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_bound_to_a_config_and_a_processor(name):
    entry = get_model_entry(name)
    assert entry.model_class.registry_name == name
    assert entry.model_class.config_class is entry.config_class
    assert issubclass(entry.config_class, InputSettings)
    assert entry.config_class(name=name).name == name
    assert callable(entry.processor)
    # the processor factory is a function of mmie.features, never of a model module
    assert entry.processor.__module__ == "mmie.features.processor"


@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_what_it_returns_and_what_selection_reads(name):
    model_class = get_model_entry(name).model_class
    assert typing.get_type_hints(model_class.forward)["return"] is model_class.output_class
    fields = {field.name for field in dataclasses.fields(model_class.output_class)}
    assert {"loss", model_class.selected_output} <= fields
