"""``meshop node remove``: the steps that take a node out of the cluster. Pure.

Order: drain (the controller moves its work elsewhere, start-first; the step waits until nothing is
assigned to the node), stop and disable its units (only when the node can be reached: a dead node is
removed without it), revoke its two tokens and its agent policy, make Consul forget the member, delete
its records. Every step has a check, so a removal that failed half-way is simply run again. Commands run
on the gateway with the management token file that ``meshop init`` left there.
"""

from __future__ import annotations

import shlex

from meshop.bootstrap import render
from meshop.bootstrap.plan import ACL_SYNC_ENV, MANAGEMENT_TOKEN
from meshop.bootstrap.steps import Command
from meshop.model import acl

DRAIN_TIMEOUT = 600
AGENT_STATE = render.AGENT_STATE_DIR  # the state_dir of the agent.yaml node add writes
DRAIN_GRACE = 15  # seconds the controller has to re-place the node's replicas before "cannot be placed" counts
# python3 -c _DRAIN_WAIT NODE PREFIX TIMEOUT GRACE, on the gateway: wait until nothing is assigned to NODE;
# fail fast, naming the services and the controller's reasons, when a replica cannot be placed elsewhere
# (its status says Scheduled False: e.g. two spread replicas and one node left), instead of waiting it out.
_DRAIN_WAIT = (
    "import json,subprocess,sys,time\n"
    "node,prefix,limit,grace=sys.argv[1],sys.argv[2],float(sys.argv[3]),float(sys.argv[4])\n"
    "def kv(*a):\n"
    "    r=subprocess.run(['consul','kv','get','-token-file="
    + MANAGEMENT_TOKEN
    + "',*a],capture_output=True,text=True)\n"
    "    return r.stdout if r.returncode==0 else ''\n"
    "start=time.monotonic()\n"
    "while True:\n"
    "    keys=kv('-keys',prefix+'/assignments/'+node+'/').split()\n"
    "    services=[k.rsplit('/',1)[1] for k in keys if not k.endswith('/')]\n"
    "    if not services: sys.exit(0)\n"
    "    stuck=[]\n"
    "    for s in services:\n"
    "        try: conditions=json.loads(kv(prefix+'/status/services/'+s) or '{}').get('conditions') or []\n"
    "        except (ValueError,AttributeError): conditions=[]\n"
    "        stuck+=[s+': '+str(c.get('message') or c.get('reason')) for c in conditions\n"
    "                if c.get('type')=='Scheduled' and c.get('status')=='False']\n"
    "    waited=time.monotonic()-start\n"
    "    if (stuck and waited>=grace) or waited>=limit:\n"
    "        why='; '.join(stuck) or 'still assigned: '+', '.join(services)\n"
    "        print('node %s cannot be drained (after %.0f s): %s. Scale the service down, add a node or relax its '\n"
    "              'placement, then run node remove again.' % (node,waited,why),file=sys.stderr)\n"
    "        sys.exit(1)\n"
    "    time.sleep(1)\n"
)
_TOKENS = (  # python3 -c _TOKENS check|delete DESCRIPTION...: are there tokens with these descriptions / delete them
    "import json,subprocess,sys; "
    'run=lambda *a: subprocess.run(["consul","acl","token",*a,"-token-file=' + MANAGEMENT_TOKEN + '"],'
    "check=True,capture_output=True).stdout; "
    'found=[t["AccessorID"] for t in json.loads(run("list","-format=json") or b"[]") '
    'if t.get("Description") in sys.argv[2:]]; '
    '[run("delete","-id",i) for i in found] if sys.argv[1]=="delete" else sys.exit(1 if found else 0)'
)


def plan_removal(node: str, prefix: str) -> tuple[tuple[Command, ...], tuple[Command, ...], tuple[Command, ...]]:
    """(gateway steps before, node steps, gateway steps after); ``node`` and ``prefix`` are checked here."""
    descriptions = [acl.description("agent", prefix, node), f"meshop consul agent {node}"]
    policy = acl.policy_name("agent", prefix, node)  # checks node and prefix
    q = shlex.quote
    tok = f"-token-file={MANAGEMENT_TOKEN}"
    kv = lambda key: q(f"{prefix}/{key}")  # noqa: E731
    env = f"CONSUL_HTTP_TOKEN_FILE={MANAGEMENT_TOKEN} MESHOP_PREFIX={q(prefix)}"
    nothing_assigned = f'[ -z "$(consul kv get {tok} -recurse {kv(f"assignments/{node}/")})" ]'
    before = (
        Command(
            f"node {node} drained: nothing assigned to it any more (waits up to {DRAIN_TIMEOUT}s; "
            "fails at once, with the reason, when a replica cannot be placed elsewhere)",
            check=nothing_assigned,
            apply=(
                f"{env} {render.BIN} nodes drain {q(node)} >/dev/null && "
                f"python3 -c {q(_DRAIN_WAIT)} {q(node)} {q(prefix)} {DRAIN_TIMEOUT} {DRAIN_GRACE}"
            ),
        ),
    )
    units = "meshop-agent.service meshop-fence.service consul.service"
    # a server node's standbys (node add --server); else absent. The management token goes with them.
    standbys = "meshop-controller.service meshop-acl-sync.service"
    on_node = (
        Command(
            f"{standbys} stopped and disabled, {ACL_SYNC_ENV} deleted (a server node's standbys)",
            check=(
                f"! systemctl is-active -q {standbys} && ! systemctl is-enabled -q {standbys} 2>/dev/null "
                f"&& [ ! -e {ACL_SYNC_ENV} ]"
            ),
            # one by one: a server node added before acl-sync standbys has only the controller's unit
            apply=f"for u in {standbys}; do systemctl disable --now -q $u 2>/dev/null; done; rm -f {ACL_SYNC_ENV}",
        ),
        Command(
            f"{units} stopped and disabled",
            check=f"! systemctl is-active -q {units} && ! systemctl is-enabled -q {units} 2>/dev/null",
            apply=f"systemctl disable --now -q {units}",
        ),
        # The agent remembers this cluster's fence for the node; the records go next, so a later `node add`
        # would find no fence and hold the node ("the KV was emptied") until `meshop cluster adopt`.
        Command(
            f"the agent's memory of this cluster removed ({AGENT_STATE}: its fence, holds)",
            check=f"[ ! -e {AGENT_STATE} ]",
            apply=f"rm -rf {AGENT_STATE}",
        ),
    )
    args = " ".join(q(d) for d in descriptions)
    singles = (f"nodes/{node}", f"fences/{node}", f"status/nodes/{node}", f"desired/nodes/{node}")
    after = (
        Command(
            f"tokens of node {node} revoked",
            check=f"python3 -c {q(_TOKENS)} check {args}",
            apply=f"python3 -c {q(_TOKENS)} delete {args}",
        ),
        Command(
            f"ACL policy {policy} deleted",
            check=f"! consul acl policy read {tok} -name {q(policy)} >/dev/null 2>&1",
            apply=f"consul acl policy delete {tok} -name {q(policy)}",
        ),
        Command(
            f"Consul forgot member {node}",
            check=f'! consul members {tok} | awk \'$1 == "{node}" && $3 != "left"\' | grep -q .',
            # a member that only just went away is still "alive" until gossip notices: repeat for up to 60 s
            apply=(
                f"for i in $(seq 60); do consul force-leave {tok} {q(node)} >/dev/null 2>&1; "
                f'consul members {tok} | awk \'$1 == "{node}" && $3 != "left"\' | grep -q . || exit 0; '
                "sleep 1; done; exit 1"
            ),
        ),
        Command(
            f"records of node {node} deleted (nodes/, fences/, status/nodes/, observed/, desired/nodes/)",
            check=" && ".join(
                [f"! consul kv get {tok} {kv(k)} >/dev/null 2>&1" for k in singles]
                + [f'[ -z "$(consul kv get {tok} -recurse {kv(f"observed/{node}/")})" ]']
            ),
            apply=" && ".join(
                [f"consul kv delete {tok} {kv(k)}" for k in singles]
                + [f"consul kv delete {tok} -recurse {kv(f'observed/{node}/')}"]
            ),
        ),
    )
    return before, on_node, after
