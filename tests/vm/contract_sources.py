"""Hypothesis strategies for contract sources: generated from the language's grammar (mostly valid, with
hostile names, literals and shapes mixed in) and mutated from real contracts (lines dropped, doubled,
swapped; tokens inserted and replaced). Used by the compiler fuzz tests."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

SYSTEM = Path(__file__).resolve().parents[2] / "vm" / "system"
SEEDS = [path.read_text() for path in sorted(SYSTEM.glob("*.contract"))] + [
    "counter: int\nowners: Map[bytes, bool]\nLIMIT = 10\n\n@public\ndef bump(n):\n    require(n < LIMIT, 'big')\n"
    "    counter += n\n    owners[caller()] = True\n    emit('Bumped', by=n)\n    return counter\n\n"
    "@view\ndef get():\n    total = 0\n    for i in range(3):\n        total += i\n    return [total, counter]\n",
]

VALID_NAMES = ["x", "y", "n", "total", "counter", "owners", "balances", "f", "g", "helper", "LIMIT", "é", "λ", "self"]
HOSTILE_NAMES = ["len", "emit", "caller", "range", "_hidden", "None", "Map", "public", "view", "a" * 65, "str"]
NAMES = VALID_NAMES * 8 + HOSTILE_NAMES  # mostly names a contract may use, so that most sources get far
HOSTILE_TOKENS = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    ".",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "==",
    "<",
    "<=",
    " not ",
    " and ",
    " or ",
    " in ",
    " is ",
    " is not ",
    "None",
    "True",
    "1",
    "0x10",
    "0b1",
    "1_000",
    "1.5",
    "1e9",
    "1j",
    "'s'",
    "b'x'",
    "f'{x}'",
    "r'\\d'",
    "'\\ud800'",
    "x",
    "return ",
    "def ",
    "if ",
    "elif x:",
    "else:",
    "while ",
    "for ",
    "break",
    "continue",
    "pass",
    "del ",
    "lambda: 0",
    "@public\n",
    "@view\n",
    "@other\n",
    "\n",
    "    ",
    "\t",
    "=",
    "+=",
    "global x",
    "nonlocal x",
    "import os",
    "from x import y",
    "class A:",
    "yield",
    "await x",
    "async ",
    "try:",
    "with x:",
    "assert x",
    "raise",
    "range(",
    "len(",
    "emit(",
    "call(",
    "require(",
    "Map[",
    "int",
    "bytes",
    "[i for i in x]",
    "{1, 2}",
    "{**x}",
    "x[1:2]",
    "x[::2]",
    "*a",
    "**k",
    ";",
    "\\",
    "#",
    '"""',
    "'''",
    "\x00",
    "\ufeff",
    "\r",
    "\x0c",
    "é",
    "9" * 80,
    "1" * 4400,
    "x" * 70,
    "(" * 150,
    ":=",
    "match x:",
    "case 1:",
    "print(",
    "...",
    "@",
    "->",
    "-> int",
]


# --- generated from the grammar ---------------------------------------------------------------

_ints = st.one_of(
    st.integers(-300, 300),
    st.integers(-(2**260), 2**260),
    st.sampled_from([2**255 - 1, -(2**255), 2**255, -(2**255) - 1]),
)
_literals = st.one_of(
    _ints.map(repr),
    st.binary(max_size=24).map(repr),
    st.text(max_size=12).map(repr),  # repr escapes lone surrogates and NULs: they reach the compiler as values
    st.sampled_from(["True", "False", "None", "1.5", "b''", "''", "'x' * 3", "LIMIT", "-LIMIT", "--1", "-(-(1))"]),
)
_names = st.sampled_from(NAMES)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binop = st.sampled_from(["+", "-", "*", "//", "%", "**", "&", "|", "^", "<<", ">>", "/", "@"])
    cmp = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"])
    func = st.sampled_from(
        [
            "len",
            "require",
            "emit",
            "caller",
            "origin",
            "call_value",
            "self_address",
            "block_height",
            "block_time",
            "native_balance",
            "pay",
            "sha256",
            "verify_ed25519",
            "call",
            "min",
            "max",
            "abs",
            "to_bytes",
            "from_bytes",
            "str",
            "address_of",
            "chain_id",
            "f",
            "g",
            "nope",
            "range",
            "print",
        ]
    )
    method = st.sampled_from(["append", "pop", "get", "keys", "values", "items", "upper"])
    args = st.lists(inner, max_size=4).map(", ".join)
    return st.one_of(
        st.tuples(inner, binop, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, cmp, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, cmp, inner, cmp, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]} {t[3]} {t[4]})"),
        st.tuples(st.sampled_from(["-", "not ", "~", "+"]), inner).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(func, args).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, method, args).map(lambda t: f"({t[0]}).{t[1]}({t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}]"),
        args.map(lambda a: f"[{a}]"),
        st.lists(st.tuples(inner, inner), max_size=3).map(lambda kv: "{" + ", ".join(f"{k}: v" for k, v in kv) + "}"),
        st.tuples(st.just("emit"), inner, st.lists(_names, max_size=3)).map(
            lambda t: f"emit({t[1]}" + "".join(f", {n}={t[1]}" for n in t[2]) + ")"
        ),
    )


expressions = st.recursive(st.one_of(_literals, _names), _compound, max_leaves=12)


def _block(statements: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    return statements.map(lambda lines: ["    " + line for line in lines] or ["    pass"])


def _statements(depth: int) -> st.SearchStrategy[list[str]]:
    simple = st.one_of(
        st.tuples(_names, expressions).map(lambda t: [f"{t[0]} = {t[1]}"]),
        st.tuples(_names, st.sampled_from(["+=", "-=", "*=", "//=", "%=", "|=", "/="]), expressions).map(
            lambda t: [f"{t[0]} {t[1]} {t[2]}"]
        ),
        st.tuples(_names, expressions, expressions).map(lambda t: [f"{t[0]}[{t[1]}] = {t[2]}"]),
        expressions.map(lambda e: [f"return {e}"]),
        expressions.map(lambda e: [e]),
        st.tuples(expressions, expressions).map(lambda t: [f"require({t[0]}, {t[1]})"]),
        st.sampled_from(
            [
                ["pass"],
                ["break"],
                ["continue"],
                ["return"],
                ["del owners[x]"],
                ["del x"],
                ["x: int = 1"],
                ["a = b = 1"],
                ["global x"],
                ["assert x"],
                ["import os"],
                ["x, y = 1, 2"],
            ]
        ),
    )
    if depth == 0:
        return st.lists(simple, min_size=1, max_size=4).map(lambda ls: [line for chunk in ls for line in chunk])
    inner = _block(_statements(depth - 1))
    compound = st.one_of(
        st.tuples(expressions, inner, st.none() | inner).map(
            lambda t: [f"if {t[0]}:", *t[1], *([] if t[2] is None else ["else:", *t[2]])]
        ),
        st.tuples(expressions, inner).map(lambda t: [f"while {t[0]}:", *t[1]]),
        st.tuples(_names, st.lists(expressions, min_size=1, max_size=3), inner).map(
            lambda t: [f"for {t[0]} in range({', '.join(t[1])}):", *t[2]]
        ),
        st.tuples(_names, expressions, inner).map(lambda t: [f"for {t[0]} in {t[1]}:", *t[2]]),
    )
    return st.lists(st.one_of(simple, compound), min_size=1, max_size=4).map(
        lambda ls: [line for chunk in ls for line in chunk]
    )


def _function() -> st.SearchStrategy[str]:
    decorators = st.lists(st.sampled_from(["@public", "@view", "@other", "@public()"]), max_size=2)
    params = st.lists(_names, max_size=4).map(", ".join) | st.sampled_from(["a=1", "*args", "**kw", "a, /", "a, a"])
    body = _block(_statements(2))
    return st.tuples(decorators, _names, params, body).map(lambda t: "\n".join([*t[0], f"def {t[1]}({t[2]}):", *t[3]]))


_top = st.one_of(
    st.tuples(
        _names,
        st.sampled_from(
            [
                "int",
                "bytes",
                "str",
                "bool",
                "Address",
                "Map[bytes, int]",
                "Map[int]",
                "List[int]",
                "Map[bytes, Map[int, int]]",
                "float",
            ]
        ),
    ).map(lambda t: f"{t[0]}: {t[1]}"),
    st.tuples(st.sampled_from(["LIMIT", "OWNER", "X", "lower", "E"]), _literals).map(lambda t: f"{t[0]} = {t[1]}"),
    _function(),
    st.sampled_from(['"""a docstring"""', "import os", "class A:\n    pass", "x = y = 1", "print(1)"]),
)
generated_sources = st.lists(_top, min_size=1, max_size=6).map(lambda parts: "\n\n".join(parts) + "\n")


# --- mutated from real contracts -----------------------------------------------------------------


@st.composite
def mutated_sources(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEEDS)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["drop", "double", "swap", "insert", "replace", "indent"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "double":
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            at = draw(st.integers(0, len(lines[i])))
            cut = draw(st.integers(0, 3))
            lines[i] = lines[i][:at] + draw(st.sampled_from(HOSTILE_TOKENS)) + lines[i][at + cut :]
        elif kind == "replace":
            words = lines[i].split(" ")
            words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(HOSTILE_TOKENS + NAMES)).strip() or "x"
            lines[i] = " ".join(words)
        else:
            lines[i] = draw(st.sampled_from(["", " ", "  ", "\t", "        "])) + lines[i].lstrip()
    return "\n".join(lines)


# --- shapes at and past the limits ---------------------------------------------------------------


def _fn(body: str, name: str = "f", params: str = "") -> str:
    return f"@public\ndef {name}({params}):\n    {body}\n"


def _nested_ifs(n: int) -> str:
    ifs = "".join("    " * (i + 1) + "if x:\n" for i in range(n))
    return "@public\ndef f(x):\n" + ifs + "    " * (n + 1) + "return 1\n"


_SHAPES = {
    "sum": lambda n: _fn("return " + "+".join(["1"] * n)),
    "parens": lambda n: _fn("return " + "(" * n + "1" + ")" * n),
    "lists": lambda n: _fn("return " + "[" * n + "1" + "]" * n),
    "calls": lambda n: _fn("return " + "abs(" * n + "1" + ")" * n),
    "nots": lambda n: _fn("return " + "not " * n + "True"),
    "negs": lambda n: _fn("return " + "-" * n + "1"),
    "const_negs": lambda n: "X = " + "-" * n + "1\n" + _fn("return X"),
    "ifs": lambda n: _nested_ifs(min(n, 128)),  # Python stops at 100 levels; the source grows as n squared
    "elifs": lambda n: (
        "@public\ndef f(x):\n    if x == 0:\n        return 0\n"
        + "".join(f"    elif x == {i}:\n        return {i}\n" for i in range(1, n))
    ),
    "functions": lambda n: "".join(_fn(f"return {i}", f"f{i}") for i in range(n)),
    "storage": lambda n: "".join(f"s{i}: int\n" for i in range(n)) + _fn("return 1"),
    "locals": lambda n: "@public\ndef f():\n" + "".join(f"    v{i} = {i}\n" for i in range(n)) + "    return 1\n",
    "params": lambda n: _fn("return 1", params=", ".join(f"p{i}" for i in range(n))),
    "consts": lambda n: "@public\ndef f():\n    x = 0\n" + "".join(f"    x = {i + 1000}\n" for i in range(n)),
    "statements": lambda n: "@public\ndef f():\n    x = 0\n" + "    x = x + 1\n" * n,
    "string": lambda n: _fn("return '" + "a" * n + "'"),
    "digits": lambda n: _fn("return " + "9" * n),
    "list_items": lambda n: _fn("return [" + "1, " * n + "]"),
    "event_fields": lambda n: _fn("emit('E', " + ", ".join(f"a{i}=1" for i in range(n)) + ")"),
    "call_args": lambda n: _fn("return max(" + ", ".join(["1"] * n) + ")"),
    "chain_compare": lambda n: _fn("return " + " < ".join(["1"] * n)),
    "name_length": lambda n: _fn("return 1", "f" * n),
}
SIZES = [
    1,
    2,
    7,
    8,
    9,
    31,
    32,
    33,
    63,
    64,
    65,
    99,
    100,
    101,
    127,
    128,
    129,
    200,
    255,
    256,
    257,
    300,
    1000,
    1023,
    1024,
    1025,
    2000,
    4096,
    4097,
    5000,
    20_000,
    65_536,
    65_537,
    70_000,
]


def extreme_sources(max_size: int = max(SIZES)) -> st.SearchStrategy[tuple[str, str]]:
    """(shape(size), source) for every shape at sizes around each limit, up to `max_size`."""
    sizes = [n for n in SIZES if n <= max_size]
    return st.tuples(st.sampled_from(sorted(_SHAPES)), st.sampled_from(sizes)).map(
        lambda t: (f"{t[0]}({t[1]})", _SHAPES[t[0]](t[1]))
    )
