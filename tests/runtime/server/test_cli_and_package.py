"""`infra-inference serve` flags, env configuration and the package's public surface."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import infra_inference.runtime.server as server_pkg
from infra_inference.cli import _register, app
from infra_inference.runtime.server import ServerSettings


def test_help_documents_every_setting_with_its_env_var() -> None:
    _register()
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for name in ServerSettings.model_fields:
        assert f"--{name.replace('_', '-')}" in result.output
        assert f"INFRA_INFERENCE_{name.upper()}" in result.output


def test_invalid_settings_exit_2_naming_the_field() -> None:
    _register()
    result = CliRunner().invoke(app, ["serve", "--max-batch-size", "8", "--max-concurrency", "2"])
    assert result.exit_code == 2
    assert "max_batch_size" in result.output


@pytest.mark.parametrize(("flags", "expected"), [(["--no-stream-weights"], False), (["--stream-weights"], True),
                                                 ([], True)])
def test_a_boolean_setting_can_be_turned_off_by_flag(monkeypatch: pytest.MonkeyPatch, flags: list[str],
                                                     expected: bool) -> None:
    import infra_inference.runtime.server.cli as serve_cli

    _register()
    seen: list[ServerSettings] = []
    monkeypatch.setattr(serve_cli, "run_server", lambda settings: seen.append(settings) or 0)
    result = CliRunner().invoke(app, ["serve", *flags])
    assert result.exit_code == 0, result.output
    assert seen[0].stream_weights is expected


def test_environment_configures_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRA_INFERENCE_MAX_CONCURRENCY", "16")
    monkeypatch.setenv("INFRA_INFERENCE_ECHO_DELAY_MS", "2.5")
    settings = ServerSettings()
    assert settings.max_concurrency == 16 and settings.echo_delay_ms == 2.5
    assert ServerSettings(max_concurrency=3).max_concurrency == 3  # explicit (a flag) wins


def test_unknown_model_spec_is_rejected_clearly() -> None:
    from infra_inference.runtime.server.model import resolve_model

    with pytest.raises(ValueError, match="package.module:Class"):
        resolve_model("resnet")
    with pytest.raises(ValueError, match="cannot import"):
        resolve_model("no_such_module_here:Model")


def test_public_all_is_sorted_and_importable() -> None:
    assert server_pkg.__all__ == sorted(server_pkg.__all__)
    assert all(hasattr(server_pkg, name) for name in server_pkg.__all__)


def test_reference_doc_lists_every_setting_and_metric() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "sdk-docs" / "runtime-server.md").read_text()
    for name in ServerSettings.model_fields:
        assert f"`INFRA_INFERENCE_{name.upper()}`" in doc, name
    for metric in ("inflight_requests", "queue_depth", "requests_total", "request_duration_seconds", "batch_size",
                   "model_load_seconds", "gpu_utilization_ratio", "gpu_memory_used_bytes"):
        assert f"`infra_inference_{metric}" in doc, metric
