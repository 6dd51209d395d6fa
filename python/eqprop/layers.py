"""Layer specifications: what a network's list of layers may hold, and the shapes it implies.

A network is written as a list from input to output::

    [(1, 28, 28), Conv2d(32, 5, pool="max"), Conv2d(64, 5, pool="max"), 10]

The first entry is the input: an int (flat features) or a (C, H, W) tuple. Each
later entry is a layer joined to the one below it by a connection: an int is a
dense layer of that many units, a :class:`Conv2d` a convolutional layer whose
state is the pooled feature map. Conv layers come first (they need a map
below them); dense layers may follow them and see the map flattened in C order.

:func:`resolve_layers` checks a list and turns it into :class:`Connection`
records, the shapes the network allocates and the geometry the core gets.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

POOLS = ("max", "avg", None)


def _positive_int(value: object, what: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}; got {value}")
    if value >= 2**31:
        raise ValueError(f"{what} must be below 2**31; got {value}")
    return int(value)


@dataclass(frozen=True)
class Conv2d:
    """A convolutional layer: its state is P(W * rho(s_below)) relaxed, of shape (C, H, W).

    Parameters
    ----------
    out_channels : int
        Channels of the layer's state (and of the weights' first axis).
    kernel_size : int
        Side k of the square kernels; weights have shape
        (out_channels, in_channels, k, k), PyTorch's layout.
    padding : int, default 0
        Zero padding on each side of the map below (stride is always 1).
    pool : {"max", "avg", None}, default "max"
        2x2 stride-2 pooling of the convolution's map (an odd last row or
        column is dropped, as in PyTorch); max pooling picks the first maximum
        of each window in row-major order.
    """

    out_channels: int
    kernel_size: int
    padding: int = field(default=0, kw_only=True)
    pool: str | None = field(default="max", kw_only=True)

    def __post_init__(self) -> None:
        _positive_int(self.out_channels, "Conv2d out_channels")
        _positive_int(self.kernel_size, "Conv2d kernel_size")
        _positive_int(self.padding, "Conv2d padding", minimum=0)
        if self.pool not in POOLS:
            raise ValueError(f"Conv2d pool must be 'max', 'avg' or None; got {self.pool!r}")

    def __str__(self) -> str:
        return format_layer(self)


@dataclass(frozen=True)
class Connection:
    """A resolved connection from the layer below (``in_shape``) to the layer above (``out_shape``)."""

    kind: str  # "dense" or "conv"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel_size: int = 0
    padding: int = 0
    pool: str | None = None

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind == "dense":
            return (self.n_in, self.n_out)
        return (self.out_shape[0], self.in_shape[0], self.kernel_size, self.kernel_size)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.n_out,) if self.kind == "dense" else (self.out_shape[0],)

    @property
    def fans(self) -> tuple[int, int]:
        """(fan_in, fan_out) of the Glorot initialisation: n_in, n_out; conv C_in k^2, C_out k^2."""
        if self.kind == "dense":
            return self.n_in, self.n_out
        area = self.kernel_size**2
        return self.in_shape[0] * area, self.out_shape[0] * area

    def geometry_row(self) -> list[int]:
        """The row of ``eqcore.Chain``'s geometry: kind, c_in, h_in, w_in, c_out, kernel, padding, pool."""
        import eqcore

        if self.kind == "dense":
            return [eqcore.KIND_CODES["dense"], self.n_in, 1, 1, self.n_out, 0, 0, 0]
        c_in, h_in, w_in = self.in_shape
        return [eqcore.KIND_CODES["conv"], c_in, h_in, w_in, self.out_shape[0], self.kernel_size,
                self.padding, eqcore.POOL_CODES[self.pool]]


def _input_shape(entry: object) -> tuple[int, ...]:
    if isinstance(entry, numbers.Integral) and not isinstance(entry, bool):
        return (_positive_int(entry, "the input size (layers[0])"),)
    if isinstance(entry, (tuple, list)) and len(entry) == 3:
        return tuple(_positive_int(v, f"the input shape (layers[0])[{i}]") for i, v in enumerate(entry))
    raise TypeError(
        f"layers[0] is the input: an int (flat features, e.g. 784) or a (C, H, W) tuple "
        f"(e.g. (1, 28, 28)); got {entry!r}"
    )


def resolve_layers(layers: object) -> tuple[tuple[int, ...], list[Connection]]:
    """Check a list of layers and return the input shape and one :class:`Connection` per later layer.

    Raises
    ------
    TypeError, ValueError
        Naming the layer (its position in the list) and what was expected.
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a list such as [784, 500, 10] or [(1, 28, 28), Conv2d(32, 5), 10]; got {layers!r}")
    if len(layers) < 2:
        raise ValueError(f"layers needs at least an input and an output; got {list(layers)}")
    input_shape = shape = _input_shape(layers[0])
    connections: list[Connection] = []
    for position, entry in enumerate(layers[1:], start=1):
        where = f"layers[{position}] ({format_layer(entry) if isinstance(entry, Conv2d) else entry!r})"
        if isinstance(entry, Conv2d):
            if len(shape) != 3:
                below = "a dense layer" if position > 1 else "a flat input"
                raise ValueError(
                    f"{where} is a conv layer on {below}: conv layers need a (C, H, W) map below them, "
                    f"so they come right after an image input or another conv layer"
                )
            c_in, h_in, w_in = shape
            k, pad = entry.kernel_size, entry.padding
            h_conv, w_conv = h_in + 2 * pad - k + 1, w_in + 2 * pad - k + 1
            if h_conv < 1 or w_conv < 1:
                raise ValueError(
                    f"{where}: kernel {k} is larger than the padded {h_in + 2 * pad}x{w_in + 2 * pad} map below it"
                )
            if entry.pool is not None:
                if h_conv < 2 or w_conv < 2:
                    raise ValueError(f"{where}: {entry.pool} pooling needs a map of at least 2x2; the convolution gives {h_conv}x{w_conv}")
                out = (entry.out_channels, h_conv // 2, w_conv // 2)
            else:
                out = (entry.out_channels, h_conv, w_conv)
            connections.append(Connection("conv", shape, out, k, pad, entry.pool))
        elif isinstance(entry, numbers.Integral) and not isinstance(entry, bool):
            n = _positive_int(entry, f"{where} (a dense layer's size)")
            connections.append(Connection("dense", shape, (n,)))
        else:
            raise TypeError(f"{where} must be an int (a dense layer) or an eqprop.Conv2d; got {type(entry).__name__}")
        shape = connections[-1].out_shape
    return input_shape, connections


# ------------------------------------------------------------------ text forms
_CONV_TOKEN = re.compile(r"^c(\d+)k(\d+)(?:p(\d+))?(mp|ap)?$")


def format_layer(entry: object) -> str:
    """One layer as on the command line: ``784``, ``1x28x28``, ``c32k5mp`` (``p2`` for padding, ``ap`` avg pool)."""
    if isinstance(entry, Conv2d):
        pad = f"p{entry.padding}" if entry.padding else ""
        pool = {"max": "mp", "avg": "ap", None: ""}[entry.pool]
        return f"c{entry.out_channels}k{entry.kernel_size}{pad}{pool}"
    if isinstance(entry, (tuple, list)):
        return "x".join(str(v) for v in entry)
    return str(entry)


def format_layers(layers: Sequence[object]) -> str:
    """A list of layers in the command line's grammar: ``784-500-10`` when all dense, else comma-separated."""
    if all(isinstance(e, numbers.Integral) for e in layers):
        return "-".join(str(e) for e in layers)
    return ",".join(format_layer(e) for e in layers)


def parse_layers(text: str) -> list[object]:
    """The command line's grammar, the inverse of :func:`format_layers`.

    ``784-500-10`` (dense), or comma-separated entries: an input ``1x28x28``
    (C x H x W) or ``784``; ``c<C>k<k>[p<pad>][mp|ap]`` a conv layer with C
    channels, k x k kernels, optional padding and max or average pooling (none
    if omitted); an int a dense layer. Example: ``1x28x28,c32k5mp,c64k5mp,10``.
    """
    text = text.strip()
    parts = text.split(",") if "," in text else text.split("-")
    if len(parts) < 2 or any(not p.strip() for p in parts):
        raise ValueError(f"layers must look like 784-500-10 or 1x28x28,c32k5mp,10; got {text!r}")
    layers: list[object] = []
    for position, part in enumerate(p.strip() for p in parts):
        if re.fullmatch(r"\d+", part):
            layers.append(int(part))
        elif position == 0 and re.fullmatch(r"\d+x\d+x\d+", part):
            layers.append(tuple(int(v) for v in part.split("x")))
        elif match := _CONV_TOKEN.fullmatch(part):
            channels, kernel, pad, pool = match.groups()
            layers.append(Conv2d(int(channels), int(kernel), padding=int(pad or 0),
                                 pool={"mp": "max", "ap": "avg", None: None}[pool]))
        else:
            raise ValueError(
                f"layers entry {position + 1} ({part!r}) is not a size (500), an input map (1x28x28) "
                f"or a conv layer (c32k5mp: 32 channels, 5x5 kernels, max pooling; p2 pads, ap averages)"
            )
    return layers


def layers_to_json(layers: Sequence[object]) -> list:
    """A JSON-compatible form of a list of layers (for checkpoints and config files)."""
    out: list = []
    for entry in layers:
        if isinstance(entry, Conv2d):
            out.append({"conv": entry.out_channels, "kernel": entry.kernel_size,
                        "padding": entry.padding, "pool": entry.pool})
        elif isinstance(entry, (tuple, list)):
            out.append([int(v) for v in entry])
        else:
            out.append(int(entry))
    return out


def layers_from_json(data: Sequence[object]) -> list[object]:
    """The inverse of :func:`layers_to_json`."""
    layers: list[object] = []
    for entry in data:
        if isinstance(entry, dict):
            layers.append(Conv2d(entry["conv"], entry["kernel"], padding=entry.get("padding", 0),
                                 pool=entry.get("pool", "max")))
        elif isinstance(entry, list):
            layers.append(tuple(entry))
        else:
            layers.append(entry)
    return layers
