"""config/dashboard.yaml is parsed once per version of the file, and a changed file is read again."""
import shutil

from fangpin import config


def test_dashboard_settings_follow_the_file_when_it_changes(tmp_path, monkeypatch):
    shutil.copytree(config.config_dir(), tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("FANGPIN_CONFIG_DIR", str(tmp_path))
    before = config.dashboard_settings()
    share = before["checks"]["mostly_rejected_share"]
    path = tmp_path / "dashboard.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(f"mostly_rejected_share: {share}",
                                                             "mostly_rejected_share: 0.875"), encoding="utf-8")
    assert config.dashboard_settings()["checks"]["mostly_rejected_share"] == 0.875


def test_a_caller_changing_the_settings_does_not_change_them_for_the_next(tmp_path, monkeypatch):
    shutil.copytree(config.config_dir(), tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("FANGPIN_CONFIG_DIR", str(tmp_path))
    config.dashboard_settings()["checks"]["mostly_rejected_share"] = -1
    assert config.dashboard_settings()["checks"]["mostly_rejected_share"] != -1


def test_a_configuration_file_with_a_yaml_mistake_is_named_with_line_and_column_but_never_quoted(tmp_path):
    """Staff edit these files by hand; the same reader reads the workbook passwords file, so the offending line
    (here a password) must not appear in the message nor in the exception chain."""
    import pytest

    path = tmp_path / "passwords.yaml"
    path.write_text("城关镇: s3cret-one\n江口乡: s3cret: two\n", encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.read_yaml(path)
    message = str(caught.value)
    assert f"配置文件 {path} 第 2 行第 " in message and "不是有效的 YAML" in message and "line 2, column" in message
    assert "s3cret" not in message and caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_configuration_file_saved_in_another_encoding_or_missing_is_named(tmp_path):
    import pytest

    saved_by_notepad = tmp_path / "county.yaml"
    saved_by_notepad.write_bytes("monitoring_line: 7500  # 监测线\n".encode("gb18030"))
    with pytest.raises(config.ConfigError, match="不是 UTF-8 编码"):
        config.read_yaml(saved_by_notepad)
    with pytest.raises(config.ConfigError, match="不存在"):
        config.read_yaml(tmp_path / "registry.yaml")


def test_the_cli_refuses_a_broken_configuration_before_running_with_the_file_named(tmp_path):
    import os
    import subprocess
    import sys

    folder = tmp_path / "config"
    shutil.copytree(config.config_dir(), folder)
    county = folder / "county.yaml"
    county.write_text(county.read_text(encoding="utf-8") + "\npriority: [unclosed\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    env = {**os.environ, "FANGPIN_CONFIG_DIR": str(folder), "DAGSTER_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "fangpin.cli", "run", "--month", "2026-10", "--data-dir",
                           str(tmp_path / "data")], env=env, capture_output=True, text=True, cwd=config.PROJECT_ROOT)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"配置文件 {county}" in done.stderr and "Traceback" not in done.stderr
