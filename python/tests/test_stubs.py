"""The type stubs (haidef_wsi/_native.pyi) name what the compiled module has, and the module has
what they name, with the same keyword arguments."""
import ast
import inspect
from pathlib import Path

import haidef_wsi
from haidef_wsi import _native

STUBS = Path(haidef_wsi.__file__).with_name("_native.pyi")


def stubbed():
    tree = ast.parse(STUBS.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            out[node.name] = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
    return out


def keywords(fn):
    a = fn.args
    return [x.arg for x in a.args + a.kwonlyargs if x.arg != "self"]


def test_the_stubs_and_the_module_agree():
    stubs = stubbed()
    public = {n for n in dir(_native) if not n.startswith("_")} | {"__version__"}
    names = {n for n in stubs if not n[0].isupper() or n in public} - {"PathArg", "Progress"}
    assert names - {"__version__"} <= public, f"stubbed but missing: {names - public}"
    missing = {n for n in public if n not in stubs and n not in {"__version__"}}
    assert not missing, f"in the module, not in the stubs: {missing}"
    for name, stub in stubs.items():
        real = getattr(_native, name, None)
        if isinstance(stub, dict):
            for method, fn in stub.items():
                if method.startswith("__") and method not in ("__init__",):
                    continue
                target = real if method == "__init__" else getattr(real, method, None)
                assert target is not None, f"{name}.{method} is stubbed but missing"
                if any(isinstance(d, ast.Name) and d.id in ("property", "staticmethod") for d in fn.decorator_list):
                    continue
                sig = inspect.signature(target)
                if method == "__init__" or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
                    continue
                assert [p for p in sig.parameters if p != "self"] == keywords(fn), f"{name}.{method}"
        elif callable(real):
            assert list(inspect.signature(real).parameters) == keywords(stub), name
    # The constructors: the class's text_signature names the same arguments.
    for cls in ("Slide", "Encoder"):
        sig = getattr(_native, cls).__text_signature__
        assert sig is not None
        for arg in keywords(stubs[cls]["__init__"]):
            assert arg in sig, f"{cls}({arg}=...) stubbed, the class has {sig}"
