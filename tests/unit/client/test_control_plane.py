"""What status and the dashboard say about Consul's servers: a table over leader and peers. Pure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshop.cli.render import status_view
from meshop.client.cluster import Snapshot
from meshop.client.controlplane import control_plane
from meshop.client.status import build_report
from meshop.dashboard.views import control_plane_line
from tests.unit.cli.test_render import text as plain

GW, N1, N2 = "100.64.0.1:8300", "100.64.0.11:8300", "100.64.0.12:8300"
NAMES = {"n1": "100.64.0.11", "n2": "100.64.0.12"}


@pytest.mark.parametrize(
    ("leader", "peers", "quorum", "says"),
    [
        pytest.param(
            GW, (GW,), True, "a single Consul server (100.64.0.1): losing 100.64.0.1 stops failover", id="one"
        ),
        pytest.param(N1, (N1,), True, "losing n1 (100.64.0.11) stops failover", id="one-named"),
        pytest.param(GW, (GW, N1), True, "a quorum needs 2, so losing 1 stops failover", id="two"),
        pytest.param(GW, (GW, N1, N2), True, "", id="three-fine"),
        pytest.param(N1, (N1, N2), True, "losing 1 stops failover", id="three-after-autopilot-removed-one"),
        pytest.param(
            "", (GW, N1, N2), False, "no quorum: the Consul servers elect no leader (3 Raft peer(s)", id="lost"
        ),
        pytest.param("", (), False, "no quorum", id="nothing-known"),
    ],
)
def test_what_the_control_plane_says(leader, peers, quorum, says):
    plane = control_plane(leader, peers, NAMES)
    assert plane.quorum is quorum
    assert (says in plane.problem) if says else plane.problem == ""
    assert plane.to_dict() == {
        "leader": leader or None,
        "servers": list(peers),
        "quorum": quorum,
        "problem": plane.problem,
    }


def _report(leader: str, peers: tuple[str, ...]):
    snapshot = replace(Snapshot.build([], [], None, 1000.0), control_plane=control_plane(leader, peers, {}))
    return build_report(snapshot)


def test_status_and_dashboard_say_it_only_when_one_loss_stops_failover():
    single = _report(GW, (GW,))
    assert "Control plane: a single Consul server (100.64.0.1): losing 100.64.0.1 stops failover" in plain(
        status_view(single)
    )
    assert "losing 100.64.0.1 stops failover" in control_plane_line(single)
    assert single.to_dict()["controlPlane"]["servers"] == [GW]
    three = _report(GW, (GW, N1, N2))
    assert "Control plane" not in plain(status_view(three)) and control_plane_line(three) == ""
    assert three.to_dict()["controlPlane"]["problem"] == ""
