"""Run names: the one parser and formatter of training variants and models (torch-free, no other imports).

A variant names one training setup:  <kind>[-<tag>]
    kind  one of KINDS                     soft
    tag   null                             soft-null          the null control (advantages shuffled)
          gamma<number> | tau<number>      fuzzy-gamma1.0     an ablation of the noise scale / CoT temperature
          lever<name>                      soft-leverB16      the training overrides of config study.levers.<name>
          scale<name>                      soft-scaled192     the default training, from the base pre-trained with
                                                              config study.scale.bases.<name> (a larger model)
A model is a base, "base" or "base-scale<name>" (the base pre-trained with study.scale.bases.<name>), or one
training run:  <variant>_seed<k>   e.g. fuzzy-tau0.01_seed2
Its training run lives in  train/<variant>/seed<k>,  a base in  <model>  (base, base-scaled192), under the
experiment's results folder.

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
_SCALE = r"[A-Za-z0-9]+"                               # the schema's pattern for study.scale.bases names
KIND_RE = "|".join(KINDS)
TAG_RE = rf"null|(?:{'|'.join(ABLATIONS)}){_NUMBER}|lever{_LEVER}|scale{_SCALE}"
VARIANT_RE = rf"(?:{KIND_RE})(?:-(?:{TAG_RE}))?"
SEED_RE = r"0|[1-9][0-9]*"
SCALE_RE = _SCALE
BASE_RE = rf"{BASE}(?:-scale{_SCALE})?"
MODEL_RE = rf"{BASE_RE}|{VARIANT_RE}_seed(?:{SEED_RE})"

_VARIANT = re.compile(rf"(?P<kind>{KIND_RE})(?:-(?P<tag>{TAG_RE}))?")
_MODEL = re.compile(rf"(?P<variant>{VARIANT_RE})_seed(?P<seed>{SEED_RE})")
_BASE = re.compile(rf"{BASE}(?:-scale(?P<scale>{_SCALE}))?")
_FORMS = (f"a variant is <kind>[-<tag>] with kind one of {', '.join(KINDS)} and tag one of null, "
          f"{', '.join(a + '<number>' for a in ABLATIONS)}, lever<letters/digits>, scale<letters/digits> (e.g. "
          f"soft, fuzzy-gamma1.0, soft-null, soft-leverB16, soft-scaled192); a model is {BASE}, "
          f"{BASE}-scale<letters/digits> or <variant>_seed<k> (e.g. soft_seed0)")


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
    def scale(self) -> str | None:
        """The name of the scaled base (config study.scale.bases) this variant trains from, or None."""
        return self.tag[len("scale"):] if self.tag.startswith("scale") else None

    @property
    def ablation(self) -> tuple[str, str] | None:
        """(parameter, value as written), e.g. ("gamma", "1.0"), or None."""
        for param in ABLATIONS:
            if self.tag.startswith(param):
                return param, self.tag[len(param):]
        return None


@dataclass(frozen=True)
class Model:
    """A base model (variant None; `scale` names a scaled base, None the default's) or one training run
    (variant, seed); str() gives its name."""
    variant: Variant | None = None
    seed: int | None = None
    scale: str | None = None

    def __post_init__(self):
        if ((self.variant is None) != (self.seed is None) or (self.seed is not None and self.seed < 0)
                or (self.scale is not None and (self.variant is not None or not re.fullmatch(_SCALE, self.scale)))):
            raise ValueError(f"bad model (variant={self.variant!r}, seed={self.seed!r}, scale={self.scale!r}): "
                             f"{_FORMS}")

    @property
    def is_base(self) -> bool:
        return self.variant is None

    @property
    def base(self) -> "Model":
        """The base model this one starts from (itself for a base): a scale variant's scaled base, else base."""
        if self.is_base:
            return self
        return Model(scale=self.variant.scale)

    def __str__(self) -> str:
        if self.is_base:
            return BASE if self.scale is None else f"{BASE}-scale{self.scale}"
        return f"{self.variant}_seed{self.seed}"


def null_variant(kind: str) -> Variant:
    return Variant(kind, "null")


def lever_variant(kind: str, lever: str) -> Variant:
    return Variant(kind, f"lever{lever}")


def scale_variant(kind: str, scale: str) -> Variant:
    return Variant(kind, f"scale{scale}")


def scaled_base(scale: str | None) -> str:
    """'d192' -> 'base-scaled192', the base pre-trained with config study.scale.bases.d192; None -> 'base'."""
    return str(Model(scale=scale))


def base_of(model: str) -> str:
    """The base model a model starts from: 'soft-scaled192_seed0' -> 'base-scaled192', 'soft_seed1' -> 'base'."""
    return str(parse_model(model).base)


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
    b = _BASE.fullmatch(name) if isinstance(name, str) else None
    if b is not None:
        return Model(scale=b["scale"])
    m = _MODEL.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"model name {name!r} not understood: {_FORMS}")
    return Model(parse_variant(m["variant"]), int(m["seed"]))


def model_name(variant: Variant | str, seed: int) -> str:
    """'soft', 0 -> 'soft_seed0' (checked)."""
    v = variant if isinstance(variant, Variant) else parse_variant(variant)
    return str(Model(v, int(seed)))


def method_of(model: str) -> str:
    """The row label of a model in tables and figures: its variant, or 'no finetune' for the base
    ('no finetune (scaled192)' for a scaled base)."""
    m = parse_model(model)
    if m.is_base:
        return BASE_METHOD if m.scale is None else f"{BASE_METHOD} (scale{m.scale})"
    return str(m.variant)


def train_subdir(model: str) -> str:
    """'soft-null_seed1' -> 'train/soft-null/seed1', the training run's folder under results/<experiment>."""
    m = parse_model(model)
    if m.is_base:
        raise ValueError(f"model {model!r} has no training run (it is a base); only <variant>_seed<k> models do")
    return f"train/{m.variant}/seed{m.seed}"


def base_subdir(model: str) -> str:
    """'base' -> 'base', 'base-scaled192' -> 'base-scaled192': a pre-trained base's folder under
    results/<experiment> (toy data only; a preset's base is a hub id)."""
    m = parse_model(model)
    if not m.is_base:
        raise ValueError(f"model {model!r} is a training run, not a base; its base is {str(m.base)!r}")
    return str(m)
