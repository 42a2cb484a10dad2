"""YAML text that reads back as the data it was made from (``get -o yaml``, ``edit``, ``export``, ``convert``).

PyYAML with ``allow_unicode`` writes NEL (U+0085) and the Unicode line and paragraph separators raw
inside quoted strings, and its reader then folds them into spaces: a document holding one would not
round-trip. Text holding any of them is written with every non-ASCII character escaped instead.
"""

from __future__ import annotations

BREAKS = ("\x85", "\u2028", "\u2029")


def dump_yaml(data: object, sort_keys: bool = False) -> str:
    import yaml  # here, not at the top: ``meshop version`` prints text without it (start-up time)

    text: str = yaml.safe_dump(data, sort_keys=sort_keys, default_flow_style=False, allow_unicode=True)
    if any(mark in text for mark in BREAKS):
        text = yaml.safe_dump(data, sort_keys=sort_keys, default_flow_style=False, allow_unicode=False)
    return text
