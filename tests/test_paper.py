"""softcot/paper_tables.yaml against the shared notes ../shared/paper-tables.md, value by value.

The markdown is parsed here on its own (not with the code that wrote the YAML), so a typo on
either side shows up as a mismatch.
"""
import re
from pathlib import Path

import pytest

from softcot.paper import load_paper_tables, paper_presets, paper_rows

MD = Path(__file__).resolve().parents[1].parent / "shared" / "paper-tables.md"
NINE = ["HG", "HS", "HS32", "FG", "FS", "FS32", "SG", "SS", "SS32"]
ALL_PRESETS = {"llama3b": ["llama3b_gsm8k", "llama3b_math", "llama3b_deepscaler"],
               "llama8b": ["llama8b_gsm8k"], "qwen3b": ["qwen3b_math"]}
FAMILY = {"Llama3.2-3B-Inst": "llama3b", "Llama3B": "llama3b", "Llama3.1-8B-Inst": "llama8b",
          "Llama8B": "llama8b", "Qwen2.5-3B-Inst": "qwen3b", "Qwen3B": "qwen3b"}
DATA = {"gsm8k": "gsm8k", "math": "math", "deepscaler": "deepscaler", "dsr": "deepscaler"}


def _sections() -> dict:
    if not MD.is_file():
        pytest.skip(f"{MD} is absent (the shared paper notes are not part of a clean clone)")
    secs, cur = {}, None
    for line in MD.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^## Table (\d+) \S (.+)$", line)
        if head:
            cur = f"table{head.group(1)}"
            secs[cur] = {"title": head.group(2).strip(), "lines": []}
        elif cur and line.strip():
            secs[cur]["lines"].append(line)
    return secs


@pytest.fixture(scope="module")
def md():
    """{table: {"title", "columns", "rows": [{"model", "method", "values"}]}, "notes": [...]}."""
    secs = _sections()
    assert sorted(secs) == [f"table{i}" for i in range(1, 9)]
    out = {"notes": []}
    for name, sec in secs.items():
        rows, columns, model = [], None, None
        for line in sec["lines"]:
            if line.startswith("("):
                out["notes"].append(line.strip())
                continue
            if name in ("table1", "table2"):           # markdown pipe table
                cells = [c.strip() for c in line.strip()[1:-1].split("|")]
                if columns is None:
                    columns = cells[2:]
                elif not re.fullmatch(r"-+", cells[0]):
                    model = cells[0] or model
                    rows.append({"model": model, "method": cells[1], "values": cells[2:]})
            elif name == "table7":                     # Training | loc | temp | top-k | 3 x 3 values
                line = re.sub(r"\s+\([^()]*\)\s*$", "", line)
                parts = [p.strip() for p in line.split("|")]
                rows.append({"model": None, "method": None,
                             "values": parts[:4] + " ".join(parts[4:]).split()})
            else:                                      # "<label words> v v v | v v v | v v v"
                toks = line.replace("|", " ").split()
                label, values = toks[:-9], toks[-9:]
                if name in ("table6", "table8"):
                    rows.append({"model": None, "method": " ".join(label), "values": values})
                else:
                    rows.append({"model": label[0], "method": " ".join(label[1:]), "values": values})
        if columns is None:
            columns = ["Training", "Noise loc", "Temp", "Top-k"] + NINE if name == "table7" else NINE
        out[name] = {"title": sec["title"], "columns": columns, "rows": rows}
    return out


@pytest.fixture(scope="module")
def yml():
    return load_paper_tables()


@pytest.mark.parametrize("table", [f"table{i}" for i in range(1, 9)])
def test_table_equals_markdown(md, yml, table):
    want, got = md[table], yml[table]
    assert got["title"] == want["title"]
    assert got["columns"] == want["columns"]
    assert len(got["rows"]) == len(want["rows"])
    for i, (g, w) in enumerate(zip(got["rows"], want["rows"])):
        assert g.get("model") == w["model"], (table, i)
        assert g.get("method") == w["method"], (table, i)
        assert len(g["values"]) == len(want["columns"]), (table, i)
        assert all(isinstance(v, str) for v in g["values"]), (table, i)
        assert g["values"] == w["values"], (table, i, g.get("method"))


def test_row_counts(yml):
    assert [len(yml[f"table{i}"]["rows"]) for i in range(1, 9)] == [18, 18, 18, 18, 18, 4, 9, 4]


def test_notes_equal_markdown(md, yml):
    assert yml["notes"] == md["notes"]


@pytest.mark.parametrize("table", ["table1", "table2", "table3", "table4", "table5"])
def test_presets(yml, table):
    for row in yml[table]["rows"]:
        fam = FAMILY[row["model"]]
        if row["method"] == "no finetune":
            assert row["preset"] == ALL_PRESETS[fam]
        else:
            assert row["preset"] == f"{fam}_{DATA[row['method'].split()[0]]}"
            assert row["preset"] in ALL_PRESETS[fam]
    for name in ("table6", "table7", "table8"):
        assert all("preset" not in row for row in yml[name]["rows"])


def _value(table, model, method, column):
    t = load_paper_tables()[table]
    (row,) = [r for r in t["rows"] if r.get("model") == model and r.get("method") == method]
    return row["values"][t["columns"].index(column)]


def test_spot_checks():
    assert _value("table1", "Llama3.2-3B-Inst", "gsm8k soft", "GSM8K G1") == "77.2±0.9"
    assert _value("table3", "Llama3B", "gsm8k soft", "HG") == "77.2±0.9"
    assert _value("table1", "Qwen2.5-3B-Inst", "no finetune", "GSM8K G1") == "8.92"
    assert _value("table3", "Qwen3B", "no finetune", "HG") == "8.9"
    assert _value("table1", "Llama3.2-3B-Inst", "gsm8k soft", "GSM8K S1") == "70.6±3.4"
    assert _value("table3", "Llama3B", "gsm8k soft", "HS") == "70.5±3.3"   # the paper's own mismatch
    assert _value("table2", "Qwen3B", "math soft", "ARC NLL") == "5.49±0.64"
    assert _value("table5", "Llama3B", "dsr soft", "SS32") == "51.5±1.6"
    assert _value("table6", None, "gamma=3.0", "HS") == "37.8±4.4"
    assert _value("table8", None, "tau=0.1", "FS32") == "94.1±2.5"
    t7 = load_paper_tables()["table7"]
    assert t7["rows"][0]["values"][:5] == ["None", "Tokens", "1.0", "1", "71.0"]
    assert t7["rows"][1]["values"][3] == "-"
    assert t7["rows"][-1]["values"][3] == "50"
    assert t7["rows"][3]["values"][1] == "Final Hidden"


def test_paper_rows():
    rows = paper_rows("table1", "llama8b_gsm8k")
    assert len(rows) == 4
    assert [r["method"] for r in rows] == ["no finetune", "gsm8k hard", "gsm8k fuzzy", "gsm8k soft"]
    assert {r["model"] for r in rows} == {"Llama3.1-8B-Inst"}
    assert rows[3]["values"]["GSM8K G1"] == "82.6±1.6"
    assert set(rows[0]["values"]) == set(load_paper_tables()["table1"]["columns"])

    math3b = paper_rows("table4", "llama3b_math")
    assert [r["method"] for r in math3b] == ["no finetune", "math hard", "math fuzzy", "math soft"]
    dsr = paper_rows("table5", "llama3b_deepscaler")
    assert [r["method"] for r in dsr] == ["no finetune", "dsr hard", "dsr fuzzy", "dsr soft"]
    qwen = paper_rows("table2", "qwen3b_math")
    assert len(qwen) == 4 and qwen[0]["values"]["MMLU Acc"] == "68.08"
    assert paper_rows("table6", "llama3b_gsm8k") == []
    assert paper_presets() == sorted(p for ps in ALL_PRESETS.values() for p in ps)
    with pytest.raises(KeyError):
        paper_rows("table9", "llama3b_gsm8k")
    with pytest.raises(ValueError):
        paper_rows("table1", "nope")


def test_load_returns_a_copy():
    a = load_paper_tables()
    a["table1"]["rows"].clear()
    assert len(load_paper_tables()["table1"]["rows"]) == 18


def test_yaml_ships_with_the_package():
    from importlib import resources
    assert resources.files("softcot").joinpath("paper_tables.yaml").is_file()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'softcot = \[[^\]]*"\*\.yaml"', pyproject)
