"""Entry points: read text into documents, validate them, turn valid ones into value objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshop.errors import DocumentError, ValidationFailed, Violation
from meshop.model import gateway_rules, rules
from meshop.model.keys import DEFAULT_PREFIX, DESIRED_GATEWAY
from meshop.model.policy import DEFAULT_POLICY, Policy
from meshop.model.rules import as_dict
from meshop.model.schema import (
    API_VERSION,
    MAX_DEPTH,
    Sanitized,
    apply_defaults,
    describe,
    load_schema,
    schema_for,
    schema_violations,
)
from meshop.model.schemawalk import json_type
from meshop.model.stateful_rules import stateful_rules
from meshop.model.yamlload import MAX_VALUES, load_yaml, where

if TYPE_CHECKING:  # the value objects load with the first parse_*: validating needs none (start-up time)
    from meshop.model.gateway import Gateway
    from meshop.model.node import NodeDoc
    from meshop.model.service import Service

KINDS = ("Service", "Node", "Gateway")
MAX_BYTES = 512 * 1024  # Consul's limit for one KV value


def load_documents(text: str | bytes, source: str = "") -> list[dict[str, Any]]:
    """Parse YAML or JSON text holding one or more documents (``---``, or a top-level list).

    Only parses: the result still needs ``validate``/``parse_*``. Plain YAML scalars are already
    converted as the document's kind schema directs (see yamlload). Raises DocumentError naming the
    source and line when the text cannot be read.
    """
    label = source or "input"
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_BYTES:
            raise DocumentError(f"{label}: larger than {MAX_BYTES // 1024} KiB")
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{label}: not UTF-8 (byte {exc.start})") from None
    elif not isinstance(text, str):
        raise DocumentError(f"{label}: expected text, got {type(text).__name__}")
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise DocumentError(f"{label}: larger than {MAX_BYTES // 1024} KiB")
    parsed: object = _load_json(text, source) if text.lstrip()[:1] in ("{", "[") else None
    items = load_yaml(text, source, schema_for) if parsed is None else parsed
    if not isinstance(items, list):
        items = [items]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DocumentError(f"{label}: document {i + 1} must be an object, got {describe(item)}")
    return items  # type: ignore[return-value]


def _load_json(text: str, source: str) -> object:
    """JSON first, for its exact error positions; None when it is not JSON (flow-style YAML is)."""
    import json  # here, not at the top: only a JSON document needs it (``meshop validate``'s start-up time)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise DocumentError(f"{source or 'input'}: duplicate key {key!r}")
            out[key] = value
        return out

    def no_constant(name: str) -> None:
        raise DocumentError(f"{source or 'input'}: {name} is not a JSON number")

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        try:
            load_yaml(text, source)
        except DocumentError:
            raise DocumentError(f"{where(source, exc.lineno, exc.colno)}: {exc.msg}") from None
        return None
    except RecursionError:
        raise DocumentError(f"{source or 'input'}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # the only other ValueError: an integer of thousands of digits
        raise DocumentError(f"{source or 'input'}: a number has too many digits") from None
    _check_shape(value, source)
    return value


def _check_shape(value: object, source: str) -> None:
    stack, count = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_VALUES:
            problem = (
                f"nested deeper than {MAX_DEPTH} levels" if depth > MAX_DEPTH else f"more than {MAX_VALUES} values"
            )
            raise DocumentError(f"{source or 'input'}: {problem}")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)


def validate(doc: object, policy: Policy = DEFAULT_POLICY, *, prefix: str = DEFAULT_PREFIX) -> list[Violation]:
    """Every violation of any document kind, sorted; never raises, whatever ``doc`` is.

    ``prefix`` is meshop's KV prefix: a Service's secrets must live under ``<prefix>/secrets/<name>/``.
    """
    return _check(doc, policy, None, prefix)[0]


def _check(
    doc: object, policy: Policy, expect: str | None, prefix: str
) -> tuple[list[Violation], dict[str, Any] | None]:
    try:
        return _check_unguarded(doc, policy, expect, prefix)
    except Exception as exc:  # noqa: BLE001 - last resort: callers rely on "never raises"
        return [Violation("", f"could not validate the document ({type(exc).__name__})")], None


def _check_unguarded(
    doc: object, policy: Policy, expect: str | None, prefix: str
) -> tuple[list[Violation], dict[str, Any] | None]:
    clean = Sanitized(doc)
    value = clean.value
    if not isinstance(doc, dict):
        return [Violation("", f"a document must be an object, got {json_type(doc)}")], None
    if not isinstance(value, dict):  # too large to look at
        return sorted(clean.violations), None
    kind = value.get("kind", expect)
    if kind not in KINDS or (expect is not None and kind != expect):
        found: list[Violation] = list(clean.violations)
        if "kind" not in value:
            found.append(Violation("kind", "is required"))
        else:
            found.append(Violation("kind", f"must be {expect}" if expect else "must be one of: " + ", ".join(KINDS)))
        if value.get("apiVersion") != API_VERSION:
            reason = "is required" if "apiVersion" not in value else f"must be {API_VERSION}"
            found.append(Violation("apiVersion", reason))
        return sorted(set(found)), None
    schema = load_schema(kind)
    apply_defaults(value, schema, schema)
    found = schema_violations(kind, value)
    rules.metadata_rules(found, value)
    if kind == "Service":
        rules.service_rules(found, value, policy, prefix)
        stateful_rules(found, as_dict(value.get("spec")))
    elif kind == "Gateway":
        gateway_rules.gateway_rules(found, value)
    # A replaced value (huge int, NaN, ...) already has its violation: drop the placeholder's.
    found = [v for v in found if not any(_under(v.path, h) for h in clean.replaced)]
    violations = sorted(set(found + clean.violations))
    return violations, value


def _under(path: str, prefix: str) -> bool:
    return path == prefix or not prefix or path.startswith((prefix + ".", prefix + "["))


def _parse(doc: object, policy: Policy, source: str, kind: str, prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    violations, value = _check(doc, policy, kind, prefix)
    if violations or value is None:
        raise ValidationFailed(violations, source)
    return value


def parse_service(
    doc: object, policy: Policy = DEFAULT_POLICY, source: str = "", *, prefix: str = DEFAULT_PREFIX
) -> Service:
    """A valid Service document as a Service; raises ValidationFailed listing every violation."""
    from meshop.model.service import Service

    return Service.from_dict(_parse(doc, policy, source, "Service", prefix))


def parse_node(doc: object, policy: Policy = DEFAULT_POLICY, source: str = "") -> NodeDoc:
    """A valid Node document as a NodeDoc (``policy`` is accepted for symmetry; unused)."""
    from meshop.model.node import NodeDoc

    return NodeDoc.from_dict(_parse(doc, policy, source, "Node"))


def parse_gateway(doc: object, policy: Policy = DEFAULT_POLICY, source: str = "") -> Gateway:
    """A valid Gateway document as a Gateway; raises ValidationFailed listing every violation."""
    from meshop.model.gateway import Gateway

    return Gateway.from_dict(_parse(doc, policy, source, "Gateway"))


def parse_stored_gateway(value: str | bytes) -> Gateway:
    """The Gateway document stored at ``desired/gateway``, as the gateway, the DNS writer and the node
    agents read it: exactly one document, valid. Raises DocumentError (ValidationFailed for broken rules)
    naming the key."""
    docs = load_documents(value, source=DESIRED_GATEWAY)
    if len(docs) != 1:
        raise DocumentError(f"{DESIRED_GATEWAY}: expected one Gateway document, found {len(docs)}")
    return parse_gateway(docs[0], source=DESIRED_GATEWAY)


def parse_document(
    doc: object, policy: Policy = DEFAULT_POLICY, source: str = "", *, prefix: str = DEFAULT_PREFIX
) -> Service | NodeDoc | Gateway:
    """Parse any kind, chosen by the document's ``kind``."""
    kind = doc.get("kind") if isinstance(doc, dict) else None
    parsers = {"Service": parse_service, "Node": parse_node, "Gateway": parse_gateway}
    parser = parsers.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ValidationFailed(
            validate(doc, policy, prefix=prefix) or [Violation("kind", "must be one of: " + ", ".join(KINDS))], source
        )
    if kind == "Service":
        return parse_service(doc, policy, source, prefix=prefix)
    return parser(doc, policy, source)  # type: ignore[no-any-return]
