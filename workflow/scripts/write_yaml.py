"""write_yaml.py OUT JSON [KEY=VALUE ...]: write a JSON config section (as passed in params) to YAML, atomically."""
import json
import sys

import yaml

from softcot.config import apply_overrides
from softcot.io import write_text

out, text, *overrides = sys.argv[1:]
data = apply_overrides(json.loads(text), overrides)
write_text(out, yaml.safe_dump(data, sort_keys=True))
