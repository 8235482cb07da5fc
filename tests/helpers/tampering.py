"""Tampering helpers for the bundle tests: read/write a bundle's manifest, re-seal it the way a
determined attacker would, and craft skops payloads that would run code if their callable were
trusted (they write ``SENTINEL`` under the test's tmp folder)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from learnerprobe import bundle as B


def file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def read_manifest(p: Path) -> dict:
    return json.loads((p / B.MANIFEST).read_text(encoding="utf-8"))


def write_manifest(p: Path, m: dict) -> None:
    (p / B.MANIFEST).write_text(json.dumps(m, indent=2), encoding="utf-8")


def edit(fn):
    """A case that edits the parsed manifest with `fn(m)` and writes it back."""
    def apply(p: Path, tmp: Path) -> None:
        m = read_manifest(p)
        fn(m)
        write_manifest(p, m)
    return apply


def reseal(p: Path) -> None:
    """What a determined attacker does: re-seal the estimator to the edited manifest, re-hash."""
    import skops.io as sio

    m = read_manifest(p)
    data = (p / B.ESTIMATOR).read_bytes()
    obj = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    for name in list(m["files"]):
        if name != B.ESTIMATOR and (p / name).is_file():
            m["files"][name] = file_sha(p / name)
    if m.get("arrays"):  # the array form carries its own seal (learnerprobe.inference.arrays)
        from learnerprobe.inference import arrays

        f = m["arrays"]["file"]
        tensors, meta = arrays.loads((p / f).read_bytes(), f)
        meta["seal"] = B._canonical(B._sealed_view(m, f))
        (p / f).write_bytes(arrays.dumps(tensors, meta))
        m["files"][f] = file_sha(p / f)
    obj["seal"] = B._canonical(B._sealed_view(m))
    sio.dump(obj, p / B.ESTIMATOR)
    m["files"][B.ESTIMATOR] = file_sha(p / B.ESTIMATOR)
    write_manifest(p, m)


SENTINEL = "PWNED_SENTINEL"


def crafted_skops(module: str, name: str, args: list) -> bytes:
    """A skops file whose 'estimator' is built by calling module.name(*args) on load, the shape an
    attacker uses to run code if that callable were trusted."""
    import skops.io as sio

    data = sio.dumps({"format": B.SEAL_FORMAT, "estimator": ("x",), "seal": "s"})
    schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    tpl = schema["content"]["estimator"]
    item = tpl["content"][0]
    tpl["content"] = []
    for a in args:
        if isinstance(a, str):
            tpl["content"].append({**item, "content": json.dumps(a)})
        else:  # an empty dict for runstring's namespace
            tpl["content"].append({"__class__": "dict", "__module__": "builtins",
                                   "__loader__": "DictNode", "content": {},
                                   "key_types": {"__class__": "list", "__module__": "builtins",
                                                 "__loader__": "ListNode", "content": []}})
    schema["content"]["estimator"] = {"__class__": name, "__module__": module,
                                      "__loader__": "ConstructorFromReduceNode", "content": tpl}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema.json", json.dumps(schema))
    return buf.getvalue()


def payload(tmp: Path) -> str:
    return f"open({str(tmp / SENTINEL)!r}, 'w').write('pwned')"


def exec_skops(module: str, name: str, kind: str = "code"):
    def apply(p: Path, tmp: Path) -> None:
        code = payload(tmp)
        if kind == "shell":
            args = [f"touch {tmp / SENTINEL}"]
        elif kind == "runstring":
            args = [code, {}]
        else:
            args = [code]
        (p / B.ESTIMATOR).write_bytes(crafted_skops(module, name, args))
        m = read_manifest(p)
        m["files"][B.ESTIMATOR] = file_sha(p / B.ESTIMATOR)
        write_manifest(p, m)
    return apply
