"""The registry (departments, lists, headers) and the county policy, read from `config/*.yaml`.

Everything that differs between counties or years lives in those files; code asks this module.
`FANGPIN_CONFIG_DIR` points at another folder of the same two files (a different county).
"""
from __future__ import annotations

import copy
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    return Path(os.environ.get("FANGPIN_CONFIG_DIR", PROJECT_ROOT / "config"))


@dataclass(frozen=True)
class Department:
    slug: str  # English slug, e.g. civil_affairs
    name: str  # Chinese name, e.g. 民政局
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class ListSpec:
    """One department list (e.g. civil_affairs.dibao) and what it means for a household."""

    key: str  # "department.list"
    department: str
    title: str
    keywords: tuple[str, ...]
    exclude_keywords: tuple[str, ...] = ()
    kind: str = "risk"  # risk | eligibility
    risk_type: str | None = None  # an A27 label or "from_detail"
    gap: str | None = None  # an A23-A26 assurance gap
    finding: str | None = None  # eligibility finding label
    subtype_from_detail: tuple[tuple[str, str], ...] = ()  # (word in the detail, the form's subtype it names)
    detail_overrides: dict = field(default_factory=dict)

    @property
    def asset_name(self) -> str:
        return self.key.replace(".", "__")

    @property
    def is_risk(self) -> bool:
        return self.kind == "risk"

    def matches(self, text: str) -> bool:
        """True when `text` (a file name, sheet name or title) names this list."""
        if any(word in text for word in self.exclude_keywords):
            return False
        return any(word in text for word in self.keywords)


@dataclass(frozen=True)
class Registry:
    departments: dict[str, Department]
    lists: dict[str, ListSpec]
    detail_words: tuple[tuple[tuple[str, ...], str], ...]
    default_risk_type: str
    risk_types: tuple[str, ...]
    assurance_gaps: tuple[str, ...]
    list_headers: dict[str, tuple[str, ...]]
    roster_headers: dict[str, tuple[str, ...]]
    roster_required: tuple[str, ...]
    list_required: tuple[str, ...]
    total_row_words: tuple[str, ...]
    roster_choices: dict[str, dict[str, str]]  # column -> {word as the registry writes it: meaning ("" = none)}

    def lists_of(self, department: str) -> list[ListSpec]:
        return [spec for spec in self.lists.values() if spec.department == department]

    def department_for_folder(self, folder_name: str) -> str | None:
        """The slug for a drop-zone folder named by slug or Chinese name (`civil_affairs`, `民政局`), as clerks
        also write them: full-width or capitals (`Civil_Affairs`), the county in front (`县民政局`), the month
        behind (`民政局-10月`, `民政局202610`)."""
        if folder_name in self.departments:
            return folder_name
        for cleaned in dict.fromkeys(_folder_keys(folder_name)):
            for dept in self.departments.values():
                if cleaned == dept.slug or cleaned == dept.name or cleaned in dept.aliases:
                    return dept.slug
        return None


class ConfigError(ValueError):
    """A configuration file fangpin cannot read; the message names the file (and line and column) and what to do,
    in Chinese, then English."""


def _load_yaml(name: str) -> dict:
    return read_yaml(config_dir() / name)


def read_yaml(path: Path):
    """A YAML file's content (UTF-8). A missing file, another encoding or a YAML mistake is a ConfigError naming the
    file, line and column, never quoting the line: the workbook passwords file is read this way too."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"配置文件 {path} 不存在。 The file does not exist.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"配置文件 {path} 不是 UTF-8 编码（记事本“另存为”时选了 ANSI？），请另存为 UTF-8 后重新运行。"
                          f" {path} is not UTF-8: save it as UTF-8.") from None
    except yaml.YAMLError as error:  # its text would quote the line: a password, in the passwords file
        mark = getattr(error, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"配置文件 {path} {where}不是有效的 YAML（常见原因：冒号后少了空格、缩进不齐、引号没有配对），"
                          f"请改正后重新运行。 {path}{at}: {problem}.") from None


@lru_cache(maxsize=None)
def registry() -> Registry:
    raw = _load_yaml("registry.yaml")
    departments = {
        slug: Department(slug, body["name"], tuple(body.get("aliases", ())))
        for slug, body in raw["departments"].items()
    }
    lists = {}
    for key, body in raw["lists"].items():
        department = key.split(".", 1)[0]
        if department not in departments:
            raise ValueError(f"registry.yaml: list {key} names unknown department {department}")
        lists[key] = ListSpec(
            key=key,
            department=department,
            title=body.get("title", key),
            keywords=tuple(str(k) for k in body["keywords"]),
            exclude_keywords=tuple(str(k) for k in body.get("exclude_keywords", ())),
            kind=body.get("kind", "risk"),
            risk_type=body.get("risk_type"),
            gap=body.get("gap"),
            finding=body.get("finding"),
            subtype_from_detail=_subtype_words(body.get("subtype_from_detail", ())),
            detail_overrides=dict(body.get("detail_overrides", {})),
        )
    return Registry(
        departments=departments,
        lists=lists,
        detail_words=tuple((tuple(rule["words"]), rule["risk_type"]) for rule in raw["detail_words"]),
        default_risk_type=raw["default_risk_type"],
        risk_types=tuple(raw["risk_types"]),
        assurance_gaps=tuple(raw["assurance_gaps"]),
        list_headers={k: tuple(v) for k, v in raw["list_headers"].items()},
        roster_headers={k: tuple(v) for k, v in raw["roster_headers"].items()},
        roster_required=tuple(raw["roster_required"]),
        list_required=tuple(raw["list_required"]),
        total_row_words=tuple(raw["total_row_words"]),
        roster_choices={column: {str(word): str(meaning) for meaning, words in meanings.items()
                                 for word in (meaning, *words) if word != ""}
                        for column, meanings in raw.get("roster_choices", {}).items()},
    )


_FOLDER_MONTH = re.compile(r"[\s\-_—（(]*(?:\d{4}年?)?\d{1,2}月份?[）)]*$|[\s\-_（(]*\d{6,8}[）)]*$")
_FOLDER_PLACE = re.compile(r"^.{0,6}?[县市区]")  # 县民政局, XX县民政局, 赣南示范县民政局


def _folder_keys(folder_name: str) -> list[str]:
    """A department folder's name as written, then without a month behind it, then without the county before it
    (each full-width folded to half-width, capitals to lower case: NFKC and casefold)."""
    name = unicodedata.normalize("NFKC", folder_name).strip().casefold()
    undated = _FOLDER_MONTH.sub("", name).strip() or name
    return [name, undated, _FOLDER_PLACE.sub("", undated, count=1) or undated]


def _subtype_words(entry) -> tuple[tuple[str, str], ...]:
    """registry.yaml `subtype_from_detail`: a list of subtypes (each its own word) or subtype -> words naming it,
    in order; as (word, subtype) pairs, the subtype's own name first."""
    if isinstance(entry, dict):
        return tuple((str(word), str(subtype)) for subtype, words in entry.items()
                     for word in dict.fromkeys((subtype, *(words or ()))))
    return tuple((str(subtype), str(subtype)) for subtype in entry)


@lru_cache(maxsize=None)
def county() -> dict:
    """The county policy file as a dict (monitoring line, deadlines, weights, thresholds)."""
    return _load_yaml("county.yaml")


def dashboard_settings() -> dict:
    """config/dashboard.yaml (risk levels, relapse types, checks): re-read whenever the file changes (tests and
    operators swap it between runs), otherwise parsed once; a run asked for it ~26 times at ~20 ms a parse."""
    path = config_dir() / "dashboard.yaml"
    stat = path.stat()
    return copy.deepcopy(_parsed_yaml(path, stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _parsed_yaml(path: Path, mtime_ns: int, size: int) -> dict:
    """One file's YAML, cached per (path, modification time, size): a changed file is a new key."""
    return read_yaml(path)


def monitoring_line(year: int) -> float:
    """The monitoring line (yuan per person per year) in force for `year`.

    A relative line is a multiple of the *previous* year's provincial rural 低保 standard (seed 001).
    """
    policy = county()
    rule = policy["monitoring_line"].get(str(year))
    if rule is None:
        raise ValueError(f"county.yaml: no monitoring_line for {year}")
    if "absolute" in rule:
        return float(rule["absolute"])
    standard = policy["rural_dibao_standard"].get(str(year - 1))
    if standard is None:
        raise ValueError(f"county.yaml: relative monitoring line for {year} needs rural_dibao_standard {year - 1}")
    return round(float(rule["relative"]) * float(standard), 2)


MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def check_month(month: str) -> str:
    """`month` if it reads YYYY-MM, else a ValueError a user understands."""
    if not MONTH_PATTERN.match(month):
        raise ValueError(f"月份应写成 2026-10 这样的年-月，收到的是 {month!r}。 The month must look like 2026-10, got {month!r}.")
    return month
