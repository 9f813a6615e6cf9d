"""The synthetic demo county (赣南示范县): several months of household roster and department lists, with the mess
INPUTS.md describes planted at realistic low rates, plus a ground truth of every planted problem.

Why: the pipeline, its tests and the dashboard need realistic input without anybody's real personal data, and the
tests need to know, row by row, what each planted problem is and which reason (schemas/reasons.py) must catch it.

Layout written under `data_dir`:
    raw/<month>/roster/…                 the roster as of that month (fast hand-written xlsx, or GB18030 csv)
    raw/<month>/<department>/…           every list of the registry (xlsx via openpyxl, xls via xlwt, csv)
    demo_truth/<month>.csv               one row per planted problem (see TRUTH_COLUMNS)
    demo_truth/summary.json              what was generated (months, sizes, flood, late files, missing lists)

Everything is drawn from one seed: the same seed gives byte-identical truth CSVs, rosters and list files.
Department words (keywords, header variants, county code, monitoring line, deadline) come from the config, never
from constants here; this module only owns the *vocabulary of the fake data* (names, diseases, place stems).
"""
from __future__ import annotations

import calendar
import csv
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import openpyxl
import polars as pl
from openpyxl.utils import get_column_letter
import xlwt

from fangpin.config import ListSpec, check_month, county, monitoring_line, registry
from fangpin.xlsxml import openpyxl_parts, stable_zip, xml_text
from schemas.reasons import IGNORED, NOTE, REJECT

DEFAULT_MONTHS = ["2026-08", "2026-09", "2026-10"]  # the latest months (today is 2026-11-23)

CST = timezone(timedelta(hours=8))  # China Standard Time, for file arrival times
FIXED_ZIP_TIME = (2026, 11, 1, 8, 0, 0)  # zip entry time inside every xlsx: byte-stable files
FIXED_DOC_TIME = datetime(2026, 11, 1, 8, 0, 0)  # workbook properties created/modified
TRUTH_COLUMNS = ["month", "source_file", "sheet", "row_number", "problem", "expected", "reason_code",
                 "list_key", "id_number", "value"]

# ---------------------------------------------------------------------------------------------------------------
# Vocabulary of the fake county (data, not policy)
# ---------------------------------------------------------------------------------------------------------------
SURNAMES = list("刘钟曾谢黄赖李陈王张廖邱温肖罗杨郭朱胡吴周徐孙林何高梁郑宋邓许韩冯曹彭叶蔡潘杜戴夏卢袁赵马欧阳")[:-2]
SURNAME_WEIGHTS = np.linspace(3.0, 0.5, len(SURNAMES))
GIVEN_MALE = list("伟强军平明华建国文辉勇斌杰涛林东海波春生金福荣兴德龙发才祥贵宏志新良光清根水成昌亮峰鹏浩宇俊磊洪")
GIVEN_FEMALE = list("芳英秀兰红梅霞玲燕娟丽萍珍桂凤花琴云莲娥敏静婷慧雪艳琳欣怡颖佳月丹香菊彩群翠")
TOWNSHIP_STEMS = ["梅林", "黄田", "龙口", "长岗", "横江", "石城", "茅店", "大塘", "沙地", "湖江", "白鹭", "江口",
                  "五云", "南塘", "高田", "桂源", "清溪", "古龙", "枫林", "杨梅", "双溪", "韩坊", "储潭", "大埠"]
STREET_STEM = "城关"  # the county seat's sub-district (街道)
UNKNOWN_TOWNSHIPS = ["青山镇", "向阳乡", "金盆镇", "红旗乡", "玉泉镇"]  # names no roster township has
VILLAGE_HEADS = list("上下中新老大小东西南北高石竹桃杨柏松茶枫黄白青龙凤金马鹤")
VILLAGE_TAILS = list("坪坑岭塘溪坝背田坳排岗陂洲湾山源口营寨屋")
COMMUNITY_STEMS = ["城东", "城西", "城南", "城北", "建设", "和平", "解放", "人民", "新华", "东门", "西门", "光明",
                   "胜利", "文峰", "滨江", "圩镇", "新街", "老街", "红星", "富民"]
# The ID's address code is where a person was first registered, valid for the birth year (GB/T 2260 changes over
# time, and stdnum.cn.ric checks it). The demo county's statistical code (config, 360799) is fictitious, so its
# residents carry real Ganzhou codes: (code before 1998, code from 1998). The first lineage is "home".
BIRTHPLACE_LINEAGES = [("362131", "360730"), ("362132", "360731"), ("362133", "360732"), ("362135", "360733"),
                       ("362137", "360735")]  # 宁都, 于都, 兴国, 会昌, 石城
OTHER_COUNTY_CODES = ["430121", "430321", "350121", "330122", "330127", "422822"]  # valid in every year

LABOUR = ["技能劳动力", "普通劳动力", "弱劳动力或半劳动力", "丧失劳动力", "无劳动力"]
HEALTH = ["健康", "长期慢性病", "患有大病", "残疾"]
MAJOR_DISEASES = ["儿童白血病", "儿童先天性心脏病", "终末期肾病", "乳腺癌", "宫颈癌", "重性精神病", "耐多药肺结核",
                  "肺癌", "食道癌", "胃癌", "结肠癌", "直肠癌", "慢性粒细胞白血病", "急性心肌梗塞", "脑梗死", "血友病",
                  "I型糖尿病", "甲亢", "唇腭裂", "肝癌", "尘肺", "地中海贫血", "老年性白内障", "风湿性心脏病"]
DISABILITY_CATEGORIES = ["视力残疾", "听力残疾", "言语残疾", "肢体残疾", "智力残疾", "精神残疾", "多重残疾"]  # digit 1-7
DISABILITY_GRADES = ["一级", "二级", "三级", "四级"]
COMPANIES = ["赣南示范县鑫源农业发展有限公司", "赣南示范县绿野脐橙专业合作社", "赣州恒达建材有限公司",
             "赣南示范县顺通物流有限公司", "赣南示范县兴旺生猪养殖场", "深圳市华强电子有限公司", "东莞市富华鞋业有限公司"]
UNITS = ["县教体局", "县人民医院", "县公安局", "镇人民政府", "县自然资源局", "县中心小学", "县财政局"]
NOTES_SHEET_LINES = ["填表说明", "1. 请按模板格式填写，不要合并单元格；", "2. 本表于每月10日前报送县乡村振兴局；",
                     "3. 如有疑问请与县里联系。"]
IMPOSSIBLE_MONTH_DAYS = ["0230", "0231", "0431", "0631", "0931", "1131", "1301", "1532", "0000"]
UNPARSEABLE_DATES = ["{m}月上旬", "待定", "不详", "见附件"]


@dataclass(frozen=True)
class ListProfile:
    """How the demo fills one list: share of persons per month, who is on it, and header/value choices."""

    rate: float  # rows per month as a share of the roster's persons
    who: str = "any"  # any | child | school | working | adult | elder | head
    bias: str | None = None  # low_income | ill | disabled | monitored: members of such households are likelier
    name_headers: tuple[str, ...] = ("姓名", "人员姓名")
    date_headers: tuple[str, ...] = ("日期",)
    detail_headers: tuple[str, ...] = ("原因",)
    details: tuple[tuple[str, float], ...] = (("其他", 1.0),)
    amount_headers: tuple[str, ...] = ()
    amount_range: tuple[float, float] = (0.0, 0.0)
    extra: tuple[str, tuple[str, ...]] | None = None  # an extra column (header, values) a reader must just keep
    disability: bool = False  # the 残疾人证号 list: cert = ID + category + grade


def _w(*pairs: tuple[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(pairs)


PROFILES: dict[str, ListProfile] = {
    "civil_affairs.dibao": ListProfile(  # 低保, minimum living guarantee
        0.0015, "any", "low_income", ("姓名", "户主姓名"), ("审批日期",), ("救助原因", "原因"),
        _w(("因病", 3), ("因残", 2), ("缺劳动力", 3), ("因学", 1), ("因灾", 1), ("其他", 1)),
        ("月保障金额（元）", "金额"), (300, 800)),
    "civil_affairs.tekun": ListProfile(  # 特困, extreme-poverty support
        0.0003, "elder", "low_income", ("姓名",), ("认定日期",), ("原因",),
        _w(("无劳动能力、无生活来源、无法定赡养扶养义务人", 1))),
    "civil_affairs.orphan": ListProfile(  # 孤儿 / 事实无人抚养儿童
        0.0001, "child", None, ("姓名",), ("认定日期",), ("原因",),
        _w(("父母双亡", 2), ("父母一方死亡另一方重残", 1), ("事实无人抚养", 3))),
    "civil_affairs.temporary_assistance": ListProfile(  # 临时救助
        0.002, "any", "low_income", ("救助对象", "姓名"), ("救助日期",), ("救助原因",),
        _w(("突发重病住院", 3), ("意外伤害", 1), ("交通事故", 1), ("火灾", 1), ("洪涝受灾", 1), ("务工失业", 1),
           ("子女上学困难", 1)), ("救助金额（元）",), (500, 6000)),
    "disability.severe": ListProfile(  # 重度困难残疾人
        0.001, "any", "disabled", ("姓名",), ("办证日期",), ("残疾类别",), disability=True),
    "education.dropout": ListProfile(  # 辍学, dropouts of compulsory education
        0.0003, "school", "low_income", ("学生姓名", "姓名"), ("辍学日期",), ("原因",),
        _w(("厌学", 3), ("外出务工", 1), ("因病休学", 1), ("家庭经济困难", 2))),
    "human_resources.job_cancelled": ListProfile(  # 公益岗位取消
        0.0005, "working", "low_income", ("姓名",), ("取消日期",), ("取消原因",),
        _w(("岗位调整", 2), ("考核不合格", 1), ("本人辞职", 2), ("超龄退出", 1))),
    "human_resources.pension": ListProfile(  # 企业养老保险 (eligibility)
        0.003, "working", "monitored", ("姓名",), ("日期",), ("单位",), tuple((c, 1.0) for c in COMPANIES),
        ("金额",), (400, 1500)),
    "medical_insurance.high_cost": ListProfile(  # 自付超1万元
        0.001, "any", "ill", ("患者姓名", "姓名"), ("日期",), ("病种",), tuple((d, 1.0) for d in MAJOR_DISEASES),
        ("个人自付金额（元）", "自付金额"), (10001, 80000)),
    "medical_insurance.uninsured": ListProfile(  # 未参保/断保
        0.001, "any", "low_income", ("姓名",), ("日期",), ("原因",),
        _w(("未缴费", 3), ("外出务工断保", 2), ("新生儿未参保", 1))),
    "housing.dangerous_house": ListProfile(  # 危房
        0.0005, "head", "low_income", ("户主姓名",), ("鉴定日期",), ("危房等级",), _w(("C级", 3), ("D级", 1))),
    "health.major_disease": ListProfile(  # 30种大病
        0.0015, "any", "ill", ("患者姓名", "姓名"), ("确诊日期",), ("病种",), tuple((d, 1.0) for d in MAJOR_DISEASES)),
    "agriculture.industry_failure": ListProfile(  # 产业失败
        0.0005, "head", None, ("户主姓名", "姓名"), ("发生日期",), ("原因",),
        _w(("生猪养殖疫病死亡", 1), ("脐橙黄龙病减产", 2), ("种植遭灾绝收", 1), ("农产品价格下跌", 2),
           ("合作社经营失败", 1)), ("损失金额（元）",), (3000, 50000)),
    "emergency.disaster": ListProfile(  # 受灾农户
        0.001, "head", None, ("户主姓名",), ("受灾时间",), ("灾害类型",),
        _w(("洪涝", 3), ("旱灾", 1), ("地质灾害", 1), ("气象灾害", 2), ("生物灾害", 1)), ("损失金额（元）",), (2000, 40000)),
    "water.unsafe_water": ListProfile(  # 饮水未完全保障
        0.0005, "head", None, ("户主姓名",), ("日期",), ("问题类型",),
        _w(("水量不足", 2), ("水质不达标", 2), ("季节性缺水", 2), ("取水不便", 1))),
    "police.incident": ListProfile(  # 交通事故、刑事、火灾
        0.0005, "any", None, ("姓名",), ("发生日期",), ("事件类型",),
        _w(("交通事故", 4), ("刑事案件致伤", 1), ("火灾", 1), ("意外伤害", 2))),
    "police.vehicle": ListProfile(  # 机动车 (eligibility)
        0.003, "adult", "monitored", ("姓名",), ("日期",), ("资产类型",), _w(("小型轿车", 4), ("货车", 2), ("摩托车", 1)),
        extra=("号牌号码", ())),
    "finance.public_servant": ListProfile(  # 财政供养人员 (eligibility)
        0.001, "working", "monitored", ("姓名",), ("日期",), ("单位",), tuple((u, 1.0) for u in UNITS)),
    "tax.assets": ListProfile(  # 不动产、车辆购置、经营纳税 (eligibility)
        0.001, "adult", "monitored", ("姓名",), ("日期",), ("资产类型",),
        _w(("商品房", 3), ("车辆购置", 2), ("个体经营纳税", 2)), ("金额",), (50000, 600000)),
    "market_regulation.company": ListProfile(  # 注册企业 (eligibility)
        0.001, "adult", "monitored", ("姓名",), ("日期",), ("企业名称",), tuple((c, 1.0) for c in COMPANIES),
        extra=("职务", ("法定代表人", "股东", "监事"))),
    "banking.deposit": ListProfile(  # 大额存单、理财 (eligibility)
        0.001, "adult", "monitored", ("姓名",), ("日期",), ("资产类型",),
        _w(("大额存单", 2), ("理财产品", 2), ("定期存款", 1)), ("金额",), (50000, 800000)),
    "rural_revitalization.application": ListProfile(  # 自主申报、干部排查、12317
        0.001, "head", "low_income", ("姓名", "户主姓名"), ("申报日期",), ("困难描述",),
        _w(("家人患病住院费用高", 3), ("房屋漏雨开裂", 1), ("务工收入减少", 2), ("养殖失败", 1), ("子女上学负担重", 1),
           ("遭受洪涝损失", 1)), extra=("来源渠道", ("自主申报", "干部排查", "12317热线", "信访"))),
}
GENERIC_PROFILE = ListProfile(0.001)  # a list a county adds to the registry that the demo has no words for

# Planted row problems: share of the month's list rows (at least one each per month) and what must happen.
PLANT_RATES = {
    "id_spaces": 0.006, "id_fullwidth": 0.003, "id_lowercase_x": 0.003, "id_apostrophe": 0.004,
    "id_legacy_15": 0.002, "id_float_mangled": 0.004, "id_bad_checksum": 0.003, "id_bad_birthdate": 0.0015,
    "id_bad_length": 0.002, "id_missing": 0.003, "probable_match": 0.002, "multi_list": 0.005,
    "other_county": 0.004, "disability_cert_mismatch": 0.002, "township_no_suffix": 0.006,
    "township_unknown": 0.002, "date_unparsed": 0.003, "duplicate_in_list": 0.004,
}
PROBLEMS: dict[str, tuple[str, str]] = {  # problem -> (expected, reason_code)
    "id_spaces": ("accepted", ""), "id_fullwidth": ("accepted", ""), "id_lowercase_x": ("accepted", ""),
    "id_apostrophe": ("accepted", ""), "id_legacy_15": ("accepted", ""),
    "id_float_mangled": ("rejected", "id_float_mangled"), "id_bad_checksum": ("rejected", "id_bad_checksum"),
    "id_bad_birthdate": ("rejected", "id_bad_birthdate"), "id_bad_length": ("rejected", "id_bad_length"),
    "id_missing": ("rejected", "id_missing"), "probable_match": ("rejected", "id_bad_checksum"),
    "multi_list": ("accepted", ""), "other_county": ("accepted", ""),
    "disability_cert_mismatch": ("rejected", "disability_cert_mismatch"),
    "township_no_suffix": ("accepted", ""), "township_unknown": ("note", "township_unknown"),
    "date_unparsed": ("note", "date_unparsed"), "duplicate_in_list": ("rejected", "duplicate_in_list"),
    "total_row": ("rejected", "total_row"),
    "lock_file": ("ignored", "lock_file"), "readme_file": ("ignored", "not_spreadsheet"),
    "duplicate_file": ("ignored", "duplicate_file"),
    "file_unrecognised": ("file_problem", "file_unrecognised"),
    "unknown_department": ("file_problem", "unknown_department"),
}
ID_REJECTIONS = {"id_float_mangled", "id_bad_checksum", "id_bad_birthdate", "id_bad_length", "id_missing"}
for _problem, (_expected, _code) in PROBLEMS.items():  # a typo here would make every truth check meaningless
    assert not _code or _code in {**REJECT, **NOTE, **IGNORED}, _problem

W_ID = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)  # GB 11643 weights
CHECK_CHARS = np.array(list("10X98765432"))
KIND_HEAD, KIND_SPOUSE, KIND_CHILD, KIND_GRANDCHILD, KIND_PARENT, KIND_DIL = range(6)


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------
def check_chars(id17: list[str]) -> np.ndarray:
    """GB 11643 check characters of many 17-digit bodies at once."""
    if not id17:
        return np.array([], dtype="<U1")
    digits = np.frombuffer("".join(id17).encode("ascii"), dtype=np.uint8).reshape(-1, 17).astype(np.int64) - 48
    return CHECK_CHARS[(digits @ W_ID) % 11]


def check_char(id17: str) -> str:
    return str(check_chars([id17])[0])


def _month_bounds(month: str) -> tuple[date, date]:
    year, mon = int(month[:4]), int(month[5:])
    return date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])


def _next_month(month: str) -> tuple[int, int]:
    year, mon = int(month[:4]), int(month[5:])
    return (year + 1, 1) if mon == 12 else (year, mon + 1)


def _choice(rng: np.random.Generator, values, weights=None, size=None):
    """rng.choice over a list with optional (unnormalised) weights."""
    p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    idx = rng.choice(len(values), size=size, p=p)
    if size is None:
        return values[int(idx)]
    return np.asarray(values, dtype=object)[idx]


def _headers(canonical: str, preferred: tuple[str, ...], rng: np.random.Generator, table: dict) -> str:
    """A header word for `canonical`: one of the demo's preferred words that the registry knows, else any variant."""
    variants = table[canonical]
    usable = [h for h in preferred if h in variants] or list(variants)
    return usable[int(rng.integers(len(usable)))]


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _fresh_name(rng: np.random.Generator, taken: set[str], male: bool) -> str:
    """A plausible name that nobody in `taken` has (so a rejected row is not accidentally a probable match)."""
    given = GIVEN_MALE if male else GIVEN_FEMALE
    while True:
        name = _choice(rng, SURNAMES) + "".join(_choice(rng, given) for _ in range(int(rng.integers(1, 3))))
        if name not in taken:
            return name


def _matching(spec_owner: str, text: str) -> list[str]:
    """Keys of the department's lists that `text` (file name, sheet name, title) would be recognised as."""
    return [s.key for s in registry().lists_of(spec_owner) if s.matches(text)]


def profile_of(key: str) -> ListProfile:
    return PROFILES.get(key, GENERIC_PROFILE)


# ---------------------------------------------------------------------------------------------------------------
# Places and people
# ---------------------------------------------------------------------------------------------------------------
def build_places(rng: np.random.Generator, persons: int, county_code: str) -> pl.DataFrame:
    """Townships (one 街道, the rest 镇 or 乡) with their villages (村/社区) and 12-digit division codes."""
    big = persons >= 20_000
    n_townships = int(rng.integers(8, 13) if big else rng.integers(4, 7))
    stems = list(_choice(rng, TOWNSHIP_STEMS, size=n_townships - 1))
    stems = list(dict.fromkeys(stems))  # unique, order kept
    rows = []
    town_code, xiang_code = 100, 200  # statistical practice: 0xx 街道, 1xx 镇, 2xx 乡
    townships = [(STREET_STEM, "街道", "001")]
    for stem in stems:
        if rng.random() < 0.75:
            townships.append((stem, "镇", f"{town_code}")); town_code += 1
        else:
            townships.append((stem, "乡", f"{xiang_code}")); xiang_code += 1
    village_pool = [h + t for h in VILLAGE_HEADS for t in VILLAGE_TAILS]
    for stem, suffix, tcode in townships:
        n_villages = int(rng.integers(8, 21) if big else rng.integers(3, 7))
        if suffix == "街道":
            names = [(s, "社区") for s in _choice(rng, COMMUNITY_STEMS, size=n_villages)]
        else:
            n_comm = 1 if n_villages > 3 else 0
            names = [(s, "社区") for s in _choice(rng, COMMUNITY_STEMS, size=n_comm)]
            names += [(s, "村") for s in _choice(rng, village_pool, size=n_villages - n_comm)]
        seen, community_no, village_no = set(), 1, 200
        for vstem, vsuffix in names:
            if vstem + vsuffix in seen:
                continue
            seen.add(vstem + vsuffix)
            if vsuffix == "社区":
                vcode = f"{community_no:03d}"; community_no += 1
            else:
                vcode = f"{village_no:03d}"; village_no += 1
            rows.append({"township": stem + suffix, "township_stem": stem, "township_code": county_code + tcode,
                         "village": vstem + vsuffix, "division_code": county_code + tcode + vcode,
                         "weight": float(rng.lognormal(0, 0.35)) * (1.5 if vsuffix == "社区" else 1.0)})
    return pl.DataFrame(rows)


def birthplace_codes(rng: np.random.Generator, birth: pl.Series, home_share: float) -> np.ndarray:
    """ID address codes: mostly the home lineage, a few neighbouring counties; the code in force at birth."""
    n = birth.len()
    lineage = np.where(rng.random(n) < home_share, 0, rng.integers(1, len(BIRTHPLACE_LINEAGES), n))
    old = np.array([a for a, _ in BIRTHPLACE_LINEAGES])[lineage]
    new = np.array([b for _, b in BIRTHPLACE_LINEAGES])[lineage]
    return np.where(birth.dt.year().to_numpy() < 1998, old, new).astype(str)


def _given_names(rng: np.random.Generator, male: np.ndarray) -> pl.Series:
    """One or two given-name characters, drawn by sex."""
    n = len(male)
    first = np.where(male, _choice(rng, GIVEN_MALE, size=n), _choice(rng, GIVEN_FEMALE, size=n))
    second = np.where(male, _choice(rng, GIVEN_MALE, size=n), _choice(rng, GIVEN_FEMALE, size=n))
    second = np.where(rng.random(n) < 0.7, second, "")
    return pl.Series(first.astype(str)) + pl.Series(second.astype(str))


def _unique_ids(rng: np.random.Generator, addr: np.ndarray, birth: pl.Series, male: np.ndarray,
                taken: set[str] | None = None) -> list[str]:
    """18-character IDs: address + birth date + sequence (odd male, even female) + check; unique (and not `taken`)."""
    births = birth.dt.strftime("%Y%m%d").to_numpy().astype(str)
    k = rng.integers(1, 500, len(addr))
    taken = taken or set()
    while True:
        seq = np.char.zfill((2 * k + male.astype(int)).astype(str), 3)
        bodies = pl.Series(np.char.add(np.char.add(addr.astype(str), births), seq))
        clash = (bodies.is_duplicated() & ~bodies.is_first_distinct()) | bodies.is_in(list(taken))
        if not clash.any():
            break
        idx = np.flatnonzero(clash.to_numpy())
        k[idx] = rng.integers(1, 500, len(idx))
    body_list = bodies.to_list()
    return [b + c for b, c in zip(body_list, check_chars(body_list))]


def build_population(rng: np.random.Generator, places: pl.DataFrame, persons: int, ref: date,
                     line: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """People (one row each) and households as of `ref`, vectorised with numpy."""
    size_values = np.arange(1, 9)
    size_p = np.array([0.12, 0.20, 0.22, 0.22, 0.13, 0.07, 0.03, 0.01])
    pool = rng.choice(size_values, size=max(persons, 8), p=size_p)
    cum = np.cumsum(pool)
    n_hh = int(np.searchsorted(cum, persons) + 1)
    sizes = pool[:n_hh].copy()
    sizes[-1] -= cum[n_hh - 1] - persons

    weights = places["weight"].to_numpy()
    vidx = np.sort(rng.choice(places.height, size=n_hh, p=weights / weights.sum()))
    seq = np.arange(n_hh) - np.searchsorted(vidx, vidx, side="left") + 1
    width = max(4, len(str(int(seq.max()))))
    div = places["division_code"].to_numpy().astype(str)[vidx]
    household_id = np.char.add(div, np.char.zfill(seq.astype(str), width))

    hh = np.repeat(np.arange(n_hh), sizes)
    n = len(hh)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(n) - starts[hh]
    size_p_person = sizes[hh]
    head_age = np.clip(rng.normal(55, 13, n_hh), 22, 92)[hh]
    head_male = (rng.random(n_hh) < 0.88)[hh]
    three_gen = head_age >= 58
    r1, r2 = rng.random(n), rng.random(n)

    kind = np.full(n, KIND_CHILD)
    kind[pos == 0] = KIND_HEAD
    kind[(pos == 1) & (r1 < 0.85)] = KIND_SPOUSE
    kind[(pos == 3) & three_gen] = KIND_DIL
    kind[(pos >= 4) & three_gen] = KIND_GRANDCHILD
    kind[(~three_gen) & (head_age < 50) & (size_p_person >= 4) & (pos == size_p_person - 1) & (pos >= 2) & (r2 < 0.5)] = KIND_PARENT

    age = np.where(kind == KIND_HEAD, head_age, 0.0)
    age = np.where(kind == KIND_SPOUSE, np.clip(head_age + rng.normal(-2, 3, n), 18, 95), age)
    child_age = head_age - rng.uniform(22, 34, n) - 2 * (pos - 2)
    age = np.where(kind == KIND_CHILD, np.where(three_gen & (pos == 2), head_age - rng.uniform(24, 32, n), child_age), age)
    age = np.where(kind == KIND_DIL, head_age - rng.uniform(24, 32, n), age)
    age = np.where(kind == KIND_GRANDCHILD, head_age - rng.uniform(48, 58, n) - 2 * (pos - 4), age)
    age = np.where(kind == KIND_PARENT, np.clip(head_age + rng.uniform(22, 30, n), 0, 99), age)
    age = np.clip(age, 0, 99)

    male = rng.random(n) < 0.5
    male = np.where(kind == KIND_HEAD, head_male, male)
    male = np.where(kind == KIND_SPOUSE, ~head_male, male)
    male = np.where((kind == KIND_CHILD) & three_gen & (pos == 2), True, male)
    male = np.where(kind == KIND_DIL, False, male)

    days = (age * 365.25 + rng.uniform(0, 365, n)).astype(np.int64)
    days = np.minimum(days, (ref - date(1927, 1, 1)).days)
    birth = pl.Series("birth_date", np.datetime64(ref, "D") - days.astype("timedelta64[D]")).cast(pl.Date)

    addr = birthplace_codes(rng, birth, home_share=0.95)
    ids = _unique_ids(rng, addr, birth, male)

    hh_surname = _choice(rng, SURNAMES, SURNAME_WEIGHTS, size=n_hh)[hh]
    own_surname = _choice(rng, SURNAMES, SURNAME_WEIGHTS, size=n)
    outsider = (kind == KIND_SPOUSE) | (kind == KIND_DIL) | ((kind == KIND_PARENT) & ~male)
    surname = np.where(outsider, own_surname, hh_surname).astype(str)
    names = pl.Series(surname) + _given_names(rng, male)

    age_years = ((np.datetime64(ref, "D") - birth.to_numpy().astype("datetime64[D]")).astype(np.int64) / 365.25)
    labour = _labour(rng, age_years)
    health = _health(rng, age_years)
    labour = np.where(np.isin(health, ["患有大病", "残疾"]) & np.isin(labour, LABOUR[:2]) & (rng.random(n) < 0.6),
                      "弱劳动力或半劳动力", labour)

    people = pl.DataFrame({
        "pid": np.arange(n), "hh": hh, "pos": pos, "kind": kind, "male": male, "name": names,
        "id_number": ids, "birth_date": birth, "labour": labour, "health": health,
    })
    households = _households(rng, places, vidx, household_id, sizes, hh, health, ref, line)
    return people, households


def _labour(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    """劳动技能 (labour capacity) by age band."""
    n = len(age)
    working = _choice(rng, LABOUR[:4], [0.3, 0.6, 0.07, 0.03], size=n)
    sixties = _choice(rng, LABOUR[1:], [0.3, 0.5, 0.1, 0.1], size=n)
    old = _choice(rng, LABOUR[2:], [0.3, 0.3, 0.4], size=n)
    return np.select([age < 16, age < 60, age < 70], ["无劳动力", working, sixties], old).astype(str)


def _health(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    """健康状况: chronic illness grows with age; a few major illnesses and disabilities."""
    u = rng.random(len(age))
    disabled, major = 0.02, 0.006 + 0.0002 * age
    chronic = 0.03 + 0.004 * np.maximum(age - 40, 0)
    return np.select([u < disabled, u < disabled + major, u < disabled + major + chronic],
                     ["残疾", "患有大病", "长期慢性病"], "健康").astype(str)


def _households(rng, places, vidx, household_id, sizes, hh, health, ref: date, line: float) -> pl.DataFrame:
    """Household fields: type, monitoring status, incomes A28-A32/A35/A36 (yuan/year), phone, cadre."""
    n_hh = len(sizes)
    tuopin = rng.random(n_hh) < 0.25  # 脱贫户, household lifted out of poverty
    monitored = rng.random(n_hh) < np.where(tuopin, 0.05, 0.023)
    category = np.where(tuopin, "脱贫不稳定户", "边缘易致贫户")
    category = np.where(rng.random(n_hh) < 0.15, "突发严重困难户", category)
    eliminated = rng.random(n_hh) < 0.45
    has_major = np.bincount(hh, weights=(health == "患有大病"), minlength=n_hh) > 0
    has_chronic = np.bincount(hh, weights=(health == "长期慢性病"), minlength=n_hh) > 0

    per_capita = np.exp(rng.normal(np.log(2.0 * line), 0.42, n_hh))
    per_capita = np.where(monitored & ~eliminated, rng.uniform(0.6, 1.1, n_hh) * line, per_capita)
    per_capita = np.where(monitored & eliminated, rng.uniform(1.05, 1.6, n_hh) * line, per_capita)
    net = per_capita * sizes
    transfer = sizes * rng.uniform(300, 1500, n_hh) + tuopin * rng.uniform(500, 2500, n_hh)
    transfer = np.minimum(transfer, net * 0.5)
    prop = np.where(rng.random(n_hh) < 0.4, rng.uniform(0, 800, n_hh), 0.0)
    rest = net - transfer - prop
    share = rng.uniform(0.4, 0.95, n_hh)
    wages = rest * share
    business_net = rest - wages
    business_gross = business_net * rng.uniform(1.3, 1.8, n_hh)
    costs = business_gross - business_net
    payouts = np.where(rng.random(n_hh) < np.where(has_major, 0.5, 0.05), rng.uniform(1000, 15000, n_hh), 0.0)
    oop = np.where(has_major, rng.uniform(8000, 60000, n_hh),
                   np.where(has_chronic & (rng.random(n_hh) < 0.3), rng.uniform(1000, 8000, n_hh),
                            np.where(rng.random(n_hh) < 0.03, rng.uniform(500, 5000, n_hh), 0.0)))

    first_day = np.datetime64("2021-07-01", "D")
    span = (np.datetime64(ref, "D") - np.timedelta64(60, "D") - first_day).astype(np.int64)
    identified = pl.Series(first_day + rng.integers(0, span, n_hh).astype("timedelta64[D]")).cast(pl.Date)
    phone = np.char.add(np.char.add("1", _choice(rng, ["3", "5", "7", "8", "9"], size=n_hh).astype(str)),
                        np.char.zfill(rng.integers(0, 10**9, n_hh).astype(str), 9))
    cadres = _cadres(rng, places.height)
    cadre = cadres[vidx * 3 + rng.integers(0, 3, n_hh)]

    def money(values: np.ndarray) -> np.ndarray:
        return np.round(values).astype(np.int64)

    frame = pl.DataFrame({
        "hh": np.arange(n_hh), "household_id": household_id, "vidx": vidx,
        "household_type": np.where(tuopin, "脱贫户", "一般农户"),
        "monitored": monitored,
        "monitoring_category": pl.Series(np.where(monitored, category, None).tolist(), dtype=pl.String),
        "risk_eliminated": pl.Series(np.where(monitored, np.where(eliminated, "是", "否"), None).tolist(), dtype=pl.String),
        "identified_on": identified, "wages": money(wages), "business_income": money(business_gross),
        "property_income": money(prop), "transfer_income": money(transfer), "business_costs": money(costs),
        "insurance_payouts": money(payouts), "compliant_oop": money(oop), "cadre": cadre.astype(str), "phone": phone,
    })
    frame = frame.with_columns(
        pl.when(pl.col("monitored")).then(pl.col("identified_on")).alias("identified_on"),
        (pl.col("wages") + pl.col("business_income") + pl.col("property_income") + pl.col("transfer_income")
         - pl.col("business_costs")).alias("net_income"),
    )
    return frame.join(places.with_row_index("vidx").select(
        pl.col("vidx").cast(pl.Int64), "township", "township_stem", "village", "division_code"),
        on="vidx", how="left", maintain_order="left")


def _cadres(rng: np.random.Generator, villages: int) -> np.ndarray:
    """Three 帮扶责任人 (contact cadres) per village."""
    n = villages * 3
    male = rng.random(n) < 0.6
    return (pl.Series(_choice(rng, SURNAMES, SURNAME_WEIGHTS, size=n).astype(str)) + _given_names(rng, male)).to_numpy()


def evolve(rng: np.random.Generator, people: pl.DataFrame, households: pl.DataFrame, month: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """One month later: a few deaths of elderly members, a few births, a few households moving out."""
    start, end = _month_bounds(month)
    age = (pl.lit(end) - pl.col("birth_date")).dt.total_days() / 365.25
    n = people.height
    dies = people.select((age >= 70) & (pl.col("kind") != KIND_HEAD)).to_series().to_numpy() & (rng.random(n) < 0.0015)
    moving = households.filter(pl.Series(rng.random(households.height) < 0.0003))["hh"]
    people = people.filter(~pl.Series(dies) & ~pl.col("hh").is_in(moving.implode()))
    households = households.filter(~pl.col("hh").is_in(moving.implode()))

    mothers = people.filter(
        (~pl.col("male")) & pl.col("kind").is_in([KIND_SPOUSE, KIND_DIL])
        & ((pl.lit(end) - pl.col("birth_date")).dt.total_days() / 365.25).is_between(20, 40)
    )
    mothers = mothers.filter(pl.Series(rng.random(mothers.height) < 0.0012)).unique("hh", keep="first", maintain_order=True)
    if mothers.height:
        m = mothers.height
        male = rng.random(m) < 0.52
        births = pl.Series(np.datetime64(start, "D") + rng.integers(0, end.day, m).astype("timedelta64[D]")).cast(pl.Date)
        ids = _unique_ids(rng, birthplace_codes(rng, births, 1.0), births, male, set(people["id_number"].to_list()))
        max_pos = people.group_by("hh").agg(pl.col("pos").max().alias("max_pos"))
        heads = people.filter(pl.col("kind") == KIND_HEAD).select("hh", pl.col("name").str.slice(0, 1).alias("surname"))
        babies = mothers.select("hh", pl.when(pl.col("kind") == KIND_DIL).then(KIND_GRANDCHILD)
                                .otherwise(KIND_CHILD).alias("kind"))
        babies = babies.join(max_pos, on="hh", how="left", maintain_order="left").join(
            heads, on="hh", how="left", maintain_order="left")
        babies = babies.select(
            pl.Series("pid", np.arange(m) + int(people["pid"].max()) + 1),
            "hh", (pl.col("max_pos") + 1).alias("pos"), "kind", pl.Series("male", male),
            (pl.col("surname").fill_null(_choice(rng, SURNAMES)) + _given_names(rng, male)).alias("name"),
            pl.Series("id_number", ids), births.alias("birth_date"),
            pl.lit("无劳动力").alias("labour"), pl.lit("健康").alias("health"),
        )
        people = pl.concat([people, babies.cast(people.schema)]).sort("hh", "pos")
    return people, households, {"deaths": int(dies.sum()), "moved_households": moving.len(), "births": mothers.height}


def month_persons(people: pl.DataFrame, households: pl.DataFrame, month: str, line: float) -> pl.DataFrame:
    """Everything a list row needs about a person in `month`: place, household flags, name uniqueness in village."""
    _, end = _month_bounds(month)
    sizes = people.group_by("hh").len("size")
    frame = people.join(households, on="hh", how="inner", maintain_order="left").join(
        sizes, on="hh", how="left", maintain_order="left")
    return frame.with_columns(
        ((pl.lit(end) - pl.col("birth_date")).dt.total_days() / 365.25).alias("age"),
        (pl.col("kind") == KIND_HEAD).alias("is_head"),
        pl.when(pl.col("male")).then(pl.lit("男")).otherwise(pl.lit("女")).alias("sex"),
        ((pl.col("net_income") / pl.col("size") < 1.3 * line)
         | (pl.col("monitored") & (pl.col("risk_eliminated") == "否"))).alias("low_income"),
        # unique in the whole township (hence in the village): a probable match by name however it is scoped
        (pl.len().over("township", "name") == 1).alias("name_unique"),
    ).sort("hh", "pos")


# ---------------------------------------------------------------------------------------------------------------
# The roster file (fast xlsx writer: 60,000 rows in about a second, byte-stable)
# ---------------------------------------------------------------------------------------------------------------
RELATION = {KIND_HEAD: ("户主", "户主"), KIND_SPOUSE: ("配偶", "配偶"), KIND_CHILD: ("之子", "之女"),
            KIND_GRANDCHILD: ("之孙子", "之孙女"), KIND_PARENT: ("之父", "之母"), KIND_DIL: ("之儿媳", "之儿媳")}
ROSTER_ORDER = ["household_id", "township", "village", "division_code", "name", "id_number", "sex", "relation",
                "household_type", "monitoring_category", "risk_eliminated", "identified_on", "household_size",
                "labour", "health", "wages", "business_income", "property_income", "transfer_income",
                "business_costs", "insurance_payouts", "compliant_oop", "phone", "cadre"]
HOUSEHOLD_FIELDS = {"household_type", "monitoring_category", "risk_eliminated", "identified_on", "household_size",
                    "wages", "business_income", "property_income", "transfer_income", "business_costs",
                    "insurance_payouts", "compliant_oop", "phone", "cadre"}


def roster_frame(persons: pl.DataFrame, rng: np.random.Generator, head_only: bool) -> pl.DataFrame:
    """The roster as a clerk exports it: Chinese headers (variants from the registry), one row per person."""
    relation = pl.col("kind").replace_strict({k: v[0] for k, v in RELATION.items()}, return_dtype=pl.String)
    relation_f = pl.col("kind").replace_strict({k: v[1] for k, v in RELATION.items()}, return_dtype=pl.String)
    values = persons.with_columns(
        pl.when(pl.col("male")).then(relation).otherwise(relation_f).alias("relation"),
        pl.col("size").alias("household_size"),
        pl.col("identified_on").dt.strftime("%Y-%m-%d"),
    )
    headers = registry().roster_headers
    exprs = []
    for field_name in ROSTER_ORDER:
        header = "性别" if field_name == "sex" else _headers(field_name, (), rng, headers)
        expr = pl.col(field_name)
        if head_only and field_name in HOUSEHOLD_FIELDS:
            expr = pl.when(pl.col("is_head")).then(expr)
        exprs.append(expr.alias(header))
    return values.select(exprs)


def _column_letter(index: int) -> str:
    return get_column_letter(index + 1)


XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '</Types>'),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        '</Relationships>'),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
        '</Relationships>'),
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<fonts count="1"><font><sz val="11"/><name val="宋体"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        '</styleSheet>'),
}


def write_fast_xlsx(path: Path, frame: pl.DataFrame, sheet: str) -> None:
    """A one-sheet xlsx built with Polars string expressions (inline strings, numbers as numbers).

    openpyxl needs ~7 s per 60,000-row roster; this needs well under one, and the bytes depend only on the data.
    """
    cells = []
    row = pl.int_range(2, pl.len() + 2).cast(pl.String)
    for index, (name, dtype) in enumerate(frame.schema.items()):
        ref = pl.concat_str([pl.lit(f'<c r="{_column_letter(index)}'), row])
        value = pl.col(name)
        if dtype.is_numeric():
            cell = pl.concat_str([ref, pl.lit('"><v>'), value.cast(pl.String), pl.lit("</v></c>")])
        else:
            text = value.cast(pl.String)
            cell = pl.when(text != "").then(
                pl.concat_str([ref, pl.lit('" t="inlineStr"><is><t>'), xml_text(text), pl.lit("</t></is></c>")]))
        cells.append(cell.fill_null(""))
    header = "".join(f'<c r="{_column_letter(i)}1" t="inlineStr"><is><t>{escape(name)}</t></is></c>'
                     for i, name in enumerate(frame.columns))
    rows = frame.select(pl.concat_str([pl.lit('<row r="'), row, pl.lit('">'), *cells, pl.lit("</row>")]).alias("x"))
    sheet_xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                 '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                 f'<dimension ref="A1:{_column_letter(max(frame.width - 1, 0))}{frame.height + 1}"/><sheetData>'
                 f'<row r="1">{header}</row>' + "".join(rows["x"].to_list()) + "</sheetData></worksheet>")
    workbook = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
                f'<sheets><sheet name="{escape(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>')
    parts = {**XLSX_PARTS, "xl/workbook.xml": workbook, "xl/worksheets/sheet1.xml": sheet_xml}
    path.write_bytes(stable_zip({name: text.encode("utf-8") for name, text in parts.items()}, FIXED_ZIP_TIME))


def _stable_openpyxl_bytes(workbook: openpyxl.Workbook) -> bytes:
    """openpyxl output with its 'now' timestamps replaced, so the same seed gives the same bytes."""
    workbook.properties.creator = "fangpin demo"
    return stable_zip(openpyxl_parts(workbook, FIXED_DOC_TIME), FIXED_ZIP_TIME)


# ---------------------------------------------------------------------------------------------------------------
# Department lists: rows, sheets, files
# ---------------------------------------------------------------------------------------------------------------
def who_filter(who: str) -> pl.Expr:
    """Which persons can be on a list of this kind (a dropout is a school-age child, a 户主 list holds heads)."""
    age = pl.col("age")
    return {
        "any": pl.lit(True), "child": age < 18, "school": age.is_between(7, 16), "working": age.is_between(18, 59),
        "adult": age >= 18, "elder": age >= 60, "head": pl.col("is_head"),
    }[who]


def bias_weight(bias: str | None) -> pl.Expr:
    """Sampling weight: members of poor, ill, disabled or monitored households are likelier on some lists."""
    if bias == "low_income":
        return pl.when(pl.col("low_income")).then(4.0).otherwise(1.0)
    if bias == "ill":
        return pl.when(pl.col("health") == "患有大病").then(30.0).when(pl.col("health") == "长期慢性病").then(4.0).otherwise(1.0)
    if bias == "disabled":
        return pl.when(pl.col("health") == "残疾").then(40.0).otherwise(1.0)
    if bias == "monitored":
        return pl.when(pl.col("monitored")).then(5.0).otherwise(1.0)
    return pl.lit(1.0)


def sample_persons(rng: np.random.Generator, persons: pl.DataFrame, key: str, n: int,
                   exclude: pl.Series | None = None) -> pl.DataFrame:
    """`n` distinct persons for list `key`, drawn without replacement with the profile's bias."""
    prof = profile_of(key)
    pool = persons.filter(who_filter(prof.who))
    if exclude is not None and exclude.len():
        pool = pool.filter(~pl.col("id_number").is_in(exclude.implode()))
    n = min(n, pool.height)
    if n == 0:
        return pool.head(0)
    weights = pool.with_columns(bias_weight(prof.bias).alias("_w"))["_w"].to_numpy()
    idx = np.sort(rng.choice(pool.height, size=n, replace=False, p=weights / weights.sum()))
    return pool[idx]


def make_rows(rng: np.random.Generator, persons: pl.DataFrame, key: str, month: str) -> pl.DataFrame:
    """Canonical list rows for these persons: place, a date inside the month, detail, amount, certificate."""
    prof = profile_of(key)
    n = persons.height
    start, end = _month_bounds(month)
    dates = pl.Series(np.datetime64(start, "D") + rng.integers(0, end.day, n).astype("timedelta64[D]")).cast(pl.Date)
    details = [d for d, _ in prof.details]
    detail = _choice(rng, details, [w for _, w in prof.details], size=n).astype(str)
    amount = np.full(n, np.nan)
    if prof.amount_headers:
        amount = np.round(rng.uniform(*prof.amount_range, n), 2)
        amount = np.where(rng.random(n) < 0.08, np.nan, amount)
    extra = np.full(n, None, dtype=object)
    cert = np.full(n, None, dtype=object)
    if prof.disability:
        category = rng.choice(7, size=n, p=[0.08, 0.08, 0.04, 0.45, 0.12, 0.13, 0.10]) + 1
        grade = np.where(np.isin(category, [5, 6]) & (rng.random(n) < 0.3), rng.integers(3, 5, n), rng.integers(1, 3, n))
        detail = np.asarray(DISABILITY_CATEGORIES, dtype=object)[category - 1].astype(str)
        extra = np.asarray(DISABILITY_GRADES, dtype=object)[grade - 1]
        cert = np.char.add(np.char.add(persons["id_number"].to_numpy().astype(str), category.astype(str)), grade.astype(str))
    elif prof.extra and prof.extra[1]:
        extra = _choice(rng, list(prof.extra[1]), size=n)
    elif prof.extra:  # 号牌号码: licence plates
        letters = _choice(rng, list("ABCDEFGHJK"), size=n).astype(str)
        extra = np.char.add(np.char.add("赣B", letters), np.char.zfill(rng.integers(0, 10**4, n).astype(str), 4))
    frame = persons.select(
        "name", "id_number", "sex", "township", "village", "division_code", "phone",
        dates.alias("event_date"), pl.Series("detail", detail, dtype=pl.String),
        pl.Series("amount", amount, dtype=pl.Float64).fill_nan(None),
        pl.Series("disability_cert", list(cert), dtype=pl.String), pl.Series("extra", list(extra), dtype=pl.String),
        pl.lit(None, pl.String).alias("remark"), pl.col("id_number").alias("_true_id"),
        pl.col("name_unique").alias("_name_unique"),
    )
    return frame


@dataclass
class Sheet:
    """One list (or notes) sheet of a file: rows, how they are laid out, and the planted problems per row."""

    list_key: str | None
    name: str  # sheet name ("" for csv)
    titles: list[str] = field(default_factory=list)
    frame: pl.DataFrame | None = None
    tags: list[str] = field(default_factory=list)  # per data row: "" clean, a PROBLEMS key, or "~internal"
    overrides: dict[int, dict[str, object]] = field(default_factory=dict)  # row -> {column: cell value}
    columns: list[tuple[str, str]] = field(default_factory=list)  # (header text, frame column)
    date_form: str = "iso"
    amount_form: str = "number"
    total_row: bool = False
    blank_before: set[int] = field(default_factory=set)
    notes: list[str] | None = None  # a notes sheet (no list)
    fmt: str = "xlsx"


@dataclass
class FilePlan:
    """One file of the drop zone and where it goes."""

    department: str
    rel: str  # relative to the month folder, e.g. 民政局/低保.xlsx
    fmt: str  # xlsx | xls | csv
    sheets: list[Sheet]
    encoding: str = "utf-8"
    arrival: datetime | None = None


DATE_FORMS = {"xlsx": (["date", "serial", "iso", "slash", "dot", "cn", "month"], [0.3, 0.12, 0.2, 0.1, 0.08, 0.15, 0.05]),
              "xls": (["date", "serial", "iso", "slash", "cn"], [0.4, 0.15, 0.2, 0.1, 0.15]),
              "csv": (["iso", "slash", "dot", "cn", "month"], [0.35, 0.2, 0.15, 0.2, 0.1])}
DATE_PATTERNS = {"iso": "%Y-%m-%d", "slash": "%Y/%-m/%-d", "dot": "%Y.%m.%d", "cn": "%Y年%-m月%-d日", "month": "%Y%m"}


def _unit_lines(rng: np.random.Generator, spec: ListSpec, month: str) -> list[str]:
    """Rows under the title that name no list: the reporting unit, a date or the money unit."""
    dept = registry().departments[spec.department]
    ny, nm = _next_month(month)
    lines = [f"填报单位：县{dept.name}", f"填报日期：{ny}年{nm}月{int(rng.integers(1, 10))}日"]
    if profile_of(spec.key).amount_headers and rng.random() < 0.5:
        lines[1] = "单位：元"
    return [t for t in lines if not _matching(spec.department, t)]


def _title_lines(rng: np.random.Generator, spec: ListSpec, month: str, count: int, carry_keyword: bool) -> list[str]:
    """0-3 rows above the header: the list title (`赣南示范县2026年10月新增低保人员名单`), then unit and date.

    With `carry_keyword` the title is the only place naming the list, so there is at least that row.
    """
    year, mon = int(month[:4]), int(month[5:])
    name = county()["county"]["name"]
    options = [f"{name}{year}年{mon}月{spec.title}", f"{name}{year}年{mon}月{spec.keywords[0]}人员名单",
               f"{year}年{mon}月{spec.keywords[0]}名单"]
    main = next((t for t in options if _matching(spec.department, t) == [spec.key]), None)
    if main is None:
        raise ValueError(f"demo: no title recognises {spec.key} uniquely; check its keywords in registry.yaml")
    count = max(count, 1) if carry_keyword else count
    return ([main] + _unit_lines(rng, spec, month))[:count]


def _file_name(rng: np.random.Generator, spec: ListSpec, month: str) -> str:
    """A file name naming exactly this list among its department's lists (as most clerks do)."""
    year, mon = int(month[:4]), int(month[5:])
    name = county()["county"]["name"]
    kw = spec.keywords[0]
    new = "新增" if spec.is_risk else ""  # eligibility lists are stock, not news
    options = [spec.title, f"{mon}月{spec.title}", f"{name}{year}年{mon}月{spec.title}", f"{kw}名单（{year}年{mon}月）",
               f"{year}年{mon}月{new}{kw}人员", f"{kw}{year}{mon:02d}"]
    usable = [o for o in options if _matching(spec.department, o) == [spec.key]]
    if not usable:
        raise ValueError(f"demo: no file name recognises {spec.key} uniquely; check its keywords in registry.yaml")
    return usable[int(rng.integers(len(usable)))]


def _sheet_label(spec: ListSpec, month: str) -> str:
    """A sheet name that names exactly this list (for files whose name names none)."""
    mon = int(month[5:])
    for option in (f"{spec.keywords[0]}", f"{spec.keywords[0]}人员", f"{mon}月{spec.keywords[0]}"):
        if _matching(spec.department, option) == [spec.key]:
            return option[:31]
    raise ValueError(f"demo: no sheet name recognises {spec.key} uniquely")


def _generic_name(dept_slug: str, text: str) -> str:
    """A file name that names no list of the department (the list is named by a sheet or title instead)."""
    if _matching(dept_slug, text):
        raise ValueError(f"demo: generic name {text!r} matches a list keyword")
    return text


def plan_files(rng: np.random.Generator, month: str, folders: dict[str, str], dropped: set[str],
               workbook_dept: str | None, generic_dept: str | None) -> list[FilePlan]:
    """Which files each department sends this month, their format, names, sheets and title rows."""
    reg = registry()
    mon = int(month[5:])
    plans: list[FilePlan] = []
    for slug, dept in reg.departments.items():
        specs = [s for s in reg.lists_of(slug) if s.key not in dropped]
        if not specs:
            continue
        folder = folders[slug]
        if slug == workbook_dept and len(specs) >= 2:
            together, specs = specs[:2], specs[2:]
            sheets = [Sheet(s.key, _sheet_label(s, month), _title_lines(rng, s, month, int(rng.integers(0, 3)), False))
                      for s in together]
            sheets += [Sheet(None, "填表说明", notes=list(NOTES_SHEET_LINES)), Sheet(None, "Sheet3", notes=[])]
            name = _generic_name(slug, f"{dept.name}{mon}月份报送名单")
            plans.append(FilePlan(slug, f"{folder}/{name}.xlsx", "xlsx", sheets))
        for i, spec in enumerate(specs):
            fmt = str(_choice(rng, ["xlsx", "xls", "csv"], [0.55, 0.15, 0.30]))
            titles = int(_choice(rng, [0, 1, 2, 3], [0.3, 0.35, 0.25, 0.1])) if fmt != "csv" else int(rng.random() < 0.4)
            if slug == generic_dept:
                if i % 2 == 1:  # the list is named by the sheet: needs a workbook
                    fmt = "xlsx" if fmt == "csv" else fmt
                    sheet = Sheet(spec.key, _sheet_label(spec, month), _unit_lines(rng, spec, month)[:titles])
                else:  # the list is named by the title row
                    sheet = Sheet(spec.key, "" if fmt == "csv" else "Sheet1", _title_lines(rng, spec, month, titles, True))
                name = _generic_name(slug, f"{dept.name}{mon}月报送数据（{i + 1}）")
            else:
                sheet = Sheet(spec.key, "" if fmt == "csv" else str(_choice(rng, ["Sheet1", "sheet1", f"{mon}月", "名单"])),
                              _title_lines(rng, spec, month, titles, False))
                name = _file_name(rng, spec, month)
            encoding = str(_choice(rng, ["utf-8", "utf-8-sig", "gb18030"], [0.35, 0.25, 0.4])) if fmt == "csv" else ""
            plans.append(FilePlan(slug, f"{folder}/{name}.{fmt}", fmt, [sheet], encoding))
    _ensure_formats(rng, plans)
    for plan in plans:
        for sheet in plan.sheets:
            sheet.fmt = plan.fmt
            if plan.fmt == "csv":
                sheet.name = ""
    return plans


def _ensure_formats(rng: np.random.Generator, plans: list[FilePlan]) -> None:
    """Every month has at least one .xls and one .csv of each encoding (the reader must cope with all)."""
    single = [p for p in plans if len(p.sheets) == 1 and p.fmt == "xlsx"
              and not registry().lists[p.sheets[0].list_key].matches(p.sheets[0].name)]
    wanted = [("xls", ""), ("csv", "gb18030"), ("csv", "utf-8"), ("csv", "utf-8-sig")]
    have = {(p.fmt, p.encoding) for p in plans}
    for fmt, encoding in wanted:
        if (fmt, encoding) in have or not single:
            continue
        plan = single.pop(int(rng.integers(len(single))))
        plan.fmt, plan.encoding = fmt, encoding
        plan.rel = plan.rel.rsplit(".", 1)[0] + "." + fmt


def _layout_columns(rng: np.random.Generator, sheet: Sheet) -> None:
    """Header words and column order of one list sheet; also its date and amount forms."""
    reg = registry()
    prof = profile_of(sheet.list_key)
    table = reg.list_headers
    person = [(_headers("name", prof.name_headers, rng, table), "name"), (_headers("id_number", (), rng, table), "id_number")]
    if rng.random() < 0.3:
        person.insert(1, ("性别", "sex"))
    place = [(_headers("township", (), rng, table), "township"), (_headers("village", (), rng, table), "village")]
    if rng.random() < 0.3:
        place.append((_headers("division_code", (), rng, table), "division_code"))
    columns = [("序号", "seq")] if rng.random() < 0.8 else []
    columns += place + person if rng.random() < 0.3 else person + place
    if prof.disability:
        columns.append((_headers("disability_cert", (), rng, table), "disability_cert"))
    columns.append((_headers("detail", prof.detail_headers, rng, table), "detail"))
    if prof.disability:
        columns.append(("残疾等级", "extra"))
    elif prof.extra:
        columns.append((prof.extra[0], "extra"))
    columns.append((_headers("event_date", prof.date_headers, rng, table), "event_date"))
    if prof.amount_headers:
        columns.append((_headers("amount", prof.amount_headers, rng, table), "amount"))
    if rng.random() < 0.4:
        columns.append(("联系电话", "phone"))
    if rng.random() < 0.2:
        columns.append(("备注", "remark"))
    sheet.columns = columns
    forms, weights = DATE_FORMS[sheet.fmt]
    sheet.date_form = str(_choice(rng, forms, weights))
    sheet.amount_form = str(_choice(rng, ["number", "comma", "yuan"], [0.5, 0.25, 0.25]))


def _ensure_date_forms(rng: np.random.Generator, sheets: list[Sheet]) -> None:
    """Every date form INPUTS.md lists appears at least once a month (when there are enough sheets)."""
    for form in ["date", "serial", "iso", "slash", "dot", "cn", "month"]:
        if any(s.date_form == form for s in sheets):
            continue
        counts: dict[str, int] = {}
        for s in sheets:
            counts[s.date_form] = counts.get(s.date_form, 0) + 1
        options = [s for s in sheets if form in DATE_FORMS[s.fmt][0] and counts[s.date_form] > 1]
        if options:
            options[int(rng.integers(len(options)))].date_form = form


def _ensure_amount_forms(rng: np.random.Generator, sheets: list[Sheet]) -> None:
    """Every amount form ("1,234.50", "1234.5元", a plain number) appears a month; commas on lists of large sums."""
    with_amount = [s for s in sheets if any(c == "amount" for _, c in s.columns)]
    for form in ["comma", "yuan", "number"]:
        if any(s.amount_form == form for s in with_amount):
            continue
        counts: dict[str, int] = {}
        for s in with_amount:
            counts[s.amount_form] = counts.get(s.amount_form, 0) + 1
        options = [s for s in with_amount if counts[s.amount_form] > 1
                   and (form != "comma" or profile_of(s.list_key).amount_range[1] > 10_000)]
        if options:
            options[int(rng.integers(len(options)))].amount_form = form


def _ensure_blank_amount(rng: np.random.Generator, sheets: list[Sheet]) -> None:
    """At least one blank amount a month (after planting, which may have swapped rows)."""
    with_amount = [s for s in sheets if any(c == "amount" for _, c in s.columns) and s.frame.height]
    if with_amount and not any(s.frame["amount"].null_count() for s in with_amount):
        sheet = with_amount[int(rng.integers(len(with_amount)))]
        row = int(rng.integers(sheet.frame.height))
        sheet.frame = sheet.frame.with_columns(
            pl.when(pl.int_range(pl.len()) == row).then(None).otherwise(pl.col("amount")).alias("amount"))


# ---------------------------------------------------------------------------------------------------------------
# Planting problems
# ---------------------------------------------------------------------------------------------------------------
class Planter:
    """Plants the month's problems into the list sheets and keeps the truth in each sheet's tags."""

    def __init__(self, rng: np.random.Generator, sheets: list[Sheet], persons: pl.DataFrame, month: str,
                 places: pl.DataFrame):
        self.rng, self.sheets, self.persons, self.month, self.places = rng, sheets, persons, month, places

    def _replace(self, sheet: Sheet, row: int, new_row: pl.DataFrame) -> None:
        sheet.frame = pl.concat([sheet.frame[:row], new_row.cast(sheet.frame.schema), sheet.frame[row + 1:]])

    def _candidates(self, sheets: list[Sheet], predicate: pl.Expr) -> list[tuple[Sheet, int]]:
        found = []
        for sheet in sheets:
            frame = sheet.frame.with_columns(pl.Series("_tag", sheet.tags, dtype=pl.String)).with_row_index("_i")
            rows = frame.filter((pl.col("_tag") == "") & predicate)["_i"].to_list()
            found += [(sheet, int(i)) for i in rows]
        return found

    def pick(self, sheets: list[Sheet], predicate: pl.Expr = pl.lit(True),
             swap: pl.Expr | None = None) -> tuple[Sheet, int] | None:
        """A clean row satisfying `predicate`; failing that, a clean row whose person is swapped for one in `swap`."""
        found = self._candidates(sheets, predicate)
        if found:
            return found[int(self.rng.integers(len(found)))]
        if swap is None:
            return None
        found = self._candidates(sheets, pl.lit(True))
        while found:
            sheet, row = found.pop(int(self.rng.integers(len(found))))
            prof = profile_of(sheet.list_key)
            pool = self.persons.filter(swap & who_filter(prof.who)
                                       & ~pl.col("id_number").is_in(sheet.frame["_true_id"].implode()))
            if pool.height:
                person = pool.slice(int(self.rng.integers(pool.height)), 1)
                self._replace(sheet, row, make_rows(self.rng, person, sheet.list_key, self.month))
                return sheet, row
        return None

    def tag(self, problem: str, sheets: list[Sheet], predicate: pl.Expr = pl.lit(True),
            swap: pl.Expr | None = None) -> tuple[Sheet, int] | None:
        hit = self.pick(sheets, predicate, swap)
        if hit:
            hit[0].tags[hit[1]] = problem
        return hit

    def plant(self, counts: dict[str, int]) -> None:
        """Tag rows for every problem (swapping persons where a problem needs a certain person), then write cells."""
        reg = registry()
        list_sheets = [s for s in self.sheets if s.list_key]
        risk = [s for s in list_sheets if reg.lists[s.list_key].is_risk]
        no_cert = [s for s in list_sheets if not profile_of(s.list_key).disability]
        workbook = [s for s in no_cert if s.fmt in ("xlsx", "xls")]
        cert = [s for s in list_sheets if profile_of(s.list_key).disability]
        # a township name is only decisive where no division code (区划代码) names the place anyway
        named_places = [s for s in list_sheets if all(c != "division_code" for _, c in s.columns)]
        for _ in range(counts["other_county"]):
            self._other_county(risk)
        for _ in range(counts["multi_list"]):
            self._multi_list(risk)
        needs_person = [  # (problem, sheets, row predicate, the same predicate over the roster for a swap)
            ("id_lowercase_x", list_sheets, pl.col("_true_id").str.ends_with("X"), pl.col("id_number").str.ends_with("X")),
            ("id_legacy_15", list_sheets, pl.col("_true_id").str.slice(6, 2) == "19",
             pl.col("id_number").str.slice(6, 2) == "19"),
            ("probable_match", no_cert, pl.col("_name_unique"), pl.col("name_unique")),
            ("id_float_mangled", workbook, ~pl.col("_true_id").str.ends_with("X"), ~pl.col("id_number").str.ends_with("X")),
        ]
        for problem, sheets, predicate, swap in needs_person:
            for _ in range(counts[problem] if sheets else 0):
                self.tag(problem, sheets, predicate, swap)
        simple = [("id_spaces", list_sheets), ("id_fullwidth", list_sheets), ("id_apostrophe", list_sheets),
                  ("id_bad_checksum", no_cert), ("id_bad_birthdate", no_cert), ("id_bad_length", no_cert),
                  ("id_missing", no_cert), ("disability_cert_mismatch", cert), ("township_no_suffix", named_places),
                  ("township_unknown", named_places), ("date_unparsed", list_sheets)]
        for problem, sheets in simple:
            for _ in range(counts[problem] if sheets else 0):
                self.tag(problem, sheets)
        for _ in range(counts["duplicate_in_list"]):
            self._duplicate(list_sheets)
        for sheet in list_sheets:
            for row, problem in enumerate(sheet.tags):
                if problem in PROBLEMS:
                    self._override(sheet, row, problem)

    def _other_county(self, sheets: list[Sheet]) -> None:
        """A person of another county (valid ID, another address code, not in the roster) living here."""
        hit = self.pick(sheets)
        if not hit:
            return
        sheet, row = hit
        rng = self.rng
        male = np.array([rng.random() < 0.5])
        birth = pl.Series([date(int(rng.integers(1960, 2004)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))])
        code = str(_choice(rng, OTHER_COUNTY_CODES))
        person_id = _unique_ids(rng, np.array([code]), birth, male, set(self.persons["id_number"].to_list()))[0]
        place = sheet.frame.row(row, named=True)
        taken = set(self.persons.filter(pl.col("township") == place["township"])["name"].to_list())
        person = pl.DataFrame({
            "name": [_fresh_name(rng, taken, bool(male[0]))], "id_number": [person_id], "sex": ["男" if male[0] else "女"],
            "township": [place["township"]], "village": [place["village"]], "division_code": [place["division_code"]],
            "phone": [place["phone"]], "name_unique": [False],
        })
        self._replace(sheet, row, make_rows(rng, person, sheet.list_key, self.month))
        sheet.tags[row] = "other_county"

    def _multi_list(self, sheets: list[Sheet]) -> None:
        """The same person on a second list this month (accepted on both)."""
        for _ in range(10):
            target = self.pick(sheets)
            if not target:
                return
            sheet, row = target
            on_target = sheet.frame["_true_id"]
            others = pl.concat([s.frame.select("_true_id") for s in sheets if s is not sheet and s.list_key != sheet.list_key])
            pool = self.persons.filter(
                pl.col("id_number").is_in(others["_true_id"].implode()) & ~pl.col("id_number").is_in(on_target.implode())
                & who_filter(profile_of(sheet.list_key).who))
            if pool.height:
                person = pool.slice(int(self.rng.integers(pool.height)), 1)
                self._replace(sheet, row, make_rows(self.rng, person, sheet.list_key, self.month))
                sheet.tags[row] = "multi_list"
                return

    def _duplicate(self, sheets: list[Sheet]) -> None:
        """The same person twice in one list: the later row is the duplicate."""
        hit = self.pick(sheets)
        if not hit:
            return
        sheet, row = hit
        sheet.tags[row] = "~dup_source"
        at = int(self.rng.integers(row + 1, sheet.frame.height + 1))
        frame = sheet.frame
        sheet.frame = pl.concat([frame[:at], frame[row:row + 1], frame[at:]])
        sheet.tags.insert(at, "duplicate_in_list")
        sheet.overrides = {(k if k < at else k + 1): v for k, v in sheet.overrides.items()}

    def _override(self, sheet: Sheet, row: int, problem: str) -> None:
        """Write the planted cell values of one tagged row."""
        rng = self.rng
        values = sheet.frame.row(row, named=True)
        true_id = values["_true_id"]
        cells: dict[str, object] = {}
        if problem == "id_spaces":
            cells["id_number"] = (f"{true_id[:6]} {true_id[6:14]} {true_id[14:]}" if rng.random() < 0.6
                                  else f"{true_id} ")
        elif problem == "id_fullwidth":
            cells["id_number"] = _fullwidth(true_id)
        elif problem == "id_lowercase_x":
            cells["id_number"] = true_id[:-1] + "x"
        elif problem == "id_apostrophe":
            cells["id_number"] = "'" + true_id
        elif problem == "id_legacy_15":
            cells["id_number"] = true_id[:6] + true_id[8:17]
        elif problem == "id_float_mangled":
            cells["id_number"] = float(f"{int(true_id):.15g}")  # what Excel keeps of a number: 15 digits
        elif problem == "id_bad_checksum":
            cells["id_number"] = true_id[:17] + str(_choice(rng, [c for c in "0123456789X" if c != true_id[17]]))
        elif problem == "probable_match":  # one sequence digit mis-typed: the checksum no longer fits
            digit = str(_choice(rng, [c for c in "0123456789" if c != true_id[15]]))
            cells["id_number"] = true_id[:15] + digit + true_id[16:]
        elif problem == "id_bad_birthdate":
            body = true_id[:10] + str(_choice(rng, IMPOSSIBLE_MONTH_DAYS)) + true_id[14:17]
            cells["id_number"] = body + check_char(body)
        elif problem == "id_bad_length":
            cut = int(rng.integers(6, 17))
            cells["id_number"] = true_id[:cut] + true_id[cut + 1:]
        elif problem == "id_missing":
            cells["id_number"] = None
        elif problem == "disability_cert_mismatch":
            other = true_id
            while other == true_id:  # somebody else's ID in front of the category and grade
                other = self.persons["id_number"][int(rng.integers(self.persons.height))]
            cells["disability_cert"] = other + values["disability_cert"][18:]
        elif problem == "township_no_suffix":
            stems = dict(zip(self.places["township"].to_list(), self.places["township_stem"].to_list()))
            cells["township"] = stems.get(values["township"], values["township"])
        elif problem == "township_unknown":
            known = set(self.places["township"].to_list())
            cells["township"] = str(_choice(rng, [t for t in UNKNOWN_TOWNSHIPS if t not in known]))
        elif problem == "date_unparsed":
            cells["event_date"] = str(_choice(rng, UNPARSEABLE_DATES)).format(m=int(self.month[5:]))
        if problem in ID_REJECTIONS and values["_name_unique"]:
            taken = set(self.persons.filter(pl.col("township") == values["township"])["name"].to_list())
            cells["name"] = _fresh_name(rng, taken, values["sex"] == "男")  # no probable match: fits nobody there
        sheet.overrides.setdefault(row, {}).update(cells)


# ---------------------------------------------------------------------------------------------------------------
# Writing sheets
# ---------------------------------------------------------------------------------------------------------------
def _rendered(sheet: Sheet) -> list[list[object]]:
    """Cell values of the data rows, in column order, in the sheet's date and amount forms."""
    frame = sheet.frame.with_row_index("seq", offset=1)
    date_col = pl.col("event_date")
    if sheet.date_form == "date":
        date_expr = date_col
    elif sheet.date_form == "serial":
        date_expr = (date_col - pl.lit(date(1899, 12, 30))).dt.total_days()
    else:
        date_expr = date_col.dt.strftime(DATE_PATTERNS[sheet.date_form])
    amount = pl.col("amount")
    if sheet.amount_form == "comma":
        amount_expr = _comma(amount)
    elif sheet.amount_form == "yuan":
        amount_expr = amount.cast(pl.String) + pl.lit("元")
    elif sheet.fmt == "csv":
        amount_expr = amount.cast(pl.String)
    else:
        amount_expr = amount
    exprs = {"event_date": date_expr, "amount": amount_expr}
    picked = frame.select([exprs.get(col, pl.col(col)).alias(f"c{i}") for i, (_, col) in enumerate(sheet.columns)])
    rows = [list(r) for r in picked.rows()]
    index = {col: i for i, (_, col) in enumerate(sheet.columns)}
    for row, cells in sheet.overrides.items():
        for col, value in cells.items():
            if col in index:
                rows[row][index[col]] = value
    return rows


def _comma(amount: pl.Expr) -> pl.Expr:
    """1234.5 -> "1,234.50" with Polars only (thousands separators)."""
    cents = (amount * 100).round(0).cast(pl.Int64)
    whole, frac = cents // 100, (cents % 100).cast(pl.String).str.zfill(2)
    millions, thousands, units = whole // 1_000_000, (whole // 1000) % 1000, whole % 1000
    pad = lambda e: e.cast(pl.String).str.zfill(3)  # noqa: E731
    text = (pl.when(whole >= 1_000_000).then(pl.concat_str([millions.cast(pl.String), pl.lit(","), pad(thousands), pl.lit(","), pad(units)]))
            .when(whole >= 1000).then(pl.concat_str([thousands.cast(pl.String), pl.lit(","), pad(units)]))
            .otherwise(units.cast(pl.String)))
    return pl.concat_str([text, pl.lit("."), frac])


def _planted_value(sheet: Sheet, row: int) -> str:
    """The planted cell as written (the ID when the ID was planted), for the truth's `value` column."""
    cells = sheet.overrides.get(row, {})
    value = cells["id_number"] if "id_number" in cells else next(iter(cells.values()), None)
    return "" if value is None else str(value)


def layout(sheet: Sheet) -> tuple[list[list[object] | None], list[int], list[tuple[int, str, str, str]]]:
    """All rows of a sheet top to bottom (None = blank row), the title rows to merge, and the truth per Excel row."""
    if sheet.notes is not None:
        return [[line] for line in sheet.notes], [], []
    headers = [h for h, _ in sheet.columns]
    out: list[list[object] | None] = [[t] for t in sheet.titles]
    merges = list(range(1, len(sheet.titles) + 1))
    out.append(headers)
    truth = []
    rows = _rendered(sheet)
    for i, cells in enumerate(rows):
        if i in sheet.blank_before:
            out.append(None)
        out.append(cells)
        if sheet.tags[i] in PROBLEMS:
            truth.append((len(out), sheet.tags[i], sheet.frame["_true_id"][i], _planted_value(sheet, i)))
    if sheet.total_row:
        total: list[object] = [None] * len(headers)
        total[0] = "合计" if len(rows) % 2 else "总计"
        cols = [c for _, c in sheet.columns]
        if "name" in cols and cols.index("name") != 0:
            total[cols.index("name")] = f"{len(rows)}人"
        if "amount" in cols:
            amounts = [v for v in sheet.frame["amount"].to_list() if v is not None]
            total[cols.index("amount")] = round(sum(amounts), 2) if sheet.fmt != "csv" else f"{sum(amounts):.2f}"
        out.append(total)
        truth.append((len(out), "total_row", "", str(total[0])))
    return out, merges, truth


def write_file(path: Path, plan: FilePlan) -> list[tuple[str, int, str, str, str]]:
    """Write one planned file; returns truth rows (sheet, Excel row, problem, true ID, planted value)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    truth: list[tuple[str, int, str, str]] = []
    laid = [(sheet, *layout(sheet)) for sheet in plan.sheets]
    for sheet, _, _, rows in laid:
        truth += [(sheet.name, *row) for row in rows]
    if plan.fmt == "xlsx":
        workbook = openpyxl.Workbook()
        workbook.remove(workbook.active)
        for sheet, rows, merges, _ in laid:
            ws = workbook.create_sheet(sheet.name)
            width = max((len(r) for r in rows if r), default=1)
            for r in rows:
                ws.append(r if r else [])
            for r in merges:
                if width > 1:
                    ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=width)
        path.write_bytes(_stable_openpyxl_bytes(workbook))
    elif plan.fmt == "xls":
        book = xlwt.Workbook(encoding="utf-8")
        date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
        for sheet, rows, merges, _ in laid:
            ws = book.add_sheet(sheet.name)
            width = max((len(r) for r in rows if r), default=1)
            for r_index, r in enumerate(rows):
                if r_index + 1 in merges and width > 1:
                    ws.write_merge(r_index, r_index, 0, width - 1, r[0])
                    continue
                for c_index, value in enumerate(r or []):
                    if value is None:
                        continue
                    if isinstance(value, date):
                        ws.write(r_index, c_index, value, date_style)
                    else:
                        ws.write(r_index, c_index, value)
        buffer = io.BytesIO()
        book.save(buffer)
        path.write_bytes(buffer.getvalue())
    else:
        (sheet, rows, _, _), = laid
        width = max(len(r) for r in rows if r)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        for r in rows:
            cells = list(r or []) + [None] * (width - len(r or []))
            writer.writerow(["" if v is None else v for v in cells])
        path.write_bytes(text.getvalue().encode(plan.encoding))
    return truth


# ---------------------------------------------------------------------------------------------------------------
# The month
# ---------------------------------------------------------------------------------------------------------------
def _arrival(rng: np.random.Generator, month: str, late: bool) -> datetime:
    """When a department's files arrived: by the due day of the next month, or a few days after it."""
    due = int(county()["submissions"]["due_day"])
    year, mon = _next_month(month)
    day = int(rng.integers(due + 3, due + 11)) if late else int(rng.integers(2, due))
    return datetime(year, mon, day, int(rng.integers(9, 17)), int(rng.integers(0, 60)), tzinfo=CST)


def _list_sizes(rng: np.random.Generator, persons: int) -> dict[str, int]:
    return {key: max(3, int(round(profile_of(key).rate * persons * rng.uniform(0.7, 1.3)))) for key in registry().lists}


def _plant_counts(rows: int) -> dict[str, int]:
    return {problem: max(1, int(round(rate * rows))) for problem, rate in PLANT_RATES.items()}


def _flood(rng: np.random.Generator, persons: pl.DataFrame) -> dict:
    """One village of a 镇 where a flood hits most households this month."""
    heads = persons.filter(pl.col("is_head") & pl.col("township").str.ends_with("镇") & pl.col("village").str.ends_with("村"))
    villages = heads.group_by("township", "village").len().sort("len", "township", "village", descending=[True, False, False])
    top = villages.head(max(1, villages.height // 4))
    hit = top.row(int(rng.integers(top.height)), named=True)
    return {"township": hit["township"], "village": hit["village"], "share": float(rng.uniform(0.5, 0.75)),
            "village_households": hit["len"]}


def _disaster_rows(rng: np.random.Generator, persons: pl.DataFrame, key: str, month: str, n: int,
                   flood: dict | None) -> tuple[pl.DataFrame, list[str]]:
    """The disaster list; in the flood month a large share of one village's households come first, all 洪涝."""
    if not flood:
        rows = make_rows(rng, sample_persons(rng, persons, key, n), key, month)
        return rows, [""] * rows.height
    in_village = (pl.col("township") == flood["township"]) & (pl.col("village") == flood["village"])
    heads = persons.filter(pl.col("is_head") & in_village)
    hit = heads[np.sort(rng.choice(heads.height, size=max(1, int(round(heads.height * flood["share"]))), replace=False))]
    flooded = make_rows(rng, hit, key, month)
    start, end = _month_bounds(month)
    day = int(rng.integers(0, end.day - 2))
    flooded = flooded.with_columns(
        pl.lit("洪涝").alias("detail"),
        pl.Series(np.datetime64(start, "D") + (day + rng.integers(0, 3, hit.height)).astype("timedelta64[D]")).cast(pl.Date).alias("event_date"),
    )
    others = make_rows(rng, sample_persons(rng, persons.filter(~in_village), key, n), key, month)
    flood["households_hit"] = hit.height
    return pl.concat([flooded, others]), ["~flood"] * hit.height + [""] * others.height


def generate_month(rng: np.random.Generator, data_dir: Path, month: str, index: int, persons: pl.DataFrame,
                   places: pl.DataFrame, folders: dict[str, str], setup: dict) -> dict:
    """Write one month's roster and lists; returns the month's truth rows and facts for the summary."""
    month_dir = data_dir / "raw" / month
    year, mon = int(month[:4]), int(month[5:])
    written: list[Path] = []

    # roster
    head_only = index % 2 == 0
    as_csv = setup["csv_roster_month"] == month
    frame = roster_frame(persons, rng, head_only)
    roster_dir = month_dir / "roster"
    roster_dir.mkdir(parents=True, exist_ok=True)
    name = f"{county()['county']['name']}农户花名册（{year}年{mon}月）"
    if as_csv:
        roster_path = roster_dir / f"{name}.csv"
        roster_path.write_bytes(frame.write_csv().encode("gb18030"))
    else:
        roster_path = roster_dir / f"{name}.xlsx"
        write_fast_xlsx(roster_path, frame, "花名册")
    ny, nm = _next_month(month)
    _touch(roster_path, datetime(ny, nm, int(rng.integers(1, 4)), 9, 0, tzinfo=CST))
    written.append(roster_path)

    # list files
    dropped = set(setup["missing"].get(month, []))
    plans = plan_files(rng, month, folders, dropped, setup["workbook_dept"], setup["generic_dept"])
    sizes = _list_sizes(rng, persons.height)
    flood = None
    if setup["flood_list"] and setup["flood_month"] == month and setup["flood_list"] not in dropped:
        flood = _flood(rng, persons)
    list_sheets = [s for p in plans for s in p.sheets if s.list_key]
    for sheet in list_sheets:
        if sheet.list_key == setup["flood_list"] and flood:
            sheet.frame, sheet.tags = _disaster_rows(rng, persons, sheet.list_key, month, sizes[sheet.list_key], flood)
        else:
            chosen = sample_persons(rng, persons, sheet.list_key, sizes[sheet.list_key])
            sheet.frame, sheet.tags = make_rows(rng, chosen, sheet.list_key, month), [""] * chosen.height
        _layout_columns(rng, sheet)
    _ensure_date_forms(rng, list_sheets)
    _ensure_amount_forms(rng, list_sheets)
    clean_rows = sum(s.frame.height for s in list_sheets)
    counts = _plant_counts(clean_rows)
    Planter(rng, list_sheets, persons, month, places).plant(counts)
    _ensure_blank_amount(rng, list_sheets)
    for sheet in list_sheets:
        n = sheet.frame.height
        sheet.total_row = n > 0 and rng.random() < 0.35
        if n > 2 and rng.random() < 0.25:
            sheet.blank_before = {int(i) for i in rng.choice(np.arange(1, n), size=min(2, n - 1), replace=False)}
    if list_sheets and not any(s.total_row for s in list_sheets):
        list_sheets[int(rng.integers(len(list_sheets)))].total_row = True

    late_depts = set(_choice(rng, sorted({p.department for p in plans}), size=int(rng.integers(1, 3))).tolist())
    arrivals = {d: _arrival(rng, month, d in late_depts) for d in sorted({p.department for p in plans})}
    truth: list[dict] = []
    late_files: list[str] = []
    for plan in plans:
        path = month_dir / plan.rel
        for sheet_name, row, problem, true_id, value in write_file(path, plan):
            truth.append(_truth_row(month, path, data_dir, sheet_name, row, problem, plan, true_id, value))
        plan.arrival = arrivals[plan.department]
        _touch(path, plan.arrival)
        written.append(path)
        if plan.department in late_depts:
            late_files.append(_rel(path, data_dir))
    truth += _file_level_extras(rng, data_dir, month, index, plans, persons, folders, setup, written)
    return {"truth": truth, "written": written, "late_files": late_files,
            "late_departments": sorted(late_depts), "flood": flood,
            "list_rows": {s.list_key: s.frame.height for s in list_sheets}, "roster": _rel(roster_path, data_dir),
            "roster_layout": "household fields on the head's row only" if head_only else "household fields on every row"}


def _truth_row(month, path, data_dir, sheet, row, problem, plan, true_id, value) -> dict:
    expected, code = PROBLEMS[problem]
    list_key = next((s.list_key for s in plan.sheets if s.name == sheet and s.list_key), "")
    return {"month": month, "source_file": _rel(path, data_dir), "sheet": sheet, "row_number": row, "problem": problem,
            "expected": expected, "reason_code": code, "list_key": list_key or "", "id_number": true_id or "",
            "value": value}


def _file_truth(month: str, path: Path, data_dir: Path, problem: str, value: str = "") -> dict:
    expected, code = PROBLEMS[problem]
    return {"month": month, "source_file": _rel(path, data_dir), "sheet": "", "row_number": None, "problem": problem,
            "expected": expected, "reason_code": code, "list_key": "", "id_number": "", "value": value}


def _file_level_extras(rng, data_dir: Path, month: str, index: int, plans: list[FilePlan], persons: pl.DataFrame,
                       folders: dict[str, str], setup: dict, written: list) -> list[dict]:
    """Lock file, 说明.txt, a file sent twice, a file no keyword recognises, a folder of no known department."""
    reg = registry()
    month_dir = data_dir / "raw" / month
    truth = []
    xlsx_plans = [p for p in plans if p.fmt == "xlsx"]
    if xlsx_plans:
        plan = xlsx_plans[int(rng.integers(len(xlsx_plans)))]
        original = month_dir / plan.rel
        lock = original.with_name("~$" + original.name)
        lock.write_bytes((b"\x0b" + "Administrator".encode("utf-16-le")).ljust(165, b"\x00"))
        _touch(lock, plan.arrival)
        written.append(lock)
        truth.append(_file_truth(month, lock, data_dir, "lock_file"))
    plan = plans[int(rng.integers(len(plans)))]
    readme = (month_dir / plan.rel).with_name("说明.txt")
    readme.write_text(f"{reg.departments[plan.department].name}{month[:4]}年{int(month[5:])}月报送说明：名单见附件，"
                      "如有疑问请电话联系。\n", encoding="utf-8")
    _touch(readme, plan.arrival)
    written.append(readme)
    truth.append(_file_truth(month, readme, data_dir, "readme_file"))
    if index == setup["duplicate_month"]:
        singles = [p for p in plans if len(p.sheets) == 1]
        plan = singles[int(rng.integers(len(singles)))]
        original = month_dir / plan.rel
        copy = original.with_name(original.stem + "_重发" + original.suffix)  # sorts after the original
        shutil.copyfile(original, copy)
        _touch(copy, plan.arrival + timedelta(days=1))
        written.append(copy)
        truth.append(_file_truth(month, copy, data_dir, "duplicate_file", _rel(original, data_dir)))
    # a file whose name, sheet and (absent) title carry no keyword of its department
    dept = sorted({p.department for p in plans})[int(rng.integers(len({p.department for p in plans})))]
    name = next(n for n in ("补充材料", "工作台账", "其他人员信息表") if not _matching(dept, n))
    unrecognised = month_dir / folders[dept] / f"{name}.xlsx"
    _write_plain_people(unrecognised, persons.sample(min(5, persons.height), seed=int(rng.integers(2**31))))
    _touch(unrecognised, _arrival(rng, month, False))
    written.append(unrecognised)
    truth.append(_file_truth(month, unrecognised, data_dir, "file_unrecognised"))
    if index == setup["unknown_department_month"]:
        folder = next(f for f in ("林业局", "林业", "自然资源局") if reg.department_for_folder(f) is None)
        stray = month_dir / folder / "生态护林员名单.xlsx"
        _write_plain_people(stray, persons.sample(min(6, persons.height), seed=int(rng.integers(2**31))))
        _touch(stray, _arrival(rng, month, False))
        written.append(stray)
        truth.append(_file_truth(month, stray, data_dir, "unknown_department"))
    return truth


def _write_plain_people(path: Path, persons: pl.DataFrame) -> None:
    """A plain sheet of people (name, ID, place) with no title and a keyword-free sheet name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.title = "Sheet1"
    ws.append(["序号", "姓名", "身份证号码", "乡镇", "村"])
    for i, row in enumerate(persons.select("name", "id_number", "township", "village").rows(), start=1):
        ws.append([i, *row])
    path.write_bytes(_stable_openpyxl_bytes(workbook))


def _touch(path: Path, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def _rel(path: Path, data_dir: Path) -> str:
    return Path(path).relative_to(data_dir).as_posix()


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------
def _prepare_dirs(data_dir: Path, months: list[str]) -> None:
    """Clear earlier demo output of these months; refuse to touch a month folder the demo did not write."""
    summary_path = data_dir / "demo_truth" / "summary.json"
    earlier = set(json.loads(summary_path.read_text(encoding="utf-8")).get("months", [])) if summary_path.exists() else set()
    for month in months:
        month_dir = data_dir / "raw" / month
        if month_dir.exists() and any(month_dir.iterdir()):
            if month not in earlier:
                raise FileExistsError(f"{month_dir} holds files the demo generator did not write; choose another data dir")
            shutil.rmtree(month_dir)
        truth = data_dir / "demo_truth" / f"{month}.csv"
        if truth.exists():
            truth.unlink()


def _department_setup(rng: np.random.Generator, months: list[str]) -> tuple[dict[str, str], dict]:
    """Decisions that hold across months: folder names, which department uses a multi-sheet workbook or generic
    file names, which month has the flood, the duplicate file, the unknown department, the missing list."""
    reg = registry()
    folders = {slug: (slug if rng.random() < 0.5 else dept.name) for slug, dept in reg.departments.items()}
    multi = [slug for slug in reg.departments if len(reg.lists_of(slug)) >= 2]
    workbook_dept = "civil_affairs" if "civil_affairs" in multi else (multi[0] if multi else None)
    rest = [m for m in multi if m != workbook_dept]
    generic_dept = "medical_insurance" if "medical_insurance" in rest else (rest[0] if rest else None)
    disaster = "emergency.disaster" if "emergency.disaster" in reg.lists else None  # 受灾农户: where the flood goes
    missing: dict[str, list[str]] = {}
    if len(months) >= 2:
        candidates = [k for k in reg.lists if k.split(".")[0] not in (workbook_dept, generic_dept) and k != disaster]
        preferred = "water.unsafe_water" if "water.unsafe_water" in candidates else None
        missing[months[1]] = [preferred or candidates[int(rng.integers(len(candidates)))]]
    setup = {
        "workbook_dept": workbook_dept, "generic_dept": generic_dept, "missing": missing, "flood_list": disaster,
        "csv_roster_month": months[1] if len(months) >= 2 else None,
        "duplicate_month": 0, "unknown_department_month": len(months) - 1,
        "flood_month": months[-1],
    }
    return folders, setup


def generate(data_dir: Path, months: list[str] | None = None, persons: int = 60_000, seed: int = 20261123) -> dict:
    """Generate the demo county into `data_dir` (raw/<month>/… and demo_truth/…); returns the summary.

    The first month's population is drawn once; later months evolve it (a few births, deaths, moves), so IDs are
    stable. Everything is drawn from `seed`: the same seed gives the same files.
    """
    months = [check_month(m) for m in (months or DEFAULT_MONTHS)]
    months = sorted(dict.fromkeys(months))
    if persons < 200:
        raise ValueError("示范县至少要有200人（--persons），才能包含每一种名单和问题。"
                         " persons must be at least 200 for a county with every list and problem")
    data_dir = Path(data_dir)
    _prepare_dirs(data_dir, months)
    rng = np.random.default_rng(seed)
    county_code = str(county()["county"]["code"])
    first_end = _month_bounds(months[0])[1]
    line = monitoring_line(first_end.year)
    places = build_places(rng, persons, county_code)
    people, households = build_population(rng, places, persons, first_end, line)
    folders, setup = _department_setup(rng, months)

    truth_dir = data_dir / "demo_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    summary = {"seed": seed, "county_code": county_code, "months": months, "monitoring_line": line,
               "townships": places["township"].n_unique(), "villages": places.height,
               "persons_by_month": {}, "households_by_month": {}, "changes_by_month": {}, "files_by_month": {},
               "late_files": {}, "late_departments": {}, "missing_lists": setup["missing"], "list_rows": {},
               "rosters": {}, "roster_layout": {}, "planted_by_problem": {}, "flood": None}
    files_written = 0
    planted: dict[str, int] = {}
    for index, month in enumerate(months):
        month_rng = np.random.default_rng([seed, int(month[:4]), int(month[5:])])
        if index:
            people, households, changes = evolve(month_rng, people, households, month)
            summary["changes_by_month"][month] = changes
        persons_m = month_persons(people, households, month, monitoring_line(int(month[:4])))
        result = generate_month(month_rng, data_dir, month, index, persons_m, places, folders, setup)
        truth = pl.DataFrame(result["truth"], schema={c: (pl.Int64 if c == "row_number" else pl.String)
                                                      for c in TRUTH_COLUMNS}, orient="row")
        truth = truth.select(TRUTH_COLUMNS).sort("source_file", "sheet", "row_number", nulls_last=False)
        with open(truth_dir / f"{month}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(TRUTH_COLUMNS)
            for row in truth.rows():
                writer.writerow(["" if v is None else v for v in row])
        for problem in truth["problem"].to_list():
            planted[problem] = planted.get(problem, 0) + 1
        summary["persons_by_month"][month] = persons_m.height
        summary["households_by_month"][month] = persons_m["hh"].n_unique()
        summary["files_by_month"][month] = sorted(_rel(p, data_dir) for p in result["written"])
        summary["late_files"][month] = sorted(result["late_files"])
        summary["late_departments"][month] = result["late_departments"]
        summary["list_rows"][month] = result["list_rows"]
        summary["rosters"][month] = result["roster"]
        summary["roster_layout"][month] = result["roster_layout"]
        if result["flood"]:
            summary["flood"] = {"month": month, "list": setup["flood_list"], **result["flood"]}
        files_written += len(result["written"])
    summary.update({
        "persons": summary["persons_by_month"][months[-1]], "households": summary["households_by_month"][months[-1]],
        "files_written": files_written, "planted_problems": sum(planted.values()),
        "planted_by_problem": dict(sorted(planted.items())),
    })
    (truth_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=False) + "\n",
                                            encoding="utf-8")
    return summary
