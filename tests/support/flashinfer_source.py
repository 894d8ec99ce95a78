"""FlashInfer's real signatures, read from the pinned wheel's source without importing it (its import needs CUDA).

`make venv` installs that source into <venv>/flashinfer-source. `stand_in_module` builds importable stand-ins
whose functions and classes carry those exact signatures: a call that 0.6.8 would reject raises TypeError
here, and every accepted call is recorded with its bound arguments for the test to inspect.
"""

from __future__ import annotations

import ast
import inspect
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

SOURCE_ROOT = Path(sys.prefix) / "flashinfer-source"
_NOT_LITERAL = object()  # stands for a default that is an expression, not a literal


def flashinfer_package() -> Path:
    """The pinned wheel's `flashinfer` folder; a clear failure (not a skip) when `make venv` has not installed it."""
    from scripts.gpu_wheels import FLASHINFER, PINNED

    package = SOURCE_ROOT / "flashinfer"
    version = SOURCE_ROOT / f"{FLASHINFER.replace('-', '_')}-{PINNED[FLASHINFER]}.dist-info"
    assert package.is_dir() and version.is_dir(), (
        f"FlashInfer {PINNED[FLASHINFER]}'s source is missing from {SOURCE_ROOT}; run `make venv`, or: "
        f"{sys.executable} -m pip install --no-deps --target {SOURCE_ROOT} {FLASHINFER}=={PINNED[FLASHINFER]}"
    )
    return package


def _module_path(package: Path, dotted: str) -> Path:
    base = package.joinpath(*dotted.split(".")) if dotted else package
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def find_definition(package: Path, module: str, name: str) -> ast.FunctionDef | ast.ClassDef:
    """`name` as `flashinfer.<module>` exposes it, following `from .x import name` re-exports."""
    tree = ast.parse(_module_path(package, module).read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    target = ".".join(p for p in (module, node.module) if p)
                    return find_definition(package, target, alias.name)
    raise LookupError(f"flashinfer.{module} has no {name}")


def _is_overload(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list)


def method_node(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    """The implementation of a method (not its @overload stubs)."""
    found = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name and not _is_overload(n)]
    if len(found) != 1:
        raise LookupError(f"{cls.name}.{name}: {len(found)} implementations")
    return found[0]


def _default(node: ast.expr | None):
    if node is None:
        return inspect.Parameter.empty
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _NOT_LITERAL


def signature_of(fn: ast.FunctionDef) -> inspect.Signature:
    """The parameters as Python would build them, with annotations kept as source text."""
    a = fn.args
    P = inspect.Parameter
    positional = [(arg, P.POSITIONAL_ONLY) for arg in a.posonlyargs] + [
        (arg, P.POSITIONAL_OR_KEYWORD) for arg in a.args
    ]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = [
        P(arg.arg, kind, default=_default(d), annotation=ast.unparse(arg.annotation) if arg.annotation else P.empty)
        for (arg, kind), d in zip(positional, defaults, strict=True)
    ]
    if a.vararg:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        annotation = ast.unparse(arg.annotation) if arg.annotation else P.empty
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=_default(d), annotation=annotation))
    if a.kwarg:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


_TYPING = {n: getattr(typing, n) for n in ("Any", "Optional", "Union", "List", "Dict", "Tuple", "Literal")}


def value_matches(value, annotation: str) -> bool:
    """Whether `value` has the type the annotation names; names outside torch and typing are not checked."""
    try:
        hint = eval(annotation, {"torch": torch, **_TYPING})  # source text of the pinned wheel, not user input
    except NameError:
        return True
    return _matches(value, hint)


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if hint is typing.Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is typing.Union:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is not None:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


@dataclass
class Call:
    name: str  # e.g. "BatchPrefillWithRaggedKVCacheWrapper.plan"
    arguments: dict  # the bound arguments, defaults not filled in


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)

    def named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]


def _bound_callable(name: str, sig: inspect.Signature, recorder: Recorder, result: Callable | None):
    def call(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)  # TypeError exactly where the real function would raise one
        for param_name, value in bound.arguments.items():
            annotation = sig.parameters[param_name].annotation
            if isinstance(annotation, str) and sig.parameters[param_name].kind in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            ):
                assert value_matches(value, annotation), f"{name}: {param_name}={value!r} is not {annotation}"
        arguments = {k: v for k, v in bound.arguments.items() if k != "self"}
        recorder.calls.append(Call(name, arguments))
        return result(**arguments) if result is not None else None

    call.__signature__ = sig
    return call


def stand_in_class(package: Path, module: str, name: str, recorder: Recorder, results: dict[str, Callable]) -> type:
    """A class with the real class's `__init__` and the methods named in `results` (each returns results[m](**args))."""
    node = find_definition(package, module, name)
    assert isinstance(node, ast.ClassDef), f"flashinfer.{module}.{name} is not a class"
    attrs = {
        method: _bound_callable(f"{name}.{method}", signature_of(method_node(node, method)), recorder, result)
        for method, result in {"__init__": None, **results}.items()
    }
    return type(name, (), attrs)


def stand_in_function(package: Path, module: str, name: str, recorder: Recorder, result: Callable | None) -> Callable:
    node = find_definition(package, module, name)
    assert isinstance(node, ast.FunctionDef), f"flashinfer.{module}.{name} is not a function"
    return _bound_callable(name, signature_of(node), recorder, result)


def stand_in_modules(attributes: dict[str, dict[str, object]]) -> dict[str, types.ModuleType]:
    """{"flashinfer.jit": {"build_jit_specs": f}} -> module objects to put in sys.modules, parents included."""
    modules: dict[str, types.ModuleType] = {}
    for dotted, attrs in attributes.items():
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        for key, value in attrs.items():
            setattr(modules[dotted], key, value)
    for dotted, module in modules.items():
        if "." in dotted:
            parent, _, child = dotted.rpartition(".")
            setattr(modules[parent], child, module)
    return modules
