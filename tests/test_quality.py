"""The great-expectations suites catch planted faults, write only their month, and render offline."""
from __future__ import annotations

import re
import socket
from datetime import date

import duckdb
import polars as pl
import pytest

from fangpin import quality, validate
from fangpin.config import PROJECT_ROOT, registry

MONTH = "2026-10"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def valid_id(sequence: int, birth: str = "19800101") -> str:
    """A GB 11643 ID number with a correct check character (distinct per sequence)."""
    body = f"360799{birth}{sequence % 1000:03d}"
    if sequence >= 1000:  # vary the birth day to keep IDs distinct beyond 999
        body = f"360799{1950 + sequence // 1000}0101{sequence % 1000:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS)) % 11]


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute((PROJECT_ROOT / "schemas" / "warehouse.sql").read_text(encoding="utf-8"))
    yield connection
    connection.close()


def _insert(con, table: str, rows: list[dict]) -> None:
    con.register("_rows", pl.DataFrame(rows).to_arrow())
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def accepted(con, list_key: str, n: int, first: int = 0, month: str = MONTH, **override) -> list[str]:
    """`n` clean accepted rows of `list_key`; `override` maps a column to a list of values (None = keep clean)."""
    ids = [valid_id(first + i) for i in range(n)]
    rows = []
    for i, id_number in enumerate(ids):
        row = {"month": month, "list_key": list_key, "department": list_key.split(".")[0],
               "source_file": f"raw/{month}/{list_key.split('.')[0]}/名单.xlsx", "sheet": "Sheet1",
               "row_number": 3 + i, "id_number": id_number, "name": f"人{i}", "township": "红旗镇",
               "township_raw": "红旗镇", "event_date": date(2026, 10, 1 + i % 28), "amount": 12000.0}
        for column, values in override.items():
            if values[i] is not None:
                row[column] = values[i]
        rows.append(row)
    _insert(con, "staging.list_rows", rows)
    return ids


def rejected(con, list_key: str, reasons: list[tuple[int, str, str]], month: str = MONTH) -> None:
    """Quarantined rows: (row_number, reason_code, id_raw)."""
    _insert(con, "quarantine.rejected_rows", [
        {"month": month, "source_file": f"raw/{month}/{list_key.split('.')[0]}/名单.xlsx", "sheet": "Sheet1",
         "row_number": row, "list_key": list_key, "reason_code": code, "reason": "…", "id_raw": id_raw}
        for row, code, id_raw in reasons])


def roster(con, n: int, month: str = MONTH, ids: list[str] | None = None, sizes: list[int] | None = None) -> None:
    ids = ids or [valid_id(5000 + i) for i in range(n)]
    _insert(con, "roster.persons", [
        {"month": month, "household_id": f"H{i // 2:04d}", "id_number": id_number, "name": f"民{i}",
         "source_file": f"raw/{month}/roster/花名册.xlsx", "sheet": "花名册", "row_number": 2 + i}
        for i, id_number in enumerate(ids)])
    households = sorted({f"H{i // 2:04d}" for i in range(len(ids))})
    sizes = sizes or [2] * len(households)
    _insert(con, "roster.households", [
        {"month": month, "household_id": hid, "township": "红旗镇", "household_size": size, "a38_per_capita": 8000.0}
        for hid, size in zip(households, sizes)])


def check(results: pl.DataFrame, suite: str, name: str) -> dict:
    rows = results.filter((pl.col("suite") == suite) & (pl.col("check_name") == name)).to_dicts()
    assert len(rows) == 1, (suite, name, results)
    return rows[0]


def failed_checks(results: pl.DataFrame, suite: str) -> set[str]:
    return set(results.filter((pl.col("suite") == suite) & ~pl.col("success"))["check_name"])


def test_clean_list_and_roster_pass(con):
    accepted(con, "medical_insurance.high_cost", 30)
    roster(con, 40)
    results = quality.run_list_suites(con, MONTH)
    assert quality.suite_passed(results, "medical_insurance.high_cost")
    assert quality.suite_passed(results, "roster")
    assert set(results.filter(pl.col("suite") == "medical_insurance.high_cost")["check_name"]) == {
        "valid_ids", "no_duplicate_person", "dates_in_month", "amount_in_range", "township_known"}
    assert check(results, "medical_insurance.high_cost", "valid_ids")["rows_evaluated"] == 30
    assert "有效身份证号码占比 100.0%，达到要求的 95%" in check(results, "medical_insurance.high_cost", "valid_ids")["description_zh"]
    assert results["month"].unique().to_list() == [MONTH]


def test_each_lists_examples_name_its_own_rows(con):
    """GE names offending rows by their position in the list's own frame; the sentence must turn that back into the
    list's own file and row, for a list validated after another one of the same month."""
    for list_key, first_bad_row in (("civil_affairs.dibao", 50), ("medical_insurance.high_cost", 80)):
        accepted(con, list_key, 40, amount=[500.0] * 40)
        rejected(con, list_key, [(first_bad_row + i, "id_float_mangled", "3.60799E+17") for i in range(4)])
    results = quality.run_list_suites(con, MONTH)
    dibao = check(results, "civil_affairs.dibao", "valid_ids")["examples"]
    high_cost = check(results, "medical_insurance.high_cost", "valid_ids")["examples"]
    assert dibao == "名单.xlsx 工作表“Sheet1”第50行、名单.xlsx 工作表“Sheet1”第51行、名单.xlsx 工作表“Sheet1”第52行"
    assert high_cost == "名单.xlsx 工作表“Sheet1”第80行、名单.xlsx 工作表“Sheet1”第81行、名单.xlsx 工作表“Sheet1”第82行"


def test_many_float_mangled_ids_fail_the_valid_id_share(con):
    accepted(con, "civil_affairs.dibao", 40, amount=[500.0] * 40)
    rejected(con, "civil_affairs.dibao", [(50 + i, "id_float_mangled", "3.60799E+17") for i in range(4)]
             + [(60, "id_bad_checksum", "360799198001010011"), (60, "disability_cert_invalid", "360799198001010011")]
             + [(70, "total_row", None)])
    results = quality.run_list_suites(con, MONTH)
    valid = check(results, "civil_affairs.dibao", "valid_ids")
    assert not valid["success"]
    assert valid["rows_evaluated"] == 45  # 40 accepted + 5 rejected person rows; the total row is not a person
    assert valid["observed"] == "88.9%" and valid["threshold"] == ">= 95%"
    assert "有效身份证号码占比 88.9%，低于要求的 95%" in valid["description_zh"]
    assert "名单.xlsx 工作表“Sheet1”第50行" in valid["description_zh"]
    assert failed_checks(results, "civil_affairs.dibao") == {"valid_ids"}
    assert not quality.suite_passed(results, "civil_affairs.dibao")


def test_a_few_bad_ids_stay_within_the_tolerance(con):
    accepted(con, "civil_affairs.dibao", 40, amount=[500.0] * 40)
    rejected(con, "civil_affairs.dibao", [(80, "id_bad_checksum", "360799198001010011")])
    assert quality.suite_passed(quality.run_list_suites(con, MONTH), "civil_affairs.dibao")


def test_a_duplicated_person_counts_even_when_the_validator_dropped_it(con):
    """The duplicate is quarantined as validation writes it: the ID it repeats is stored with it (id_number), so the
    suite counts the person twice however the cell was spelled (tests/test_validate.py covers the spellings)."""
    ids = accepted(con, "health.major_disease", 20)
    spelled_differently = " '" + ids[3].lower().replace("0", "０", 2) + " "  # apostrophe, full-width digits, x
    cells = pl.DataFrame({"id_number": [ids[3], spelled_differently]}).with_columns(
        pl.lit(f"raw/{MONTH}/health/名单.xlsx").alias("source_file"), pl.lit("Sheet1").alias("sheet"),
        pl.Series("row_number", [39, 40]), pl.lit(False).alias("is_total_row"), pl.lit("{}").alias("raw"))
    checked = validate.validate_list(cells, spec=registry().lists["health.major_disease"], month=MONTH,
                                     places=pl.DataFrame(schema={"township": pl.String, "village": pl.String,
                                                                 "division_code": pl.String}))
    assert checked.rejected["id_number"].to_list() == [ids[3]]
    _insert(con, "quarantine.rejected_rows", checked.rejected.to_dicts())
    results = quality.run_list_suites(con, MONTH)
    duplicate = check(results, "health.major_disease", "no_duplicate_person")
    assert not duplicate["success"] and duplicate["unexpected_count"] == 2
    assert "第6行" in duplicate["description_zh"] and "第40行" in duplicate["description_zh"]
    assert failed_checks(results, "health.major_disease") == {"no_duplicate_person"}


def test_dates_in_another_month_fail(con):
    dates = [date(2026, 9, 15)] * 3 + [None] * 7
    accepted(con, "housing.dangerous_house", 10, event_date=dates, amount=[0.0] * 10)
    results = quality.run_list_suites(con, MONTH)
    in_month = check(results, "housing.dangerous_house", "dates_in_month")
    assert not in_month["success"] and in_month["observed"] == "70.0%"
    assert failed_checks(results, "housing.dangerous_house") == {"dates_in_month"}


def test_an_amount_out_of_range_fails_with_the_list_s_own_bounds(con):
    accepted(con, "medical_insurance.high_cost", 10, amount=[5000.0] + [None] * 9)
    accepted(con, "civil_affairs.temporary_assistance", 10, first=100, amount=[5000.0] * 10)
    results = quality.run_list_suites(con, MONTH)
    amount = check(results, "medical_insurance.high_cost", "amount_in_range")
    assert not amount["success"] and amount["unexpected_count"] == 1
    assert "10,000–5,000,000" in amount["description_zh"] and "（5,000）" in amount["description_zh"]
    assert failed_checks(results, "medical_insurance.high_cost") == {"amount_in_range"}
    assert quality.suite_passed(results, "civil_affairs.temporary_assistance")


def test_unknown_townships_fail_and_missing_places_are_not_judged(con):
    raws = ["不存在镇", "火星乡"] + [None] * 8
    accepted(con, "water.unsafe_water", 10, township_raw=raws)
    con.execute("UPDATE staging.list_rows SET township = NULL, township_raw = NULL WHERE row_number = 12")
    con.execute("UPDATE staging.list_rows SET township = NULL WHERE row_number IN (3, 4)")
    results = quality.run_list_suites(con, MONTH)
    township = check(results, "water.unsafe_water", "township_known")
    assert not township["success"] and township["rows_evaluated"] == 9 and township["unexpected_count"] == 2
    assert failed_checks(results, "water.unsafe_water") == {"township_known"}


def test_eligibility_lists_do_not_judge_dates_or_townships(con):
    accepted(con, "banking.deposit", 5, event_date=[date(2019, 1, 1)] * 5, amount=[2_000_000.0] * 5)
    results = quality.run_list_suites(con, MONTH)
    assert quality.suite_passed(results, "banking.deposit")
    assert set(results.filter(pl.col("suite") == "banking.deposit")["check_name"]) == {
        "valid_ids", "no_duplicate_person", "amount_in_range"}


def test_roster_suite_catches_a_duplicated_id_number_and_a_bad_household(con):
    ids = [valid_id(7000 + i) for i in range(10)]
    ids[9] = ids[0]
    roster(con, 10, ids=ids, sizes=[2, 2, 2, 2, 25])
    _insert(con, "quarantine.rejected_rows", [
        {"month": MONTH, "source_file": "raw/2026-10/roster/花名册.xlsx", "sheet": "花名册", "row_number": 30,
         "list_key": "roster", "reason_code": "roster_household_missing", "reason": "…", "id_raw": valid_id(7100),
         "id_number": valid_id(7100)}])
    results = quality.run_list_suites(con, MONTH)
    assert failed_checks(results, "roster") == {"unique_id_number", "household_size_in_range", "household_id_present"}
    assert "花名册.xlsx 工作表“花名册”第2行" in check(results, "roster", "unique_id_number")["description_zh"]
    assert "户编号H0004" in check(results, "roster", "household_size_in_range")["description_zh"]


def test_the_roster_frame_lists_accepted_and_rejected_rows_in_roster_order(con):
    """GE names offending rows by position, so the persons frame is in file, sheet, row order: rejected rows fall
    between the accepted ones, and a roster.persons not written in that order is sorted too."""
    roster(con, 6)  # rows 2..7 of 花名册.xlsx
    _insert(con, "quarantine.rejected_rows", [
        {"month": MONTH, "source_file": source, "sheet": "花名册", "row_number": row, "list_key": "roster",
         "reason_code": code, "reason": "…", "id_raw": "x", "id_number": None}
        for source, row, code in (("raw/2026-10/roster/花名册.xlsx", 4, "id_checksum"),
                                  ("raw/2026-10/roster/花名册.xlsx", 4, "roster_household_missing"),
                                  ("raw/2026-10/roster/a.xlsx", 9, "id_bad_length"))])
    persons, _ = quality.roster_frames(con, MONTH)
    assert persons.select("source_file", "row_number").rows() == [
        ("raw/2026-10/roster/a.xlsx", 9), *[("raw/2026-10/roster/花名册.xlsx", row) for row in (2, 3, 4, 4, 5, 6, 7)]]
    assert persons.filter(pl.col("row_number") == 4)["id_valid"].to_list() == [True, False]
    con.execute("DELETE FROM quarantine.rejected_rows")
    con.execute("CREATE TEMP TABLE shuffled AS SELECT * FROM roster.persons ORDER BY row_number DESC")
    con.execute("DELETE FROM roster.persons; INSERT INTO roster.persons SELECT * FROM shuffled")
    assert quality.roster_frames(con, MONTH)[0]["row_number"].to_list() == [2, 3, 4, 5, 6, 7]


def test_results_replace_only_their_month(con):
    accepted(con, "civil_affairs.dibao", 5, amount=[500.0] * 5)
    accepted(con, "civil_affairs.dibao", 5, first=200, month="2026-09", amount=[500.0] * 5)
    september = quality.run_list_suites(con, "2026-09")
    october = quality.run_list_suites(con, MONTH)
    assert quality.write_results(con, "2026-09", september) == september.height
    quality.write_results(con, MONTH, october)
    quality.write_results(con, MONTH, october.head(2))
    counts = dict(con.execute("SELECT month, count(*) FROM quality.results GROUP BY month").fetchall())
    assert counts == {"2026-09": september.height, MONTH: 2}
    assert con.execute("SELECT count(*) FROM quality.results WHERE column_name = 'id_valid'").fetchone()[0] == 2
    with pytest.raises(ValueError):
        quality.write_results(con, MONTH, september)


def test_write_results_inside_the_caller_s_transaction_rolls_back_with_it(con):
    accepted(con, "civil_affairs.dibao", 5, amount=[500.0] * 5)
    results = quality.run_list_suites(con, MONTH)
    con.execute("BEGIN TRANSACTION")
    quality.write_results(con, MONTH, results)
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quality'").fetchone()[0] == 0


def test_html_is_self_contained_and_escaped(con):
    accepted(con, "civil_affairs.dibao", 10, amount=[500.0] * 10)
    rejected(con, "civil_affairs.dibao", [(50 + i, "id_float_mangled", "3.6E+17") for i in range(3)])
    con.execute("UPDATE quarantine.rejected_rows SET sheet = '<b>表</b>'")
    page = quality.render_quality_html(quality.run_list_suites(con, MONTH), MONTH)
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert "<script" not in lowered and "<link" not in lowered and "@import" not in lowered
    assert "&lt;b&gt;表&lt;/b&gt;" in page and "<b>表</b>" not in page
    assert "<details open><summary>" in page and "民政局 · 新增农村低保人员名单" in page
    assert "未通过" in page


def test_suites_run_without_any_network(con, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is off in county offices")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    quality._batch_definition.cache_clear()  # build the GE context again, offline
    accepted(con, "civil_affairs.dibao", 5, amount=[500.0] * 5)
    results = quality.run_list_suites(con, MONTH)
    assert quality.suite_passed(results, "civil_affairs.dibao")


def test_metric_ids_are_computed_once_per_distinct_arguments_with_ge_s_own_results(con, monkeypatch):
    """GE hashes a metric's arguments into an id for each of the ~5,800 metric configurations of a county (~30
    distinct arguments). During a validation fangpin keeps each id; the results must be those of GE's own method,
    failed checks and examples included, GE's conversion must run far less often, and the method be GE's again after."""
    from contextlib import nullcontext

    from great_expectations.core import id_dict

    ids = [valid_id(8200 + i) for i in range(12)]
    ids[11] = ids[0]
    accepted(con, "civil_affairs.dibao", 20, amount=[500.0] * 18 + [2_000_000.0, None])
    rejected(con, "civil_affairs.dibao", [(40, "id_checksum", "36079919800101001X")])
    roster(con, 12, ids=ids, sizes=[2, 2, 2, 2, 2, 25])
    conversions: list[int] = []
    convert = id_dict.convert_to_json_serializable
    monkeypatch.setattr(id_dict, "convert_to_json_serializable", lambda *a, **k: conversions.append(1) or convert(*a, **k))
    ge_method = id_dict.IDDict.to_id
    kept = quality.run_list_suites(con, MONTH)
    converted_kept = len(conversions)
    assert id_dict.IDDict.to_id is ge_method
    conversions.clear()
    monkeypatch.setattr(quality, "_metric_ids_computed_once", nullcontext)
    every_time = quality.run_list_suites(con, MONTH)
    assert len(conversions) > 5 * converted_kept
    assert kept.equals(every_time)
    assert not kept["success"].all() and kept["examples"].is_not_null().any()


def test_metric_graphs_are_planned_once_per_process_with_ge_s_own_results(con, monkeypatch):
    """GE plans each expectation's metrics into a graph before computing them; the plan does not depend on the data,
    so fangpin keeps it for the process. A second month of other data, with faults of the same kinds (so the same
    checks are judged again for their examples), plans nothing; its results (failed checks and example rows
    included) are those of GE planning every time, and the method is GE's again afterwards."""
    from contextlib import nullcontext

    from great_expectations.validator.metrics_calculator import MetricsCalculator

    monkeypatch.setattr(quality, "_PLANNED_GRAPHS", {})
    plans: list[int] = []
    ge_method = MetricsCalculator.build_metric_dependency_graph
    monkeypatch.setattr(MetricsCalculator, "build_metric_dependency_graph",
                        lambda *a, **k: plans.append(1) or ge_method(*a, **k))
    counting = MetricsCalculator.build_metric_dependency_graph
    first_ids = [valid_id(8100 + i) for i in range(12)]
    first_ids[7] = first_ids[2]
    accepted(con, "civil_affairs.dibao", 20, amount=[700.0] * 17 + [3_000_000.0, None, 900.0])
    rejected(con, "civil_affairs.dibao", [(41, "id_checksum", "36079919800101002X")])
    roster(con, 12, ids=first_ids, sizes=[2, 2, 2, 2, 30, 2])
    quality.run_list_suites(con, MONTH)
    planned_first = len(plans)
    assert planned_first > 0 and MetricsCalculator.build_metric_dependency_graph is counting
    ids = [valid_id(8300 + i) for i in range(12)]
    ids[11] = ids[0]  # other data: a duplicate person, a bad amount, a rejected ID
    con.execute("DELETE FROM staging.list_rows; DELETE FROM roster.persons; DELETE FROM roster.households")
    accepted(con, "civil_affairs.dibao", 20, amount=[500.0] * 18 + [2_000_000.0, None])
    rejected(con, "civil_affairs.dibao", [(40, "id_checksum", "36079919800101001X")])
    roster(con, 12, ids=ids, sizes=[2, 2, 2, 2, 2, 25])
    plans.clear()
    kept = quality.run_list_suites(con, MONTH)
    assert plans == []
    monkeypatch.setattr(quality, "_metric_graphs_planned_once", nullcontext)
    planned_every_time = quality.run_list_suites(con, MONTH)
    assert len(plans) >= planned_first  # GE planning again, each expectation of the suites
    assert kept.equals(planned_every_time)
    assert not kept["success"].all() and kept["examples"].is_not_null().any()


def test_only_checks_that_found_offending_rows_are_judged_again_and_the_results_are_those_of_judging_all(
        con, monkeypatch):
    """Every check is judged for its counts (GE's BASIC format), and only those that found offending rows again for
    the rows to name (SUMMARY): the results, examples included, equal judging every check in SUMMARY."""
    ids = [valid_id(8500 + i) for i in range(12)]
    ids[9] = ids[3]
    accepted(con, "civil_affairs.dibao", 20, amount=[500.0] * 18 + [2_000_000.0, None])
    accepted(con, "health.major_disease", 15, first=300)  # clean: judged once
    rejected(con, "civil_affairs.dibao", [(40, "id_checksum", "36079919800101001X")])
    roster(con, 12, ids=ids, sizes=[2, 2, 2, 2, 2, 25])
    judged: list[str] = []
    real = quality._expectation
    monkeypatch.setattr(quality, "_expectation", lambda spec: judged.append(spec["expectation"]) or real(spec))
    twice = quality.run_list_suites(con, MONTH)
    offending = twice.filter(pl.col("unexpected_count") > 0)
    assert 0 < offending.height < twice.height
    assert len(judged) == twice.height + offending.height
    monkeypatch.setattr(quality, "COUNTS_ONLY", quality.WITH_EXAMPLES)
    all_with_examples = quality.run_list_suites(con, MONTH)
    assert twice.equals(all_with_examples)
    assert twice.filter(pl.col("unexpected_count") > 0)["examples"].is_not_null().all()
    assert quality.suite_passed(twice, "health.major_disease") and not quality.suite_passed(twice, "roster")


def test_suite_layers_from_configuration():
    assert quality.list_suite("medical_insurance.high_cost")["amount_in_range"]["min_value"] == 10000
    assert "dates_in_month" not in quality.list_suite("education.dropout")
    assert quality.list_suite("civil_affairs.dibao")["valid_ids"]["mostly"] == 0.95
    assert "dates_in_month" not in quality.list_suite("police.vehicle")


def test_great_expectations_is_loaded_in_the_background_once_for_data_quality_to_use():
    from fangpin import quality

    quality._batch_definition.cache_clear()
    warm_up = quality.start_loading_great_expectations()
    from_the_step = quality._shared_batch_definition()  # asked while the warm-up may still be building: it waits
    warm_up.join()
    assert quality._shared_batch_definition() is from_the_step
    quality.start_loading_great_expectations().join()  # a second warm-up reuses the context, never builds another
    assert quality._shared_batch_definition() is from_the_step


def test_frames_are_not_fingerprinted_and_the_results_are_those_of_a_fingerprinting_run(con, monkeypatch):
    """GE's batch fingerprint (a hash of every cell) is switched off: it labels batches in stores fangpin does not
    keep. Switching it back on must not change a single result."""
    from great_expectations.execution_engine import pandas_execution_engine

    ids = [valid_id(8000 + i) for i in range(12)]
    ids[11] = ids[0]
    accepted(con, "civil_affairs.dibao", 20, amount=[500.0] * 19 + [None])
    rejected(con, "civil_affairs.dibao", [(40, "id_checksum", "36079919800101001X")])
    roster(con, 12, ids=ids, sizes=[2, 2, 2, 2, 2, 25])
    hashed: list[int] = []
    real_hash = pandas_execution_engine.hash_pandas_dataframe
    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe",
                        lambda df: hashed.append(len(df)) or real_hash(df))
    without = quality.run_list_suites(con, MONTH)
    assert hashed == []
    monkeypatch.setattr(pandas_execution_engine, "HASH_THRESHOLD", 1e9)  # GE's own default
    with_fingerprints = quality.run_list_suites(con, MONTH)
    assert hashed, "the comparison run did fingerprint its frames"
    assert without.equals(with_fingerprints)
    assert not without["success"].all()  # the comparison covers failed checks and their example rows too


def test_ranges_are_judged_in_one_vectorised_step_with_the_results_of_ge_s_per_row_path(con, monkeypatch):
    """household_size is an INTEGER (int32) in the warehouse; GE's range check calls Python once per value for any
    dtype but int64/float64. The frames handed to GE widen their integers, so households (a county has ~300,000) and
    amounts are judged in one step each, and the results are those of the per-row path."""
    from great_expectations.expectations.metrics.column_map_metrics import column_values_between

    accepted(con, "civil_affairs.dibao", 20, amount=[500.0] * 18 + [2_000_000.0, None])
    roster(con, 12, sizes=[2, 2, 2, 2, 2, 25])
    vectorised: list[int] = []
    real = column_values_between.ColumnValuesBetween._pandas_vectorized.__func__
    monkeypatch.setattr(column_values_between.ColumnValuesBetween, "_pandas_vectorized",
                        classmethod(lambda cls, column, *args: vectorised.append(len(column)) or real(cls, column, *args)))
    widened = quality.run_list_suites(con, MONTH)
    # the six households' sizes, the dibao list's 20 amounts; each range offends, so each is judged again for its
    # examples (quality._validate)
    assert sorted(vectorised) == [6, 6, 20, 20]
    vectorised.clear()
    monkeypatch.setattr(quality, "_as_pandas", lambda frame: frame.to_pandas())  # int32 as it comes
    per_row = quality.run_list_suites(con, MONTH)
    assert vectorised == [20, 20], "without widening, household_size took GE's per-row path"
    assert widened.equals(per_row)
    assert failed_checks(widened, "roster") == {"household_size_in_range"}
    assert "amount_in_range" in failed_checks(widened, "civil_affairs.dibao")


def test_each_expectation_builds_its_configuration_once_per_validation_with_ge_s_own_results(con, monkeypatch):
    """GE rebuilds an expectation's configuration every time it reads it (~130 times per expectation), and a new
    expectation object from a configuration for each metric it plans. During a validation fangpin keeps the first
    build of each; the results must be those of GE's own methods, failed checks and their example rows included, and
    the methods must be GE's again afterwards."""
    from contextlib import nullcontext

    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    ids = [valid_id(8100 + i) for i in range(12)]
    ids[11] = ids[0]
    accepted(con, "civil_affairs.dibao", 20, amount=[500.0] * 18 + [2_000_000.0, None])
    rejected(con, "civil_affairs.dibao", [(40, "id_checksum", "36079919800101001X")])
    roster(con, 12, ids=ids, sizes=[2, 2, 2, 2, 2, 25])
    gx_property = Expectation.configuration
    builds: list[int] = []
    monkeypatch.setattr(Expectation, "configuration",
                        property(lambda expectation: builds.append(id(expectation)) or gx_property.fget(expectation)))
    counting, gx_to_domain_obj = Expectation.configuration, ExpectationConfiguration.to_domain_obj
    once = quality.run_list_suites(con, MONTH)
    built_once = len(builds)
    assert Expectation.configuration is counting and ExpectationConfiguration.to_domain_obj is gx_to_domain_obj
    builds.clear()
    monkeypatch.setattr(quality, "_configurations_built_once", nullcontext)
    every_time = quality.run_list_suites(con, MONTH)
    assert len(builds) > 5 * built_once  # 1,382 against 33 here
    # Per expectation judged: the suite's, the copy GE plans with, and the one it makes again for each metric.
    # Without keeping each configuration's expectation object, 165 here. A check that found offending rows is
    # judged twice (the second time for its examples, quality._validate).
    judged = once.height + once.filter(pl.col("unexpected_count") > 0).height
    assert judged > once.height and built_once <= 3 * judged
    assert once.equals(every_time)
    assert not once["success"].all() and once["examples"].is_not_null().any()


# --- the suites beside the later steps (pipelines.resources.FangpinData.start_quality_suites) -------------------------

@pytest.fixture
def run_resource(tmp_path, monkeypatch):
    """A run's resource whose plan has a data_quality step, and a gate the suites' thread waits at before reading."""
    import threading

    from fangpin import warehouse
    from pipelines.resources import FangpinData

    resource = FangpinData(data_dir=str(tmp_path))
    resource._run = warehouse.RunWarehouse(tmp_path)
    resource._steps = frozenset({"data_quality"})
    gate, threads, real = threading.Event(), [], quality.run_list_suites

    def gated(con, month):
        threads.append(threading.current_thread().name)
        if threading.current_thread().name == "fangpin-data_quality":
            assert gate.wait(30)
        return real(con, month)

    monkeypatch.setattr(quality, "run_list_suites", gated)
    yield resource, gate, threads
    resource._run.publish()


def test_the_suites_judge_the_month_warehouse_month_committed_not_what_later_steps_write(run_resource):
    resource, gate, threads = run_resource
    with resource.writer() as con:
        accepted(con, "medical_insurance.high_cost", 30)
        roster(con, 40)
        committed = quality.run_list_suites(con, MONTH)
    resource.start_quality_suites(MONTH)
    with resource.writer() as con:  # a later step writes while the suites wait to read
        accepted(con, "civil_affairs.dibao", 20, first=200)
        gate.set()
        background = resource.quality_results(con, MONTH)
        now = resource.quality_results(con, MONTH)  # nothing started any more: run in the step
    assert threads == ["MainThread", "fangpin-data_quality", "MainThread"]
    assert set(committed["suite"]) == {"medical_insurance.high_cost", "roster"}
    assert background.in_background and background.results.rows() == committed.rows()
    assert not now.in_background
    assert set(now.results["suite"]) == {"medical_insurance.high_cost", "civil_affairs.dibao", "roster"}


def test_a_step_failing_while_the_suites_run_waits_for_them_before_the_connection_closes(run_resource):
    import threading

    resource, gate, _ = run_resource
    with resource.writer() as con:
        accepted(con, "medical_insurance.high_cost", 30)
        committed = quality.run_list_suites(con, MONTH)
    resource.start_quality_suites(MONTH)
    threading.Timer(0.3, gate.set).start()
    with pytest.raises(RuntimeError, match="步骤失败"), resource.writer():
        raise RuntimeError("步骤失败")  # the run's connection closes (fangpin.warehouse.RunWarehouse.writer)
    with resource.writer() as con:
        assert resource.quality_results(con, MONTH).results.rows() == committed.rows()


def test_suites_that_cannot_start_leave_warehouse_month_alone_and_run_in_data_quality_s_step(run_resource, monkeypatch):
    resource, gate, threads = run_resource
    gate.set()
    with resource.writer() as con:
        accepted(con, "medical_insurance.high_cost", 30)
    monkeypatch.setattr(quality, "SNAPSHOT_QUERY", "SELECT * FROM no_such_table")
    resource.start_quality_suites(MONTH)  # does not raise: warehouse_month has committed its month
    with resource.writer() as con:
        assert set(resource.quality_results(con, MONTH).results["suite"]) == {"medical_insurance.high_cost"}
    assert threads == ["MainThread"]


class _RecordingConnection:
    """A DuckDB connection that keeps every query it is given (the suites only read through `sql`)."""

    def __init__(self, con):
        self.con, self.queries = con, []

    def sql(self, query, *args, **kwargs):
        self.queries.append(query)
        return self.con.sql(query, *args, **kwargs)


def _tables(query: str) -> set[str]:
    """The tables a query names (its $parameters blanked: DuckDB will not name the tables of a prepared query)."""
    unprepared = re.sub(r"\$\w+", "NULL", query)
    return {name.split(" AS ")[0] for name in duckdb.get_table_names(unprepared, qualified=True)}


def test_the_snapshot_query_reads_every_table_the_suites_read(con):
    """The suites read a snapshot that SNAPSHOT_QUERY took: a table they read and it does not name would be read as
    a later step left it."""
    accepted(con, "medical_insurance.high_cost", 3)
    roster(con, 3)
    recording = _RecordingConnection(con)
    quality.run_list_suites(recording, MONTH)
    read = set().union(*(_tables(query) for query in recording.queries))
    assert {"staging.list_rows", "roster.persons"} <= read
    assert read <= _tables(quality.SNAPSHOT_QUERY)


def test_the_roster_households_frame_is_by_household_number_however_the_table_was_written(con):
    """GE names a household by its position in this frame: by household number, whether roster.households was
    written in that order (as validation writes it; then only checked) or not."""
    roster(con, 10, sizes=[2, 2, 2, 2, 2])
    written = quality.roster_frames(con, MONTH)[1]["household_id"].to_list()
    assert written == sorted(written) and len(written) == 5
    con.execute("CREATE TEMP TABLE shuffled AS SELECT * FROM roster.households ORDER BY household_id DESC")
    con.execute("DELETE FROM roster.households; INSERT INTO roster.households SELECT * FROM shuffled")
    assert quality.roster_frames(con, MONTH)[1]["household_id"].to_list() == written
