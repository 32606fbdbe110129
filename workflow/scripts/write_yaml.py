"""write_yaml.py OUT SECTION_JSON [--model MODEL_JSON] [KEY=VALUE ...]: one config section as YAML, atomically.

The workflow's only config writer. Rules pass their config section as JSON in params, so that a rule reruns
only when its own section changes:
  toy_data       data.toy
  pretrain_base  pretrain, with threads=N
  train_config   train.settings, with --model base.model (a preset's model) beneath the section's own `model`
  eval_config    eval, the same way
KEY=VALUE overrides (values parsed as YAML, dotted keys for nested ones) apply last. Keys are sorted, so
the bytes depend on the content alone.
"""
import argparse
import json

import yaml

from softcot.config import apply_overrides
from softcot.io import write_text


def _json_object(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"write_yaml.py: {what} is not valid JSON ({e.msg}): {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"write_yaml.py: {what} must be a JSON object, got {type(data).__name__}")
    return data


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="write_yaml.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the YAML file to write")
    ap.add_argument("section", help="the config section, a JSON object")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    ap.add_argument("--model", default="{}", help="JSON object merged under the section's `model` key "
                                                  "(the section's own keys win); {} adds nothing")
    args = ap.parse_intermixed_args(argv)
    cfg = _json_object(args.section, "SECTION_JSON")
    model = _json_object(args.model, "--model")
    if model:
        cfg["model"] = {**model, **cfg.get("model", {})}
    write_text(args.out, yaml.safe_dump(apply_overrides(cfg, args.overrides), sort_keys=True))


if __name__ == "__main__":
    main()
