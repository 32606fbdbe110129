"""The Snakemake report: a landing page (workflow/report/workflow.rst) and the tables embedded as HTML, built with
`snakemake --report` over a synthetic results tree and opened in headless Chromium when it is installed."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from softcot import figures, tables
from tests.synthetic_results import eval_paths, make_tree, ood_paths, train_dirs

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
LANDING = "softcot: reinforcement learning of continuous chains of thought"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """report.html of the CI config's `all` target; every file it marks for the report made from synthetic runs."""
    work = tmp_path_factory.mktemp("report")
    for name in ("Snakefile", "config.yaml", "workflow", "config", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    res = make_tree(work / "results" / "ci")
    sets = ["test", "test_hard"]
    for which, inputs in (("table1", eval_paths(res)), ("table3_5", eval_paths(res)), ("table2", ood_paths(res))):
        tables.main([which, "--inputs", *inputs, "--test-sets", *sets, "--out", str(res / "tables" / which)])
    for which, inputs in (("fig2", train_dirs(res)), ("fig3", eval_paths(res)), ("fig4", eval_paths(res))):
        figures.build(which, inputs, str(res / "figures" / which), sets, {})
    p = subprocess.run(["snakemake", "--report", "report.html", "--configfile", "config/ci.yaml"], cwd=work,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    return work / "report.html"


def test_report_holds_the_landing_page_and_html_tables(report):
    text = report.read_text()
    assert LANDING in text and "How to read it" in text
    assert "Training modes: hard, soft, fuzzy; seeds: 0" in text           # rendered from the config
    for t in ("table1", "table2", "table3_5"):
        assert f"results/ci/tables/{t}.html" in text
    assert "results/ci/tables/table1.md" not in text                       # the Markdown stays out of it


def _chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000",
                           "--virtual-time-budget=15000", *args, url], capture_output=True, text=True, timeout=180)


# Opens the Tables category and the first table's view, as a reader would (the report is a single-page app).
NAVIGATE = """<script>
function byText(t){ const e=[...document.querySelectorAll('a,button,li,span,div')].filter(x=>x.textContent.trim()===t);
                    return e[e.length-1]; }
setTimeout(()=>{ byText('Tables').click(); setTimeout(()=>{
  let row=byText('results/ci/tables/table1.html');
  while (row && row.querySelectorAll('a').length==0) row=row.parentElement;
  row.querySelector('a').dispatchEvent(new MouseEvent('click',{bubbles:true})); },800) },1500);
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt install chromium); the report "
                                             "is still built and checked as text by the test above")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "landing.png"
    p = _chromium(tmp_path, report.as_uri(), f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 20_000, p.stderr[-2000:]
    dom = _chromium(tmp_path, report.as_uri(), "--dump-dom").stdout
    assert "How to read it" in dom
    nav = tmp_path / "report_nav.html"
    html = report.read_text()
    i = html.rfind("</body>")
    nav.write_text(html[:i] + NAVIGATE + html[i + len("</body>"):])
    dom = _chromium(tmp_path, nav.as_uri(), "--dump-dom").stdout
    assert "filename=table1.html" in dom                                   # the table's own HTML, in its view
