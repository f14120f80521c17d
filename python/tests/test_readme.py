"""The Python example of README.md runs as written (with unique names)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(names, tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    for fixed in ["jobs-lock", "hits", "squares", "ticks", "jobs", "db-pool"]:
        code = code.replace(f'"{fixed}"', repr(names(fixed)))
    monkeypatch.setenv("SHMKIT_LOCK_DIR", str(tmp_path / "locks"))
    exec(compile(code, str(README), "exec"), {})
