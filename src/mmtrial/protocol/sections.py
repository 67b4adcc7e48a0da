"""Every protocol section, its options model, and validation at load time with file:line errors.

The registry :data:`SECTIONS` maps a section name to the options model of the capability that
reads it (its own model, reused: e.g. ``[tte]`` -> ``mmtrial.steps.tte:TteConfig``), imported
lazily so the protocol package never imports the pipeline at import time. To add a section,
add one :class:`SectionSpec` line here. :func:`validate_sections` runs in
:meth:`mmtrial.protocol.model.Protocol.load`, before any work: an unknown section or key, a wrong
type or an impossible value is a :class:`~mmtrial.errors.ProtocolError` (exit 2) that names the
file, the dotted key and its line in the TOML.

tomllib gives no positions, so :func:`find_line` scans the text for the table header and key.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from mmtrial.errors import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from mmtrial.protocol.model import Protocol

#: Sections validated by the Protocol model itself: [study] and [regimen] are required.
CORE_MODEL_SECTIONS = ("study", "regimen", "arms", "dose_ladder", "visits", "populations")
#: Sections validated here rather than by their capability (no builder).
CORE_SECTIONS = CORE_MODEL_SECTIONS
#: Sections whose builder runs even when the file leaves them out (their defaults depend on
#: the rest of the protocol: the regimen's drugs, the dose ladder).
BUILT_WHEN_ABSENT = ("eligibility", "dose_rules", "exposure")


@dataclass(frozen=True)
class SectionSpec:
    """One protocol section.

    ``model``: ``"module:Name"`` of its options model (pydantic model or dataclass) or ``None``
    for a core section; ``build``: ``"module:function"`` called with the loaded Protocol for the
    checks that need the whole protocol (e.g. a rules file that must exist); ``exclude``: fields
    of the model that are not protocol keys (set from elsewhere); ``optional_module``: the model
    lives in a module that may be absent (then the section is accepted as written);
    ``when_present``: the section has no default (it has required keys) and is validated only
    when the file writes it (``[randomisation]``).
    """

    name: str
    doc: str
    model: str | None = None
    build: str | None = None
    exclude: tuple[str, ...] = ()
    optional_module: bool = False
    docs_page: str = "protocol.md"
    when_present: bool = False


SECTIONS: dict[str, SectionSpec] = {s.name: s for s in (
    SectionSpec("study", "what the study is: id, title, reference, drug, phase (required)"),
    SectionSpec("regimen", "drugs, doses, units, dosing days, cycles, phases, step-up (required)"),
    SectionSpec("arms", "randomised trials: each arm's label and regimen ([arms.<ARMCD>.regimen])"),
    SectionSpec("randomisation", "randomised trials: experimental and control arm, strata, crossover",
                model="mmtrial.protocol.arms:RandomisationConfig", build="mmtrial.protocol.arms:check_arms",
                when_present=True),
    SectionSpec("forest", "randomised trials: subgroups of the PFS forest plot (age and prior-lines cut-offs, flags)",
                model="mmtrial.steps.comparison:ComparisonOptions",
                build="mmtrial.steps.comparison:forest_options"),
    SectionSpec("dose_ladder", "dose-reduction steps per drug"),
    SectionSpec("visits", "assessment schedule"),
    SectionSpec("populations", "analysis population wording"),
    SectionSpec("methods", "method profile and defaults for CIs and time units",
                model="mmtrial.protocol.model:MethodsConfig"),
    SectionSpec("published", "the trial's published results and their source, shown beside the computed ones",
                model="mmtrial.protocol.model:PublishedConfig"),
    SectionSpec("tte", "time-to-event endpoints and efficacy statistics",
                model="mmtrial.steps.tte:TteConfig"),
    SectionSpec("response", "IMWG response derivation from laboratory values",
                model="mmtrial.steps.response:ResponseConfig"),
    SectionSpec("biomarker", "response biomarker classifier",
                model="mmtrial.steps.biomarker:BiomarkerConfig"),
    SectionSpec("lines", "lines of therapy (Rajkumar 2015)",
                model="mmtrial.derive.lines:LineRule", build="mmtrial.protocol.sections:_build_lines"),
    SectionSpec("refractory", "refractoriness and the composite refractory flags",
                model="mmtrial.derive.refractory:RefractoryRule",
                build="mmtrial.protocol.sections:_build_refractory"),
    SectionSpec("eligibility", "inclusion criteria, label population, cytogenetics",
                model="mmtrial.steps.prior_therapy:EligibilityConfig",
                build="mmtrial.steps.prior_therapy:eligibility_rule"),
    SectionSpec("exposure", "exposure derivation",
                model="mmtrial.derive.exposure:ExposureOptions", exclude=("cycle_length_days",),
                build="mmtrial.steps.exposure_safety:exposure_options"),
    SectionSpec("safety", "adverse events, laboratory grading, safety tables",
                model="mmtrial.steps.exposure_safety:SafetyOptions", exclude=("extra",),
                build="mmtrial.steps.exposure_safety:SafetyOptions.from_protocol"),
    SectionSpec("dose_rules", "the dose-modification rule table and how it is applied",
                model="mmtrial.steps.exposure_safety:DoseRulesConfig",
                build="mmtrial.steps.exposure_safety:dose_rule_options"),
    SectionSpec("simulation", "disease, toxicity and conduct assumptions of the simulator",
                model="mmtrial.simulate.config:SimulationConfig", optional_module=True,
                docs_page="simulator.md"),
    SectionSpec("external", "external control: propensity covariates, estimand, weights, target-trial emulation",
                model="mmtrial.external.config:ExternalConfig", docs_page="external.md"),
)}


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@cache
def section_model(name: str) -> Any | None:
    """The options model (pydantic model class or dataclass) of a section; ``None`` when core or
    when its module is not installed (``optional_module``)."""
    spec = SECTIONS[name]
    if spec.model is None:
        return None
    try:
        return _import(spec.model)
    except ImportError:
        if spec.optional_module:
            return None
        raise


@cache
def _adapter(name: str) -> TypeAdapter | None:
    m = section_model(name)
    if m is None or (isinstance(m, type) and issubclass(m, BaseModel)):
        return None
    return TypeAdapter(m)


def section_json_schema(name: str) -> dict[str, Any] | None:
    """JSON Schema of one non-core section (``exclude`` fields removed; unknown keys refused)."""
    m = section_model(name)
    if m is None:
        return None
    schema = m.model_json_schema() if isinstance(m, type) and issubclass(m, BaseModel) else _adapter(name).json_schema()
    for f in SECTIONS[name].exclude:
        schema.get("properties", {}).pop(f, None)
        if f in schema.get("required", []):
            schema["required"].remove(f)
    schema["additionalProperties"] = False
    schema.pop("title", None)
    schema["description"] = SECTIONS[name].doc
    return schema


def _fmt_default(v: Any) -> str:
    if isinstance(v, BaseModel):
        return "(table, see below)" if type(v).model_fields else "{}"
    if isinstance(v, dict) and v and all(isinstance(x, BaseModel) for x in v.values()):
        return "{" + ", ".join(v) + "}"
    if isinstance(v, tuple):
        v = list(v)
    if dataclasses.is_dataclass(v):
        return repr(v)
    text = repr(v) if not isinstance(v, str) else f'"{v}"'
    return text if len(text) <= 60 else text[:57] + "..."


def _numpy_option_docs(doc: str) -> dict[str, str]:
    """``name : text`` entries of a NumPy-style Options/Parameters docstring section."""
    out: dict[str, str] = {}
    first_line: dict[str, str] = {}
    cur = None
    for line in doc.splitlines():
        m = re.match(r"^\s{4}(\w+)(?:, \w+)*\s*:\s*(.*)$", line)
        if m:
            cur = m.group(1)
            out[cur] = m.group(2).strip()
            first_line[cur] = out[cur]
        elif cur and line.startswith("        ") and line.strip():
            out[cur] = (out[cur] + " " + line.strip()).strip()
        elif not line.strip():
            cur = None
    typed = re.compile(r"^(int|bool|str|float|tuple|dict|list|mapping|\{)", re.I)
    clean = {}
    for k, v in out.items():
        first = first_line.get(k, "")
        if typed.match(first) and len(v) > len(first):  # NumPy "Parameters": the name line is the type
            v = v[len(first):]
        clean[k] = re.sub(r"\s+", " ", v).strip()
    return clean


# --------------------------------------------------------------------------- builders
def _build_lines(p: Protocol) -> Any:
    from mmtrial.derive.lines import LineRule

    return LineRule.from_protocol(p.section("lines"))


def _build_refractory(p: Protocol) -> Any:
    from mmtrial.derive.refractory import RefractoryRule

    return RefractoryRule.from_protocol(p.section("refractory"))


# --------------------------------------------------------------------------- positions in the text
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_key(k: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", k)
    return [x.strip("\"'") for x in parts]


def _positions(text: str) -> dict[tuple, int]:
    """Line (1-based) of every table header and key: dotted path -> line.

    Arrays of tables get their index in the path (``regimen.phases.1``). Keys inside inline
    tables or multi-line arrays are found by :func:`find_line` from their parent key's line.
    """
    pos: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    table: tuple = ()
    depth = 0
    for i, line in enumerate(text.splitlines(), start=1):
        code = _strip_comment(line)
        if depth == 0:
            m = _HEADER.match(code)
            if m and code.lstrip().startswith("["):
                path = tuple(_split_key(m.group(2)))
                if m.group(1) == "[[":
                    n = counts.get(path, 0)
                    counts[path] = n + 1
                    table = (*_resolve_arrays(path, counts), n)
                else:
                    table = tuple(_resolve_arrays(path, counts))
                pos.setdefault(table, i)
                continue
            k = _KEY.match(code)
            if k:
                pos.setdefault((*table, *_split_key(k.group(1))), i)
        depth += code.count("[") + code.count("{") - code.count("]") - code.count("}")
        depth = max(depth, 0)
    return pos


def _resolve_arrays(path: tuple, counts: dict[tuple, int]) -> list:
    """A header path inside an array of tables refers to its last element (TOML rule)."""
    out: list = []
    for j, part in enumerate(path):
        out.append(part)
        pre = tuple(path[: j + 1])
        if pre in counts and j < len(path) - 1:
            out.append(counts[pre] - 1)
    return out


def _strip_comment(line: str) -> str:
    out, q = [], None
    for ch in line:
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def find_line(text: str, loc: Sequence[str | int]) -> int | None:
    """The line of the dotted key ``loc`` in the TOML ``text`` (its nearest written ancestor).

    Examples
    --------
    >>> find_line('[study]\\nid = "X"\\n[safty]\\nx = 1\\n', ("safty",))
    3
    >>> find_line('[regimen]\\ndrugs = [\\n  { name = "A" },\\n  { name = "B", dose = -1 },\\n]\\n',
    ...           ("regimen", "drugs", 1, "dose"))
    4
    """
    pos = _positions(text)
    loc = tuple(loc)
    # a segment the file does not write (STORM's single [dose_ladder] is the study drug's) is skipped
    variants = [loc] + [loc[:i] + loc[i + 1:] for i in range(1, len(loc))]
    best: tuple[int, int, tuple] | None = None
    for v in variants:
        for n in range(len(v), 0, -1):
            if v[:n] in pos:
                if best is None or n > best[0]:
                    best = (n, pos[v[:n]], v[n:])
                break
    if best is None:
        return None
    _, line, rest = best
    return _inline_line(text, line, rest) if rest else line


def _inline_line(text: str, line: int, rest: tuple) -> int:
    """Follow ``rest`` (array indexes and keys) inside the value that starts on ``line``."""
    body = "\n".join(_strip_comment(x) for x in text.splitlines()[line - 1:])
    i = body.find("=") + 1
    for step in rest:
        if isinstance(step, int):
            k = body.find("[", i)
            if k < 0:
                break
            depth, n, j, found = 0, -1, k, None
            while j < len(body):
                ch = body[j]
                if ch in "[{":
                    depth += 1
                    if depth == 2:
                        n += 1
                        if n == step:
                            found = j
                            break
                elif ch in "]}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if found is None:
                break
            i = found
        else:
            m = re.compile(r"(?<![\w\-])" + re.escape(str(step)) + r"\s*=").search(body, i)
            if not m:
                break
            i = m.start()
    return line + body.count("\n", 0, i)


# --------------------------------------------------------------------------- validation
def _loc_str(loc: Sequence[str | int]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def error_from_validation(e: ValidationError, *, prefix: tuple, text: str, file: str,
                          raw: dict[str, Any] | None = None) -> ProtocolError:
    """The first error of a pydantic ValidationError as a ProtocolError with key and line.

    A model-level check (empty location) is attributed to the first key of ``raw`` its message names.
    """
    err = e.errors()[0]
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    if not loc and raw:
        k = _key_in_message(err["msg"], raw)
        loc = (k,) if k else ()
    # pydantic names union members and tagged parts in the loc; keep only real keys and indexes
    full = (*prefix, *loc)
    key = _loc_str(full)
    kind = err["type"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = f"unknown key {str(full[-1])!r}"
    elif kind == "missing" or kind == "missing_keyword_argument":
        msg = "required key missing"
    else:
        text_ = _clean(err["msg"].removeprefix("Value error, "))
        inp = err.get("input")
        shown = "" if isinstance(inp, dict | list) or kind == "value_error" else f" (got {inp!r})"
        msg = f"{text_}{shown}"
    return ProtocolError(msg, file=file, key=key, line=find_line(text, full))


def check_sections(data: dict[str, Any], *, text: str, file: str) -> None:
    """Unknown top-level sections are an error naming the closest known one."""
    known = set(SECTIONS)
    for name in data:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean [{close[0]}]?" if close else f"; known sections: {', '.join(sorted(known))}"
            raise ProtocolError(f"unknown section [{name}]{hint}", file=file, key=name,
                                line=find_line(text, (name,)))


def validate_sections(p: Protocol, data: dict[str, Any], *, text: str, file: str) -> None:
    """Validate every non-core section present in ``data`` with its options model, then run its
    builder (checks that need the whole protocol). Absent sections take their defaults; their
    models are not imported unless their builder runs anyway (:data:`BUILT_WHEN_ABSENT`)."""
    for name, spec in SECTIONS.items():
        if name in CORE_SECTIONS:
            continue
        raw = data.get(name)
        if raw is None and spec.when_present:
            continue
        if raw is None:
            if not (spec.build and name in BUILT_WHEN_ABSENT):
                # an absent section takes its model's defaults, which validate (tests/protocol
                # test_sections checks each model with {}): its module (the simulator's, the
                # external-control one) is not imported for nothing (issue 15)
                continue
            raw_present = False
            raw = {}
        else:
            raw_present = True
        if not isinstance(raw, dict):
            raise ProtocolError(f"[{name}] must be a table, got {type(raw).__name__}", file=file, key=name,
                                line=find_line(text, (name,)))
        model = section_model(name)
        if model is None:
            continue
        is_model = isinstance(model, type) and issubclass(model, BaseModel)
        allowed = set() if is_model else {f.name for f in dataclasses.fields(model)} - set(spec.exclude)
        for f in raw:
            if f in spec.exclude or (not is_model and f not in allowed):
                close = difflib.get_close_matches(str(f), sorted(allowed), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ProtocolError(f"unknown key {f!r}{hint}", file=file, key=f"{name}.{f}",
                                    line=find_line(text, (name, f)))
        try:
            if is_model:
                model.model_validate(raw)
            else:
                _adapter(name).validate_python(raw)
        except ValidationError as e:
            raise error_from_validation(e, prefix=(name,), text=text, file=file, raw=raw) from None
        if spec.build and (raw_present or name in BUILT_WHEN_ABSENT):
            builder: Callable[[Protocol], Any] = _import(spec.build)
            try:
                builder(p)
            except ProtocolError:
                raise
            except ValidationError as e:
                raise error_from_validation(e, prefix=(name,), text=text, file=file) from None
            except (ValueError, TypeError, KeyError, FileNotFoundError) as e:
                key = _key_in_message(str(e), raw) or ""
                dotted = f"{name}.{key}" if key else name
                raise ProtocolError(_clean(str(e)), file=file, key=dotted,
                                    line=find_line(text, (name, key) if key else (name,))) from None


def _key_in_message(msg: str, raw: dict[str, Any]) -> str | None:
    for k in raw:
        if re.search(r"(?<![\w])" + re.escape(str(k)) + r"(?![\w])", msg):
            return str(k)
    return None


def _clean(msg: str) -> str:
    """One line, without a leading ``[section]`` or ``Name.field:`` the error location already gives."""
    msg = " ".join(msg.split())
    return re.sub(r"^(\[[\w.]+\]:?\s*|[A-Z]\w+\.\w+:\s*)", "", msg)


def syntax_error(e: tomllib.TOMLDecodeError, *, file: str) -> ProtocolError:
    """A TOML syntax error, with the line tomllib reports."""
    m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
    line = int(m.group(1)) if m else None
    msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
    return ProtocolError(f"TOML syntax error: {msg}", file=file, line=line)


# --------------------------------------------------------------------------- JSON Schema
#: Where the shipped schema lives (tests check it is up to date: ``mmtrial protocol schema``).
SCHEMA_FILE = "protocol.schema.json"


def _schema_of(t: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of a model/dataclass/type with its $defs merged into ``defs``."""
    s = TypeAdapter(t).json_schema(ref_template="#/$defs/{model}")
    for k, v in s.pop("$defs", {}).items():
        if k in defs and defs[k] != v:
            raise RuntimeError(f"protocol schema: two different definitions named {k!r}")
        defs[k] = v
    return s


def _dose_alias(schema: dict[str, Any]) -> None:
    """``dose_mg`` is accepted for ``dose`` (STORM's first-release files): say so in the schema."""
    props = schema.get("properties", {})
    if "dose" in props:
        props["dose_mg"] = {"type": "number", "exclusiveMinimum": 0, "deprecated": True,
                            "description": "alias of dose (first-release protocols)"}
        if "dose" in schema.get("required", []):
            schema["required"].remove("dose")
            schema["oneOf"] = [{"required": ["dose"]}, {"required": ["dose_mg"]}]


def protocol_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a whole protocol file, for editors (e.g. taplo's
    ``#:schema`` directive). Generated from the same models that validate the file."""
    from mmtrial.protocol.arms import ArmSpec
    from mmtrial.protocol.model import LadderSpec, Populations, StudyInfo, VisitSchedule
    from mmtrial.protocol.regimen import Regimen

    defs: dict[str, Any] = {}
    props: dict[str, Any] = {
        "study": _schema_of(StudyInfo, defs),
        "regimen": _schema_of(Regimen, defs),
        "arms": {
            "description": "randomised trials: one table per arm, keyed by its ARMCD",
            "type": "object",
            "additionalProperties": _schema_of(ArmSpec, defs),
        },
        "dose_ladder": {
            "description": "dose-reduction steps: one table per drug ([dose_ladder.POMALIDOMIDE]), or STORM's "
                           "single ladder of the study drug ([dose_ladder] with source and levels)",
            "anyOf": [_schema_of(LadderSpec, defs),
                      {"type": "object", "additionalProperties": _schema_of(LadderSpec, defs)}],
        },
        "visits": _schema_of(VisitSchedule, defs),
        "populations": _schema_of(Populations, defs),
    }
    for name in SECTIONS:
        if name in props:
            continue
        m = section_model(name)
        if m is None:
            props[name] = {"type": "object", "description": SECTIONS[name].doc}
            continue
        s = _schema_of(m, defs)
        if dataclasses.is_dataclass(m):
            docs = _numpy_option_docs(m.__doc__ or "")
            for k, v in s.get("properties", {}).items():
                if docs.get(k):
                    v.setdefault("description", docs[k])
        for f in SECTIONS[name].exclude:
            s.get("properties", {}).pop(f, None)
            if f in s.get("required", []):
                s["required"].remove(f)
        s["additionalProperties"] = s.get("additionalProperties", False) if name == "published" else False
        props[name] = s
    for name in props:
        props[name]["description"] = SECTIONS[name].doc
    for d in defs.values():
        if d.get("type") == "object" and "additionalProperties" not in d:
            d["additionalProperties"] = False
        _dose_alias(d)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mmtrial protocol",
        "description": "A trial protocol for mmtrial (docs/protocol.md). Only [study] and [regimen] are "
                       "required; every other section has documented defaults.",
        "type": "object",
        "required": ["study"],
        "anyOf": [{"required": ["regimen"]}, {"required": ["arms", "randomisation"]}],
        "additionalProperties": False,
        "properties": props,
        "$defs": dict(sorted(defs.items())),
    }


# --------------------------------------------------------------------------- documentation
#: The docs page that explains each section's options in depth.
DETAILS = {"tte": "statistics.md", "response": "imwg-response.md", "biomarker": "biomarker.md",
           "lines": "prior-therapy.md", "refractory": "prior-therapy.md", "eligibility": "prior-therapy.md",
           "exposure": "safety.md", "safety": "safety.md", "dose_rules": "safety.md", "methods": "statistics.md",
           "published": "report.md", "arms": "randomised.md", "randomisation": "randomised.md"}

def _core_model(name: str) -> Any | None:
    from mmtrial.protocol import model as pm
    from mmtrial.protocol.arms import ArmSpec
    from mmtrial.protocol.regimen import Regimen

    return {"study": pm.StudyInfo, "regimen": Regimen, "arms": ArmSpec, "dose_ladder": pm.LadderSpec,
            "visits": pm.VisitSchedule, "populations": pm.Populations}.get(name)


def _nested_models() -> dict[str, Any]:
    """Tables inside sections, documented under their dotted name."""
    from mmtrial.protocol.arms import CrossoverConfig
    from mmtrial.protocol.model import LevelSpec
    from mmtrial.protocol.regimen import Phase, RegimenDrug, StepUpDose

    out: dict[str, Any] = {"randomisation.crossover": CrossoverConfig,
                           "regimen.drugs[]": RegimenDrug, "regimen.phases[]": Phase,
                           "regimen.drugs[].step_up[]": StepUpDose, "dose_ladder.<DRUG>.levels[]": LevelSpec}
    for sec_name, field in (("tte", "endpoints.<PARAMCD>"), ("response", "confirmation"),
                            ("eligibility", "criteria[] / label_population[]")):
        m = section_model(sec_name)
        if m is None:
            continue
        sub = {"tte": "endpoints", "response": "confirmation", "eligibility": "criteria"}[sec_name]
        ann = m.model_fields[sub].annotation
        inner = getattr(ann, "__args__", (ann,))[-1]
        out[f"{sec_name}.{field}"] = inner
    return out


def keys_of(model: Any, exclude: Sequence[str] = ()) -> list[tuple[str, str, str]]:
    """(key, default, description) rows of a pydantic model or dataclass."""
    rows: list[tuple[str, str, str]] = []
    if isinstance(model, type) and issubclass(model, BaseModel):
        for k, f in model.model_fields.items():
            if k in exclude:
                continue
            key = f.alias or k
            d = "(required)" if f.is_required() else _fmt_default(f.get_default(call_default_factory=True))
            rows.append((key, d, f.description or ""))
        return rows
    docs = _numpy_option_docs(model.__doc__ or "")
    for f in dataclasses.fields(model):
        if f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            d = _fmt_default(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            d = _fmt_default(f.default_factory())
        else:
            d = "(required)"
        rows.append((f.name, d, docs.get(f.name, "")))
    return rows


def documented_keys() -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    """Every section and nested table: its docs page and (key, default, description) rows."""
    out: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}
    for name, spec in SECTIONS.items():
        m = _core_model(name) or section_model(name)
        if m is None:
            continue
        out[name] = (spec.docs_page, keys_of(m, spec.exclude))
    for dotted, m in _nested_models().items():
        out[dotted] = ("protocol.md", keys_of(m))
    return out


def defaults_markdown() -> str:
    """The reference of every protocol section, key and default (docs/protocol.md, generated)."""

    def cell(x: str) -> str:
        return x.replace("|", "\\|").replace("\n", " ")

    lines: list[str] = []
    for name, (page, rows) in documented_keys().items():
        if page != "protocol.md":
            lines += [f"### [{name}]", "", f"{SECTIONS[name].doc}: documented in [{page}]({page}).", ""]
            continue
        title = f"[{name}]" if name in SECTIONS else f"`{name}`"
        doc = SECTIONS[name].doc if name in SECTIONS else f"one entry of `{name}` in [{name.split('.')[0]}]"
        more = f" Details: [{DETAILS[name]}]({DETAILS[name]})." if name in DETAILS else ""
        lines += [f"### {title}", "", doc[0].upper() + doc[1:] + "." + more, "", "| key | default | meaning |",
                  "|---|---|---|"]
        lines += [f"| `{k}` | `{cell(d)}` | {cell(t)} |" for k, d, t in rows]
        lines.append("")
    return "\n".join(lines)
