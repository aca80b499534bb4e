"""The layout shows the architecture: no module imports in a circle, and imports go one way (docs/architecture.md):
the operator tools (`tools/`) and the deployment (`infra/`, package `jitr_cdk`) never import each other, and the
configuration model (`jitr_config/`), which both read, imports neither of them nor the CDK.

Imports are read from the source with `ast`, every one of them: at module level, inside functions and under
`TYPE_CHECKING` (a circle is a circle for a reader, whether or not Python runs it). An import names the most specific
project module it reaches: `from pkg import name` is an import of `pkg.name` when that is a module, of `pkg` otherwise.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx

ROOT = Path(__file__).resolve().parents[2]

# Each project package and the folder it lives in.
PACKAGES = {
    "jitr": ROOT / "lambdas" / "jitr",
    "jitr_handlers": ROOT / "lambdas" / "jitr_handlers",
    "jitr_cdk": ROOT / "infra" / "jitr_cdk",
    "jitr_config": ROOT / "jitr_config",
    "jitr_tools": ROOT / "tools" / "jitr_tools",
    "benchmarks": ROOT / "benchmarks",
}


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    modules: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """The dotted names `module` imports, relative imports resolved; `from x import y` gives `x.y` (which
    `import_graph` reads as the module `x.y` if there is one, else `x`)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> networkx.DiGraph:
    """Module -> the project modules it imports (the most specific module each import reaches)."""
    modules = project_modules()
    graph = networkx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for name in imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph.add_edge(module, name)
    return graph


def test_the_graph_sees_the_project() -> None:
    """Guards the two tests below against reading nothing: the handler's imports are found."""
    graph = import_graph()
    assert "jitr_tools.embedded.models" in graph
    assert graph.has_edge("jitr_handlers.registration", "jitr.hook")


def test_no_module_imports_in_a_circle() -> None:
    cycles = [sorted(component) for component in networkx.strongly_connected_components(import_graph())]
    circles = sorted(component for component in cycles if len(component) > 1)
    assert circles == [], "modules that import each other, directly or around a circle:\n" + "\n".join(
        " <-> ".join(component) for component in circles
    )


def imports_of(package: str) -> dict[str, set[str]]:
    """Each module of `package` -> the top-level names of everything it imports (project or not)."""
    return {
        module: {name.partition(".")[0] for name in imported_names(module, path)}
        for module, path in project_modules().items()
        if module.partition(".")[0] == package
    }


def offenders(package: str, forbidden: set[str]) -> dict[str, list[str]]:
    found = {module: sorted(names & forbidden) for module, names in imports_of(package).items()}
    return {module: names for module, names in found.items() if names}


def test_the_operator_tools_never_import_the_deployment() -> None:
    assert "jitr" in imports_of("jitr_tools")["jitr_tools.endpoint.serve"]  # the reading works
    assert offenders("jitr_tools", {"jitr_cdk"}) == {}


def test_the_deployment_never_imports_the_operator_tools() -> None:
    assert offenders("jitr_cdk", {"jitr_tools"}) == {}


def test_the_configuration_model_imports_neither_nor_the_cdk() -> None:
    assert (
        offenders("jitr_config", {"jitr_cdk", "jitr_tools", "jitr_handlers", "benchmarks", "aws_cdk", "constructs"})
        == {}
    )


# The operator tools by the reader each part serves, highest first: a module imports its own part and the parts
# below it, never one above (docs/architecture.md). Modules straight under jitr_tools are parts of their own.
TOOL_LAYERS = (
    ("jitr_tools.cli",),  # the command line
    ("jitr_tools.scaffold",),  # jitr init: a new CDK app with the construct
    ("jitr_tools.operating",),  # a deployed stack: doctor, explain, invoke, enroll, revocation
    ("jitr_tools.endpoint",),  # the device-side endpoint: serve, its broker and TLS, device clients
    ("jitr_tools.rehearsing",),  # simulate, demo, the deployed account in-process
    ("jitr_tools.pki", "jitr_tools.embedded"),  # the development PKI; the embedded AWS IoT
    ("jitr_tools.iot", "jitr_tools.arguments", "jitr_tools.terminal"),  # AWS IoT's rules; shared command-line parts
)


def _tool_part(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_the_operator_tools_import_only_their_own_part_and_parts_below() -> None:
    layer = {part: depth for depth, parts in enumerate(TOOL_LAYERS) for part in parts}
    graph = import_graph()
    tools = [module for module in graph if module.startswith("jitr_tools.")]
    assert {_tool_part(module) for module in tools} == set(layer)  # every part has its place
    upward = sorted(
        f"{module} -> {imported}"
        for module in tools
        for imported in graph.successors(module)
        if imported.startswith("jitr_tools.")
        and _tool_part(imported) != _tool_part(module)
        and layer[_tool_part(imported)] <= layer[_tool_part(module)]
    )
    assert upward == []


def test_each_part_of_the_operator_tools_says_what_it_is_for() -> None:
    for part in {part for parts in TOOL_LAYERS for part in parts}:
        folder = ROOT / "tools" / Path(*part.split("."))
        path = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, part
