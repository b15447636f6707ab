"""The DAG explorer in a real browser: JupyterLab runs notebook 03, Voila serves the app view.

Two walks, one per server (xdist may run them side by side); each is a sequence of named steps,
and a failure names its step and leaves screenshots in test-artifacts/browser/. Every LR the page
shows is checked against ``archscale lr --json`` for the same graph.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.browser
WAIT_MS = 60_000
EXPLORER = ".archscale-explorer"


def expect(locator):
    """Playwright's polling assertions (imported late: collecting this file must not need Playwright)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def cli_lr(code: str, arch: str = "mlp", base_lr: float = 0.1) -> float:
    """The predicted LR as the command line prints it (``archscale lr --json``)."""
    argv = [sys.executable, "-c", "import sys; from archscale.cli import main; sys.exit(main())",
            "lr", "--dag", code, "--arch", arch, "--base-lr", str(base_lr), "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)["lr"]


def lr_shown(page) -> str:
    return page.locator(f"{EXPLORER} .archscale-lr").first.inner_text().strip()


def expect_lr(page, expected: float, timeout: float = 30.0) -> None:
    """Wait until the live readout shows ``expected`` (to its six significant digits)."""
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = lr_shown(page)
        try:
            if abs(float(shown) - expected) <= 1e-5 * expected:
                return
        except ValueError:
            pass
        page.wait_for_timeout(150)
    pytest.fail(f"LR readout shows {shown!r}, archscale lr gives {expected:.6g}", pytrace=False)


def type_code(page, code: str) -> None:
    field = page.locator(f"{EXPLORER} .archscale-code-field input")
    field.fill(code)
    field.press("Enter")


def wait_idle(page) -> None:
    """Wait for the redraw to finish (no busy class) and the kernel to be idle."""
    page.wait_for_selector(f"{EXPLORER}:not(.archscale-busy)", timeout=WAIT_MS)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached",
                           timeout=WAIT_MS)


def new_page(chromium, pages, label, width=1400, height=1000):
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda msg: page.console_lines.append(f"{msg.type}: {msg.text}"))
    pages[label] = page
    return page


def kernel_ids(lab) -> list[str]:
    with urllib.request.urlopen(f"{lab.url}/api/kernels?token={lab.token}", timeout=10) as response:
        return [k["id"] for k in json.load(response)]


@contextmanager
def step(name: str):
    """One named step of a walk: a failure inside it says which step it was."""
    try:
        yield
    except Exception as err:
        raise AssertionError(f"step {name!r} failed: {err}") from err


def open_and_run_notebook(page, lab) -> None:
    """Open notebook 03 (smoke preset) in JupyterLab and run every cell."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{lab.url}/lab/tree/notebooks/03_dag_paths.ipynb?token={lab.token}")
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=WAIT_MS * 2)
    for _attempt in range(3):  # a click before the notebook takes focus can be lost
        page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        try:
            page.get_by_text("[1]:", exact=True).wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    page.wait_for_selector(f"{EXPLORER} .archscale-lr", timeout=WAIT_MS * 2)
    wait_idle(page)


def check_live_explorer(page) -> None:
    assert page.get_by_text("Error displaying widget").count() == 0
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert not [t for t in errors.all_inner_texts() if "Error" in t or "Traceback" in t]
    expect_lr(page, cli_lr("2_22_222"))
    assert page.locator(f"{EXPLORER} [title='null']").count() == 0
    for control in (".archscale-edge-0-1 select", ".archscale-code-field input", ".archscale-depth label"):
        assert page.locator(f"{EXPLORER} {control}").get_attribute("title"), f"{control} has no tooltip"
    assert page.locator(f"{EXPLORER} .archscale-view img").is_visible()
    copy = page.locator(".archscale-snapshot")  # the static copy beside the widget stays hidden
    assert copy.count() == 1 and not copy.is_visible()


def check_edge_dropdown(page) -> None:
    type_code(page, "2_22_222")
    expect_lr(page, cli_lr("2_22_222"))
    page.locator(f"{EXPLORER} .archscale-edge-0-2 select").select_option("skip")
    expect_lr(page, cli_lr("2_12_222"))
    expect(page.locator(f"{EXPLORER} .archscale-code-field input")).to_have_value("2_12_222", timeout=WAIT_MS)


def check_depth_slider(page) -> None:
    type_code(page, "2_02_002")
    expect_lr(page, cli_lr("2_02_002"))
    page.locator(f"{EXPLORER} .archscale-depth .widget-readout").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("5")
    page.keyboard.press("Enter")
    expect_lr(page, cli_lr("2_02_002_0002_00002"))
    expect(page.locator(f"{EXPLORER} .archscale-edge-4-5")).to_have_count(1, timeout=WAIT_MS)


def check_code_field(page) -> None:
    type_code(page, "1_21_212")
    expect_lr(page, cli_lr("1_21_212"))
    type_code(page, "2_3")
    message = page.locator(f"{EXPLORER} .archscale-code-error")
    message.wait_for(timeout=WAIT_MS)
    assert "still showing 1_21_212" in message.inner_text()
    expect_lr(page, cli_lr("1_21_212"))


def check_all_zero_graph(page) -> None:
    type_code(page, "0_00_000")
    message = page.locator(f"{EXPLORER} .archscale-readout.archscale-error")
    message.wait_for(timeout=WAIT_MS)
    assert "cannot be trained" in message.inner_text() and lr_shown(page) == "—"
    wait_idle(page)
    # the view is redrawn after the readout; wait for it rather than read it once
    expect(page.locator(f"{EXPLORER} .archscale-view table")).to_have_count(0, timeout=WAIT_MS)


def check_nothing_clipped(page) -> None:
    """At 1400 and 420 px a depth-8 graph's dropdowns wrap; no readout, label or button is cut."""
    deep = "_".join("2" * i for i in range(1, 9))
    type_code(page, deep)
    expect_lr(page, cli_lr(deep))
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()  # hide the file browser
    for width in (1400, 420):
        page.set_viewport_size({"width": width, "height": 1000})
        wait_idle(page)
        clipped = page.evaluate(f"""() => {{
            const root = document.querySelector('{EXPLORER}');
            const out = [];
            root.querySelectorAll('.widget-readout, .widget-label, .archscale-lr, button').forEach(el => {{
                if (el.offsetParent && el.scrollWidth > el.clientWidth + 1) out.push(el.textContent);
            }});
            const box = root.getBoundingClientRect();
            const area = root.closest('.jp-OutputArea-output') || root.parentElement;
            if (box.right > area.getBoundingClientRect().right + 1) out.push('explorer wider than its cell');
            return out;
        }}""")
        assert not clipped, f"clipped at {width} px: {clipped}"
        toggles = page.locator(f"{EXPLORER} .archscale-arch button")
        tops = {round(toggles.nth(i).bounding_box()["y"]) for i in range(toggles.count())}
        assert len(tops) == 1, f"arch buttons stack at {width} px"
    page.set_viewport_size({"width": 1400, "height": 1000})


def check_reopened_without_kernel(page, lab, chromium, pages) -> None:
    """Save, shut the kernel down, reopen: the static copy shows the last graph's readout and figure."""
    type_code(page, "2_12_202")
    expect_lr(page, cli_lr("2_12_202"))
    wait_idle(page)
    # the hidden static copy is rewritten by the (debounced) redraw: save only once it holds this graph
    expect(page.locator(".archscale-snapshot .archscale-lr")).to_have_text(f"{cli_lr('2_12_202'):.6g}",
                                                                         timeout=WAIT_MS)
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").first.click()
    page.locator(".jp-mod-dirty").wait_for(state="detached", timeout=WAIT_MS)  # saved
    for kernel in kernel_ids(lab):
        req = urllib.request.Request(f"{lab.url}/api/kernels/{kernel}?token={lab.token}", method="DELETE")
        urllib.request.urlopen(req, timeout=30).close()
    reopened = new_page(chromium, pages, "reopened")
    reopened.goto(f"{lab.url}/lab/tree/notebooks/03_dag_paths.ipynb?reset&token={lab.token}")
    copy = reopened.locator(".archscale-snapshot")
    copy.wait_for(state="attached", timeout=WAIT_MS)
    copy.scroll_into_view_if_needed()
    assert copy.is_visible() and copy.locator("img").is_visible()
    shown = copy.locator(".archscale-lr").text_content().strip()
    assert shown == f"{cli_lr('2_12_202'):.6g}", f"static copy shows LR {shown!r}"
    reopened.context.close()


def test_explorer_walk_in_jupyterlab(lab, chromium, pages):
    """Notebook 03 runs with no widget error; edges, depth and code move the LR as archscale lr does;
    the all-zero graph explains itself; nothing is clipped; a reopened notebook shows the static copy."""
    page = new_page(chromium, pages, "lab")
    with step("open notebook 03 and run all cells"):
        open_and_run_notebook(page, lab)
    with step("live explorer, no widget error, tooltips, hidden static copy"):
        check_live_explorer(page)
    with step("edge dropdown"):
        check_edge_dropdown(page)
    with step("depth slider"):
        check_depth_slider(page)
    with step("code field"):
        check_code_field(page)
    with step("all-zero graph"):
        check_all_zero_graph(page)
    with step("nothing clipped at 1400 and 420 px"):
        check_nothing_clipped(page)
    with step("reopened without its kernel"):
        check_reopened_without_kernel(page, lab, chromium, pages)


def test_app_view_renders_and_answers(voila, chromium, pages):
    """The Voila app shows the explorer without code, and it answers like archscale lr."""
    page = new_page(chromium, pages, "app")
    page.goto(voila.url + "/")
    page.wait_for_selector(f"{EXPLORER} .archscale-lr", timeout=WAIT_MS * 2)
    assert page.get_by_text("DagExplorer(").count() == 0  # the app shows no code
    expect_lr(page, cli_lr("2_22_222"))
    page.locator(f"{EXPLORER} .archscale-edge-0-3 select").select_option("zero")
    expect_lr(page, cli_lr("2_22_022"))
