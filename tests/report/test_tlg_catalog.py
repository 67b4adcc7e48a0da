"""The CSR tables side by side with the TLG catalog shells (issue 14, quality bar).

Expected rows, statistics and footnotes come from the shells of ../shared/reference/tlg-catalog.md
(TLGC = insightsengineering/tlg-catalog, STF = FDA Standard Safety Tables and Figures IG v2.0,
mmtrial-* = the project's own shells there), adapted to one arm as that file says (no
comparative rows, AE tables by descending frequency, Clopper-Pearson CIs). One test per
catalogued table the demo report produces; each checks the shell's rows and statistics where they
apply, the statistic's format in every cell, and, where the shell implies arithmetic (events +
censored = patients, worst grade counted once), that the numbers add up. Shell rows mmtrial does
not produce are listed in ``NOT_PRODUCED`` with the reason (the test of that table checks they
are indeed absent, so the list stays true).
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

N_PCT = re.compile(r"^\d+ \(\d+\.\d\)$")  # n (%)
MED_RANGE = re.compile(r"^-?\d+(\.\d+)? \(-?\d+(\.\d+)?-\d+(\.\d+)?\)$")  # median (min-max)
MEAN_SD = re.compile(r"^\d+(\.\d+)? \(\d+(\.\d+)?\)$")
EST_CI = re.compile(r"^(\d+(\.\d+)?|NE) \((\d+(\.\d+)?|NE), (\d+(\.\d+)?|NE)\)$")  # estimate (lower, upper)
CI = re.compile(r"^\(\d+(\.\d+)?, \d+(\.\d+)?\)$")

#: shell rows not produced, with the reason (tlg-catalog.md: "where they apply")
NOT_PRODUCED = {
    "DMT01": {"Race": "race and ethnicity are not in the data contract's dm (docs/data-contract.md)",
              "mean (SD)": "age is summarised as median (range), as STORM's Table 1 (domain.md 1.2)"},
    "mmtrial-BL01": {"ISS": "ISS/R-ISS and ECOG are not in the data contract",
                     "ECOG": "ISS/R-ISS and ECOG are not in the data contract"},
    "EXT01": {"Missed doses": "missed doses show as interruptions (docs/exposure.md)",
              "0-30": "duration categories in weeks (STORM reports weeks: domain.md 1.4)"},
    "AET01": {"Deaths": "deaths are in DTHT01 (test_dtht01)"},
}


def _tables(demo) -> dict[str, pd.DataFrame]:
    out = {}
    for s in demo.output.analysis.sections:
        for b in s.blocks:
            if type(b).__name__ == "Table":
                out[b.id] = b
    return out


@pytest.fixture(scope="module")
def tables(demo):
    return _tables(demo)


def _labels(t) -> list[str]:
    return [str(x).strip() for x in t.data.iloc[:, 0]]


def _row(t, label: str, col: int = 1) -> str:
    d = t.data
    hit = d[d.iloc[:, 0].astype(str).str.strip() == label]
    assert len(hit) >= 1, (t.id, label, _labels(t))
    return str(hit.iloc[0, col])


def _n(cell: str) -> int:
    return int(str(cell).split(" ")[0].split("/")[0].split(";")[0])


def _notes(t) -> str:
    return " ".join(t.footnotes or [])


def _absent(t, catalog_id: str) -> None:
    text = " ".join(_labels(t)) + " " + " ".join(map(str, t.data.columns))
    for word in NOT_PRODUCED[catalog_id]:
        assert word not in text, (t.id, word, "now produced: remove it from NOT_PRODUCED")


def test_stf_t4_populations(tables):
    # STF T4: n (%) in each analysis population (ITT/enrolled, mITT, safety)
    t = tables["populations"]
    labels = _labels(t)
    assert labels[0].startswith("Enrolled") and any("Safety" in x for x in labels)
    assert any("mITT" in x for x in labels)
    assert all(N_PCT.match(str(v)) for v in t.data["n (%)"])
    assert "Percentages are of all enrolled subjects" in _notes(t)


def test_dst01_disposition(tables):
    # TLGC dst01 variant: ongoing / discontinued treatment with reasons, discontinued study
    t = tables["DST01"]
    labels = _labels(t)
    for row in ("On treatment", "Discontinued treatment", "Discontinued study"):
        assert row in labels
    i = labels.index("Discontinued treatment")
    reasons = []
    for j in range(i + 1, len(labels)):
        if not str(t.data.iloc[j, 0]).startswith("  "):
            break
        reasons.append(labels[j])
    assert set(reasons) <= {"Progressive disease", "Adverse event", "Death", "Withdrawal by subject",
                            "Physician decision", "Lack of efficacy", "Protocol violation", "Other"}
    assert reasons and all(N_PCT.match(str(v)) for v in t.data.iloc[:, 1])
    # discontinued by reason: the reasons add up to the discontinued count; + on treatment = N
    total = sum(_n(_row(t, r)) for r in reasons)
    assert total == _n(_row(t, "Discontinued treatment"))
    n_col = int(re.search(r"N=(\d+)", t.data.columns[1]).group(1))
    assert total + _n(_row(t, "On treatment")) == n_col
    assert "at least one dose" in _notes(t)


def test_dmt01_and_bl01_baseline(tables):
    # DMT01 (age, age group, sex) and mmtrial-BL01 (history, prior therapy, refractoriness,
    # cytogenetics); one column for all patients plus the penta-refractory cohort
    t = tables["baseline-characteristics"]
    labels = _labels(t)
    cols = list(t.data.columns)
    assert cols[1].startswith("All patients (N=") and "Penta-refractory (N=" in cols[2]
    med = ["Age, years: median (range)", "Time since diagnosis, years: median (range)",
           "Prior regimens: median (range)"]
    for r in med:
        assert r in labels and all(MED_RANGE.match(_row(t, r, c)) for c in (1, 2)), r
    npct = ["Age >= 65 years", "Male sex", "Female sex", "Myeloma type: IgG", "Myeloma type: IgA",
            "Myeloma type: Light chain", "Prior stem-cell transplant", "Triple-class refractory",
            "Penta-refractory", "High-risk cytogenetics", "del(17p)", "t(4;14)", "t(14;16)", "gain(1q)"]
    for drug in ("Bortezomib", "Carfilzomib", "Lenalidomide", "Pomalidomide", "Daratumumab",
                 "Alkylating agent", "Glucocorticoid"):
        npct += [f"{drug}: exposed", f"{drug}: refractory"]
    for r in npct:
        assert r in labels and N_PCT.match(_row(t, r)), r
    # sexes add up to N
    n_all = int(re.search(r"N=(\d+)", cols[1]).group(1))
    assert _n(_row(t, "Male sex")) + _n(_row(t, "Female sex")) == n_all
    assert "Rajkumar" in _notes(t)  # lines of therapy definition (tlg-catalog BL01: "per SAP")
    _absent(t, "DMT01")
    _absent(t, "mmtrial-BL01")


def test_ext01_stf_t6_and_ex02_exposure(tables):
    # one block (here column) per drug; duration n, mean (SD), median, range; doses and total dose;
    # mmtrial-EX02: >= 1 reduction, interruption, discontinued for AE (n (%)), RDI median (range)
    t = tables["mmtrial-EX02"]
    assert list(t.data.columns[1:]) == ["Selinexor", "Dexamethasone"]
    for r, pat in (("Duration of treatment, weeks: median (range)", MED_RANGE),
                   ("Duration of treatment, weeks: mean (SD)", MEAN_SD),
                   ("Number of doses: median (range)", MED_RANGE),
                   ("Cumulative dose, mg: median (range)", MED_RANGE),
                   ("Relative dose intensity, %: median (range)", MED_RANGE),
                   ("At least one dose reduction", N_PCT),
                   ("At least one dose interruption", N_PCT),
                   ("Discontinued treatment for an adverse event", N_PCT)):
        for c in (1, 2):
            assert pat.match(_row(t, r, c)), (r, _row(t, r, c))
    # duration categories cover every treated patient
    n = int(_row(t, "Patients treated, n"))
    cats = [x for x in _labels(t) if x.endswith("weeks") and ("<" in x or ">=" in x)]
    assert len(cats) >= 4 and sum(_n(_row(t, c)) for c in cats) == n
    notes = _notes(t)
    assert "Relative dose intensity" in notes and "interruption" in notes.lower()
    _absent(t, "EXT01")


def test_rsp01_best_overall_response(tables):
    # mmtrial-RSP01: sCR..NE n (%) with exact CI, then ORR, >= VGPR, clinical benefit (>= MR)
    t = tables["rsp01-bor"]
    labels = _labels(t)
    assert labels[:8] == ["sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"]
    assert labels[8].startswith("Overall response") and labels[9].startswith("VGPR or better")
    assert labels[10].startswith("Clinical benefit")
    assert all(N_PCT.match(str(v)) for v in t.data.iloc[:, 1])
    assert all(CI.match(str(v)) for v in t.data.iloc[:, 2])
    n = [_n(v) for v in t.data.iloc[:, 1]]
    assert n[8] == sum(n[:4]) and n[9] == sum(n[:3]) and n[10] == sum(n[:5])
    assert "Clopper-Pearson" in _notes(t)


def test_rsp02_time_to_response(tables):
    # mmtrial-RSP02: responders; time to first >= PR, median (range), weeks (STORM 4.1 (1-14))
    t = tables["RSP02"]
    assert int(_row(t, "Responders")) >= 1
    assert MED_RANGE.match(_row(t, "Time to response, weeks: median (range)"))


def test_onct05_orr_by_subgroup(tables):
    # ONCT05 single-arm form: n, responders, rate and exact CI per subgroup level; no odds ratio
    t = tables["ONCT05"]
    cols = list(t.data.columns)
    assert cols[2:] == ["n", "Responders", "ORR, %", "95% CI"] and not any("odds" in c.lower() for c in cols)
    assert t.data.iloc[0, 0] == "All patients"
    d = t.data
    rate = 100 * d["Responders"].astype(int) / d["n"].astype(int)
    assert (abs(rate - d["ORR, %"].astype(float)) < 0.051).all()
    # the levels of each subgroup partition all patients
    n_all = int(d["n"].iloc[0])
    for _, g in d.iloc[1:].groupby("Subgroup", sort=False):
        assert g["n"].astype(int).sum() == n_all
    assert "Clopper-Pearson" in _notes(t)


def test_ttet01_and_dort01_time_to_event(tables):
    # TTET01 / DORT01 per endpoint: with an event n (%) split by earliest event, without event
    # n (%), median (95% CI) and 25th/75th percentiles, range with censored values flagged,
    # landmark rows: at risk, event-free rate, CI
    t = tables["TTET01"]
    labels = _labels(t)
    starts = [i for i, x in enumerate(labels) if x == "Patients"]
    assert len(starts) >= 3  # PFS, OS, DOR (and TTNT)
    for k, s in enumerate(starts):
        block = labels[s:(starts[k + 1] if k + 1 < len(starts) else len(labels))]
        vals = t.data.iloc[s:s + len(block), 1].astype(str).tolist()
        get = dict(zip(block, vals, strict=True))
        patients = int(get["Patients"])
        ev, cens = _n(get["With an event, n (%)"]), _n(get["Censored, n (%)"])
        assert ev + cens == patients
        i_ev, i_c = block.index("With an event, n (%)"), block.index("Censored, n (%)")
        assert sum(_n(v) for v in vals[i_ev + 1:i_c]) == ev  # earliest contributing event
        for q in ("25th percentile", "Median", "75th percentile"):
            assert EST_CI.match(get[f"{q}, months (95% CI)"]), (q, get[f"{q}, months (95% CI)"])
        assert "Range, months" in get
        land = [b for b in block if b.startswith("Event-free at")]
        assert land and all(re.match(r"^\d+; ", get[b]) for b in land)
    notes = _notes(t)
    assert "+ marks a censored value" in notes and "log-log" in notes


def test_tte02_os_by_response_with_landmark(tables):
    # mmtrial-TTE02: OS median (95% CI) by response group, with a landmark analysis and a note
    # on guarantee-time bias
    t = tables["TTE02"]
    d = t.data
    assert {"responder", "non-responder"} <= set(d["Group"])
    assert any("landmark" in str(x) for x in d["Analysis"])
    meds = [v for v in d["Median OS, months (95% CI)"] if str(v).strip()]
    assert meds and all(EST_CI.match(str(v)) for v in meds)
    assert "Guarantee-time" in _notes(t)


def test_aet01_safety_summary(tables):
    # AET01 rows that apply to a single-arm CTCAE-graded study (grade 4/5 variant rows included)
    t = tables["AET01"]
    labels = _labels(t)
    for r in ("At least one TEAE", "Total number of TEAEs", "Grade 3-5 TEAE", "Grade 5 (fatal) TEAE",
              "Serious TEAE", "Treatment-related TEAE", "Treatment-related serious TEAE",
              "TEAE leading to dose reduction or interruption", "TEAE leading to treatment discontinuation"):
        assert r in labels, r
    assert all(N_PCT.match(_row(t, r)) for r in labels if r != "Total number of TEAEs")
    assert _n(_row(t, "Grade 3-5 TEAE")) >= _n(_row(t, "Grade 3 or 4 TEAE"))
    assert "Treatment-emergent" in _notes(t)
    _absent(t, "AET01")


def _soc_blocks(t) -> list[list[tuple[str, int]]]:
    """PT rows (label, any-grade n) of each SOC block (a block starts at "Any preferred term")."""
    blocks: list[list[tuple[str, int]]] = []
    for lab, raw in zip(t.data.iloc[:, 0].astype(str), t.data.iloc[:, 1].astype(str), strict=True):
        if lab.strip() == "Any preferred term":
            blocks.append([])
        elif lab.startswith("  ") and blocks:
            blocks[-1].append((lab.strip(), _n(raw)))
    return blocks


@pytest.mark.parametrize("tid", ["AET02", "STF-T10", "AET09"])
def test_aet02_stf_t10_aet09_by_soc_and_pt_descending(tables, tid):
    # AET02 / STF T10 (serious) / AET09 (related): SOC -> PT, n (%), by descending frequency
    t = tables[tid]
    assert str(t.data.iloc[0, 0]).startswith("Any")
    assert all(N_PCT.match(str(v)) for v in t.data.iloc[:, 1:].to_numpy().ravel())
    blocks = _soc_blocks(t)
    assert blocks and all(b for b in blocks)
    for b in blocks:
        counts = [n for _, n in b]
        assert counts == sorted(counts, reverse=True), b
    # each patient once per SOC: a SOC's "Any preferred term" is at least its largest PT
    anys = [(_n(v)) for lab, v in zip(t.data.iloc[:, 0].astype(str), t.data.iloc[:, 1].astype(str), strict=True)
            if lab.strip() == "Any preferred term"]
    assert all(a >= b[0][1] for a, b in zip(anys, blocks, strict=True))


def test_aet04_pi_ge_10_percent_by_highest_grade(tables):
    # AET04_PI: PTs in >= 10% of patients; each patient counted once at the highest grade, so the
    # grade columns add up to the any-grade count
    t = tables["AET04_PI"]
    n = int(re.search(r"N = (\d+)", _notes(t)).group(1))
    assert list(t.data.columns[1:]) == ["Any grade", "Grade 1-2", "Grade 3", "Grade 4", "Grade 5"]
    for _, r in t.data.iterrows():
        anyg = _n(r["Any grade"])
        assert anyg >= 0.10 * n, r.iloc[0]
        assert anyg == sum(_n(r[c]) for c in ("Grade 1-2", "Grade 3", "Grade 4", "Grade 5"))
    counts = [_n(v) for v in t.data["Any grade"]]
    assert counts == sorted(counts, reverse=True)
    assert "at least 10%" in _notes(t)


def test_stf_t12_ae_leading_to_discontinuation(tables):
    # STF T12 (AEs leading to treatment discontinuation) with the other AEACN actions beside it
    t = tables["AET-ACN"]
    assert "Discontinuation" in t.data.columns and _labels(t)[0] == "Any TEAE"
    assert all(N_PCT.match(str(v)) for v in t.data.iloc[:, 1:].to_numpy().ravel())
    assert "AEACN" in _notes(t)


def test_dtht01_deaths(tables):
    # DTHT01: all deaths n (%); primary cause AE / progressive disease / other; variant: days from
    # last dose <= 30 / > 30
    t = tables["DTHT01"]
    all_d = _n(_row(t, "All deaths"))
    causes = sum(_n(_row(t, r)) for r in ("Progressive disease", "Adverse event", "Other or unknown"))
    assert causes == all_d
    assert _n(_row(t, "Within 30 days of last dose")) + _n(_row(t, "More than 30 days after last dose")) == all_d
    assert all(N_PCT.match(str(v)) for v in t.data.iloc[:, 1])


def test_lbt07_highest_grade_post_baseline(tables):
    # LBT07: per test, n and grades 1-4 and any grade; worst grade once per patient: any = 1+2+3+4
    t = tables["LBT07"]
    assert list(t.data.columns[1:]) == ["n", "Grade 1", "Grade 2", "Grade 3", "Grade 4", "Grade 3-4", "Any grade"]
    for _, r in t.data.iterrows():
        g = [_n(r[f"Grade {k}"]) for k in (1, 2, 3, 4)]
        assert _n(r["Any grade"]) == sum(g) and _n(r["Grade 3-4"]) == g[2] + g[3]
        assert _n(r["Any grade"]) <= int(r["n"])
    tests = " ".join(_labels(t))
    for code in ("PLAT", "NEUT", "HGB", "SODIUM", "CREAT"):
        assert f"({code})" in tests


@pytest.mark.parametrize("code", ["PLAT", "NEUT", "HGB", "SODIUM", "CREAT"])
def test_lbt14_shift_and_lbt15(tables, code):
    # LBT14: baseline grade rows with n, highest post-baseline grade beneath, n (%) of the row;
    # LBT15: n/N (%), N = patients not grade 3-4 at baseline (= LBT14 baseline rows 0-2)
    t = tables[f"LBT14-{code}"]
    assert _labels(t) == ["Grade 0 (normal)", "Grade 1", "Grade 2", "Grade 3", "Grade 4", "Total"]
    grade_cols = [c for c in t.data.columns if c.startswith("Grade ")]
    for _, r in t.data.iterrows():
        assert sum(_n(r[c]) for c in grade_cols) == int(r["n"])
    not34 = sum(int(_row(t, g)) for g in ("Grade 0 (normal)", "Grade 1", "Grade 2"))
    shift = sum(_n(_row(t, g, t.data.columns.get_loc(c)))
                for g in ("Grade 0 (normal)", "Grade 1", "Grade 2") for c in ("Grade 3", "Grade 4"))
    l15 = tables["LBT15"]
    cell = next(str(v) for lab, v in zip(_labels(l15), l15.data["Baseline not grade 3-4"], strict=True)
            if lab.endswith(f"({code})"))
    assert re.match(r"^\d+/\d+ \(\d+\.\d%\)$", cell)
    assert cell.split(" ")[0] == f"{shift}/{not34}"


def test_lb01_myeloma_lab_toxicities(tables):
    # mmtrial-LB01: platelets, ANC, haemoglobin, sodium, creatinine: lab worst grade any / 3 / 4
    # next to the AE-reported incidence
    t = tables["mmtrial-LB01"]
    assert list(t.data.columns[1:]) == ["Lab any grade", "Lab grade 3", "Lab grade 4", "AE any grade",
                                        "AE grade 3", "AE grade 4"]
    tests = " ".join(_labels(t))
    for code in ("PLAT", "NEUT", "HGB", "SODIUM", "CREAT"):
        assert f"({code})" in tests
    assert all(N_PCT.match(str(v)) for v in t.data.iloc[:, 1:].to_numpy().ravel())
    assert "CTCAE" in _notes(t) and "v5.0" in _notes(t)


def test_stf_t16_exposure_adjusted_incidence(tables):
    # STF T16: n and incidence rate per 100 patient-years, here with its exact Poisson CI
    t = tables["AE-EAIR"]
    d = t.data
    assert list(d.columns[1:]) == ["Patients with event, n", "Patient-years at risk",
                                   "Rate per 100 patient-years (95% CI)"]
    for _, r in d.iterrows():
        rate = float(str(r.iloc[3]).split(" ")[0])
        # the rate is n / patient-years x 100 (patient-years printed to 0.1: allow its rounding)
        py = float(r.iloc[2])
        assert abs(rate - 100 * int(r.iloc[1]) / py) <= 100 * int(r.iloc[1]) * 0.05 / py ** 2 + 0.1
        assert EST_CI.match(str(r.iloc[3]))
    assert "patient-years" in _notes(t)


def test_stf_fig16_20_lab_median_iqr_over_time(tables):
    # STF Fig 16-20 (median and IQR over time) in table form: n; median (Q1, Q3) by visit for
    # platelets, neutrophils, haemoglobin, sodium and creatinine (issue 14)
    t = tables["LBT01-TIME"]
    cols = list(t.data.columns)
    for name in ("Platelets", "Neutrophils", "Haemoglobin", "Sodium", "Creatinine"):
        assert any(c.startswith(name) and c.endswith("n; median (Q1, Q3)") for c in cols), name
    assert _labels(t)[0] == "BASELINE"
    pat = re.compile(r"^\d+; -?\d+(\.\d+)? \(-?\d+(\.\d+)?, -?\d+(\.\d+)?\)$")
    cells = [str(v) for v in t.data.iloc[:, 1:].to_numpy().ravel() if str(v).strip() not in ("", "0")]
    assert cells and all(pat.match(v) for v in cells), [v for v in cells if not pat.match(v)][:3]
    assert "QNTLDEF=5" in _notes(t)
