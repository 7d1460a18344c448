"""Kubernetes label selectors: the full grammar, parsed and matched as the API server does.

``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a`` (exists),
``!a`` (does not exist), comma-separated and ANDed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Requirement = Callable[[dict[str, str]], bool]

_KEY = r"(?:[a-z0-9A-Z.-]+/)?[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?"
_VALUE = r"(?:[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")


class SelectorError(ValueError):
    """A selector the API server would reject with 400."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _requirement(term: str) -> Requirement:
    if m := _SET.match(term):
        key, values = m["key"], {v.strip() for v in m["values"].split(",")}
        if not all(re.fullmatch(_VALUE, v) for v in values) or values == {""}:
            raise SelectorError(f"invalid values in {term!r}")
        if m["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ.match(term):
        key, value = m["key"], m["value"]
        if m["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS.match(term):
        key = m["key"]
        if m["neg"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {term!r}")


def parse(selector: str) -> Requirement:
    """A predicate over a labels dict; the empty selector matches everything."""
    if not selector.strip():
        return lambda labels: True
    requirements = [_requirement(term) for term in _split(selector)]
    return lambda labels: all(r(labels) for r in requirements)


def parse_fields(selector: str) -> Callable[[dict], bool]:
    """The field selectors the server supports for every kind: metadata.name/namespace."""
    checks = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        m = re.fullmatch(r"(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(\S*)", term)
        if not m:
            raise SelectorError(f"field label not supported: {term!r}")
        field, op, value = m.groups()
        attr = field.split(".")[1]
        checks.append(
            (lambda obj, a=attr, v=value: obj["metadata"].get(a) != v)
            if op == "!="
            else (lambda obj, a=attr, v=value: obj["metadata"].get(a) == v)
        )
    return lambda obj: all(c(obj) for c in checks)
