"""Where policy code may come from (issue 9, item 7): built-ins, the ``autoscaler.policies``
entry-point group, and ``module:attr`` paths that ops list in ``allowed_policy_imports``. A
name never reaches ``importlib`` otherwise, and an annotation names only registered policies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from autoscaler.config import registry
from autoscaler.config.loader import PolicyFileError, parse_policies
from autoscaler.config.registry import UnknownPolicyError, get_policy, is_registered
from autoscaler.daemon.config import DaemonConfig

KNOWN = "concurrency, hpa, kpa, metric, queue, slo"
NOT_ALLOWED = (
    f"unknown policy (known: {KNOWN}); import paths must be listed in allowed_policy_imports"
)

PLUGIN = textwrap.dedent(
    """
    from pathlib import Path

    from autoscaler.core.policies.concurrency import SPEC as _BASE
    from autoscaler.core.policy import PolicySpec

    # The proof of an import: a file written by the module's own code.
    Path({marker!r}).write_text("imported")
    SPEC = PolicySpec(name="recorded", params_type=_BASE.params_type, factory=_BASE.factory)
    """
)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    get_policy.cache_clear()
    yield
    get_policy.cache_clear()


class Plugin:
    def __init__(self, module: str, marker: Path) -> None:
        self.module = module
        self.marker = marker
        self.path = f"{module}:SPEC"

    @property
    def imported(self) -> bool:
        return self.marker.exists() or self.module in sys.modules


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plugin]:
    """A module on sys.path that records being imported."""
    module = f"recorded_{uuid.uuid4().hex}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Plugin(module, marker)
    sys.modules.pop(module, None)


def test_this_spec_is_never_imported() -> None:
    """The issue's probe: ``policy: "this:SPEC"`` imported ``this``, which prints the Zen of
    Python. In a fresh interpreter, so that no other test has imported it already."""
    probe = textwrap.dedent(
        """
        import sys
        from autoscaler.config.loader import PolicyFileError, parse_policies
        from autoscaler.config.registry import UnknownPolicyError, get_policy
        try:
            get_policy("this:SPEC")
        except UnknownPolicyError as exc:
            print("registry:", exc)
        try:
            parse_policies([("p.yaml", 'defaults:\\n  policy: "this:SPEC"\\n')])
        except PolicyFileError as exc:
            print("file:", [(p.path, p.value, p.rule) for p in exc.problems])
        print("imported:", "this" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Beautiful is better than ugly" not in result.stdout
    assert result.stdout.splitlines() == [
        f"registry: {NOT_ALLOWED}",
        f"file: {[('defaults.policy', 'this:SPEC', NOT_ALLOWED)]}",
        "imported: False",
    ]


@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param((), id="no-allow-list"),
        pytest.param(("other.module:SPEC",), id="another-path-allowed"),
    ],
)
def test_an_import_path_not_allowed_is_not_imported(plugin: Plugin, allowed: tuple[str]) -> None:
    with pytest.raises(UnknownPolicyError) as info:
        get_policy(plugin.path, allowed)
    assert str(info.value) == NOT_ALLOWED
    assert not plugin.imported


def test_a_policy_file_naming_an_import_path_is_rejected_without_importing(
    plugin: Plugin,
) -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policies([("p.yaml", f"defaults:\n  policy: {plugin.path}\n")])
    assert [(p.path, p.value, p.rule) for p in info.value.problems] == [
        ("defaults.policy", plugin.path, NOT_ALLOWED)
    ]
    assert not plugin.imported


def test_an_allowed_import_path_is_imported(plugin: Plugin) -> None:
    spec = get_policy(plugin.path, (plugin.path,))
    assert spec.name == "recorded"
    assert plugin.imported
    # Allowed for files, still not "registered": an annotation cannot name it.
    assert not is_registered(plugin.path)


@pytest.mark.parametrize("allowed", [False, True], ids=["not-allowed", "even-allowed"])
def test_an_annotation_cannot_name_an_import_path(plugin: Plugin, allowed: bool) -> None:
    policies = parse_policies(
        [("p.yaml", "defaults:\n  policy: concurrency\n")],
        allowed_imports=(plugin.path,) if allowed else (),
    )
    with pytest.raises(PolicyFileError) as info:
        policies.resolve("models/llm", overrides={"policy": plugin.path})
    assert [p.rule for p in info.value.problems] == [NOT_ALLOWED]
    assert not plugin.imported


@pytest.fixture
def entry_point_plugin(plugin: Plugin, tmp_path: Path) -> Iterator[Plugin]:
    """``plugin`` installed the way a package installs one: a distribution's metadata on
    sys.path declaring it in the ``autoscaler.policies`` entry-point group."""
    dist = tmp_path / "recorded_policy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: recorded-policy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\nrecorded = {plugin.path}\n"
    )
    yield plugin


def test_entry_point_plugins_need_no_allow_list(entry_point_plugin: Plugin) -> None:
    assert is_registered("recorded")
    assert "recorded" in registry.known_policy_names()
    assert get_policy("recorded").name == "recorded"
    assert entry_point_plugin.imported
    # And an annotation may name it: it is registered.
    policies = parse_policies([("p.yaml", "defaults:\n  policy: concurrency\n")])
    resolved = policies.resolve("models/llm", overrides={"policy": "recorded"})
    assert resolved.policy.name == "recorded"


@pytest.mark.parametrize("name", ["concurrency", "queue", "hpa", "kpa", "metric"])
def test_builtins(name: str) -> None:
    assert get_policy(name).name == name
    assert is_registered(name)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPolicyError) as info:
        get_policy("nosuch")
    assert str(info.value) == f"unknown policy (known: {KNOWN})"


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        pytest.param(["my_company.policies:SPEC"], True, id="module-attr"),
        pytest.param(["pkg.sub.mod:POLICY_2"], True, id="dotted"),
        pytest.param(["no_attribute"], False, id="no-colon"),
        pytest.param(["os:system; rm"], False, id="not-an-identifier"),
        pytest.param([":SPEC"], False, id="no-module"),
        pytest.param(["a" * 300 + ":SPEC"], False, id="too-long"),
    ],
)
def test_daemon_config_allow_list(value: list[str], accepted: bool) -> None:
    if accepted:
        assert DaemonConfig.model_validate({"allowed_policy_imports": value}).allowed_policy_imports
    else:
        with pytest.raises(ValidationError):
            DaemonConfig.model_validate({"allowed_policy_imports": value})


def test_allow_list_defaults_to_empty() -> None:
    assert DaemonConfig().allowed_policy_imports == ()


def test_the_daemon_passes_its_allow_list_to_the_policy_files(
    plugin: Plugin, tmp_path: Path
) -> None:
    from autoscaler.daemon.run import Daemon

    policy = tmp_path / "policies.yaml"
    policy.write_text(f"defaults:\n  policy: {plugin.path}\n")
    with pytest.raises(PolicyFileError):
        Daemon(DaemonConfig(policies=(policy,)))
    assert not plugin.imported
    daemon = Daemon(DaemonConfig(policies=(policy,), allowed_policy_imports=(plugin.path,)))
    assert daemon.engine.policies.resolve("models/llm").policy.name == "recorded"
    assert plugin.imported
