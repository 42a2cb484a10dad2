"""Bind mounts resolve on the host before the allow-list decides: '..', symlinks and look-alike prefixes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshop.agent.engine.hostpaths import resolve_all, resolve_binds, unchangeable, within
from meshop.model import ServiceSpec


def spec_with(*host_paths: str) -> ServiceSpec:
    volumes = [{"hostPath": p, "mountPath": f"/m{i}"} for i, p in enumerate(host_paths)]
    return ServiceSpec.from_dict({"image": "img:1", "volumes": volumes})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """allowed/{data, up -> .., root -> /, inside -> data}, allowed-not/, secret/."""
    (tmp_path / "allowed" / "data").mkdir(parents=True)
    (tmp_path / "allowed-not").mkdir()
    (tmp_path / "secret").mkdir()
    os.symlink("..", tmp_path / "allowed" / "up")
    os.symlink("/", tmp_path / "allowed" / "root")
    os.symlink("data", tmp_path / "allowed" / "inside")
    os.symlink(tmp_path / "allowed", tmp_path / "link-to-allowed")
    return tmp_path


@pytest.mark.parametrize(
    ("host_path", "ok"),
    [
        ("allowed/data", True),
        ("allowed", True),
        ("allowed/inside", True),  # a symlink that stays inside
        ("allowed/not-yet-there", True),  # Docker itself refuses a missing source
        ("allowed/up/secret", False),  # a symlink to the parent
        ("allowed/root/etc", False),  # a symlink to /
        ("allowed-not", False),  # shares the text prefix, not the folder
        ("secret", False),
    ],
    ids=["child", "itself", "symlink-inside", "missing", "symlink-up", "symlink-root", "lookalike", "outside"],
)
def test_resolve_binds(tree: Path, host_path: str, ok: bool) -> None:
    path = str(tree / host_path)
    binds, refusal = resolve_binds(spec_with(path), [str(tree / "allowed")])
    if ok:
        assert refusal is None and binds == {path: os.path.realpath(path)}
    else:
        assert binds == {} and refusal is not None and path in refusal and "--allow-bind-mount" in refusal


def test_an_allowed_folder_given_through_a_symlink_is_resolved_too(tree: Path) -> None:
    path = str(tree / "allowed" / "data")
    assert resolve_binds(spec_with(path), [str(tree / "link-to-allowed")])[1] is None


def test_no_allowed_folder_refuses_every_bind_mount_and_named_volumes_need_none() -> None:
    assert resolve_binds(spec_with("/srv"), [])[1] == (
        "this node's agent does not allow bind mounts (--allow-bind-mount PATH)"
    )
    named = ServiceSpec.from_dict({"image": "img:1", "volumes": [{"name": "data", "mountPath": "/d"}]})
    assert resolve_binds(named, []) == ({}, None)


@pytest.mark.parametrize(
    ("path", "folder", "inside"),
    [("/srv/a", "/srv", True), ("/srv", "/srv", True), ("/srv2", "/srv", False), ("/x", "/", True)],
)
def test_within(path: str, folder: str, inside: bool) -> None:
    assert within(path, folder) is inside


# -- who can change the names on the way (Docker resolves the path again at every start) -----------------


def test_a_folder_on_the_way_that_another_user_owns_is_refused(tree: Path) -> None:
    (tree / "allowed" / "user").mkdir()
    (tree / "allowed" / "user" / "data").mkdir()
    os.chown(tree / "allowed" / "user", 65534, 65534)
    binds, refusal = resolve_binds(spec_with(str(tree / "allowed/user/data")), [str(tree / "allowed")])
    assert binds == {} and refusal is not None
    assert f"folder {tree}/allowed/user belongs to uid 65534" in refusal and "entry data" in refusal
    # the user's own folder itself is fine: its name lives in allowed/, which only root can change
    assert resolve_binds(spec_with(str(tree / "allowed/user")), [str(tree / "allowed")])[1] is None


@pytest.mark.parametrize(
    ("mode", "entry_uid", "ok"),
    [(0o755, 0, True), (0o775, 0, False), (0o757, 0, False), (0o1777, 0, True), (0o1777, 65534, False)],
    ids=["root-only", "group-writable", "world-writable", "sticky-root-entry", "sticky-user-entry"],
)
def test_a_folder_others_may_write_is_refused_unless_sticky_over_a_root_entry(
    tree: Path, mode: int, entry_uid: int, ok: bool
) -> None:
    shared = tree / "allowed" / "shared"
    (shared / "data").mkdir(parents=True)
    shared.chmod(mode)
    os.chown(shared / "data", entry_uid, entry_uid)
    refusal = resolve_binds(spec_with(str(shared / "data")), [str(tree / "allowed")])[1]
    assert (refusal is None) is ok, refusal
    if not ok:
        assert f"folder {shared}" in refusal


def test_a_component_that_became_a_symlink_after_resolving_is_refused(tree: Path) -> None:
    """The walk opens each component without following links: a swap after ``realpath`` is caught."""
    assert unchangeable(str(tree / "allowed" / "data")) is None
    assert (
        unchangeable(str(tree / "allowed" / "inside"))
        == f"{tree}/allowed/inside changed into a symlink while it was checked"
    )


def test_a_path_below_a_writable_bind_mount_of_the_node_is_refused(tree: Path) -> None:
    allowed = tree / "allowed"
    (allowed / "data" / "app").mkdir()
    specs = {
        "backup": ServiceSpec.from_dict(
            {"image": "i:1", "volumes": [{"hostPath": str(allowed / "data"), "mountPath": "/b"}]}
        ),
        "app": spec_with(str(allowed / "data" / "app")),
        "same": spec_with(str(allowed / "data")),  # the same folder: a container cannot rename its own mount
    }
    results = resolve_all(specs, [str(allowed)])
    assert results["backup"][1] is None and results["same"][1] is None
    assert results["app"][0] == {} and results["app"][1] == (
        f"host path {allowed}/data/app is below {allowed}/data, which service backup mounts writable: its containers"
        f" could swap a folder on the way for a symlink (mount {allowed}/data read-only there)"
    )
    read_only = {
        "backup": ServiceSpec.from_dict(
            {"image": "i:1", "volumes": [{"hostPath": str(allowed / "data"), "mountPath": "/b", "readOnly": True}]}
        ),
        "app": spec_with(str(allowed / "data" / "app")),
    }
    assert all(refusal is None for _, refusal in resolve_all(read_only, [str(allowed)]).values())


def test_a_service_cannot_mount_a_folder_below_its_own_writable_mount(tree: Path) -> None:
    allowed = tree / "allowed"
    (allowed / "data" / "app").mkdir()
    spec = spec_with(str(allowed / "data"), str(allowed / "data" / "app"))
    assert "which service self mounts writable" in (resolve_all({"self": spec}, [str(allowed)])["self"][1] or "")
