"""Bind mounts resolve on the host before the allow-list decides: '..', symlinks and look-alike prefixes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshop.agent.engine.hostpaths import resolve_binds, within
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
