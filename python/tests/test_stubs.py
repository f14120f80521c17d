"""python/shmkit.pyi says what the built module has: the same classes, methods,
properties, exception bases and parameter names (a stubtest without mypy, so no
network is needed at test time)."""

import ast
import inspect
import pathlib
import sys

import shmkit

STUB = pathlib.Path(__file__).resolve().parents[1] / "shmkit.pyi"
DUNDERS = {"__enter__", "__exit__", "__iter__", "__next__", "__len__", "__getitem__",
           "__setitem__", "__reduce__", "__init__"}


def stub_classes():
    tree = ast.parse(STUB.read_text())
    classes, functions = {}, set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    decorators = {ast.unparse(d) for d in item.decorator_list}
                    if any(d.endswith(".setter") for d in decorators):
                        continue
                    args = [a.arg for a in item.args.args + item.args.kwonlyargs]
                    if args and args[0] == "self":
                        args = args[1:]
                    members.setdefault(item.name, ("property" in decorators, args))
            classes[node.name] = ([ast.unparse(b) for b in node.bases], members)
        elif isinstance(node, ast.FunctionDef):
            functions.add(node.name)
    return classes, functions


# Before 3.10 an abi3 class carries no text signature: constructors are not compared.
SIGNED_CLASSES = sys.version_info >= (3, 10)


def runtime_members(cls):
    # A class with a constructor (PyO3's #[new]) has a text signature.
    has_new = getattr(cls, "__text_signature__", None) is not None
    return {k for k in vars(cls) if not k.startswith("_") or k in DUNDERS} | (
        {"__init__"} if has_new else set()
    )


def test_every_public_name_is_in_the_stub_and_back():
    classes, functions = stub_classes()
    runtime = {n for n in dir(shmkit) if not n.startswith("_") and isinstance(getattr(shmkit, n), type)}
    assert set(classes) == runtime
    assert functions == {"remove"}


def test_exception_bases_match():
    classes, _ = stub_classes()
    for name, (bases, _) in classes.items():
        cls = getattr(shmkit, name)
        if issubclass(cls, BaseException):
            assert [b.__name__ for b in cls.__bases__] == bases, name


def test_members_and_parameters_match():
    classes, _ = stub_classes()
    for name, (_, members) in classes.items():
        cls = getattr(shmkit, name)
        if issubclass(cls, BaseException):
            continue
        if not SIGNED_CLASSES:
            members = {k: v for k, v in members.items() if k != "__init__"}
        assert set(members) == runtime_members(cls), name
        for member, (is_property, args) in members.items():
            if member == "__init__":
                attr = cls
            else:
                attr = inspect.getattr_static(cls, member)
                assert is_property == (type(attr).__name__ == "getset_descriptor"), (name, member)
                if is_property or member.startswith("__"):
                    continue
                attr = getattr(cls, member)
            params = [
                p.name for p in inspect.signature(attr).parameters.values()
                if p.name not in ("self", "cls") and p.kind is not p.VAR_POSITIONAL
            ]
            assert params == args, (name, member, params, args)
