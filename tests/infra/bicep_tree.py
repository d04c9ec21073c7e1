"""Reading the Bicep under infra/ offline: pycep-parser's tree, and the app settings it declares.

The Bicep compiler cannot be installed here, so the checks read pycep-parser's JSON tree of each
file. In that tree an object literal is a plain dict whose keys are the property names (quoted keys
keep their quotes), a function call is ``{"function": {"type", "parameters"}}``, an operator is
``{"operator": {"type", "operands"}}`` and a bare identifier (a variable, a parameter) is a string.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
GRAPH = INFRA / "graph.bicep"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.example.json"

# The variable of main.bicep that holds the Function App's app settings.
APP_SETTINGS_VARIABLE = "appSettings"


def bicep_files(root: Path = INFRA) -> list[Path]:
    return sorted(root.rglob("*.bicep"))


def parse_file(path: Path) -> dict[str, Any]:
    """Parse one file; raises (lark's UnexpectedInput, or ValueError) on a syntax error."""
    tree = BicepParser().parse(file_path=path)
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: the parser returned no tree")
    return dict(tree)


@cache
def parsed(path: Path) -> dict[str, Any]:
    return parse_file(path)


def _key(name: str) -> str:
    """An object literal's property name: ``'A-B'`` is stored with its quotes."""
    if len(name) >= 2 and name[0] == name[-1] == "'":
        return name[1:-1]
    return name


def _is_call(node: Any) -> bool:
    return isinstance(node, dict) and set(node) == {"function"}


def _is_operator(node: Any) -> bool:
    return isinstance(node, dict) and set(node) == {"operator"}


def object_entries(
    node: Any, variables: dict[str, Any], seen: frozenset[str] = frozenset()
) -> Iterator[tuple[str, Any]]:
    """Every (property name, value expression) an object-valued expression can produce.

    Follows variables by name, the arguments of union(), and both branches of a condition, so a
    setting added only in some deployments (``cond ? {} : { NAME: value }``) is seen too. An
    expression this reader does not understand yields nothing, and the tests then miss names,
    which makes them fail rather than pass.
    """
    if isinstance(node, str):
        if node in variables and node not in seen:
            yield from object_entries(variables[node]["value"], variables, seen | {node})
        return
    if _is_call(node):
        call = node["function"]
        if call.get("type") == "union":
            for argument in call.get("parameters", {}).values():
                yield from object_entries(argument, variables, seen)
        return
    if _is_operator(node):
        operator = node["operator"]
        if operator.get("type") == "conditional":
            operands = operator.get("operands", {})
            yield from object_entries(operands.get("true_value"), variables, seen)
            yield from object_entries(operands.get("false_value"), variables, seen)
        return
    if isinstance(node, dict):
        for name, value in node.items():
            yield _key(str(name)), value


def app_settings(path: Path = MAIN, variable: str = APP_SETTINGS_VARIABLE) -> dict[str, list[Any]]:
    """The app settings a Bicep file declares: name to every value expression it may take."""
    tree = parsed(path)
    variables = tree.get("variables", {})
    if variable not in variables:
        raise AssertionError(f"{path.name} has no variable {variable!r}")
    found: dict[str, list[Any]] = {}
    for name, value in object_entries(variables[variable]["value"], variables):
        found.setdefault(name, []).append(value)
    return found


def identifiers(node: Any) -> Iterator[str]:
    """Every bare string in an expression tree (identifiers, literals, property names read)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from identifiers(value)
    elif isinstance(node, list):
        for value in node:
            yield from identifiers(value)


def reads_property(node: Any, obj: str) -> bool:
    """Whether an expression reads a property of the variable ``obj`` (``obj.something``)."""
    if isinstance(node, dict):
        operator = node.get("operator")
        if (
            isinstance(operator, dict)
            and operator.get("type") == "property_accessor"
            and operator.get("operands", {}).get("operand_1") == obj
        ):
            return True
        return any(reads_property(value, obj) for value in node.values())
    if isinstance(node, list):
        return any(reads_property(value, obj) for value in node)
    return False


def decorators(declaration: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(item.get("type")): item for item in declaration.get("decorators", [])}
