"""The packaged CRDs go through libyaml's parser (start-up time); they must read exactly as the
pure-Python parser that reads user input reads them, under the same limits."""

from __future__ import annotations

from importlib import resources

import pytest

from meshop.errors import DocumentError
from meshop.model import yamlload
from meshop.model.schema import SCHEMA_FILES

pytestmark = pytest.mark.skipif(yamlload._FastLoader is None, reason="PyYAML without libyaml")


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES.values()))
def test_each_crd_reads_the_same_with_either_parser(name: str) -> None:
    text = resources.files("meshop.crds").joinpath(name).read_text(encoding="utf-8")
    assert yamlload.load_yaml(text, own_file=True) == yamlload.load_yaml(text, own_file=False)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "a: 1.10\nb: yes\nc: 2024-01-02\nd: '7'\ne: ~\n",
            {"a": 1.1, "b": "yes", "c": "2024-01-02", "d": "7", "e": None},
        )
    ],
    ids=["yaml-1.2-core-rules"],
)
def test_the_fast_parser_keeps_meshops_scalar_rules(text: str, value: dict) -> None:
    assert yamlload.load_yaml(text, own_file=True) == [value]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: " + "[" * 70 + "]" * 70, "nested deeper than 64 levels"),
        ("a: &a [1]\nb: [" + ", ".join(["*a"] * 1001) + "]", "more than 1000 aliases"),
        ("a: !!python/object:os.system x", "tag !!python/object:os.system is not allowed"),
    ],
    ids=["depth", "aliases", "python-tag"],
)
def test_the_fast_parser_keeps_the_limits(text: str, problem: str) -> None:
    with pytest.raises(DocumentError, match=problem):
        yamlload.load_yaml(text, own_file=True)
