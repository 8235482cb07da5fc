"""Tampering helpers for the bundle tests: read/write a bundle's manifest, re-seal it the way a
determined attacker would, and craft skops payloads that would run code if their callable were
trusted (they write ``SENTINEL`` under the test's tmp folder)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from learnerprobe.bundles.integrity import SEAL_FORMAT, canonical, sealed_view
from learnerprobe.bundles.manifest import ESTIMATOR, MANIFEST


def file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def read_manifest(p: Path) -> dict:
    return json.loads((p / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(p: Path, m: dict) -> None:
    (p / MANIFEST).write_text(json.dumps(m, indent=2), encoding="utf-8")


def edit(fn):
    """A case that edits the parsed manifest with `fn(m)` and writes it back."""
    def apply(p: Path, tmp: Path) -> None:
        m = read_manifest(p)
        fn(m)
        write_manifest(p, m)
    return apply


def reseal(p: Path, estimator_fn=None) -> None:
    """What a determined attacker does: re-seal the estimator to the edited manifest, re-hash.
    ``estimator_fn(est)``: edit the skops estimator in place first (its numbers, its settings)."""
    import skops.io as sio

    m = read_manifest(p)
    data = (p / ESTIMATOR).read_bytes()
    obj = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    if estimator_fn is not None:
        estimator_fn(obj["estimator"])
    for name in list(m["files"]):
        if name != ESTIMATOR and (p / name).is_file():
            m["files"][name] = file_sha(p / name)
    if m.get("arrays"):  # the array form carries its own seal (learnerprobe.bundles.arrays)
        from learnerprobe.bundles import arrays

        f = m["arrays"]["file"]
        tensors, meta = arrays.loads((p / f).read_bytes(), f)
        meta["seal"] = canonical(sealed_view(m, f))
        (p / f).write_bytes(arrays.dumps(tensors, meta))
        m["files"][f] = file_sha(p / f)
    obj["seal"] = canonical(sealed_view(m))
    sio.dump(obj, p / ESTIMATOR)
    m["files"][ESTIMATOR] = file_sha(p / ESTIMATOR)
    write_manifest(p, m)


def edit_tensors(p: Path, fn) -> None:
    """Edit the array form's tensors with ``fn(tensors)`` (finite values pass the array spec),
    then reseal: what an attacker does to the numbers of a bundle."""
    from learnerprobe.bundles import arrays

    f = read_manifest(p)["arrays"]["file"]
    tensors, meta = arrays.loads((p / f).read_bytes(), f)
    fn(tensors)
    (p / f).write_bytes(arrays.dumps(tensors, meta))
    reseal(p)


def pin_of(folder: Path) -> dict:
    """A model folder's weights pin, computed here as `learnerprobe.models.pinning` defines it
    (sha256 of every pinned file, a digest over them, dimensions from config.json), so a test
    can forge a matching pin for any folder, as an attacker would."""
    from learnerprobe.models.pinning import PINNED_SUFFIXES

    files = {q.relative_to(folder).as_posix(): file_sha(q) for q in sorted(folder.rglob("*"))
             if q.is_file() and q.suffix in PINNED_SUFFIXES and not q.name.startswith(".")}
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return {"sha256": h.hexdigest(), "files": files, "hidden_size": cfg["hidden_size"],
            "num_layers": cfg["num_hidden_layers"], "max_positions": cfg["max_position_embeddings"]}


def point_model_at(p: Path, folder: Path, *, inside: bool = False, **model) -> None:
    """Point a hidden-state bundle's ``model.source`` at ``folder`` with a matching pin, list the
    folder's files in the manifest when it lies ``inside`` the bundle, and reseal."""
    m = read_manifest(p)
    m["model"] = {**m["model"], "source": str(folder), **model}
    m["weights"] = pin_of(folder)
    if inside:
        for q in sorted(folder.rglob("*")):
            if q.is_file():
                m["files"][q.relative_to(p).as_posix()] = file_sha(q)
    write_manifest(p, m)
    reseal(p)


SENTINEL = "PWNED_SENTINEL"


def crafted_skops(module: str, name: str, args: list) -> bytes:
    """A skops file whose 'estimator' is built by calling module.name(*args) on load, the shape an
    attacker uses to run code if that callable were trusted."""
    import skops.io as sio

    data = sio.dumps({"format": SEAL_FORMAT, "estimator": ("x",), "seal": "s"})
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
        (p / ESTIMATOR).write_bytes(crafted_skops(module, name, args))
        m = read_manifest(p)
        m["files"][ESTIMATOR] = file_sha(p / ESTIMATOR)
        write_manifest(p, m)
    return apply
