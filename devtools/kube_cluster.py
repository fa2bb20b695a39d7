"""A real Kubernetes control plane on loopback, with fake nodes: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK, each on free 127.0.0.1 ports.

    python -m devtools.services start --only kube   # the usual way: endpoints in .services/env
    KUBECONFIG=.services/kube/admin.kubeconfig kubectl get nodes

The API server is the real one (TLS from a CA made here, RBAC, service-account tokens from the
TokenRequest API), so are the controllers (Deployments get ReplicaSets and pods) and the
scheduler. There is no kubelet: KWOK plays the nodes, `kwok_stages.yaml` says how it moves their
pods (Running at once, Ready after the pod's ``autoscaler.test/ready-after-s`` annotation,
deleted at once when asked). Binaries come from `devtools.kube_build` (built on first use).

Each component logs to ``<base>/<component>.log``; one that exits or is not ready in time is a
`ServiceError` with the tail of its log, and whatever had started is stopped again.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.kube_build import BuildError, bin_dir, build_all
from devtools.processes import ServiceError, free_port, spawn, stop_process_groups, tail

# Fake nodes: big enough that no test is limited by capacity (GPU servers included).
NODE_COUNT = 2
NODE_CAPACITY = {
    "cpu": "1000",
    "memory": "4Ti",
    "pods": "5000",
    "nvidia.com/gpu": "64",
    "ephemeral-storage": "100Ti",
}
# The annotation KWOK selects the nodes it plays by (its documented default).
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# A pod's readiness delay in seconds (kwok_stages.yaml spells it out in its pod-ready stage).
READY_AFTER_ANNOTATION = "autoscaler.test/ready-after-s"
SERVICE_CIDR = "10.96.0.0/16"
# kwok hands pod IPs out of one pool; a /16 holds the nodes' 2 x 5000 pods.
POD_CIDR = "10.244.0.1/16"
STAGES = Path(__file__).with_name("kwok_stages.yaml")
ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class KubeCluster:
    base: Path
    server: str
    kubeconfig: Path
    # (name, process) in start order; stop_steps() says in which order they stop.
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    started_in_s: float = 0.0

    def env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "KUBE_APISERVER": self.server,
            "KUBECTL": str(bin_dir() / "kubectl"),
        }

    def pid(self, name: str) -> int:
        return dict(self.processes)[name].pid

    def stop_steps(self) -> list[tuple[str, list[int]]]:
        """How to stop: first kwok and the controllers, together (they are only clients of
        the API server); then the API server, while etcd is still there (without etcd it no
        longer shuts down on SIGTERM); etcd last."""
        servers = ("kube-apiserver", "etcd")
        clients = [(name, p.pid) for name, p in self.processes if name not in servers]
        steps = [("+".join(name for name, _ in clients), [pid for _, pid in clients])]
        steps += [(name, [self.pid(name)]) for name in servers if name in dict(self.processes)]
        return [step for step in steps if step[1]]

    def stop(self) -> None:
        for _, pids in self.stop_steps():
            stop_process_groups(pids)
        self.processes.clear()


# -- certificates and kubeconfigs ------------------------------------------------------------

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = @alt_names
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
[alt_names]
IP.1 = 127.0.0.1
IP.2 = 10.96.0.1
DNS.1 = localhost
DNS.2 = kubernetes
DNS.3 = kubernetes.default
DNS.4 = kubernetes.default.svc
DNS.5 = kubernetes.default.svc.cluster.local
"""

# P-256 keys: generated in milliseconds, accepted by every component and by Python's ssl.
_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(pki: Path, *args: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=pki, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError(f"openssl {' '.join(args[:2])} failed:\n{done.stderr}")


def _certificate(pki: Path, name: str, subject: str, profile: str) -> None:
    """``name.crt``/``name.key`` signed by the CA in ``pki``, for ``profile`` server or client."""
    _openssl(pki, "req", "-new", "-config", "openssl.cnf", *_EC_KEY, "-subj", subject,
             "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
    _openssl(pki, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", str(secrets.randbits(63)), "-days", "3650",
             "-extfile", "openssl.cnf", "-extensions", profile, "-out", f"{name}.crt")  # fmt: skip


def make_pki(pki: Path) -> None:
    """A CA, the serving certificate, a client certificate per component (the admin's and
    kwok's in system:masters; the controller manager and scheduler as the users the default
    RBAC roles are bound to) and the service-account signing key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    (pki / "openssl.cnf").write_text(_OPENSSL_CONFIG)
    _openssl(pki, "req", "-x509", "-new", "-config", "openssl.cnf", "-extensions", "ca",
             *_EC_KEY, "-subj", "/CN=autoscaler-test-ca", "-days", "3650",
             "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    _certificate(pki, "serving", "/CN=kube-apiserver", "server")
    _certificate(pki, "admin", "/O=system:masters/CN=kubernetes-admin", "client")
    _certificate(pki, "kwok", "/O=system:masters/CN=kwok", "client")
    _certificate(pki, "controller-manager", "/CN=system:kube-controller-manager", "client")
    _certificate(pki, "scheduler", "/CN=system:kube-scheduler", "client")
    _openssl(pki, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", "sa.key")  # fmt: skip
    _openssl(pki, "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> Path:
    path.write_text(
        f"""\
apiVersion: v1
kind: Config
clusters:
- name: autoscaler-test
  cluster:
    server: {server}
    certificate-authority: {pki / "ca.crt"}
users:
- name: {user}
  user:
    client-certificate: {pki / f"{user}.crt"}
    client-key: {pki / f"{user}.key"}
contexts:
- name: {user}@autoscaler-test
  context: {{cluster: autoscaler-test, user: {user}}}
current-context: {user}@autoscaler-test
"""
    )
    return path


# -- talking to the API server (stdlib only: devtools runs before anything is installed) -----


def _tls(pki: Path, client: str | None = "admin") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client is not None:
        context.load_cert_chain(pki / f"{client}.crt", pki / f"{client}.key")
    return context


def _request(
    url: str, context: ssl.SSLContext, method: str = "GET", body: object | None = None
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip().startswith(b"{") else raw.decode()


def _healthy(url: str, context: ssl.SSLContext | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError:
            # Answering, not yet healthy (e.g. /readyz 500 while post-start hooks run).
            return False

    return check


def _node(name: str, address: str) -> dict[str, object]:
    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "kwok",
                "type": "kwok",
            },
        },
        # The node-initialize stage keeps the capacity and addresses it finds here.
        "status": {
            "capacity": NODE_CAPACITY,
            "allocatable": NODE_CAPACITY,
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def _nodes_schedulable(server: str, context: ssl.SSLContext, names: list[str]) -> bool:
    """Every node Ready and rid of the not-ready taint (added when a node registers, removed
    by the node lifecycle controller once it is Ready): only then does a pod land at once."""
    nodes = _request(f"{server}/api/v1/nodes", context)["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    for name in names:
        node = by_name.get(name)
        if node is None:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return False
        taints = node.get("spec", {}).get("taints", [])
        if any(t["key"].startswith("node.kubernetes.io/") for t in taints):
            return False
    return True


# -- the components --------------------------------------------------------------------------


def _wait_for(
    cluster: KubeCluster, check: Callable[[], bool], what: str, log: Path, timeout_s: float
) -> None:
    """Poll ``check`` until it holds. Any component exiting meanwhile is the error (with its
    own log): a controller manager that died would otherwise show as nodes never ready."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, process in cluster.processes:
            if process.poll() is not None:
                raise ServiceError(
                    f"{name} exited with {process.returncode}; its log:\n"
                    f"{tail(cluster.base / f'{name}.log')}"
                )
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServiceError(f"{what} not ready after {timeout_s:.0f}s; its log:\n{tail(log)}")


def start_cluster(
    base: Path, *, timeout_s: float = 60, apiserver_args: Sequence[str] = ()
) -> KubeCluster:
    """Start the control plane and KWOK's nodes in ``base``; return once the nodes take pods.
    ``apiserver_args`` are added to kube-apiserver's flags (a test's tighter limits)."""
    try:
        binaries = build_all(kubectl=True)
    except BuildError as exc:
        raise ServiceError(f"the Kubernetes binaries could not be built: {exc}") from exc
    began = time.monotonic()
    base.mkdir(parents=True, exist_ok=True)
    pki = base / "pki"
    make_pki(pki)
    api_port = free_port()
    server = f"https://127.0.0.1:{api_port}"
    cluster = KubeCluster(
        base, server, write_kubeconfig(base / "admin.kubeconfig", server, pki, "admin")
    )
    try:
        _start_components(cluster, binaries, pki, api_port, timeout_s, tuple(apiserver_args))
    except BaseException:
        cluster.stop()
        raise
    cluster.started_in_s = time.monotonic() - began
    (base / "started.txt").write_text(f"control plane ready in {cluster.started_in_s:.1f}s\n")
    return cluster


def _start_components(
    cluster: KubeCluster,
    binaries: dict[str, Path],
    pki: Path,
    api_port: int,
    timeout_s: float,
    apiserver_args: tuple[str, ...] = (),
) -> None:
    base, server = cluster.base, cluster.server

    def launch(name: str, argv: list[str], env: dict[str, str] | None = None) -> Path:
        log = base / f"{name}.log"
        cluster.processes.append((name, spawn(argv, log, base, env)))
        return log

    etcd_port, peer_port = free_port(), free_port()
    etcd_log = launch(
        "etcd",
        [
            str(binaries["etcd"]),
            "--name=default",
            f"--data-dir={base / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            # A throwaway store: durability buys nothing and fsync is most of etcd's latency.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    _wait_for(
        cluster, _healthy(f"http://127.0.0.1:{etcd_port}/health"), "etcd", etcd_log, timeout_s
    )

    apiserver_log = launch(
        "kube-apiserver",
        [
            str(binaries["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # Test speed: no request fairness queues to bootstrap, no profiling endpoints,
            # and a stop that does not wait for load balancers that do not exist.
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--shutdown-delay-duration=0s",
            *apiserver_args,
        ],
    )
    admin = _tls(pki)
    _wait_for(
        cluster, _healthy(f"{server}/readyz", admin), "kube-apiserver", apiserver_log, timeout_s
    )

    cm_kubeconfig = write_kubeconfig(
        base / "controller-manager.kubeconfig", server, pki, "controller-manager"
    )
    cm_port = free_port()
    cm_log = launch(
        "kube-controller-manager",
        [
            str(binaries["kube-controller-manager"]),
            f"--kubeconfig={cm_kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={cm_port}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            # Each controller acts as its own service account with its system:controller:*
            # role, as kubeadm sets it up (the system:kube-controller-manager user alone may
            # not even patch nodes).
            "--use-service-account-credentials=true",
            # Service-account token secrets and the kube-root-ca.crt ConfigMap in namespaces.
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            # Its client-side rate limit (20 qps) would pace a scale-up of dozens of pods.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ],
    )
    scheduler_kubeconfig = write_kubeconfig(base / "scheduler.kubeconfig", server, pki, "scheduler")
    scheduler_config = base / "scheduler.yaml"
    scheduler_config.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "clientConnection:\n"
        f"  kubeconfig: {scheduler_kubeconfig}\n"
        "  qps: 200\n"
        "  burst: 400\n"
        "leaderElection: {leaderElect: false}\n"
    )
    scheduler_port = free_port()
    scheduler_log = launch(
        "kube-scheduler",
        [
            str(binaries["kube-scheduler"]),
            f"--config={scheduler_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={scheduler_port}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
        ],
    )
    kwok_kubeconfig = write_kubeconfig(base / "kwok.kubeconfig", server, pki, "kwok")
    kwok_config = base / "kwok.yaml"
    key, value = KWOK_NODE_ANNOTATION
    kwok_config.write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
        "kind: KwokConfiguration\n"
        "options:\n"
        f"  cidr: {POD_CIDR}\n"
        "  manageAllNodes: false\n"
        f"  manageNodesWithAnnotationSelector: {key}={value}\n"
        # kwok renews each node's Lease, the node lifecycle controller's health signal.
        "  nodeLeaseDurationSeconds: 40\n"
        # One worker plays the pod stages: kwok creates its pod IP pool on first use without
        # a lock, so parallel workers may hand the first pods the same IP. One worker still
        # applies hundreds of stages a second.
        "  podPlayStageParallelism: 1\n"
        "  enableProfilingHandler: false\n"
        "  enableDebuggingHandlers: false\n" + STAGES.read_text()
    )
    kwok_port = free_port()
    kwok_log = launch(
        "kwok",
        [
            str(binaries["kwok"]),
            f"--kubeconfig={kwok_kubeconfig}",
            f"--config={kwok_config}",
            f"--server-address=127.0.0.1:{kwok_port}",
        ],
        # kwok also reads ~/.kwok/kwok.yaml when there is one: not a person's own setup here.
        env={**os.environ, "HOME": str(base)},
    )
    serving = _tls(pki, client=None)
    for url, name, log in [
        (f"https://127.0.0.1:{cm_port}/healthz", "kube-controller-manager", cm_log),
        (f"https://127.0.0.1:{scheduler_port}/healthz", "kube-scheduler", scheduler_log),
        (f"http://127.0.0.1:{kwok_port}/healthz", "kwok", kwok_log),
    ]:
        context = serving if url.startswith("https") else None
        _wait_for(cluster, _healthy(url, context), name, log, timeout_s)

    names = [f"kwok-node-{i}" for i in range(NODE_COUNT)]
    for i, name in enumerate(names):
        # Documentation addresses (TEST-NET-2): nothing listens there, nothing is reached.
        _request(f"{server}/api/v1/nodes", admin, "POST", _node(name, f"198.51.100.{i + 1}"))
    _wait_for(
        cluster,
        lambda: _nodes_schedulable(server, admin, names),
        "kwok's nodes (Ready, untainted)",
        kwok_log,
        timeout_s,
    )
