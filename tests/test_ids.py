"""fangpin.ids: the vectorised GB 11643 rules, checked against python-stdnum's cn.ric and case by case."""
from __future__ import annotations

import random
from datetime import date, timedelta

import polars as pl
import pytest
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from fangpin import ids

AREAS = ["110101", "110105", "130503", "320102", "440203", "410102", "510104"]


def _apply(expr_fn, values: list) -> list:
    """Evaluate an expression builder on a one-column frame (lazy, as validation does)."""
    frame = pl.LazyFrame({"v": values}, schema={"v": pl.String})
    return frame.select(expr_fn(pl.col("v")).alias("out")).collect()["out"].to_list()


def _valid_id(rng: random.Random) -> str:
    """A random ID that stdnum accepts (its address code known for the birth year)."""
    while True:
        born = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 365 * 85))
        first17 = f"{rng.choice(AREAS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
        number = first17 + ric.calc_check_digit(first17 + "0")
        if ric.is_valid(number):
            return number


def _corrupt(number: str, rng: random.Random) -> str:
    """One typical typo: a digit changed, two digits swapped, the check char changed, a date that does not exist,
    a digit lost or added, a letter inside."""
    kind = rng.randrange(7)
    i = rng.randrange(17)
    if kind == 0:
        return number[:i] + str((int(number[i]) + rng.randrange(1, 10)) % 10) + number[i + 1:]
    if kind == 1:
        j = rng.randrange(16)
        return number[:j] + number[j + 1] + number[j] + number[j + 2:]
    if kind == 2:
        return number[:17] + rng.choice([c for c in "0123456789X" if c != number[17]])
    if kind == 3:
        return number[:10] + rng.choice(["0230", "1301", "0431", "0001", "0000"]) + number[14:]
    if kind == 4:
        return number[:i] + number[i + 1:]
    if kind == 5:
        return number[:i] + str(rng.randrange(10)) + number[i:]
    return number[:i] + rng.choice("ABZ") + number[i + 1:]


def _stdnum_valid(number: str) -> bool:
    try:
        ric.validate(number)
        return True
    except ValidationError:
        return False


def test_agrees_with_stdnum_on_5000_random_valid_and_corrupted_ids():
    rng = random.Random(11643)
    numbers = []
    for _ in range(2500):
        good = _valid_id(rng)
        numbers += [good, _corrupt(good, rng)]
    problems = _apply(ids.id_problem, numbers)
    normalised = _apply(ids.normalise_id, numbers)
    mine = [p is None for p in problems]
    theirs = [_stdnum_valid(n) for n in numbers]
    disagree = [(n, p) for n, p, m, t in zip(numbers, problems, mine, theirs) if m != t]
    assert disagree == []
    assert sum(mine) >= 2500  # every generated valid number, plus corruptions that happen to stay valid
    assert theirs.count(False) > 2000  # and the corruptions really are mostly invalid
    assert all(n == ric.compact(x) for n, x, ok in zip(normalised, numbers, mine) if ok)


def test_check_char_agrees_with_stdnum_and_the_weight_table():
    rng = random.Random(7)
    firsts = ["".join(rng.choice("0123456789") for _ in range(17)) for _ in range(3000)]
    got = _apply(ids.check_char, firsts)
    assert got == [ric.calc_check_digit(f + "0") for f in firsts]
    by_weights = [ids.CHECK_CHARS[sum(int(d) * w for d, w in zip(f, ids.WEIGHTS)) % 11] for f in firsts]
    assert got == by_weights
    assert _apply(ids.check_char, ["1234", "1101051949123100A", None]) == [None, None, None]


VALID = "11010519491231002X"  # the GB 11643 example number


ID_CASES = [
    (VALID, VALID, None),
    ("11010519491231002x", VALID, None),                                      # lower-case x
    ("'11010519491231002X", VALID, None),                                     # leading apostrophe
    (" 110105 19491231 002X\t", VALID, None),                                 # spaces and a tab
    ("１１０１０５１９４９１２３１００２ｘ", VALID, None),                       # full-width digits and x
    ("110105491231002", VALID, None),                                         # legacy 15 digits -> 18
    ("110105491231002.0", VALID, None),                                       # 15 digits that went through a float
    ("110105194912310021", "110105194912310021", "id_bad_checksum"),
    ("3.21202199001011E+17", "3.21202199001011E+17", "id_float_mangled"),     # an Excel number cell
    ("3.21202199001011e+17", "3.21202199001011E+17", "id_float_mangled"),
    ("321202199001011000", "321202199001011000", "id_float_mangled"),         # 18 digits ending 000, bad check
    ("11010519490230002X", "11010519490230002X", "id_bad_birthdate"),         # 30 February
    ("110105490230002", "11010519490230002" + ric.calc_check_digit("11010519490230002" + "0"),
     "id_bad_birthdate"),                                                     # 15-digit with 30 February
    ("11010519491331002X", "11010519491331002X", "id_bad_birthdate"),         # month 13
    ("1101051949123100", "1101051949123100", "id_bad_length"),
    ("1101051949123100AX", "1101051949123100AX", "id_bad_chars"),
    ("11010519491231002+", "11010519491231002+", "id_bad_chars"),             # a plus for the check character:
    ("1234+", "1234+", "id_bad_length"),                                      # not repaired, not "missing"
    ("", None, "id_missing"),
    ("  ", None, "id_missing"),
    (None, None, "id_missing"),
]


@pytest.mark.parametrize(("raw", "normalised", "problem"), ID_CASES)
def test_each_id_case(raw, normalised, problem):
    assert _apply(ids.normalise_id, [raw]) == [normalised]
    assert _apply(ids.id_problem, [raw]) == [problem]


def test_a_frame_s_ids_are_judged_with_each_fact_computed_once_and_the_same_codes():
    """Validation judges a whole roster's IDs with `with_id_problem` (its facts as columns first): every case above
    and 2,000 random valid and corrupted numbers get the code `id_problem` gives, and no helper column is left."""
    rng = random.Random(115)
    numbers = [raw for raw, _, _ in ID_CASES]
    for _ in range(1000):
        good = _valid_id(rng)
        numbers += [good, _corrupt(good, rng)]
    frame = pl.LazyFrame({"id": numbers, "other": range(len(numbers))}, schema={"id": pl.String, "other": pl.Int64})
    judged = ids.with_id_problem(ids.with_normalised_id(frame, "id"), "id", "problem").collect()
    assert judged.columns == ["id", "other", "problem"]
    assert judged["problem"].to_list() == _apply(ids.id_problem, numbers)
    assert judged["problem"].head(len(ID_CASES)).to_list() == [problem for _, _, problem in ID_CASES]


def test_the_judging_keeps_each_valid_id_s_birth_date_as_birth_date_from_id_reads_it():
    """Roster validation takes a valid row's birth date from its ID's judging (`born`) instead of reading the ID
    again: for every ID without a problem (the cases above and 1,000 random valid ones, 15-digit ones included)
    it equals `birth_date_from_id` of the normalised ID; without `born` no such column is kept."""
    rng = random.Random(137)
    numbers = [raw for raw, _, _ in ID_CASES] + [_valid_id(rng) for _ in range(1000)]
    frame = pl.LazyFrame({"id": numbers}, schema={"id": pl.String})
    judged = ids.with_id_problem(ids.with_normalised_id(frame, "id"), "id", "problem", born="born").collect()
    valid = judged.filter(pl.col("problem").is_null())
    assert valid.height > 1000
    assert valid["born"].to_list() == valid.select(ids.birth_date_from_id(pl.col("id")))["id"].to_list()
    assert valid["born"].null_count() == 0
    assert "born" not in ids.with_id_problem(ids.with_normalised_id(frame, "id"), "id", "problem").collect_schema()


def test_a_valid_id_is_one_normalisation_leaves_as_it_is_and_judges_valid():
    """`is_valid_id` (the pandera models' check) judges the text as it is, in normal form and without a problem: the
    same answer as normalising it and requiring it unchanged and valid, on every case above, their normalised forms
    and 2,000 random valid and corrupted numbers (some with a lower-case x or a space)."""
    rng = random.Random(214)
    numbers = [raw for raw, _, _ in ID_CASES] + [normalised for _, normalised, _ in ID_CASES]
    for _ in range(1000):
        good = _valid_id(rng)
        numbers += [good, _corrupt(good, rng), good.lower(), good[:6] + " " + good[6:]]
    by_normalising = [problem is None and raw == normalised for raw, normalised, problem
                      in zip(numbers, _apply(ids.normalise_id, numbers), _apply(ids.id_problem, numbers))]
    assert _apply(ids.is_valid_id, numbers) == by_normalising
    assert 1000 < sum(by_normalising) < len(numbers) - 2000


def test_a_real_id_ending_000_is_not_taken_for_a_float():
    born = date(1990, 1, 1)
    while True:  # find a birth date whose sequence 00 gives check character 0: an ID ending "000"
        first17 = f"110101{born:%Y%m%d}000"
        if ric.calc_check_digit(first17 + "0") == "0":
            break
        born += timedelta(days=1)
    number = first17 + "0"
    assert ric.is_valid(number)
    assert _apply(ids.id_problem, [number]) == [None]


def test_sex_birth_date_and_mask():
    frame = pl.DataFrame({"id": [VALID, "110105194912310011", None]})
    out = frame.select(ids.sex_from_id(pl.col("id")).alias("sex"), ids.birth_date_from_id(pl.col("id")).alias("born"),
                       ids.mask_id(pl.col("id")).alias("masked"))
    assert out["sex"].to_list() == ["女", "男", None]
    assert out["born"].to_list() == [date(1949, 12, 31), date(1949, 12, 31), None]
    assert out["masked"].to_list() == ["110105********002X", "110105********0011", None]


@pytest.mark.parametrize(("cert", "problem"), [
    (VALID + "11", None),
    (VALID.lower() + "42", None),                       # lower-case x inside the certificate
    (" " + VALID + "74 ", None),
    (None, None),
    ("", None),
    (VALID + "81", "disability_cert_invalid"),          # category 8 does not exist
    (VALID + "15", "disability_cert_invalid"),          # grade 5 does not exist
    (VALID + "1", "disability_cert_invalid"),           # 19 characters
    ("110105194912310011" + "11", "disability_cert_mismatch"),  # another person's ID
])
def test_disability_certificate(cert, problem):
    frame = pl.DataFrame({"cert": [cert], "id": [VALID]}, schema={"cert": pl.String, "id": pl.String})
    assert frame.select(ids.cert_problem(pl.col("cert"), pl.col("id")))[0, 0] == problem


def _normalised_in_two_steps(values: list) -> list:
    """`ids.with_normalised_id`, the query form validation uses, on a one-column frame."""
    frame = pl.LazyFrame({"id_number": values}, schema={"id_number": pl.String})
    return ids.with_normalised_id(frame).collect()["id_number"].to_list()


def test_the_two_step_query_normalises_as_the_expression_does():
    rng = random.Random(15)
    numbers = []
    for _ in range(1000):
        good = _valid_id(rng)
        legacy = good[:6] + good[8:17]  # the same person's 15-digit number
        numbers += [good, _corrupt(good, rng), legacy, legacy + ".0", " " + good.lower(),
                    "'" + legacy]
    numbers += [case[0] for case in ID_CASES]
    assert _normalised_in_two_steps(numbers) == _apply(ids.normalise_id, numbers)
    assert _normalised_in_two_steps(["110105491231002", None]) == [VALID, None]


def test_ids_already_in_normal_form_are_not_cleaned_again(monkeypatch):
    """The query form cleans only the IDs `normalise_id` would change: a roster of IDs in normal form passes through
    untouched (it cost a million-person county 0.3 CPU-s to clean them all), the others are cleaned as before."""
    rng = random.Random(16)
    good = [_valid_id(rng) for _ in range(50)]
    seen: list[int] = []
    clean_text = ids.clean_text
    monkeypatch.setattr(ids, "clean_text", lambda expr: seen.append(1) or clean_text(expr))
    assert _normalised_in_two_steps(good) == good and seen == []
    assert _normalised_in_two_steps([*good, " " + good[0].lower()]) == [*good, good[0]] and seen == [1]


def test_codes_are_cleaned_where_needed_as_cleaning_every_cell_would():
    """Household numbers and phone numbers go through `clean_text` only when not already plain (digits and capital
    letters): the result is that of cleaning every cell."""
    values = ["3601990010010001", "'3601990010010002", "３６０１９９", " 13800000000 ", "138-0000-0000", "", None,
              "a12", "13800000000", "ＡＢ１"]
    frame = pl.DataFrame({"code": values}, schema={"code": pl.String})
    everywhere = frame.select(ids.clean_text(pl.col("code")))["code"].to_list()
    gated = frame.select(ids.cleaned_where_needed(pl.col("code"), ids.PLAIN_CODE, ids.clean_text))["code"]
    assert gated.to_list() == everywhere
    assert everywhere[:4] == ["3601990010010001", "3601990010010002", "360199", "13800000000"]
