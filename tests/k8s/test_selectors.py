"""The fake API server's label selector grammar."""

from __future__ import annotations

import pytest

from . import selectors

pytestmark = pytest.mark.k8s


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=a", {"p1", "p2"}),
        ("app==a,tier!=db", {"p1"}),
        ("tier in (db, web)", {"p1", "p2", "p3"}),
        ("tier notin (db)", {"p1", "p3", "p4"}),
        ("tier", {"p1", "p2", "p3"}),
        ("!tier", {"p4"}),
        ("", {"p1", "p2", "p3", "p4"}),
    ],
)
def test_label_selector_grammar(selector, expected):
    objects = {
        "p1": {"app": "a", "tier": "web"},
        "p2": {"app": "a", "tier": "db"},
        "p3": {"app": "b", "tier": "web"},
        "p4": {},
    }
    match = selectors.parse(selector)
    assert {name for name, labels in objects.items() if match(labels)} == expected


def test_malformed_selector_is_rejected():
    with pytest.raises(selectors.SelectorError):
        selectors.parse("a in b")
