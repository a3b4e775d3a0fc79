"""Render the project's DVC plots to a self-contained HTML page, and optionally screenshot it.

    npm install --prefix /tmp/vegajs vega@5 vega-lite@5 vega-embed@6
    python docs/render_plots.py --js /tmp/vegajs/node_modules --screenshot plots.png
    python docs/render_plots.py --js /tmp/vegajs/node_modules --diff HEAD~1 HEAD   # `dvc plots diff`

`dvc plots show` writes an HTML page that loads vega, vega-lite and vega-embed from a CDN, so it
stays blank without network access. This script hands DVC an HTML template (`--html-template`)
with local copies of the three scripts inlined, so the page renders anywhere. Take current 5.x /
6.x releases: the vega 5.20.2 that DVC's page names stops at "regeneratorRuntime is not defined"
when loaded from a file. `--js` is a folder holding `vega.min.js`, `vega-lite.min.js` and
`vega-embed.min.js`, searched recursively (an npm `node_modules` will do). `--screenshot` then
renders the page with headless Chromium (`chromium`, or `--chromium PATH`) into a PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")  # in load order
# Placeholders dvc-render fills in an HTML template; an inlined script must not contain them.
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")


def find_scripts(js_dir: Path) -> list[Path]:
    """The three scripts under `js_dir`, in load order; SystemExit naming any missing one."""
    found = []
    for name in SCRIPTS:
        hits = sorted(js_dir.rglob(name), key=lambda p: len(p.parts))
        if not hits:
            raise SystemExit(f"{name} not found under {js_dir} (npm install vega vega-lite vega-embed there)")
        found.append(hits[0])
    return found


def html_template(scripts: list[Path]) -> str:
    """A page template for `dvc plots --html-template`: the scripts inline, then DVC's plots."""
    inline = []
    for path in scripts:
        code = path.read_text(encoding="utf8")
        if "</script" in code.lower() or any(p in code for p in PLACEHOLDERS):
            raise SystemExit(f"{path} cannot be inlined: it holds '</script' or a dvc-render placeholder")
        inline.append(f"<script>/* {path.name} */\n{code}\n</script>")
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>DVC plots</title>\n'
        + "\n".join(inline)
        + "\n<style>body { font-family: sans-serif; } img { max-width: 100%; } table { border-spacing: 15px; }</style>"
        + "\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )


def render(project: Path, template: Path, out: Path, diff: list[str] | None, targets: list[str]) -> Path:
    """Run `dvc plots show` (or `dvc plots diff REVS`) in `project` with `template`; the index.html path."""
    if diff is None:
        command = ["plots", "show", *targets]
    else:
        command = ["plots", "diff", *diff] + (["--targets", *targets] if targets else [])
    command += ["--html-template", str(template), "-o", str(out)]
    done = subprocess.run([sys.executable, "-m", "dvc", *command], cwd=project, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dvc {' '.join(command)} failed:\n{done.stderr or done.stdout}")
    if done.stderr.strip():  # e.g. plots DVC could not load: worth seeing, not fatal
        print(done.stderr.strip(), file=sys.stderr)
    return out / "index.html"


def screenshot(page: Path | str, png: Path, chromium: str, size: str, wait_ms: int = 10000) -> Path:
    """Headless Chromium's rendering of `page` (a file or a URL) into `png`, with everything that
    would reach the network off; `wait_ms` of page time let scripts finish drawing."""
    binary = shutil.which(chromium) or chromium
    with tempfile.TemporaryDirectory() as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png.resolve()}",
            f"--window-size={size}",
            f"--virtual-time-budget={wait_ms}",  # lets vega-embed (or an app) finish drawing before the capture
            page if isinstance(page, str) else page.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not png.is_file():
        raise SystemExit(f"chromium failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--js", type=Path, required=True, help="folder holding vega, vega-lite, vega-embed .min.js")
    parser.add_argument("--project", type=Path, default=ROOT, help="the DVC project (default: this one)")
    default_out = Path(tempfile.gettempdir()) / "ftvsr_plots"
    parser.add_argument("--out", type=Path, default=default_out, help=f"where index.html goes (default {default_out})")
    parser.add_argument("--diff", nargs="*", metavar="REV", help="`dvc plots diff` of these revisions instead")
    parser.add_argument("--targets", nargs="*", default=[], help="plot ids or files (default: every plot)")
    parser.add_argument("--screenshot", type=Path, help="also render the page into this PNG")
    parser.add_argument("--chromium", default="chromium", help="the Chromium binary")
    parser.add_argument("--window-size", default="1400,2400", help="screenshot size, WIDTH,HEIGHT")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(html_template(find_scripts(args.js)), encoding="utf8")
        page = render(args.project, template, args.out.resolve(), args.diff, args.targets)
    print(f"wrote {page}")
    if args.screenshot:
        print(f"wrote {screenshot(page, args.screenshot, args.chromium, args.window_size)}")


if __name__ == "__main__":
    main()
