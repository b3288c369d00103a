"""Canonical msgpack: round trips, and rejection of every encoding that is not the one canonical form."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core import codec
from core.errors import DecodeError, EncodingTooLarge, NonCanonicalEncoding

INT_MIN = -(2**63)
UINT_MAX = 2**64 - 1

# --- a reference encoder that knows every msgpack form of a value -----------------------------------


def int_forms(n: int) -> list[bytes]:
    """Every valid msgpack encoding of the integer `n` (canonical one included)."""
    forms: list[bytes] = []
    if 0 <= n < 128:
        forms.append(bytes([n]))
    if -32 <= n < 0:
        forms.append(struct.pack(">b", n))
    if 0 <= n < 2**8:
        forms.append(b"\xcc" + struct.pack(">B", n))
    if 0 <= n < 2**16:
        forms.append(b"\xcd" + struct.pack(">H", n))
    if 0 <= n < 2**32:
        forms.append(b"\xce" + struct.pack(">I", n))
    if 0 <= n < 2**64:
        forms.append(b"\xcf" + struct.pack(">Q", n))
    if -(2**7) <= n < 2**7:
        forms.append(b"\xd0" + struct.pack(">b", n))
    if -(2**15) <= n < 2**15:
        forms.append(b"\xd1" + struct.pack(">h", n))
    if -(2**31) <= n < 2**31:
        forms.append(b"\xd2" + struct.pack(">i", n))
    if -(2**63) <= n < 2**63:
        forms.append(b"\xd3" + struct.pack(">q", n))
    return forms


def str_forms(s: str) -> list[bytes]:
    raw = s.encode()
    n = len(raw)
    forms: list[bytes] = []
    if n < 32:
        forms.append(bytes([0xA0 | n]) + raw)
    if n < 2**8:
        forms.append(b"\xd9" + struct.pack(">B", n) + raw)
    if n < 2**16:
        forms.append(b"\xda" + struct.pack(">H", n) + raw)
    forms.append(b"\xdb" + struct.pack(">I", n) + raw)
    return forms


def bin_forms(b: bytes) -> list[bytes]:
    n = len(b)
    forms: list[bytes] = []
    if n < 2**8:
        forms.append(b"\xc4" + struct.pack(">B", n) + b)
    if n < 2**16:
        forms.append(b"\xc5" + struct.pack(">H", n) + b)
    forms.append(b"\xc6" + struct.pack(">I", n) + b)
    return forms


def array_headers(n: int) -> list[bytes]:
    headers: list[bytes] = []
    if n < 16:
        headers.append(bytes([0x90 | n]))
    if n < 2**16:
        headers.append(b"\xdc" + struct.pack(">H", n))
    headers.append(b"\xdd" + struct.pack(">I", n))
    return headers


def node_forms(value: Any) -> list[bytes]:
    """Every encoding of `value`'s top node, with its children (if any) encoded canonically."""
    if value is None:
        return [b"\xc0"]
    if value is True:
        return [b"\xc3"]
    if value is False:
        return [b"\xc2"]
    if isinstance(value, int):
        return int_forms(value)
    if isinstance(value, str):
        return str_forms(value)
    if isinstance(value, bytes):
        return bin_forms(value)
    if isinstance(value, list):
        body = b"".join(codec.encode(child) for child in value)
        return [header + body for header in array_headers(len(value))]
    raise AssertionError(f"unexpected {value!r}")


def non_canonical_forms(value: Any) -> list[bytes]:
    canonical = codec.encode(value)
    return [form for form in node_forms(value) if form != canonical]


def paths(value: Any, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """The path of every node of `value` (the root is `()`)."""
    out = [prefix]
    if isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(paths(child, (*prefix, i)))
    return out


def node_at(value: Any, path: tuple[int, ...]) -> Any:
    for i in path:
        value = value[i]
    return value


def encode_replacing(value: Any, path: tuple[int, ...], replacement: bytes) -> bytes:
    """The canonical encoding of `value`, except that the node at `path` is encoded as `replacement`."""
    if not path:
        return replacement
    assert isinstance(value, list)
    parts = [
        encode_replacing(child, path[1:], replacement) if i == path[0] else codec.encode(child)
        for i, child in enumerate(value)
    ]
    return array_headers(len(value))[0] + b"".join(parts)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(child) for child in value), default=0)
    return 0


# --- strategies -----------------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(min_value=INT_MIN, max_value=UINT_MAX),
    st.sampled_from([0, 127, 128, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**63 - 1, 2**63, UINT_MAX]),
    st.sampled_from([-1, -32, -33, -128, -129, -(2**15), -(2**15) - 1, -(2**31), -(2**31) - 1, INT_MIN]),
    st.binary(max_size=300),
    st.text(max_size=40),
    st.text(min_size=30, max_size=300),
    st.booleans(),
    st.none(),
)


def nested(levels: int) -> st.SearchStrategy[Any]:
    if levels == 0:
        return scalars
    return st.one_of(scalars, st.lists(nested(levels - 1), max_size=20))


values = nested(6)


# --- round trips ----------------------------------------------------------------------------------


@settings(max_examples=300)
@given(values)
def test_round_trip(value: Any) -> None:
    encoded = codec.encode(value)
    decoded = codec.decode(encoded)
    assert decoded == value
    assert all(type(a) is type(b) for a, b in zip(_flatten(decoded), _flatten(value), strict=True))
    assert codec.encode(decoded) == encoded


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [value] + [x for child in value for x in _flatten(child)]
    return [value]


@settings(max_examples=200)
@given(values)
def test_encode_is_the_shortest_form_of_every_node(value: Any) -> None:
    for path in paths(value):
        node = node_at(value, path)
        forms = node_forms(node)
        if isinstance(node, int) and not isinstance(node, bool) and node >= 0:
            # msgpack's rule: a non-negative integer takes the shortest *unsigned* form
            forms = [f for f in forms if f[0] < 0x80 or 0xCC <= f[0] <= 0xCF]
        shortest = min(forms, key=len)
        assert sum(len(f) == len(shortest) for f in forms) == 1
        assert codec.encode(node) == shortest


def test_scalar_boundaries_round_trip() -> None:
    for n in [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, UINT_MAX, -1, -32, -33, INT_MIN]:
        assert codec.decode(codec.encode(n)) == n
    for b in [b"", b"x" * 255, b"x" * 256, b"x" * 65536]:
        assert codec.decode(codec.encode(b)) == b
    for s in ["", "é" * 15, "x" * 31, "x" * 32, "x" * 255, "x" * 256, "日本語"]:
        assert codec.decode(codec.encode(s)) == s
    for lst in [[], [None] * 15, [None] * 16, [0] * 70000]:
        assert codec.decode(codec.encode(lst)) == lst
    assert codec.decode(b"\xc3") is True
    assert codec.decode(b"\xc2") is False
    assert codec.decode(b"\xc0") is None


def test_bool_is_not_int() -> None:
    assert codec.encode(True) != codec.encode(1)
    assert codec.decode(codec.encode([True, 1])) == [True, 1]
    assert type(codec.decode(codec.encode(True))) is bool


# --- non-canonical encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "n", [0, 1, 5, 127, 128, 200, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, -1, -5, -32, -33, -128, -129]
)
def test_wider_int_forms_are_rejected(n: int) -> None:
    wider = non_canonical_forms(n)
    assert wider, "every one of these values has a wider form"
    for form in wider:
        with pytest.raises(NonCanonicalEncoding):
            codec.decode(form)
        with pytest.raises(NonCanonicalEncoding):
            codec.decode(b"\x92" + form + b"\xc0")


@pytest.mark.parametrize(
    "raw",
    [
        b"\xcc\x05",  # uint8 5
        b"\xcd\x00\x05",  # uint16 5
        b"\xce\x00\x00\x00\x05",  # uint32 5
        b"\xcf\x00\x00\x00\x00\x00\x00\x00\x05",  # uint64 5
        b"\xd0\x05",  # int8 5
        b"\xd1\x00\x05",  # int16 5
        b"\xd2\x00\x00\x00\x05",  # int32 5
        b"\xd3\x00\x00\x00\x00\x00\x00\x00\x05",  # int64 5
        b"\xd0\xff",  # int8 -1
        b"\xd3\xff\xff\xff\xff\xff\xff\xff\xff",  # int64 -1
        b"\xd1\x00\xc8",  # int16 200 (canonical: uint8)
        b"\xd9\x03abc",  # str8 "abc" (canonical: fixstr)
        b"\xda\x00\x03abc",  # str16
        b"\xdb\x00\x00\x00\x03abc",  # str32
        b"\xc5\x00\x03abc",  # bin16 for 3 bytes
        b"\xc6\x00\x00\x00\x03abc",  # bin32
        b"\xdc\x00\x02\x01\x02",  # array16 of two
        b"\xdd\x00\x00\x00\x02\x01\x02",  # array32 of two
        b"\xdc\x00\x00",  # array16 empty
        b"\xd9\x00",  # str8 empty
    ],
)
def test_known_non_canonical_forms(raw: bytes) -> None:
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(raw)


def test_str_and_bin_boundaries_need_the_short_form() -> None:
    s = "x" * 31
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(b"\xd9\x1f" + s.encode())
    assert codec.decode(b"\xd9\x20" + ("x" * 32).encode()) == "x" * 32
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(b"\xc5\x00\xff" + b"y" * 255)
    assert codec.decode(b"\xc5\x01\x00" + b"y" * 256) == b"y" * 256
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(b"\xdc\x00\x0f" + b"\xc0" * 15)
    assert codec.decode(b"\xdc\x00\x10" + b"\xc0" * 16) == [None] * 16


@settings(max_examples=300)
@given(values, st.data())
def test_any_one_non_canonical_node_is_rejected(value: Any, data: st.DataObject) -> None:
    candidates = [p for p in paths(value) if non_canonical_forms(node_at(value, p))]
    assume(candidates)
    path = data.draw(st.sampled_from(candidates), label="path")
    form = data.draw(st.sampled_from(non_canonical_forms(node_at(value, path))), label="form")
    raw = encode_replacing(value, path, form)
    assert raw != codec.encode(value)
    # the bytes are valid msgpack for the same value...
    assert msgpack.unpackb(raw, raw=False) == value
    # ...but not its canonical encoding
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(raw)


# --- forbidden types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\xca" + struct.pack(">f", 1.5),  # float32
        b"\xcb" + struct.pack(">d", 1.5),  # float64
        b"\xcb" + struct.pack(">d", 1.0),  # a float with an integral value
        b"\xcb" + struct.pack(">d", float("nan")),
        b"\x92\x01\xcb" + struct.pack(">d", 2.0),  # nested
        b"\x91\x91\xca" + struct.pack(">f", 0.0),
    ],
)
def test_floats_are_rejected(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xd4\x01\x00",  # fixext1
        b"\xd5\x01\x00\x00",  # fixext2
        b"\xd6\x01" + bytes(4),  # fixext4
        b"\xd7\x01" + bytes(8),  # fixext8
        b"\xd8\x01" + bytes(16),  # fixext16
        b"\xc7\x00\x05",  # ext8, empty payload
        b"\xc7\x03\x05abc",  # ext8
        b"\xc8\x00\x03\x05abc",  # ext16
        b"\xc9\x00\x00\x00\x03\x05abc",  # ext32
        b"\xd6\xff" + bytes(4),  # the timestamp extension (-1)
        b"\xd7\xff" + bytes(8),
        b"\x92\x01\xd4\x01\x00",  # nested
    ],
)
def test_extension_types_are_rejected(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(raw)
    assert not isinstance(info.value, EncodingTooLarge | NonCanonicalEncoding)  # forbidden, whatever its size


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80",  # empty fixmap
        b"\x81\xa1a\x01",  # {"a": 1}
        b"\xde\x00\x01\xa1a\x01",  # map16
        b"\xdf\x00\x00\x00\x01\xa1a\x01",  # map32
        b"\x91\x81\xa1a\x01",  # nested in an array
        b"\x91\x80",
    ],
)
def test_maps_are_rejected_unless_allowed(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(raw)
    assert not isinstance(info.value, EncodingTooLarge | NonCanonicalEncoding)  # forbidden, whatever its size


def test_maps_when_allowed() -> None:
    value = {"a": 1, "b": [b"x", None]}
    assert codec.decode(codec.encode(value), allow_maps=True) == value
    assert codec.decode(b"\x80", allow_maps=True) == {}
    # a wider map header is not canonical
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(b"\xde\x00\x01\xa1a\x01", allow_maps=True)
    # a duplicated key collapses on decode, so the bytes are not canonical
    with pytest.raises(NonCanonicalEncoding):
        codec.decode(b"\x82\xa1a\x01\xa1a\x02", allow_maps=True)
    # keys must be str or bytes
    with pytest.raises(DecodeError):
        codec.decode(b"\x81\x01\x01", allow_maps=True)
    with pytest.raises(EncodingTooLarge):
        codec.decode(codec.encode({"a": 1, "b": 2}), limits=codec.Limits(max_map_len=1), allow_maps=True)


@pytest.mark.parametrize("raw", [b"\xc1", b"\xa1\xff", b"\xa2\xc3\x28", b"\x91\xa1\x80"])
def test_reserved_byte_and_bad_utf8_are_rejected(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(raw)


# --- framing --------------------------------------------------------------------------------------


@settings(max_examples=150)
@given(values, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(value: Any, extra: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(codec.encode(value) + extra)


@settings(max_examples=150)
@given(values, st.data())
def test_truncated_input_is_rejected(value: Any, data: st.DataObject) -> None:
    encoded = codec.encode(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1), label="cut")
    with pytest.raises(DecodeError):
        codec.decode(encoded[:cut])


def test_empty_input_is_rejected() -> None:
    with pytest.raises(DecodeError):
        codec.decode(b"")


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_only_to_their_canonical_value(raw: bytes) -> None:
    try:
        value = codec.decode(raw)
    except DecodeError:
        return
    assert codec.encode(value) == raw


# --- limits ---------------------------------------------------------------------------------------


def _nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_up_to_the_limit_is_accepted_and_deeper_is_rejected() -> None:
    limits = codec.Limits(max_depth=4)
    assert codec.decode(codec.encode(_nest(4)), limits=limits) == _nest(4)
    with pytest.raises(EncodingTooLarge):
        codec.decode(codec.encode(_nest(5)), limits=limits)
    assert codec.decode(codec.encode(_nest(16))) == _nest(16)
    with pytest.raises(EncodingTooLarge):
        codec.decode(codec.encode(_nest(17)))
    with pytest.raises(EncodingTooLarge):
        codec.decode(codec.encode([[], _nest(17)]))
    # an empty array is an array too: 16 levels around it make 17
    sixteen: Any = []
    for _ in range(15):
        sixteen = [sixteen]
    assert codec.decode(b"\x91" * 15 + b"\x90") == sixteen
    with pytest.raises(EncodingTooLarge):
        codec.decode(b"\x91" * 16 + b"\x90")


def test_very_deep_nesting_is_rejected_without_crashing() -> None:
    for levels in (100, 2_000, 100_000):
        with pytest.raises(EncodingTooLarge):
            codec.decode(b"\x91" * levels + b"\x01")
    # msgpack's own stack bound holds even when our depth limit is lifted
    for levels in (2_000, 100_000):
        with pytest.raises(EncodingTooLarge):
            codec.decode(b"\x91" * levels + b"\x01", limits=codec.Limits(max_depth=10_000_000))


@settings(max_examples=100)
@given(st.integers(min_value=1, max_value=12), st.integers(min_value=0, max_value=12))
def test_depth_limit_property(max_depth: int, levels: int) -> None:
    raw = codec.encode(_nest(levels))
    limits = codec.Limits(max_depth=max_depth)
    if levels <= max_depth:
        assert codec.decode(raw, limits=limits) == _nest(levels)
    else:
        with pytest.raises(EncodingTooLarge):
            codec.decode(raw, limits=limits)


def test_max_bytes() -> None:
    raw = codec.encode(b"x" * 100)
    assert codec.decode(raw, limits=codec.Limits(max_bytes=len(raw))) == b"x" * 100
    with pytest.raises(EncodingTooLarge):
        codec.decode(raw, limits=codec.Limits(max_bytes=len(raw) - 1))
    with pytest.raises(EncodingTooLarge):
        codec.decode(b"\xc0" * (codec.DEFAULT_LIMITS.max_bytes + 1))


@pytest.mark.parametrize(
    ("value", "limits"),
    [
        (b"x" * 11, codec.Limits(max_bin_len=10)),
        ("x" * 11, codec.Limits(max_str_len=10)),
        ("é" * 6, codec.Limits(max_str_len=10)),  # 12 bytes of UTF-8
        ([0] * 11, codec.Limits(max_array_len=10)),
        ([[0] * 11], codec.Limits(max_array_len=10)),
        ([b"", [b"x" * 11]], codec.Limits(max_bin_len=10)),
    ],
)
def test_sizes_over_the_limits_are_rejected(value: Any, limits: codec.Limits) -> None:
    raw = codec.encode(value)
    assert len(raw) < limits.max_bytes
    with pytest.raises(EncodingTooLarge):
        codec.decode(raw, limits=limits)


@pytest.mark.parametrize(
    ("value", "limits"),
    [
        (b"x" * 10, codec.Limits(max_bin_len=10)),
        ("x" * 10, codec.Limits(max_str_len=10)),
        ([0] * 10, codec.Limits(max_array_len=10)),
    ],
)
def test_sizes_at_the_limits_are_accepted(value: Any, limits: codec.Limits) -> None:
    assert codec.decode(codec.encode(value), limits=limits) == value


def test_declared_length_beyond_the_data_is_rejected() -> None:
    # headers that claim far more than there is must not allocate or crash
    for raw in [b"\xc6\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xffabc", b"\xdd\xff\xff\xff\xff\x01"]:
        with pytest.raises(DecodeError):
            codec.decode(raw)


# --- expect_* helpers -----------------------------------------------------------------------------


def test_expect_list() -> None:
    assert codec.expect_list([3, "a", b"b"], 3, 3, "thing") == [3, "a", b"b"]
    for bad in [[4, "a", b"b"], [3, "a"], [3, "a", b"b", None], "abc", None, (3, "a", b"b"), [True, 1, 2]]:
        with pytest.raises(DecodeError):
            codec.expect_list(bad, 3, 3, "thing")
    with pytest.raises(DecodeError, match="thing"):
        codec.expect_list([9, 0, 0], 3, 3, "thing")
    # True == 1 in Python, but a bool is not a tag
    with pytest.raises(DecodeError):
        codec.expect_list([True, 0], 1, 2, "thing")


def test_expect_bytes() -> None:
    assert codec.expect_bytes(b"abc", "x") == b"abc"
    assert codec.expect_bytes(b"abc", "x", size=3) == b"abc"
    assert codec.expect_bytes(b"abc", "x", max_size=3) == b"abc"
    for bad, kwargs in [
        ("abc", {}),
        (bytearray(b"abc"), {}),
        (memoryview(b"abc"), {}),
        (None, {}),
        (3, {}),
        (b"ab", {"size": 3}),
        (b"abcd", {"size": 3}),
        (b"abcd", {"max_size": 3}),
    ]:
        with pytest.raises(DecodeError):
            codec.expect_bytes(bad, "x", **kwargs)


def test_expect_uint() -> None:
    assert codec.expect_uint(0, "x") == 0
    assert codec.expect_uint(UINT_MAX, "x") == UINT_MAX
    assert codec.expect_uint(255, "x", bits=8) == 255
    for bad, bits in [(-1, 64), (2**64, 64), (256, 8), (True, 64), (False, 64), (1.0, 64), ("1", 64), (None, 64)]:
        with pytest.raises(DecodeError):
            codec.expect_uint(bad, "x", bits=bits)


def test_expect_str() -> None:
    assert codec.expect_str("abc", "x") == "abc"
    assert codec.expect_str("x" * 256, "x") == "x" * 256
    for bad, max_len in [(b"abc", 256), (None, 256), (3, 256), ("x" * 257, 256), ("abcd", 3)]:
        with pytest.raises(DecodeError):
            codec.expect_str(bad, "x", max_len=max_len)


def test_error_hierarchy() -> None:
    assert issubclass(NonCanonicalEncoding, DecodeError)
    assert issubclass(EncodingTooLarge, DecodeError)


# --- the kept packers ------------------------------------------------------------------------------

packable = st.recursive(
    st.one_of(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.binary(max_size=300), st.text(max_size=40),
              st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=30,
)  # fmt: skip


@given(packable)
def test_encode_is_msgpack_packb_byte_for_byte(value: object) -> None:
    assert codec.encode(value) == msgpack.packb(value, use_bin_type=True)  # type: ignore[arg-type]


def test_a_refused_value_leaves_the_packer_clean_for_the_next() -> None:
    for bad in (2**64, [1, 2**64], [b"x", object()], object()):
        with pytest.raises((OverflowError, TypeError)):
            codec.encode(bad)  # type: ignore[arg-type]
        assert codec.encode([1, b"x"]) == msgpack.packb([1, b"x"], use_bin_type=True)


def test_threads_encoding_at_once_each_get_their_own_bytes() -> None:
    """Each thread packs with its own packer: a packer's buffer shared between threads would mix
    the bytes of two values packed at once."""
    values = [[i, bytes([i % 256]) * (i % 700), "s" * (i % 90), [i] * (i % 50)] for i in range(400)]
    expected = [msgpack.packb(v, use_bin_type=True) for v in values]

    def work(offset: int) -> bool:
        return all(codec.encode(values[(i + offset) % 400]) == expected[(i + offset) % 400] for i in range(4000))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(0, 400, 50)))
