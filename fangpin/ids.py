"""Resident ID numbers (居民身份证号码, GB 11643-1999) as Polars expressions: normalise, check, read, mask.

Department lists carry a million IDs a year, so every rule here is a vectorised expression (no per-row Python);
`tests/test_ids.py` checks the result against python-stdnum's `cn.ric` on thousands of random numbers.
The same expressions are the single definition of the ID rules: validation computes rejection reasons with them and
the pandera models in `schemas/` reuse them as custom checks.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date

import polars as pl

from fangpin.values import computed_where

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643 weights of the first 17 digits
CHECK_CHARS = "10X98765432"  # check character for (weighted sum mod 11), as DOMAIN.md states the rule
CHECK_VALUES = "0123456789X"  # check character for its value (1 - 2·sum) mod 11, X standing for 10
EARLIEST_BIRTH = date(1880, 1, 1)  # an 18-digit ID of somebody born earlier is a typo, not a person

# Full-width ASCII (U+FF01..FF5E, e.g. "３２０１ｘ") typed with a Chinese input method -> half-width.
_FULL_WIDTH = [chr(code) for code in range(0xFF01, 0xFF5F)]
_HALF_WIDTH = [chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)]
# Spaces (any Unicode space, tabs, zero-width), and the apostrophe or quotes clerks type to force Excel "text".
_NOISE = r"[\s\u200b\u200c\u200d\ufeff'‘’`\"“”]"
_FLOAT_TEXT = r"^[0-9](\.[0-9]*)?E[+]?[0-9]+$|^[0-9]{16,}\.[0-9]*$"  # 3.21202199001011E+17, 321202199001011000.0


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Full-width -> half-width, no spaces/apostrophes/quotes, upper case; empty -> null (shared by IDs and certs)."""
    return (
        expr.cast(pl.String)
        .str.replace_many(_FULL_WIDTH, _HALF_WIDTH)
        .str.replace_all(_NOISE, "")
        .str.to_uppercase()
        .replace("", None)
    )


def check_char(first17: pl.Expr) -> pl.Expr:
    """The GB 11643 check character of 17 digits; null unless exactly 17 digits."""
    digits = first17.cast(pl.String)
    return pl.when(digits.str.contains(r"^[0-9]{17}$")).then(_check_char_of_digits(digits))


def _check_char_of_digits(digits: pl.Expr) -> pl.Expr:
    """`check_char` of text known to be 17 digits (anything else gives a meaningless character or null).

    Σ digit·weight mod 11 with weights 2^(17-i) mod 11 equals the 17 digits read as a base-13 number mod 11
    (13 ≡ 2 mod 11; the trick python-stdnum uses), so one integer parse replaces 17 slices. The check value is
    (1 - 2·that) mod 11, written as "0123456789X"[value]; this is the same table as '10X98765432'[Σ mod 11].
    """
    remainder = digits.str.to_integer(base=13, dtype=pl.UInt64, strict=False) % 11
    value = (pl.lit(23, pl.Int64) - 2 * remainder.cast(pl.Int64)) % 11  # 23 = 1 + 22 keeps it positive
    return pl.lit(CHECK_VALUES).str.slice(value, 1)


def normalise_id(expr: pl.Expr) -> pl.Expr:
    """The ID as the roster stores it: half-width, no spaces or apostrophes, upper-case X, 15 digits -> 18.

    A legacy 15-digit ID (YYMMDD birth date) gets the century 19 and its check character (also when it came through
    a float as "320102800101123.0": 15 digits survive a float). Anything else is returned cleaned but unchanged, so
    that `id_problem` can say what is wrong with it: "11010519491231002+" stays a bad character (the code once marked
    legacy IDs with a "+" and so completed such a cell with a computed check character, and read "1234+" as missing).
    """
    return complete_legacy(clean_text(expr))


def complete_legacy(cleaned: pl.Expr) -> pl.Expr:
    """The second half of `normalise_id`, given its first (`clean_text`): a legacy 15-digit ID made 18.

    The check character, its dearest part, is computed on the legacy IDs only (null elsewhere): Polars computes
    every branch of a when/then for every row.
    """
    legacy = cleaned.str.contains(r"^[0-9]{15}(\.0*)?$")
    first17 = pl.when(legacy).then(pl.concat_str(cleaned.str.slice(0, 6), pl.lit("19"), cleaned.str.slice(6, 9)))
    return pl.coalesce(pl.concat_str(first17, check_char(first17)), cleaned)


NORMAL_FORM = r"^[0-9]{17}[0-9X]$"  # an ID as the roster stores it (17 digits, a digit or X): `normalise_id` leaves
# it as it is, and `id_problem` judges it by its birth date and check character
PLAIN_CODE = r"^[0-9A-Z]+$"  # a code (household number, phone) that `clean_text` leaves as it is


def with_normalised_id(frame: pl.LazyFrame, column: str = "id_number") -> pl.LazyFrame:
    """`normalise_id` of a frame's column, in two steps (cleaned, then completed), only for the IDs not already
    in `NORMAL_FORM`.

    Why two steps, not the one expression: a sub-expression used several times is evaluated once per use, so
    `normalise_id` cleans each cell once for every use of the cleaned text. 1,000,000 roster IDs: 0.31 s wall, 0.59
    CPU-s as one expression; 0.11 s, 0.20 CPU-s in two steps (bench/FINDINGS.md, session 16).
    """
    return frame.with_columns(cleaned_where_needed(pl.col(column), NORMAL_FORM, clean_text, complete_legacy))


def cleaned_where_needed(expr: pl.Expr, normal_form: str, *steps: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """Text of `expr` passed through `steps` (expression builders, applied one after the other), computed only for
    the values not matching `normal_form`, which the steps must leave unchanged.

    Why: a roster's IDs, household numbers and phone numbers nearly all are in normal form already (a province
    county's 300,000 all of them), and one test of the form costs a fraction of cleaning every cell: 300,000 IDs
    0.090 -> 0.013 CPU-s, household numbers and phones 0.064 -> 0.015 each; 200,000 messy IDs, 80% of them to
    clean, 0.095 -> 0.111 (bench/FINDINGS.md, session 24).
    """
    def cleaned(value: pl.Expr) -> pl.Expr:
        for step in steps:
            value = step(value)
        return value

    def batch(values: pl.Series) -> pl.Series:
        texts = values.cast(pl.String)
        return computed_where(texts, texts.str.contains(normal_form).not_().fill_null(True), texts, cleaned)

    return expr.map_batches(batch, return_dtype=pl.String)


def birth_date_from_id(id18: pl.Expr) -> pl.Expr:
    """The birth date (YYYYMMDD at positions 7-14) as pl.Date; null when it is not a real calendar date."""
    text = id18.cast(pl.String)
    digits = text.str.slice(6, 8)
    parsed = digits.str.to_date("%Y%m%d", strict=False)
    return pl.when(digits.str.contains(r"^[0-9]{8}$")).then(parsed)


def sex_from_id(id18: pl.Expr) -> pl.Expr:
    """男 (male) when the 17th character (sequence digit) is odd, 女 (female) when even, else null."""
    digit = id18.cast(pl.String).str.slice(16, 1).cast(pl.Int64, strict=False)
    return pl.when(digit % 2 == 1).then(pl.lit("男")).when(digit % 2 == 0).then(pl.lit("女"))


def mask_id(id18: pl.Expr) -> pl.Expr:
    """First 6 digits, 8 stars, last 4 ("360799********1234"): clerks can tell people apart, the birth date is hidden.

    Anything too short to mask safely becomes all stars; null or empty stays null.
    """
    text = id18.cast(pl.String).str.strip_chars()
    return (
        pl.when(text.is_null() | (text == "")).then(pl.lit(None, pl.String))
        .when(text.str.len_chars() >= 10)
        .then(pl.concat_str([text.str.slice(0, 6), pl.lit("*" * 8), text.str.slice(-4)]))
        .otherwise(pl.lit("*" * 18))
    )


def looks_like_float_text(text: pl.Expr) -> pl.Expr:
    """Text a number cell leaves once its digits beyond Excel's 15 are lost: 3.21202199001011E+17, or 16+ digits
    with a float's ".0"."""
    return text.str.contains(_FLOAT_TEXT)


def id_problem(raw: pl.Expr) -> pl.Expr:
    """The first thing wrong with an ID cell as a reason code of schemas/reasons.py, or null when it is valid.

    Order: id_missing, id_float_mangled, id_bad_length, id_bad_chars, id_bad_birthdate, id_bad_checksum.
    A birth date before 1880 or after today is as impossible as 30 February. On big data, normalise in one pass and
    judge the result with `with_id_problem` in the next (what validation does).
    """
    return problem_of_normalised(normalise_id(raw))


# The facts `problem_of_normalised` judges an ID by, each an expression of the normalised text; computed once per
# row as columns by `with_id_problem`.
_SHAPED, _SUM_OK, _BORN = "_id_shaped", "_id_sum_ok", "_id_born"


def _id_facts(text: pl.Expr) -> dict[str, pl.Expr]:
    """17 digits and a digit or X; the 18th character the check character of the first 17; the birth date in it.
    The last two mean something only for a shaped ID, and are only read for one."""
    return {
        _SHAPED: text.str.contains(NORMAL_FORM),
        _SUM_OK: _check_char_of_digits(text.str.slice(0, 17)) == text.str.slice(17, 1),
        _BORN: text.str.slice(6, 8).str.to_date("%Y%m%d", strict=False),
    }


def _problem_from(text: pl.Expr, shaped: pl.Expr, sum_ok: pl.Expr, born: pl.Expr) -> pl.Expr:
    """The reason code of a normalised ID given its `_id_facts` (see `id_problem` for the order).

    id_float_mangled: Excel showed the ID as a number: scientific notation, a float's ".0", or 18 digits ending
    000 that fail the check (Excel keeps 15 significant digits, so the last three of an 18-digit number become 000).
    """
    mangled = looks_like_float_text(text) | (shaped & text.str.ends_with("000") & ~sum_ok)
    return (
        pl.when(text.is_null()).then(pl.lit("id_missing"))
        .when(mangled).then(pl.lit("id_float_mangled"))
        .when(text.str.len_chars() != 18).then(pl.lit("id_bad_length"))
        .when(~shaped).then(pl.lit("id_bad_chars"))
        .when(born.is_null() | (born < EARLIEST_BIRTH) | (born > date.today())).then(pl.lit("id_bad_birthdate"))
        .when(~sum_ok).then(pl.lit("id_bad_checksum"))
        .otherwise(pl.lit(None, pl.String))
    )


def problem_of_normalised(text: pl.Expr) -> pl.Expr:
    """`id_problem` of an ID already through `normalise_id`, as one expression (pandera's checks, small frames).

    Inside one when/then chain Polars does not share a sub-expression between branches: at scale use
    `with_id_problem`, which computes each fact once."""
    facts = _id_facts(text)
    return _problem_from(text, facts[_SHAPED], facts[_SUM_OK], facts[_BORN])


def with_id_problem(frame: pl.LazyFrame, column: str, alias: str, born: str | None = None) -> pl.LazyFrame:
    """`problem_of_normalised` of a frame's (normalised) ID column as column `alias`, each of its facts computed
    once per row in a step before: 300,000 roster IDs 0.20 -> 0.07 CPU-s (bench/FINDINGS.md, session 23); as one
    chain every row had its check character computed twice and went through six regex passes (now two).

    `born`: also keep the birth date the judging read from each ID, as that column. For an ID without a problem it
    is `birth_date_from_id` (the date part of a valid ID is 8 digits), so a valid row's birth date is not read again.
    """
    facts = frame.with_columns(fact.alias(name) for name, fact in _id_facts(pl.col(column)).items())
    judged = facts.with_columns(_problem_from(pl.col(column), pl.col(_SHAPED), pl.col(_SUM_OK), pl.col(_BORN))
                                .alias(alias))
    kept = judged.drop(_BORN) if born is None else judged.rename({_BORN: born})
    return kept.drop(_SHAPED, _SUM_OK)


def is_valid_id(id18: pl.Expr) -> pl.Expr:
    """True when the ID, as it is, passes every rule: the pandera models' check.

    The same as `id_problem(id18).is_null() & (id18 == normalise_id(id18))` (tests/test_ids.py): only an ID in
    NORMAL_FORM passes `problem_of_normalised`, and `normalise_id` leaves such an ID as it is. Judged without
    normalising every ID twice: a province county's 30,001 accepted list rows 0.27 -> 0.02 CPU-s (bench/FINDINGS.md,
    session 25)."""
    return problem_of_normalised(id18.cast(pl.String)).is_null()


# Disability certificate (残疾人证号) = holder's 18-character ID + category digit 1-7 + grade digit 1-4.
_CERT_PATTERN = r"^[0-9]{17}[0-9X][1-7][1-4]$"


def normalise_cert(expr: pl.Expr) -> pl.Expr:
    """The certificate number cleaned like an ID (full-width, spaces, apostrophes, lower-case x)."""
    return clean_text(expr)


def cert_problem(cert: pl.Expr, id18: pl.Expr) -> pl.Expr:
    """disability_cert_invalid / disability_cert_mismatch, or null when the certificate is absent or consistent.

    Well formed = 20 characters: 17 digits, a digit or X, category 1-7, grade 1-4. Its first 18 must be the
    row's (normalised) ID, or the certificate may belong to someone else.
    """
    text = normalise_cert(cert)
    return (
        pl.when(text.is_null()).then(pl.lit(None, pl.String))
        .when(~text.str.contains(_CERT_PATTERN)).then(pl.lit("disability_cert_invalid"))
        .when(text.str.slice(0, 18) != id18.cast(pl.String)).then(pl.lit("disability_cert_mismatch"))
        .otherwise(pl.lit(None, pl.String))
    )
