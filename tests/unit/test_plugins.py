"""Plugin discovery: lazy loading, the installed example plugin, broken plugins, the off switch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vlakit import plugins
from vlakit.errors import PluginError, RegistryError
from vlakit.plugins import PluginWarning
from vlakit.registry import ACTION_TOKENIZERS, ENVS

REPO = Path(__file__).resolve().parents[2]


def run_py(code: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=120)


def make_fake_distribution(root: Path, dist: str, group: str, name: str, target: str, module_src: str,
                           module: str) -> None:
    """A distribution on sys.path: dist-info with entry_points.txt plus its module."""
    info = root / f"{dist}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")
    (root / f"{module}.py").write_text(module_src)


@pytest.fixture
def broken_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    make_fake_distribution(tmp_path, "broken_dist", "vlakit.action_tokenizers", "broken_tok",
                           "broken_mod:Tok", "raise ImportError('needs libfoo 9.9')\n", "broken_mod")
    make_fake_distribution(tmp_path, "wrong_dist", "vlakit.envs", "wrong_env", "wrong_mod:NotAnEnv",
                           "class NotAnEnv:\n    pass\n", "wrong_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset_cache()
    yield tmp_path
    plugins.reset_cache()
    for mod in ("broken_mod", "wrong_mod"):
        sys.modules.pop(mod, None)


def test_example_plugin_is_discovered_without_import() -> None:
    out = run_py("""
        import sys
        from vlakit.registry import ACTION_TOKENIZERS, ENVS
        keys = ACTION_TOKENIZERS.keys() + ENVS.keys()
        print(('example_mulaw' in keys), ('example_point_mass' in keys), 'vlakit_example.mulaw' in sys.modules)
        ACTION_TOKENIZERS.get('example_mulaw')
        print('vlakit_example.mulaw' in sys.modules, 'vlakit_example.point_mass' in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False", "True", "False"]  # lazy, one module at a time


def test_example_plugin_listed_with_distribution_and_status() -> None:
    rows = {(p.group, p.name): p for p in plugins.list_plugins()}
    row = rows[("vlakit.action_tokenizers", "example_mulaw")]
    assert row.distribution.replace("_", "-") == "vlakit-example"
    assert row.target == "vlakit_example.mulaw:MuLawTokenizer"
    assert ("vlakit.recipes", "vlakit_example") in rows


def test_plugin_recipe_folder_is_found() -> None:
    from vlakit.recipe.load import recipe_dirs

    origins = [origin.replace("_", "-") for origin, _ in recipe_dirs()]
    assert "vlakit-example" in origins


def test_broken_plugin_warns_with_distribution_and_reason(broken_plugins: Path) -> None:
    assert "broken_tok" in ACTION_TOKENIZERS.keys()
    with pytest.warns(PluginWarning, match=r"broken_dist 0\.0\.1.*needs libfoo 9\.9"):
        with pytest.raises(PluginError):
            ACTION_TOKENIZERS.get("broken_tok")
    # after failing once the key is no longer offered, and other components still work
    assert "broken_tok" not in ACTION_TOKENIZERS.keys()
    assert ACTION_TOKENIZERS.get("example_mulaw").__name__ == "MuLawTokenizer"
    status = {p.name: p.status for p in plugins.list_plugins()}
    assert status["broken_tok"].startswith("failed: ImportError")


def test_plugin_not_implementing_interface_is_rejected(broken_plugins: Path) -> None:
    with pytest.warns(PluginWarning, match=r"wrong_dist.*does not subclass"):
        with pytest.raises(PluginError):
            ENVS.get("wrong_env")


def test_broken_plugin_does_not_break_the_cli(broken_plugins: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(broken_plugins), os.environ.get("PYTHONPATH", "")])}
    for args in (["plugins", "list"], ["components", "list"], ["recipes", "list"]):
        out = subprocess.run([sys.executable, "-m", "vlakit.cli.main", *args], capture_output=True, text=True,
                             env={**os.environ, **env, "COLUMNS": "200"}, timeout=120)
        assert out.returncode == 0, (args, out.stderr)
    out = subprocess.run([sys.executable, "-m", "vlakit.cli.main", "plugins", "list"], capture_output=True,
                         text=True, env={**os.environ, **env, "COLUMNS": "250"}, timeout=120)
    assert "broken_tok" in out.stdout and "broken_dist" in out.stdout


def test_disable_autoload_env_var() -> None:
    out = run_py("""
        from vlakit.registry import ACTION_TOKENIZERS
        from vlakit import plugins
        print('example_mulaw' in ACTION_TOKENIZERS.keys(), len(plugins.list_plugins()))
    """, {plugins.DISABLE_ENV: "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "0"]
    out = run_py("""
        from vlakit.registry import ACTION_TOKENIZERS
        try:
            ACTION_TOKENIZERS.get('example_mulaw')
        except Exception as exc:
            print(type(exc).__name__)
    """, {plugins.DISABLE_ENV: "1"})
    assert out.stdout.strip() == "RegistryError"


def test_unknown_plugin_key_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'example_mulaw'"):
        ACTION_TOKENIZERS.get("example_mulow")


def test_entry_point_scan_is_cached_until_sys_path_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins.reset_cache()
    calls = []
    import entrypoints

    real = entrypoints.get_group_all
    monkeypatch.setattr(entrypoints, "get_group_all", lambda group, *a, **k: calls.append(group) or real(group))
    for _ in range(3):
        plugins.available("vlakit.envs")
    assert calls == ["vlakit.envs"]
    monkeypatch.syspath_prepend(str(tmp_path))  # a new place to look: scanned again
    plugins.available("vlakit.envs")
    assert calls == ["vlakit.envs", "vlakit.envs"]
    plugins.reset_cache()
