"""Every module rppgedit imports is the standard library or a declared dependency; `pip check` is clean.

The imports are read statically (every `import` statement of every file under rppgedit/, including
lazy ones inside functions) and mapped to the distributions that provide them. A core module must
come from `[project] dependencies` of pyproject.toml; the few optional ones are allowed only in the
files listed in `OPTIONAL`, and must be declared in the extra named there.
"""

import ast
import importlib.metadata
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rppgedit"

# module -> (extra declaring its distribution, files allowed to import it). torch is imported only
# by `checkpoints.convert_torch_physnet`, onnx only by `checkpoints.blazeface_convert` and h5py
# only by the reader of open-rppg's Keras weights, each turning its absence into a one-line error; imageio_ffmpeg only by `video.ffmpeg.exe`, which
# falls back to an ffmpeg on the PATH.
OPTIONAL = {
    "rppg": ("attackers", {"open_rppg/worker.py"}),
    "keras": ("attackers", {"open_rppg/worker.py"}),
    "torch": ("bench", {"checkpoints/__init__.py"}),
    "imageio_ffmpeg": ("live", {"video/ffmpeg.py"}),
    "onnx": ("convert", {"checkpoints/blazeface_convert.py"}),
    "h5py": ("convert", {"checkpoints/__init__.py"}),
    "matplotlib": ("plots", {"report.py", "papers/plots.py"}),
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group(0))


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {
        extra: {_requirement_name(r) for r in reqs}
        for extra, reqs in project["optional-dependencies"].items()
    }
    return core, extras


def _with_requirements(dists: set[str]) -> set[str]:
    """`dists` and the distributions they require directly (keras comes with open-rppg)."""
    out = set(dists)
    for dist in dists:
        try:
            out |= {_requirement_name(r) for r in importlib.metadata.requires(dist) or []}
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _imports() -> dict[str, set[str]]:
    """{top-level module: files (relative to rppgedit/) importing it} for non-relative imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(rel)
    return found


def test_every_import_is_stdlib_or_declared():
    core, extras = _declared()
    providers = importlib.metadata.packages_distributions()
    imports = _imports()
    assert {"jax", "onnx", "numpy"} <= set(imports)  # the scan sees lazy imports too
    problems = []
    for module, files in sorted(imports.items()):
        if module in sys.stdlib_module_names or module == "rppgedit":
            continue
        if module in OPTIONAL:
            extra, allowed = OPTIONAL[module]
            if not files <= allowed:
                problems.append(f"{module} (extra {extra}) imported by {sorted(files - allowed)}")
            dists = {_normalise(d) for d in providers.get(module, [])}
            if dists and not dists & _with_requirements(extras[extra]):
                problems.append(f"{module}: its distribution {dists} does not come with [{extra}]")
            continue
        dists = {_normalise(d) for d in providers.get(module, [])}
        if not dists & core:
            problems.append(f"{module} ({sorted(dists) or 'no distribution'}) by {sorted(files)}")
    assert not problems, "undeclared imports: " + "; ".join(problems)


def test_the_core_needs_neither_open_rppg_nor_opencv():
    core, extras = _declared()
    assert not {"open-rppg", "opencv-python", "setuptools", "onnx", "onnxruntime"} & core
    assert {"open-rppg", "setuptools"} <= extras["attackers"]
    assert "rppgedit" in extras["test"]  # the test extra pulls the attackers in (never skipped)
    assert not {"cv2", "onnxruntime"} & set(_imports())  # BlazeFace runs in JAX


def test_pip_check_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
