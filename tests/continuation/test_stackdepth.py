"""The static value-stack analysis the GC traversal relies on, checked against `dis` on real code."""
import dis
import importlib
import sys
import types

import pytest

from conftest import tealet_only

pytestmark = tealet_only

ENDS_BLOCK = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD",
              "JUMP_ABSOLUTE", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT"}


def effect(ins, jump):
    if ins.opname == "EXTENDED_ARG":
        return 0
    if ins.opname == "RETURN_GENERATOR" and sys.version_info < (3, 13):
        return 1  # the first resumption pushes the sent value
    arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
    return dis.stack_effect(ins.opcode, arg, jump=jump)


def reference_depths(code):
    """Depth before each instruction (by byte offset), from dis alone."""
    instrs = list(dis.get_instructions(code))
    at = {ins.offset: k for k, ins in enumerate(instrs)}
    # 3.10: a generator's first resumption pushes the sent value for GEN_START to pop
    work = [(0, int(instrs[0].opname == "GEN_START"))]
    if sys.version_info >= (3, 11):
        work += [(e.target, e.depth + e.lasti + 1) for e in dis._parse_exception_table(code)]
    depths = {}
    while work:
        off, d = work.pop()
        if off in depths or off not in at:
            continue
        depths[off] = d
        k = at[off]
        ins = instrs[k]
        if ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs:
            work.append((ins.argval, d + effect(ins, True)))
        if ins.opname not in ENDS_BLOCK and k + 1 < len(instrs):
            work.append((instrs[k + 1].offset, d + effect(ins, False)))
    return {off: (instrs[at[off]].opcode, d) for off, d in depths.items()
            if instrs[at[off]].opname != "EXTENDED_ARG"}


def all_code(obj, seen):
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    for c in obj.co_consts:
        if isinstance(c, types.CodeType):
            yield from all_code(c, seen)


def corpus():
    seen = set()
    for name in ("json.decoder", "argparse", "typing", "dataclasses", "inspect", "asyncio.base_events",
                 "asyncio.tasks", "email.message", "contextlib", "collections", "functools", "re._parser"
                 if sys.version_info >= (3, 11) else "sre_parse", "tokenize", "threading"):
        mod = importlib.import_module(name)
        for value in vars(mod).values():
            for fn in ([value] if isinstance(value, types.FunctionType) else
                       [v for v in vars(value).values() if isinstance(v, types.FunctionType)]
                       if isinstance(value, type) and value.__module__ == name else []):
                yield from all_code(fn.__code__, seen)


def test_depths_match_dis_on_stdlib():
    from _continuation import _stack_depths
    checked = 0
    for code in corpus():
        ours = {2 * i: (op, d) for i, op, _, d in _stack_depths(code)}
        assert ours == reference_depths(code), code
        checked += 1
    assert checked > 500


def test_depths_with_extended_args_handlers_and_generators():
    from _continuation import _stack_depths
    src = "def f(c):\n" + "".join(f"    v{i} = {i}\n" for i in range(300)) + """
    try:
        with open(__file__) as fh:
            for x in [c, c]:
                yield [c.switch(x) for _ in range(2)]
    except ValueError as e:
        return e
    finally:
        v299 + v1
"""
    ns = {}
    exec(src, ns)
    code = ns["f"].__code__
    ours = {2 * i: (op, d) for i, op, _, d in _stack_depths(code)}
    assert ours == reference_depths(code)
    assert max(d for _, d in ours.values()) >= 3
