"""A rolling restart is a change of ``spec.restartedAt``: it changes the spec hash (so agents replace the
replicas) and nothing else; a spec that never set it hashes as before the field existed."""

from __future__ import annotations

from meshop.client.restart import restarted
from meshop.model.documents import validate
from meshop.model.hashing import spec_hash
from meshop.model.service import ServiceSpec

DOC = {
    "apiVersion": "meshop.io/v1alpha1",
    "kind": "Service",
    "metadata": {"name": "web", "labels": {"a": "b"}},
    "spec": {"image": "nginx:1", "replicas": 3},
}


def test_restart_sets_only_restarted_at_and_stays_valid() -> None:
    new = restarted(DOC, 1_800_000_000.5)
    assert new["spec"] == {"image": "nginx:1", "replicas": 3, "restartedAt": "2027-01-15T08:00:00.500Z"}
    assert new["metadata"] == DOC["metadata"] and DOC["spec"] == {"image": "nginx:1", "replicas": 3}  # a copy
    assert validate(new) == []


def test_restart_changes_the_spec_hash_each_time_and_unset_keeps_old_hashes() -> None:
    before = spec_hash(DOC["spec"])
    once, twice = restarted(DOC, 1_800_000_000), restarted(DOC, 1_800_000_060)
    assert len({before, spec_hash(once["spec"]), spec_hash(twice["spec"])}) == 3
    assert "restartedAt" not in ServiceSpec.from_dict(DOC["spec"]).to_dict()  # old assignments hash the same
    assert ServiceSpec.from_dict(once["spec"]).to_dict()["restartedAt"] == "2027-01-15T08:00:00.000Z"
