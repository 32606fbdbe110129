"""softcot.estimators: the sampled-settings table of the estimators comparison, on a synthetic results tree
(values computed by hand: means and sample standard deviations over seeds, '-' where a setting is missing)."""
from __future__ import annotations

import json

from softcot.estimators import main


def summary(path, settings: dict) -> str:
    """Write a summary.json with {setting: (pass1, pass@4)}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": {s: {"pass1": p1, "pass_at_k": {"1": p1, "4": p4}}
                                             for s, (p1, p4) in settings.items()}}))
    return str(path)


def test_sampled_table_has_every_method_and_every_sampled_setting(tmp_path):
    r = tmp_path / "res"
    inputs = [
        summary(r / "eval/base/test/summary.json", {"hard_greedy": (0.5, 0.5), "hard_sample": (0.25, 0.5)}),
        summary(r / "estimators/eval/base/test/summary.json", {"multiplex_sample": (0.3, 0.6),
                                                               "gumbel_sample": (0.2, 0.4)}),
        summary(r / "eval/soft_seed0/test/summary.json", {"hard_sample": (0.5, 0.75), "soft_sample": (0.4, 0.8)}),
        summary(r / "eval/multiplex_seed0/test/summary.json", {"hard_sample": (0.5, 1.0)}),
        summary(r / "eval/multiplex_seed1/test/summary.json", {"hard_sample": (0.7, 1.0)}),
        summary(r / "estimators/eval/multiplex_seed0/test/summary.json", {"multiplex_sample": (0.6, 0.9)}),
        summary(r / "estimators/eval/multiplex_seed1/test/summary.json", {"multiplex_sample": (0.8, 0.9)}),
    ]
    out = tmp_path / "sampled"
    assert main(["--inputs", *inputs, "--test-sets", "test", "--out", str(out)]) == 0
    md = (out.with_suffix(".md")).read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0] == ("| method | hard_sample S1 | soft_sample S1 | multiplex_sample S1 | gumbel_sample S1 | "
                        "hard_sample S4 | soft_sample S4 | multiplex_sample S4 | gumbel_sample S4 |")
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[1:]}
    assert list(rows) == ["no finetune", "soft", "multiplex"]
    assert rows["no finetune"][:4] == ["25.0", "-", "30.0", "20.0"]
    assert rows["soft"][1] == "40.0" and rows["soft"][2] == "-"
    # two seeds: mean ± sample std (0.6, 0.8 -> 70.0 ± 14.1)
    assert rows["multiplex"][0] == "60.0±14.1" and rows["multiplex"][2] == "70.0±14.1"
    assert rows["multiplex"][6] == "90.0±0.0"
    csv = out.with_suffix(".csv").read_text().splitlines()
    assert csv[0].startswith("dataset,method,hard_sample S1") and len(csv) == 4
