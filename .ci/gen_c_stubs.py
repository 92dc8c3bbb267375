"""Append stubs to lepton_graph/_C.pyi for _C symbols that have none, from pybind11's signatures.

    python .ci/gen_c_stubs.py          # print what would be added
    python .ci/gen_c_stubs.py --write  # append it

Hand-written entries are kept; review generated ones (types come from pybind11: lists, ints, floats).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from lepton_graph import _C

STUB = Path(__file__).resolve().parents[1] / "lepton_graph" / "_C.pyi"
_TYPES = {"numpy.ndarray": "object", "capsule": "object", "typing.SupportsInt | typing.SupportsIndex": "int",
          "typing.SupportsFloat | typing.SupportsIndex": "float"}


def _sig(doc: str, name: str) -> tuple[str, str]:
    first, _, rest = (doc or "").partition("\n")
    first = re.sub(r"^\d+\. ", "", first.strip())
    if not first.startswith(name + "("):
        ret = "None" if name == "__init__" else "object"
        return f"def {name}(*args: object, **kwargs: object) -> {ret}: ...", ""
    sig = first[len(name):]
    sig = re.sub(r"lepton_graph\._C\.", "", sig)
    sig = re.sub(r"\bcollections\.abc\.Sequence\b", "Sequence", sig)
    for a, b in _TYPES.items():
        sig = sig.replace(a, b)
    sig = re.sub(r'typing\.Annotated\[list\[(\w+)\], "FixedSize\((\d+)\)"\]',
                 lambda m: "tuple[" + ", ".join([m.group(1)] * int(m.group(2))) + "]", sig)
    return f"def {name}{sig}:", rest.strip()


def _fmt(head: str, doc: str, indent: str = "") -> str:
    if head.endswith(": ..."):
        return indent + head + "\n"
    body = doc.replace('"""', "'''").strip() or "(undocumented)"
    return f'{indent}{head}\n{indent}    """{body}"""\n'


def generate() -> str:
    stub = ast.parse(STUB.read_text(encoding="utf-8"))
    have = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    have |= {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    out = []
    for name in sorted(n for n in dir(_C) if not n.startswith("_") and n not in have):
        obj = getattr(_C, name)
        if isinstance(obj, type):
            lines = [f"class {name}:\n", f'    """{(obj.__doc__ or name).strip()}"""\n']
            for m in sorted(vars(obj)):
                fn = getattr(obj, m)
                if m.startswith("_") and m != "__init__" or not callable(fn):
                    continue
                head, doc = _sig(getattr(fn, "__doc__", "") or "", m)
                head = head.replace("(self: " + name, "(self").replace(f"(self: {name}", "(self")
                lines.append(_fmt(head, doc, "    "))
            out.append("".join(lines))
        else:
            head, doc = _sig(obj.__doc__ or "", name)
            out.append(_fmt(head, doc))
    return "\n".join(out)


if __name__ == "__main__":
    text = generate()
    if "--write" in sys.argv and text:
        with STUB.open("a", encoding="utf-8") as f:
            f.write("\n" + text)
    print(text or "# nothing missing")
