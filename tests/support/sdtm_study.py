"""A small hand-made valid study (3 subjects) as raw SDTM domain frames."""

from __future__ import annotations

import pandas as pd


def valid_raw_domains() -> dict[str, pd.DataFrame]:
    dm = pd.DataFrame({
        "STUDYID": ["T"] * 3, "USUBJID": ["S-001", "S-002", "S-003"], "AGE": [65, 70, 58],
        "SEX": ["M", "F", "M"], "RFXSTDTC": ["2019-01-07", "2019-02-04", None],
        "DTHFL": ["Y", None, None], "DTHDTC": ["2019-06-30", None, None],
    })
    ex = pd.DataFrame({
        "USUBJID": ["S-001", "S-001", "S-002"], "EXTRT": ["SELINEXOR"] * 3, "EXDOSE": [80.0, 100.0, 80.0],
        "EXDOSU": ["mg"] * 3, "EXSTDTC": ["2019-01-07", "2019-02-11", "2019-02-04"],
        "EXENDTC": ["2019-02-03", "2019-03-31", "2019-05-26"], "EXDOSFRQ": ["BIW", "QW", "BIW"],
        "EXADJ": [None, "ADVERSE EVENT", None],
    })
    lb = pd.DataFrame({
        "USUBJID": ["S-001", "S-001", "S-002", "S-002", "S-002"],
        "LBTESTCD": ["MPROTEIN", "MPROTEIN", "MPROTEIN", "HGB", "IFE"],
        "LBSPEC": ["SERUM", "SERUM", "SERUM", "BLOOD", "SERUM"],
        "LBCAT": ["DISEASE ASSESSMENT", "DISEASE ASSESSMENT", "DISEASE ASSESSMENT", "HEMATOLOGY", "DISEASE ASSESSMENT"],
        "LBSTRESN": [2.5, 1.0, 30.0, 95.0, None], "LBSTRESC": [None, None, None, None, "POSITIVE"],
        "LBSTRESU": ["g/dL", "g/dL", "g/L", "g/L", None],
        "LBSTNRLO": [None, None, None, 120.0, None], "LBSTNRHI": [None, None, None, 160.0, None],
        "LBDTC": ["2019-01-03", "2019-02-04", "2019-02-01", "2019-03-04", "2019-02-01"],
    })
    ae = pd.DataFrame({
        "USUBJID": ["S-001", "S-002"], "AEDECOD": ["THROMBOCYTOPENIA", "NAUSEA"],
        "AEBODSYS": ["BLOOD AND LYMPHATIC SYSTEM DISORDERS", "GASTROINTESTINAL DISORDERS"],
        "AESTDTC": ["2019-02-01", "2019-02-10"], "AEENDTC": ["2019-02-20", None], "AETOXGR": [3, 1],
        "AESER": ["N", "N"], "AEACN": ["DOSE REDUCED", "DOSE NOT CHANGED"], "AEOUT": ["FATAL", "RECOVERED/RESOLVED"],
    })
    ds = pd.DataFrame({
        "USUBJID": ["S-001", "S-001", "S-002"], "DSCAT": ["DISPOSITION EVENT"] * 3,
        "DSSCAT": ["END OF TREATMENT", "END OF STUDY", "END OF TREATMENT"],
        "DSDECOD": ["PROGRESSIVE DISEASE", "DEATH", "ADVERSE EVENT"],
        "DSTERM": ["PROGRESSIVE DISEASE", "DEATH DUE TO PNEUMONIA", "NAUSEA"],
        "DSSTDTC": ["2019-03-31", "2019-06-30", "2019-05-26"],
    })
    cm = pd.DataFrame({
        "USUBJID": ["S-001", "S-001", "S-002"], "CMTRT": ["BORTEZOMIB", "LENALIDOMIDE", "DARATUMUMAB"],
        "CMCAT": ["PRIOR ANTI-MYELOMA THERAPY"] * 3, "CMGRPID": ["R1", "R1", "R1"],
        "CMSTDTC": ["2015-03", "2015-03", "2018-01-10"], "CMENDTC": ["2016-01-15", "2016-01-15", "2018-11-30"],
    })
    return {"dm": dm, "ex": ex, "lb": lb, "ae": ae, "ds": ds, "cm": cm}
