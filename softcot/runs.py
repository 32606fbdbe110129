"""Run names: the one parser and formatter of training variants and models (torch-free, no other imports).

A variant names one training setup:  <kind>[-<tag>]
    kind  one of KINDS                     soft
    tag   null                             soft-null          the null control (advantages shuffled)
          gamma<number> | tau<number>      fuzzy-gamma1.0     an ablation of the noise scale / CoT temperature
          lever<name>                      soft-leverB16      the training overrides of config study.levers.<name>
A model is "base" or one training run:  <variant>_seed<k>   e.g. fuzzy-tau0.01_seed2
Its training run lives in  train/<variant>/seed<k>  under the experiment's results folder.

The Snakemake wildcard regexes are built from the same pieces, so adding a kind to KINDS is the only edit
that names need.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("hard", "soft", "fuzzy", "multiplex", "gumbel")     # multiplex, gumbel: beyond the paper
ABLATIONS = ("gamma", "tau")            # mode parameters with an ablation grid (config `ablations`)
BASE = "base"
BASE_METHOD = "no finetune"             # the base model's label in tables and figures

_NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?"      # what str() of a non-negative YAML int or float gives
_LEVER = r"[A-Za-z0-9]+"                               # the schema's pattern for study.levers names
KIND_RE = "|".join(KINDS)
TAG_RE = rf"null|(?:{'|'.join(ABLATIONS)}){_NUMBER}|lever{_LEVER}"
VARIANT_RE = rf"(?:{KIND_RE})(?:-(?:{TAG_RE}))?"
SEED_RE = r"0|[1-9][0-9]*"
MODEL_RE = rf"{BASE}|{VARIANT_RE}_seed(?:{SEED_RE})"

_VARIANT = re.compile(rf"(?P<kind>{KIND_RE})(?:-(?P<tag>{TAG_RE}))?")
_MODEL = re.compile(rf"(?P<variant>{VARIANT_RE})_seed(?P<seed>{SEED_RE})")
_FORMS = (f"a variant is <kind>[-<tag>] with kind one of {', '.join(KINDS)} and tag one of null, "
          f"{', '.join(a + '<number>' for a in ABLATIONS)}, lever<letters/digits> (e.g. soft, fuzzy-gamma1.0, "
          f"soft-null, soft-leverB16); a model is {BASE} or <variant>_seed<k> (e.g. soft_seed0)")


@dataclass(frozen=True)
class Variant:
    """One training setup; str() gives its name."""
    kind: str
    tag: str = ""

    def __post_init__(self):
        if self.kind not in KINDS or (self.tag and not re.fullmatch(TAG_RE, self.tag)):
            raise ValueError(f"bad variant (kind={self.kind!r}, tag={self.tag!r}): {_FORMS}")

    def __str__(self) -> str:
        return f"{self.kind}-{self.tag}" if self.tag else self.kind

    @property
    def null(self) -> bool:
        return self.tag == "null"

    @property
    def lever(self) -> str | None:
        """The study lever's name, or None."""
        return self.tag[len("lever"):] if self.tag.startswith("lever") else None

    @property
    def ablation(self) -> tuple[str, str] | None:
        """(parameter, value as written), e.g. ("gamma", "1.0"), or None."""
        for param in ABLATIONS:
            if self.tag.startswith(param):
                return param, self.tag[len(param):]
        return None


@dataclass(frozen=True)
class Model:
    """The base model (variant None) or one training run (variant, seed); str() gives its name."""
    variant: Variant | None = None
    seed: int | None = None

    def __post_init__(self):
        if (self.variant is None) != (self.seed is None) or (self.seed is not None and self.seed < 0):
            raise ValueError(f"bad model (variant={self.variant!r}, seed={self.seed!r}): {_FORMS}")

    @property
    def is_base(self) -> bool:
        return self.variant is None

    def __str__(self) -> str:
        return BASE if self.is_base else f"{self.variant}_seed{self.seed}"


def null_variant(kind: str) -> Variant:
    return Variant(kind, "null")


def lever_variant(kind: str, lever: str) -> Variant:
    return Variant(kind, f"lever{lever}")


def ablation_variant(kind: str, param: str, value) -> Variant:
    """`value` as the config holds it (1.0, 0.01): the name keeps str(value), e.g. fuzzy-gamma1.0."""
    if param not in ABLATIONS:
        raise ValueError(f"ablation parameter {param!r}: allowed {', '.join(ABLATIONS)}")
    return Variant(kind, f"{param}{value}")


def parse_variant(name: str) -> Variant:
    m = _VARIANT.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"variant name {name!r} not understood: {_FORMS}")
    return Variant(m["kind"], m["tag"] or "")


def parse_model(name: str) -> Model:
    if name == BASE:
        return Model()
    m = _MODEL.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"model name {name!r} not understood: {_FORMS}")
    return Model(parse_variant(m["variant"]), int(m["seed"]))


def model_name(variant: Variant | str, seed: int) -> str:
    """'soft', 0 -> 'soft_seed0' (checked)."""
    v = variant if isinstance(variant, Variant) else parse_variant(variant)
    return str(Model(v, int(seed)))


def method_of(model: str) -> str:
    """The row label of a model in tables and figures: its variant, or 'no finetune' for the base."""
    m = parse_model(model)
    return BASE_METHOD if m.is_base else str(m.variant)


def train_subdir(model: str) -> str:
    """'soft-null_seed1' -> 'train/soft-null/seed1', the training run's folder under results/<experiment>."""
    m = parse_model(model)
    if m.is_base:
        raise ValueError(f"model {BASE!r} has no training run; only <variant>_seed<k> models do")
    return f"train/{m.variant}/seed{m.seed}"
