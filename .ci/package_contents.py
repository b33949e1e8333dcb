"""Check that a wheel and an sdist hold what users need (run by .ci/package-check from the repository root).

    python .ci/package_contents.py DIST_DIR          # DIST_DIR holds one .whl and one .tar.gz
    python .ci/package_contents.py --ops             # the op names csrc/ defines, one a line
    python .ci/package_contents.py --readme-install  # the README's install commands (its section's first bash block)
    python .ci/package_contents.py --closure runtime|build   # what a fresh venv may see of this environment

Wheel: the compiled extension, every tracked file of the package (its Python modules and the data files the
code reads, found by looking for their names in the code), the metadata of pyproject.toml (version, torch
requirement, extras, the `spectral-xai` command), and nothing of the source tree besides. Sdist: every tracked
file the build and the docs need (csrc/, cmake/, the package, docs/, the build files), and no build output.
The README's "Install as a library" section names every extra. Prints a summary of both archives.
"""
from __future__ import annotations

import ast
import email.parser
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDIST_TREES = ("csrc/", "cmake/", "spectral_xai/", "docs/")
SDIST_FILES = ("pyproject.toml", "CMakeLists.txt", "README.md")
# Files the code names that are not data it reads from an installed package (and why).
NOT_READ = {"pyproject.toml": "its presence marks a source checkout (spectral_xai/_source_tree.py)"}
NEVER = re.compile(r"(^|/)(__pycache__|build|\.venv[^/]*|\.git)/|\.pyc$")


def tracked() -> list[str]:
    """The repository's tracked files (paths relative to the root)."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True, text=True)
    return [p for p in out.stdout.split("\0") if p and (ROOT / p).is_file()]


def strings_in_code(path: Path) -> set[str]:
    """The string constants of a module, its docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}


def data_files_read(files: list[str]) -> tuple[list[str], list[str]]:
    """(inside, outside): tracked non-Python files whose name (or path) the package's code names in a string
    (e.g. ``resources.files(__package__).joinpath("imagenet_classes.txt")``), inside the package or not."""
    strings = set().union(*(strings_in_code(ROOT / p) for p in files
                            if p.startswith("spectral_xai/") and p.endswith(".py")))
    named = [p for p in files if not p.endswith(".py") and p not in NOT_READ
             and (Path(p).name in strings or p in strings)]
    return [p for p in named if p.startswith("spectral_xai/")], [p for p in named if not p.startswith("spectral_xai/")]


def check_wheel(whl: Path, files: list[str], project: dict, problems: list[str]) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        sizes = {i.filename: i.file_size for i in z.infolist()}
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(info).decode())
        entry_points = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    package = [n for n in names if ".dist-info/" not in n]
    if not any(re.fullmatch(r"spectral_xai/_C\..*\.so", n) for n in package):
        problems.append("wheel: no compiled extension spectral_xai/_C.*.so")
    missing = sorted(set(p for p in files if p.startswith("spectral_xai/")) - set(package))
    if missing:
        problems.append(f"wheel: tracked package files missing: {missing}")
    strays = [n for n in package if not n.startswith("spectral_xai/") or NEVER.search(n)]
    if strays:
        problems.append(f"wheel: files outside the package or build leftovers: {strays[:10]}")
    if whl.name.endswith("-none-any.whl"):
        problems.append(f"wheel: {whl.name} is tagged pure Python, but holds a compiled extension")
    if meta["Version"] != project["version"]:
        problems.append(f"wheel: version {meta['Version']} != pyproject.toml's {project['version']}")
    from packaging.requirements import Requirement

    requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    for dep in project["dependencies"]:
        if Requirement(dep) not in requires:
            problems.append(f"wheel: Requires-Dist lacks {dep!r} (has {[str(r) for r in requires]})")
    extras = sorted(meta.get_all("Provides-Extra") or [])
    if extras != sorted(project.get("optional-dependencies", {})):
        problems.append(f"wheel: extras {extras} != pyproject.toml's {sorted(project['optional-dependencies'])}")
    for name, target in project.get("scripts", {}).items():
        if not re.search(rf"^{re.escape(name)}\s*=\s*{re.escape(target)}$", entry_points, flags=re.M):
            problems.append(f"wheel: entry point {name} = {target} missing")
    return names, sizes


def check_sdist(sdist: Path, files: list[str], project: dict, problems: list[str]) -> list[str]:
    with tarfile.open(sdist) as t:
        members = [m.name.split("/", 1)[1] for m in t.getmembers() if m.isfile() and "/" in m.name]
        top = t.getmembers()[0].name.split("/", 1)[0]
        pkg_info = email.parser.Parser().parsestr(t.extractfile(f"{top}/PKG-INFO").read().decode())
    need = [p for p in files if p.startswith(SDIST_TREES) or p in SDIST_FILES]
    missing = sorted(set(need) - set(members))
    if missing:
        problems.append(f"sdist: tracked files missing: {missing}")
    strays = [m for m in members if NEVER.search(m) or m.endswith(".so")]
    if strays:
        problems.append(f"sdist: build output or caches: {strays[:10]}")
    if pkg_info["Version"] != project["version"]:
        problems.append(f"sdist: version {pkg_info['Version']} != pyproject.toml's {project['version']}")
    return members


def op_names() -> list[str]:
    """The ops that csrc/ defines (``m.def("name(...``), whose schemas the extension registers."""
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "csrc").rglob("*.cpp")))
    return sorted(set(re.findall(r'm\.def\(\s*"(\w+)\(', text)))


def install_section() -> str:
    """The README's "Install as a library" section (up to the next ## heading)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Install as a library\n(.*?)(?=^## )", text, flags=re.S | re.M)
    if m is None:
        raise SystemExit("package_contents: README.md has no section '## Install as a library'")
    return m.group(1)


def readme_install_commands() -> str:
    """The first ```bash block of the install section: what a user runs in the source folder."""
    m = re.search(r"```bash\n(.*?)```", install_section(), flags=re.S)
    if m is None:
        raise SystemExit("package_contents: README.md's install section has no ```bash block")
    return m.group(1)


def closure(kind: str) -> list[str]:
    """The top-level files and folders (absolute paths) of the distributions installed here that pyproject.toml's
    dependencies (``runtime``), or those and its build requirements (``build``), need, recursively: all that a
    fresh venv gets to see of this one, so that its smoke test shows what the package needs and no more."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    todo = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    if kind == "build":
        todo += [Requirement(r) for r in pyproject["build-system"]["requires"]]
    done, paths = set(), set()   # (name, extra) pairs followed; extra "" is the distribution itself
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = {""} | set(req.extras)
        if not extras - {e for n, e in done if n == name}:
            continue
        done |= {(name, e) for e in extras}
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"package_contents: {req} is not installed in {sys.prefix}") from None
        paths |= {str(dist.locate_file(f.parts[0])) for f in dist.files or []
                  if f.parts[0] not in ("..", "__pycache__") and not f.parts[0].endswith(".pth")}
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return sorted(paths)


def check_readme(project: dict, problems: list[str]) -> None:
    section = install_section()
    for extra in project.get("optional-dependencies", {}):
        if f"[{extra}]" not in section and f",{extra}]" not in section:
            problems.append(f"README.md: the install section does not name the extra [{extra}]")


def summary(label: str, path: Path, names: list[str]) -> str:
    by_top = Counter(n.split("/")[0] if "/" in n else n for n in names)
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(by_top.items()))
    return f"{label} {path.name}: {path.stat().st_size / 1024:.0f} KiB, {len(names)} files ({parts})"


def main(argv: list[str]) -> int:
    if argv == ["--ops"]:
        print("\n".join(op_names()))
        return 0
    if len(argv) == 2 and argv[0] == "--closure" and argv[1] in ("runtime", "build"):
        print("\n".join(closure(argv[1])))
        return 0
    if argv == ["--readme-install"]:
        print(readme_install_commands(), end="")
        return 0
    dist = Path(argv[0]) if argv else ROOT / "dist"
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"package_contents: expected one wheel and one sdist in {dist}, found {wheels + sdists}")
        return 1
    files = tracked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    problems: list[str] = []
    inside, outside = data_files_read(files)
    if outside:
        problems.append(f"the package's code names data files outside the package, which no wheel holds: {outside}")
    names, sizes = check_wheel(wheels[0], files, project, problems)
    members = check_sdist(sdists[0], files, project, problems)
    check_readme(project, problems)
    print(summary("wheel", wheels[0], names))
    compiled = ", ".join(f"{n} ({sizes[n] / 1024:.0f} KiB)" for n in names if n.endswith(".so"))
    python = [n for n in names if n.endswith(".py")]
    print(f"  {compiled}; {len(python)} Python modules ({sum(sizes[n] for n in python) / 1024:.0f} KiB); "
          f"data files the code reads: {inside}")
    print(summary("sdist", sdists[0], members))
    for p in problems:
        print("FAILED:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
