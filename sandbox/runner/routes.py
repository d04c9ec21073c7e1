"""HTTP trigger route templates, matched the way the Functions host (ASP.NET Core routing) matches them.

Templates look like `items/{id:int}/{part?}` or `files/{*path}`. The host matches literals
case-insensitively, checks constraints, and prefers the more specific template when several match
(a literal segment beats a constrained parameter, which beats a plain one, which beats an optional
one and a catch-all), independent of the order functions were registered in. The runner has to
choose the same function for the same URL, so it cannot lean on aiohttp's first-registered-wins router.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "decimal": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "float": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "bool": r"(?:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"\{?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?",
}
_REGEX_CONSTRAINT = re.compile(r"^regex\((.*)\)$", re.IGNORECASE)

# Specificity of a segment, lower is more specific (ASP.NET's route precedence, simplified).
_LITERAL, _COMPLEX, _CONSTRAINED, _PLAIN, _OPTIONAL, _CATCH_ALL = range(6)


class RouteError(ValueError):
    """A template the host would refuse, with the reason."""


@dataclass(frozen=True)
class _Param:
    name: str
    pattern: str
    optional: bool
    catch_all: bool
    constrained: bool


def _parse_param(spec: str, template: str) -> _Param:
    catch_all = spec.startswith("*")
    spec = spec.lstrip("*")
    spec, _, _default = spec.partition("=")
    optional = spec.endswith("?")
    spec = spec.rstrip("?")
    name, *constraints = spec.split(":")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteError(f"route {template!r}: bad parameter name {name!r}")
    pattern = ".*" if catch_all else "[^/]+"
    constrained = False
    for constraint in constraints:
        regex = _REGEX_CONSTRAINT.match(constraint)
        if regex:
            pattern = regex.group(1).removeprefix("^").removesuffix("$")
            constrained = True
        elif constraint.lower() in _CONSTRAINTS:
            pattern = _CONSTRAINTS[constraint.lower()]
            constrained = True
        # Length and range constraints (minlength(3), range(1,9)) narrow values, not shapes; not checked here.
    return _Param(name, pattern, optional or bool(_default), catch_all, constrained)


def _tokens(segment: str, template: str) -> list[tuple[str, str]]:
    """Split a segment into literals and parameter specs; `{{` and `}}` are escaped braces, as in ASP.NET."""
    tokens: list[tuple[str, str]] = []
    literal = ""
    index = 0
    while index < len(segment):
        char = segment[index]
        if segment.startswith(("{{", "}}"), index):
            literal += char
            index += 2
        elif char == "{":
            if literal:
                tokens.append(("literal", literal))
                literal = ""
            spec = ""
            index += 1
            while True:
                if index >= len(segment):
                    raise RouteError(f"route {template!r}: unclosed parameter in {segment!r}")
                if segment.startswith(("{{", "}}"), index):
                    spec += segment[index]
                    index += 2
                elif segment[index] == "}":
                    index += 1
                    break
                elif segment[index] == "{":
                    raise RouteError(f"route {template!r}: unescaped {{ inside a parameter in {segment!r}")
                else:
                    spec += segment[index]
                    index += 1
            tokens.append(("param", spec))
        elif char == "}":
            raise RouteError(f"route {template!r}: unbalanced }} in {segment!r}")
        else:
            literal += char
            index += 1
    if literal:
        tokens.append(("literal", literal))
    return tokens


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route: `match` gives the route parameters, `precedence` orders competing templates."""

    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    precedence: tuple[int, ...] = field(compare=False)

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        """Build the matcher once at start, so a malformed template stops the runner as it stops the host."""
        cleaned = template.strip().strip("/")
        names: list[str] = []
        pieces: list[str] = []
        precedence: list[int] = []
        segments = cleaned.split("/") if cleaned else []
        for position, segment in enumerate(segments):
            separator = "/" if position else ""
            tokens = _tokens(segment, template)
            params = [value for kind, value in tokens if kind == "param"]
            if not params:
                pieces.append(separator + re.escape("".join(value for _, value in tokens)))
                precedence.append(_LITERAL)
                continue
            if len(tokens) == 1:
                param = _parse_param(params[0], template)
                group = f"(?P<p{len(names)}>{param.pattern})"
                names.append(param.name)
                if param.catch_all:
                    if position != len(segments) - 1:
                        raise RouteError(f"route {template!r}: a catch-all parameter must be the last segment")
                    pieces.append(f"(?:{separator}{group})?")
                    precedence.append(_CATCH_ALL)
                elif param.optional:
                    pieces.append(f"(?:{separator}{group})?")
                    precedence.append(_OPTIONAL)
                else:
                    pieces.append(separator + group)
                    precedence.append(_CONSTRAINED if param.constrained else _PLAIN)
                continue
            # A complex segment such as `{name}.{ext}`: literals around parameters within one segment.
            regex = separator
            for kind, value in tokens:
                if kind == "literal":
                    regex += re.escape(value)
                    continue
                param = _parse_param(value, template)
                if param.catch_all or param.optional:
                    raise RouteError(f"route {template!r}: optional or catch-all parameter inside {segment!r}")
                regex += f"(?P<p{len(names)}>{param.pattern if param.constrained else '[^/]+?'})"
                names.append(param.name)
            pieces.append(regex)
            precedence.append(_COMPLEX)
        if len(set(map(str.lower, names))) != len(names):
            raise RouteError(f"route {template!r}: a parameter name is used twice")
        compiled = re.compile("^" + "".join(pieces) + "$", re.IGNORECASE)
        return cls(cleaned, compiled, tuple(names), tuple(precedence))

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Route parameters for a raw (still percent-encoded) path below the route prefix, or None."""
        found = self.regex.match(raw_path.strip("/"))
        if found is None:
            return None
        params: dict[str, str] = {}
        for index, name in enumerate(self.names):
            value = found.group(f"p{index}")
            if value is not None:
                params[name] = unquote(value)
        return params

    def sort_key(self) -> tuple[tuple[int, ...], int]:
        """More specific templates first; at equal specificity, the longer one."""
        return self.precedence, -len(self.precedence)
