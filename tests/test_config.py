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
