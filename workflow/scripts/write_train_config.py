"""write_train_config.py OUT SETTINGS_JSON MODEL_JSON: the train YAML from config sections, atomically.

The model, data paths, mode, seed and output folders are filled in by the train rule's command line.
"""
import json
import sys

import yaml

from softcot.io import write_text

out, settings, model = sys.argv[1:]
cfg = json.loads(settings)
model = json.loads(model)
if model:
    cfg["model"] = {**model, **cfg.get("model", {})}
write_text(out, yaml.safe_dump(cfg, sort_keys=True))
