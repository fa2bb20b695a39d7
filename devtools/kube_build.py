"""Kubernetes control-plane binaries built from the Go module proxy, for a local cluster of
fake nodes (kube-apiserver + etcd + kwok) on loopback.

    python -m devtools.kube_build             # build what is missing, print the bin directory
    python -m devtools.kube_build --kubectl   # kubectl too
    python -m devtools.kube_build --force     # rebuild everything

The machine reaches the Go module proxy but neither github.com nor dl.k8s.io, so every binary
is compiled with the machine's Go into ~/.cache/autoscaler/kube/<k8s version>/bin and reused
while it is there. `k8s.io/kubernetes` cannot be `go install`ed (its go.mod maps the staging
modules to ./staging/src with replace directives, and replace directives of a dependency are
ignored), and neither can etcd's server module (same reason), so each binary is built from a
throwaway module in the cache whose go.mod requires the pinned version and, for Kubernetes,
maps every staging module to its published v0.<minor>.<patch> twin. Go's own caches
(~/.cache/go-build, ~/go/pkg/mod) make a rebuild after a deleted binary cheap.

The pinned versions are the ones this machine's proxy serves completely: Kubernetes 1.33 (the
proxy lacks several v0.32.x/v0.31.x staging modules), the etcd release kubeadm pairs with it
and the kwok release built against it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.33.13"
ETCD_VERSION = "v3.5.21"
KWOK_VERSION = "v0.7.0"
CACHE = Path(os.environ.get("AUTOSCALER_CACHE", Path.home() / ".cache" / "autoscaler"))
KUBE_CACHE = CACHE / "kube"
# Output of a build that failed is kept here; the error message names it.
LOG = KUBE_CACHE / "build.log"
# Reproducible stamp for `--version`; the binaries are not built from a git checkout.
BUILD_DATE = "1970-01-01T00:00:00Z"


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    name: str  # the binary's file name
    module: str  # the module that holds its main package
    version: str
    package: str  # the main package's import path
    ldflags: tuple[str, ...] = ()


def kube_dir(k8s_version: str = K8S_VERSION) -> Path:
    return KUBE_CACHE / k8s_version


def bin_dir(k8s_version: str = K8S_VERSION) -> Path:
    return kube_dir(k8s_version) / "bin"


def _staging_version(k8s_version: str) -> str:
    # k8s.io/kubernetes v1.33.13 publishes its staging modules as v0.33.13.
    return "v0." + k8s_version.removeprefix("v1.")


def _k8s_version_ldflags(k8s_version: str) -> tuple[str, ...]:
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+.*", k8s_version)
    if match is None:
        raise BuildError(f"not a Kubernetes version: {k8s_version}")
    major, minor = match.groups()
    flags: list[str] = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={k8s_version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate={BUILD_DATE}",
        ]
    return tuple(flags)


def targets(k8s_version: str = K8S_VERSION, *, kubectl: bool = False) -> list[Target]:
    k8s_flags = _k8s_version_ldflags(k8s_version)
    commands = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    if kubectl:
        commands.append("kubectl")
    built = [
        Target(name, "k8s.io/kubernetes", k8s_version, f"k8s.io/kubernetes/cmd/{name}", k8s_flags)
        for name in commands
    ]
    built.append(
        Target(
            "etcd",
            "go.etcd.io/etcd/server/v3",
            ETCD_VERSION,
            "go.etcd.io/etcd/server/v3",
            (f"-X go.etcd.io/etcd/api/v3/version.GitSHA={ETCD_VERSION}",),
        )
    )
    built.append(Target("kwok", "sigs.k8s.io/kwok", KWOK_VERSION, "sigs.k8s.io/kwok/cmd/kwok"))
    return built


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOFLAGS="-mod=mod -buildvcs=false",
        CGO_ENABLED="0",
        # Never fetch another toolchain: a module that needs a newer Go is an error to report.
        GOTOOLCHAIN="local",
    )
    return env


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("`go` is not on PATH; these binaries are compiled with the machine's Go")
    return go


def _run(args: list[str], cwd: Path, what: str) -> str:
    """Run a go command, appending its output to LOG; a failure carries the output's tail."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(args, cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False)
    with LOG.open("a") as log:
        log.write(f"$ (cd {cwd} && {' '.join(args)})\n{done.stderr}")
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-40:])
        raise BuildError(f"{what} failed (exit {done.returncode}; full output in {LOG}):\n{tail}")
    return done.stdout


def _module_gomod(module: str, version: str, work: Path) -> str:
    """The go.mod text of module@version, downloaded into the module cache."""
    out = _run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"], work, f"download {module}"
    )
    info = json.loads(out)
    if "Error" in info:
        raise BuildError(f"download {module}@{version}: {info['Error']}")
    return Path(info["GoMod"]).read_text()


def _throwaway_gomod(module: str, version: str, upstream: str) -> str:
    """go.mod of a module that only requires module@version.

    The go and godebug lines are copied from the dependency: the main module decides both,
    and Kubernetes pins its GODEBUG defaults there. For k8s.io/kubernetes every staging
    module (`k8s.io/foo => ./staging/src/k8s.io/foo` upstream) is replaced by its published
    version, since a dependency's replace directives do not apply.
    """
    go_line = re.search(r"^go \S+$", upstream, re.MULTILINE)
    lines = ["module autoscaler.local/kubebuild", ""]
    if go_line:
        lines += [go_line.group(0), ""]
    lines += re.findall(r"^godebug .+$", upstream, re.MULTILINE)
    lines += ["", f"require {module} {version}", ""]
    if module == "k8s.io/kubernetes":
        staging = re.findall(
            r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/\1\s*$", upstream, re.MULTILINE
        )
        if not staging:
            raise BuildError(f"no staging replace directives in k8s.io/kubernetes@{version}")
        published = _staging_version(version)
        lines.append("replace (")
        lines += [f"\t{name} => {name} {published}" for name in staging]
        lines.append(")")
    return "\n".join(lines) + "\n"


def _work_dir(target: Target, k8s_version: str) -> Path:
    work = kube_dir(k8s_version) / "work" / f"{target.module.replace('/', '_')}@{target.version}"
    gomod = work / "go.mod"
    if not gomod.exists():
        work.mkdir(parents=True, exist_ok=True)
        upstream = _module_gomod(target.module, target.version, work)
        gomod.write_text(_throwaway_gomod(target.module, target.version, upstream))
    return work


def build(target: Target, k8s_version: str = K8S_VERSION, *, force: bool = False) -> Path:
    """Build one binary into the bin directory unless it is already there; return its path."""
    out = bin_dir(k8s_version) / target.name
    if out.exists() and os.access(out, os.X_OK) and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    work = _work_dir(target, k8s_version)
    partial = out.with_name(f".{target.name}.partial")
    ldflags = " ".join(("-s", "-w", *target.ldflags))
    started = time.monotonic()
    print(f"building {target.name} ({target.package}@{target.version})...", file=sys.stderr)
    _run(
        [_go(), "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(partial), target.package],
        work,
        f"go build {target.package}",
    )
    partial.replace(out)
    print(f"built {out} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return out


def build_all(
    k8s_version: str = K8S_VERSION,
    *,
    kubectl: bool = False,
    force: bool = False,
    only: list[str] | None = None,
) -> dict[str, Path]:
    chosen = [t for t in targets(k8s_version, kubectl=kubectl) if not only or t.name in only]
    if only and {t.name for t in chosen} != set(only):
        known = [t.name for t in targets(k8s_version, kubectl=True)]
        raise BuildError(f"unknown binaries {sorted(set(only) - set(known))}; known: {known}")
    return {t.name: build(t, k8s_version, force=force) for t in chosen}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.kube_build", description=__doc__)
    parser.add_argument("--kubectl", action="store_true", help="build kubectl as well")
    parser.add_argument("--force", action="store_true", help="rebuild binaries already there")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these binaries")
    args = parser.parse_args(argv)
    only: list[str] | None = args.only
    try:
        built = build_all(
            kubectl=args.kubectl or "kubectl" in (only or []), force=args.force, only=only
        )
    except BuildError as error:
        print(f"kube_build: {error}", file=sys.stderr)
        return 1
    for name, path in built.items():
        print(f"{name}\t{path}", file=sys.stderr)
    print(bin_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
