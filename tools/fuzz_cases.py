"""The fuzz cases of ``tools/fuzz_cli.py``: base specs, mutations of spec trees, bytes and
overrides, hand-made MNIST files and their corruptions, and ``make_case`` (files + commands)."""

from __future__ import annotations

import copy
import gzip
import json
import random
import struct

import yaml

BASE_SPECS = {
    "parity": {
        "name": "fuzz-parity",
        "seed": 0,
        "task": {
            "inputs": {"name": "hypercube", "d": 6},
            "target": {"name": "parity", "indices": [[0, 1]]},
            "n_test": 64,
        },
        "model": {"name": "mlp", "width": 8, "depth": 1, "param": "sp"},
        "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 8, "steps": 10, "eval_every": 5, "thresholds": [0.9]},
        "sweep": {"grid": {"train.lr": [0.05, 0.1]}, "seeds": 1},
    },
    "hermite": {
        "name": "fuzz-hermite",
        "task": {
            "inputs": {"name": "gaussian", "d": 4},
            "target": {"name": "hermite", "monomial": {0: 2}},
            "n_train": 64,
            "n_test": 32,
        },
        "model": {"width": 8, "depth": 2, "param": "mup", "base_width": 8},
        "train": {"optimizer": "adam", "lr": 0.01, "batch_size": 16, "epochs": 2, "eval_every": 2},
    },
    "teacher": {
        "name": "fuzz-teacher",
        "task": {
            "inputs": {"name": "sphere", "d": 5},
            "target": {"name": "teacher", "widths": [4], "outputs": 2},
            "n_test": 32,
        },
        "model": {"name": "mlp", "width": 8, "depth": 1},
        "train": {"lr": 0.02, "batch_size": 8, "steps": 8, "eval_every": 4, "loss": "mse"},
        "sweep": {"zip": {"model.width": [4, 8], "train.lr": [0.01, 0.02]}},
    },
    "mnist": {
        "name": "fuzz-mnist",
        "task": {"dataset": "mnist", "data_dir": "data", "n_train": 32, "n_test": 16},
        "model": {"name": "mlp", "width": 8, "depth": 1},
        "train": {"lr": 0.05, "batch_size": 8, "steps": 6, "eval_every": 3, "loss": "cross_entropy"},
    },
}

# values that sit at or beyond an edge, of every type
EDGE_VALUES = [
    0,
    -1,
    1,
    2,
    3,
    7,
    2**31,
    2**31 - 1,
    -(2**31),
    2**63,
    2**63 - 1,
    -(2**63) - 1,
    10**12,
    10**30,
    0.0,
    -0.0,
    1e-300,
    1e300,
    -1e300,
    0.5,
    -0.5,
    1.5,
    "inf",
    "nan",
    ".inf",
    "-.inf",
    ".nan",
    "",
    " ",
    "x",
    "a" * 10_000,
    "é",
    "\u202e",
    "\x00",
    "null",
    "~",
    "true",
    "yes",
    "off",
    "1e3",
    True,
    False,
    None,
    [],
    {},
    [[]],
    [None],
    [1, 2, 3],
    [[0, 1]],
    [[0, 99]],
    [-1],
    {"name": "x"},
    {"a": {"b": {"c": 1}}},
    ["mlp"],
    "mlp",
    "cnn",
    "sp",
    "mup",
    "ntk",
    "mf",
    "sgd",
    "adam",
    "mse",
    "cross_entropy",
    "gaussian",
    "hypercube",
    "parity",
    "hermite",
    "teacher",
    "cpu",
    "cuda:7",
    "package.module:attr",
    "os:system",
    "callable:nope",
    "../../etc/passwd",
    "/dev/zero",
]
UNKNOWN_KEYS = ["widht", "lr", "learning_rate", "extra", "__class__", "model", "task", "0", "", "seed"]


def _paths(tree, prefix=()):
    """Every path to a value (and to each section) of a nested spec."""
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


def _set(tree, path, value):
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _delete(tree, path):
    node = tree
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


def mutate_tree(spec: dict, rng: random.Random) -> dict:
    """One to four structural mutations: a value swapped for an edge value, a key deleted,
    an unknown key added, a section replaced, a list shortened or grown."""
    spec = copy.deepcopy(spec)
    for _ in range(rng.randint(1, 4)):
        paths = _paths(spec)
        if not paths:
            break
        path = rng.choice(paths)
        op = rng.random()
        try:
            if op < 0.55:
                _set(spec, path, copy.deepcopy(rng.choice(EDGE_VALUES)))
            elif op < 0.7:
                _delete(spec, path)
            elif op < 0.8:
                node = spec
                for part in path[:-1]:
                    node = node[part]
                if isinstance(node, dict):
                    node[rng.choice(UNKNOWN_KEYS)] = copy.deepcopy(rng.choice(EDGE_VALUES))
            elif op < 0.9:
                axis = rng.choice(["train.lr", "model.width", "model.depth", "seed", "task.inputs.d", "train.steps"])
                spec.setdefault("sweep", {})
                if isinstance(spec["sweep"], dict):
                    spec["sweep"].setdefault("grid", {})
                    if isinstance(spec["sweep"]["grid"], dict):
                        spec["sweep"]["grid"][axis] = [copy.deepcopy(rng.choice(EDGE_VALUES)) for _ in range(2)]
            else:
                _set(spec, path, [copy.deepcopy(rng.choice(EDGE_VALUES)) for _ in range(rng.randint(0, 3))])
        except (KeyError, IndexError, TypeError):
            continue
    return spec


def mutate_bytes(text: bytes, rng: random.Random) -> bytes:
    """A file-level mutation: flipped or inserted bytes, truncation, Latin-1, a BOM, huge
    integers, deep nesting, alias bombs, tabs, duplicate keys."""
    op = rng.randrange(10)
    data = bytearray(text)
    if op == 0 and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif op == 1:
        data = data[: rng.randrange(len(data) + 1)]
    elif op == 2:
        data = bytearray(text.decode().replace("fuzz", "f\u00e9\u00e8").encode("latin-1", "replace"))
    elif op == 3:
        data = bytearray(b"\xef\xbb\xbf" + text)
    elif op == 4:
        data += f"\nseed: {'9' * rng.choice([19, 20, 400, 4301, 5000])}\n".encode()
    elif op == 5:
        depth = rng.choice([50, 500, 5000])
        data += b"\nextra: " + b"[" * depth + b"]" * depth + b"\n"
    elif op == 6:
        lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
        for i, name in enumerate("bcdefgh"):
            prev = "abcdefgh"[i]
            lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
        data = bytearray(("\n".join(lines) + "\n").encode()) + data
    elif op == 7:
        data = bytearray(text.replace(b"  ", b"\t"))
    elif op == 8:
        data += b"\nmodel: {width: 3}\nmodel: {width: 4}\n"
    else:
        pos = rng.randrange(len(data) + 1)
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
    return bytes(data)


def random_override(rng: random.Random) -> str:
    key = rng.choice(
        [
            "train.lr",
            "model.width",
            "model.depth",
            "seed",
            "sweep.seeds",
            "task.n_train",
            "task.n_test",
            "train.steps",
            "train.batch_size",
            "task.inputs.d",
            "model.param",
            "train.device",
            "sweep.grid",
            "nope.key",
            "train.lr.x",
            "",
            "model",
            "task.target.indices",
            "train.eval_sets",
            "train.large_n",
        ]
    )
    value = rng.choice(EDGE_VALUES)
    text = value if isinstance(value, str) else json.dumps(value)
    return f"{key}={text}" if rng.random() < 0.95 else text


# ---- dataset files -----------------------------------------------------------------------


def idx_bytes(array_shape: tuple[int, ...], values: bytes, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, len(array_shape)]) + b"".join(struct.pack(">I", n) for n in array_shape)
    return header + values


def mnist_files(rng: random.Random, n_train: int = 64, n_test: int = 32) -> dict[str, bytes]:
    files = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = bytes(rng.randrange(256) for _ in range(n * 28 * 28))
        labels = bytes(rng.randrange(10) for _ in range(n))
        files[f"{split}-images-idx3-ubyte"] = idx_bytes((n, 28, 28), images)
        files[f"{split}-labels-idx1-ubyte"] = idx_bytes((n,), labels)
    return files


def mutate_dataset(files: dict[str, bytes], rng: random.Random) -> dict[str, bytes]:
    files = dict(files)
    name = rng.choice(sorted(files))
    data = bytearray(files[name])
    op = rng.randrange(9)
    if op == 0:
        data = data[: rng.randrange(len(data))]
    elif op == 1:
        data[rng.randrange(4)] = rng.randrange(256)  # magic
    elif op == 2:
        data[4:8] = struct.pack(">I", rng.choice([0, 1, 2**31, 2**32 - 1]))  # first dimension
    elif op == 3 and "labels" in name:
        data[-1] = rng.choice([10, 99, 255])
    elif op == 4:
        data += bytes(rng.randint(1, 100))
    elif op == 5:
        compressed = gzip.compress(bytes(data))
        files.pop(name)
        name += ".gz"
        data = bytearray(compressed[: rng.randrange(10, len(compressed))] if rng.random() < 0.5 else compressed)
        if rng.random() < 0.5 and len(data) > 20:
            data[rng.randrange(10, len(data))] ^= 0xFF  # CRC or stream damage
    elif op == 6:
        files.pop(name)
        return files  # a file missing
    elif op == 7 and "images" in name:
        n = struct.unpack(">I", bytes(data[4:8]))[0]
        data = bytearray(idx_bytes((n, 27, 28), bytes(n * 27 * 28)))
    else:  # a gzip bomb: a tiny header, then far more zeros than it announces
        bomb = gzip.compress(bytes(data[:16]) + bytes(64 * 2**20), compresslevel=9)
        files.pop(name)
        name += ".gz"
        data = bytearray(bomb)
    files[name] = bytes(data)
    return files


# ---- cases -------------------------------------------------------------------------------


def make_case(i: int, seed: int) -> dict:
    """Case ``i``: files to write (relative path -> bytes) and the commands to run."""
    rng = random.Random(f"{seed}-{i}")
    kind = rng.choice(["tree", "tree", "tree", "bytes", "overrides", "dataset", "store", "checkpoint"])
    base_name = rng.choice(sorted(BASE_SPECS))
    base = BASE_SPECS[base_name]
    files: dict[str, bytes] = {}
    overrides: list[str] = []
    spec = base
    if kind == "tree":
        spec = mutate_tree(base, rng)
    elif kind == "overrides":
        overrides = [random_override(rng) for _ in range(rng.randint(1, 3))]
    elif kind == "dataset":
        spec = BASE_SPECS["mnist"]
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True).encode()
    if kind == "bytes":
        text = mutate_bytes(text, rng)
    files["spec.yaml"] = text
    if spec is BASE_SPECS["mnist"] or base_name == "mnist" or kind == "dataset":
        data = mnist_files(rng)
        if kind == "dataset":
            data = mutate_dataset(data, rng)
        files.update({f"data/{k}": v for k, v in data.items()})
    commands = [["run", "spec.yaml", *overrides, "--out", "out", "--dry-run"]]
    if kind in ("store", "checkpoint"):
        commands = [["store-setup", kind, str(rng.randrange(2**31))]]
        commands += [["run", "spec.yaml", "--out", "out"], ["status", "out"], ["report", "out"], ["export", "out"]]
    else:
        commands.append(["run-if-small", "spec.yaml", *overrides, "--out", "out"])
    return {"i": i, "kind": kind, "base": base_name, "files": files, "commands": commands}
