"""Spec-z quality-flag homogenization (pipeline/tsm/flags.py, pipeline/tsm/flag_rules.yaml)."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline.tsm import DEFAULT_FLAG_RULES, FlagError, homogenize_flags, load_flag_rules


@pytest.fixture(scope="module")
def rules():
    return load_flag_rules()


def one(rules, survey, flag):
    result = homogenize_flags([survey], [flag], rules)
    return int(result.flags[0]), str(result.instruments[0])


def test_shipped_file_covers_the_large_surveys_each_with_a_source(rules):
    assert rules.path == DEFAULT_FLAG_RULES
    assert len(rules.surveys) >= 15
    for rule in rules.surveys.values():
        assert len(rule.source) > 20, rule.name
    for name in ("2dFGRS", "6dFGS", "SDSS", "BOSS", "eBOSS", "DESI_DR1", "GAMA", "VVDS", "VIPERS", "zCOSMOS",
                 "DEEP2", "DEEP3", "VANDELS", "3D-HST", "PRIMUS", "C3R2", "MOSDEF"):
        assert rules.rule(name) is not None, name


@pytest.mark.parametrize(("survey", "flag", "expected"), [
    # VVDS (Le Fevre et al. 2013): 4 = 100 %, 3 = 95-100 %, 9 = single line (~80 %, LIneA: 2), 0 = none
    ("VVDS", 4, 4), ("VVDS", 3, 3), ("VVDS", 9, 2), ("VVDS", 0, 0),
    ("VVDS", 14, 4), ("VVDS", 23, 3),  # broad-line AGN 1x, secondary target 2x
    ("zCOSMOS", 3.5, 3), ("zCOSMOS", 24.1, 4),  # decimal part: photo-z consistency
    ("VIPERS", 2, 3), ("VIPERS", 9.5, 3), ("VIPERS", 1, 1),
    # SDSS/BOSS ZWARNING and DESI ZWARN bitmasks: 0 = no problem, any bit set = tentative (LIneA: 1)
    ("SDSS", 0, 4), ("SDSS", 4, 1), ("BOSS", 0, 4), ("DESI_DR1", 0, 4), ("DESI_DR1", 1024, 1),
    # DEEP2 ZQUALITY: 4 very secure, 3 secure, 2 poor, -1 star
    ("DEEP2", 4, 4), ("DEEP2", 3, 3), ("DEEP2", 2, 1), ("DEEP2", -1, 6),
    ("GAMA", 4, 4), ("GAMA", 3, 3), ("2dFGRS", 5, 4), ("2dFGRS", 2, 1), ("6dFGS", 6, 6),
    ("C3R2", 3.5, 3), ("MOSDEF", 7, 4), ("VANDELS", 9, 3), ("VANDELS", 3, 4),
])
def test_known_translations(rules, survey, flag, expected):
    assert one(rules, survey, flag)[0] == expected


@pytest.mark.parametrize(("survey", "flag", "expected"), [
    # ZWARNING/ZWARN with any bit set -> 1, as LIneA's SDSS_DR17/DR19 and DESI_DR1 rules (was 0)
    ("SDSS", 1, 1), ("SDSS", 128, 1), ("BOSS", 4, 1), ("eBOSS", 4, 1), ("DESI_DR1", 4, 1),
    # DEEP2/DEEP3 ZQUALITY 0 = spectrum not yet examined (DEEP2 DR1 quality codes)
    ("DEEP2", 0, 0), ("DEEP3", 0, 0), ("DEEP3", -1, 6),
    # surveys added from LIneA's flags_translation.yaml
    ("DEIMOS_10K", 9, 2), ("DEIMOS_10K", 14, 4), ("FMOS_COSMOS", -99, 0), ("FMOS_COSMOS", -1, 6),
    ("FMOS_COSMOS", 3, 3), ("HELP_DMU23", 1, 0), ("HELP_DMU23", 5, 4), ("JADES", 2, 2), ("VIMOS", 4, 4),
    ("DESI_DEEP_PILOT", 3, 3), ("EUCLID_Q1", 0, 0), ("EUCLID_Q1", 0.5, 1), ("EUCLID_Q1", 0.7, 2),
    ("EUCLID_Q1", 0.9, 3), ("EUCLID_Q1", 0.99, 4),
])
def test_translations_checked_against_linea(rules, survey, flag, expected):
    assert one(rules, survey, flag)[0] == expected


def test_desi_deep_pilot_has_no_single_line_class(rules):
    with pytest.raises(FlagError, match="DESI_DEEP_PILOT"):
        homogenize_flags(["DESI_DEEP_PILOT"], [9], rules)


def test_instrument_types(rules):
    assert one(rules, "PRIMUS", 4) == (3, "grism")
    assert one(rules, "3D-HST", 1) == (3, "spectroscopic")
    assert one(rules, "3D-HST", 2) == (3, "grism")
    assert one(rules, "3D-HST", 3) == (1, "photometric")
    assert one(rules, "sdss", 0) == (4, "spectroscopic")  # names are case-insensitive


def test_vectorised_on_pyarrow_with_int8_result(rules):
    surveys = pa.array(["VVDS", "GAMA", "VVDS", "DEEP2"] * 1000).dictionary_encode()
    flags = pa.array([4, 3, 9, 2] * 1000, type=pa.int16())
    result = homogenize_flags(surveys, flags, rules)
    assert result.flags.dtype == np.int8
    assert result.flags[:4].tolist() == [4, 3, 2, 1]
    assert result.keep.all()
    assert result.report["surveys"]["VVDS"] == {"rows": 2000, "kept": 2000, "unknown_survey": 0,
                                                "unknown_flag": 0, "below_min_flag": 0, "star": 0}


def test_unknown_survey_is_an_error_naming_it(rules):
    with pytest.raises(FlagError, match="survey 'NoSuchSurvey' .*no flag rule"):
        homogenize_flags(np.array(["VVDS", "NoSuchSurvey"]), np.array([4, 4]), rules)


def test_flag_outside_the_rule_is_an_error_naming_survey_and_values(rules):
    with pytest.raises(FlagError, match=r"survey 'GAMA': flag value\(s\) -7, 8 outside"):
        homogenize_flags(["GAMA"] * 4, [4, 8, -7, 8], rules)
    with pytest.raises(FlagError, match=r"survey 'VVDS': flag value\(s\) 4.5, 35, nan outside"):
        homogenize_flags(["VVDS"] * 4, [35, 4.5, 3, np.nan], rules)  # no fraction, no 3x prefix, null


def test_drop_mode_counts_rows(rules):
    result = homogenize_flags(["VVDS", "Nope", "Nope", "GAMA", "GAMA"], [4, 1, 2, 8, 3], rules, on_unknown="drop")
    assert result.keep.tolist() == [True, False, False, False, True]
    assert result.flags.tolist() == [4, -1, -1, -1, 3]
    assert result.report["dropped"] == {"unknown_survey": 2, "unknown_flag": 1, "below_min_flag": 0, "star": 0}
    assert result.report["surveys"]["GAMA"]["unknown_flag"] == 1
    assert result.report["kept"] == 2


def test_min_flag_cut_and_stars(rules):
    result = homogenize_flags(["VVDS"] * 5 + ["DEEP2"], [4, 3, 2, 9, 1, -1], rules, min_flag=3)
    assert result.keep.tolist() == [True, True, False, False, False, False]
    assert result.report["dropped"]["below_min_flag"] == 3
    assert result.report["dropped"]["star"] == 1
    kept_stars = homogenize_flags(["DEEP2"], [-1], rules, min_flag=3, keep_stars=True)
    assert kept_stars.keep.tolist() == [True]


def test_user_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("surveys:\n  MySurvey:\n    source: 'Me et al. 2026, sec. 2'\n    instrument: grism\n"
                    "    values: {1: 4}\n    ranges: [{min: 2, max: 5, flag: 2}]\n")
    rules = load_flag_rules(path)
    result = homogenize_flags(["mysurvey"] * 3, [1, 3, 5], rules)
    assert result.flags.tolist() == [4, 2, 2]
    assert result.instruments.tolist() == ["grism"] * 3
    with pytest.raises(FlagError, match=f"survey 'VVDS'.*{path.name}"):
        homogenize_flags(["VVDS"], [4], rules)


@pytest.mark.parametrize(("text", "message"), [
    ("surveys: [unclosed", "not valid YAML"),
    ("- a list\n", "expected a mapping with a 'surveys'"),
    ("surveys:\n  X:\n    instrument: spectroscopic\n    values: {1: 4}\n", "survey 'X': 'source'"),
    ("surveys:\n  X:\n    source: s\n    instrument: radio\n    values: {1: 4}\n", "instrument 'radio'"),
    ("surveys:\n  X:\n    source: s\n    instrument: grism\n    values: {1: 9}\n", "homogenized flag 9"),
    ("surveys:\n  X:\n    source: s\n    instrument: grism\n", "no 'values', 'ranges', 'decimal_class' or 'missing'"),
    ("surveys:\n  X:\n    source: s\n    instrument: grism\n    valeus: {1: 4}\n", "unknown key"),
])
def test_malformed_file_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(FlagError, match=message):
        load_flag_rules(path)


def test_missing_file(tmp_path):
    with pytest.raises(FlagError, match="cannot read"):
        load_flag_rules(tmp_path / "absent.yaml")


def test_nulls_are_unknown(rules):
    result = homogenize_flags(pa.chunked_array([["VVDS", None], ["GAMA"]]), pa.array([4, 4, None]), rules,
                              on_unknown="drop")
    assert result.keep.tolist() == [True, False, False]
    assert result.report["dropped"]["unknown_survey"] == 1 and result.report["dropped"]["unknown_flag"] == 1
    with pytest.raises(FlagError, match="survey '' "):
        homogenize_flags([None], [4], rules)


def test_a_rule_may_give_rows_without_a_flag_a_homogenized_flag(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("surveys:\n"
                    "  SIM: {source: a simulation without flags, instrument: spectroscopic, missing: 4}\n"
                    "  OBS: {source: a survey, instrument: spectroscopic, values: {1: 1, 4: 4}}\n")
    own = load_flag_rules(path)
    result = homogenize_flags(["SIM", "OBS", "SIM"], pa.array([None, 1.0, float("nan")]), own)
    assert result.flags.tolist() == [4, 1, 4]
    with pytest.raises(FlagError, match="survey 'OBS': flag value"):
        homogenize_flags(["SIM", "OBS"], pa.array([None, None], pa.float64()), own)
