"""The HTML reports: the builder's escaping and tables, and the backtest report rendered offline
by a real browser (Debian's chromium, driven by playwright) that must draw every chart, log no
error and request nothing but the file itself."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pytest

from autoopt.backtest.compare import compare_policies
from autoopt.backtest.metrics import fill_metrics
from autoopt.backtest.result import BacktestResult, Marker, PolicyResult, SymbolPath
from autoopt.errors import ConfigError
from autoopt.reports.backtest import backtest_report, write_backtest_report
from autoopt.reports.html import Column, Report, esc, paragraphs, table_html

CHROMIUM = Path(os.environ.get("AUTOOPT_CHROMIUM", "/usr/bin/chromium"))
HOSTILE = '<script>window.__pwned = 1</script><img src="http://203.0.113.9/x.png">'
DAY_NS = 86_400 * 10**9
START_NS = 1_704_067_200 * 10**9  # 2024-01-01


def _path(
    symbol: str, returns: np.ndarray, markers: list[Marker], retrain_every: int
) -> SymbolPath:
    n = returns.size
    ts = [START_NS + i * DAY_NS for i in range(n)]
    ages = [
        float((i % retrain_every) * 86_400) if retrain_every else i * 86_400.0 for i in range(n)
    ]
    ages[0] = float("nan")  # no model yet on the first bar
    return SymbolPath(
        symbol=symbol,
        ts=ts,
        returns=returns.tolist(),
        positions=np.sign(returns + 1e-9).tolist(),
        model_age_s=ages,
        release_ids=["" if i == 0 else f"rel-{i // max(retrain_every, 1)}" for i in range(n)],
        markers=markers,
        periods_per_year=365.0,
    )


def _policy(name: str, seed: int, edge: float, retrain_every: int) -> PolicyResult:
    rng = np.random.default_rng(seed)
    market = np.random.default_rng(0).normal(0.0, 0.01, (2, 400))
    paths = {}
    for k, symbol in enumerate(("BTCUSDT", "ETHUSDT")):
        r = 0.6 * market[k] + rng.normal(edge, 0.006, 400)
        markers: list[Marker] = []
        if retrain_every:
            for i in range(retrain_every, 400, retrain_every):
                ts = START_NS + i * DAY_NS
                markers.append(Marker(ts=ts, kind="retrain", text=f"{name}: scheduled"))
                if (i // retrain_every) % 3 == 2:
                    reason = f"gate refused: DSR 0.41 < 0.95 {HOSTILE}"
                    markers.append(Marker(ts=ts + 3600 * 10**9, kind="refusal", text=reason))
                else:
                    markers.append(
                        Marker(
                            ts=ts + 3600 * 10**9, kind="release", text="released", release_id="x"
                        )
                    )
        paths[symbol] = _path(symbol, r, markers, retrain_every)
    result = PolicyResult(
        policy=name,
        settings={"every": retrain_every},
        paths=paths,
        retrains=len(range(retrain_every, 400, retrain_every)) if retrain_every else 0,
    )
    return fill_metrics(result)


def _result() -> BacktestResult:
    policies = [
        _policy("never", 1, 0.0, 0),
        _policy("weekly", 2, 0.0015, 7),
        _policy("nightly", 3, 0.0, 1),
    ]
    return BacktestResult(
        run_digest="sha256:" + "ab" * 32,
        source="synthetic <test>",
        symbols=["BTCUSDT", "ETHUSDT"],
        start_ns=START_NS,
        end_ns=START_NS + 400 * DAY_NS,
        warmup=0.3,
        seed=0,
        trials=8,
        train_delay="1h",
        policies=policies,
        comparison=compare_policies(policies, n_boot=500),
    )


def test_table_and_paragraphs_escape_every_cell() -> None:
    table = table_html(
        [{"name": "<b>x</b>", "v": 0.123456}, {"name": "a & b", "v": float("nan")}],
        [Column("name", "na<me", str, numeric=False), Column("v", "value"), Column("w", "w")],
    )
    assert "<b>x</b>" not in table and "&lt;b&gt;x&lt;/b&gt;" in table
    assert "na&lt;me" in table and "a &amp; b" in table
    assert "0.1235" in table and "–" in table  # 4 significant digits; NaN as a dash
    assert '<td class="num"></td>' in table  # a missing key is an empty cell
    assert paragraphs(['"quoted" <i>']) == "<p>&quot;quoted&quot; &lt;i&gt;</p>"


def test_report_refuses_unescaped_text_and_unwritable_paths(tmp_path: Path) -> None:
    report = Report("t").section("s", "<i>raw</i>")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not escaped"):
        report.render()
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ConfigError, match="cannot write the report to .*file/report.html"):
        Report("t", footer=["d"]).section("s", esc("x")).write(blocked / "report.html")


def test_backtest_report_is_one_offline_page_with_escaped_text() -> None:
    result = _result()
    page = backtest_report(result)
    assert page.count("<script") == page.count("</script>")
    assert "<script src" not in page and '<script type="text/javascript" src' not in page
    assert HOSTILE not in page  # the refusal reason, the source: escaped everywhere
    assert "synthetic &lt;test&gt;" in page
    assert result.run_digest in page
    for line in result.comparison.summary:  # type: ignore[union-attr]
        assert html.escape(line) in page


def _chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install it (apt-get install -y chromium, as "
            ".ci/run does) or point AUTOOPT_CHROMIUM at a chromium binary"
        )
    return CHROMIUM


# hover the first refusal marker of the pooled equity chart; return the hover label's text
_HOVER_REFUSAL = """() => {
  const gd = document.querySelectorAll('div.plotly-graph-div')[0];
  const curve = gd.data.findIndex(t => t.name === 'weekly: refusal');
  Plotly.Fx.hover(gd, [{curveNumber: curve, pointNumber: 0}]);
  return gd.querySelector('.hoverlayer').textContent;
}"""


def test_backtest_report_renders_offline_in_a_real_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    result = _result()
    out = write_backtest_report(result, tmp_path / "nested" / "report.html")
    url = out.resolve().as_uri()
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(_chromium()), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(
                "**/*",
                lambda route: route.continue_() if route.request.url == url else route.abort(),
            )
            page.goto(url, wait_until="load", timeout=60_000)
            plots = page.locator("div.plotly-graph-div")
            n_plots = plots.count()
            page.wait_for_function(
                f"document.querySelectorAll('div.plotly-graph-div .main-svg').length >= {n_plots}",
                timeout=60_000,
            )
            drawn = page.evaluate(
                "Array.from(document.querySelectorAll('div.plotly-graph-div'))"
                ".map(d => d.querySelectorAll('.main-svg').length > 0"
                " && d.querySelectorAll('.scatterlayer .trace').length > 0)"
            )
            pwned = page.evaluate("window.__pwned === undefined")
            hover = page.evaluate(_HOVER_REFUSAL)
            text = page.inner_text("body")
            if os.environ.get("AUTOOPT_REPORT_SCREENSHOT"):
                page.screenshot(path=os.environ["AUTOOPT_REPORT_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
    # pooled equity, pooled drawdown, per-symbol selector, model age
    assert n_plots == 4 and all(drawn), drawn
    assert errors == []
    assert requests == [url]  # offline: the file and nothing else
    assert pwned  # the refusal reason was shown, not run
    summary = result.comparison.summary  # type: ignore[union-attr]
    assert summary and all(line in text for line in summary)
    assert "weekly beats never after costs" in text
    assert "gate refused: DSR 0.41 < 0.95 <script>" in text  # the reason, shown literally
    assert f"refusal: BTCUSDT: gate refused: DSR 0.41 < 0.95 {HOSTILE}" in hover  # on hover
