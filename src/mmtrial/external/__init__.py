"""External controls: real-world cohorts (SDTM-style or OMOP CDM v5.4), target-trial emulation,
and the comparison of a single-arm trial with them (docs/external.md)."""
