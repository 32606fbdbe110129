"""write_eval_config.py OUT EVAL_JSON MODEL_JSON: the evaluate YAML from config sections, atomically."""
import json
import sys

import yaml

from softcot.io import write_text

out, ev, model = sys.argv[1:]
cfg = json.loads(ev)
cfg.pop("ood_limit", None)
model = json.loads(model)
if model:
    cfg["model"] = {**model, **cfg.get("model", {})}
write_text(out, yaml.safe_dump(cfg, sort_keys=True))
