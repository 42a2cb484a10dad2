"""Secret values never survive in an error text, whatever form Docker or runc echo them in."""

from __future__ import annotations

import pytest

from meshop.agent.planning.redact import REDACTED, Redactor, env_problem, go_quoted, redact

SECRET = "s3cr\x00t\nline-two"


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "plain"),
        ("a\x00b", "a\\x00b"),
        ("a\nb\tc", "a\\nb\\tc"),
        ('q"b\\s', 'q\\"b\\\\s'),
        ("del\x7f", "del\\x7f"),
        ("snowman ☃", "snowman ☃"),
    ],
    ids=["plain", "nul", "newline-tab", "quote-backslash", "del", "unicode"],
)
def test_go_quoted_matches_strconv_quote(value: str, quoted: str) -> None:
    assert go_quoted(value) == quoted


@pytest.mark.parametrize(
    "text",
    [
        f"error: {SECRET}",
        f'runc: environment variable value can\'t contain null(\\x00): "PW={go_quoted(SECRET)}": unknown',
        'json: {"env": "' + SECRET.replace("\x00", "\\u0000").replace("\n", "\\n") + '"}',
        "folded: " + " ".join(SECRET.split()),
        "one line only: line-two",
        "after the name: PW=whatever it is",
    ],
    ids=["raw", "go-quoted", "json", "whitespace-folded", "a-line-of-it", "name-equals"],
)
def test_every_form_of_a_secret_is_redacted(text: str) -> None:
    clean = redact(text, {"PW": SECRET})
    assert "line-two" not in clean and "s3cr" not in clean and "whatever" not in clean
    assert REDACTED in clean


def test_redaction_is_one_pass_and_leaves_other_text_alone() -> None:
    scrub = Redactor({"A": "red", "B": "cted"})  # both occur in the placeholder itself
    assert scrub("a red car, not selected") == f"a {REDACTED} car, not sele{REDACTED}"
    assert Redactor({})("nothing to hide") == "nothing to hide"
    assert scrub("XA=1 and A=2") == f"XA=1 and A={REDACTED}"


def test_env_problem_names_nul_without_quoting_the_value() -> None:
    problem = env_problem("abc\x00def")
    assert problem is not None and "abc" not in problem
    assert env_problem("multi\nline") is None
