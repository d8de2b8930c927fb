#!/usr/bin/env python3
"""Checks a weights file written by klay's torch.save writer with the real torch.load.

  check_torch_load.py WRITTEN.pth --reference ORIGINAL.pth   same OrderedDict as torch.load(ORIGINAL)
  check_torch_load.py WRITTEN.pth --values VALUES.txt [--shared A,B,...]
                                                             entries as listed (test_torch_save_writer.cpp),
                                                             tensors A, B, ... sharing one storage

Same keys in the same order, dtypes, shapes and bit-identical values. Exits 1 with the differences
listed.
"""
import argparse
import collections
import sys

import torch

DTYPES = {"Double": torch.float64, "Float": torch.float32, "Long": torch.int64, "Int": torch.int32,
          "Bool": torch.bool}


def raw_bytes(tensor):
    """The values as bytes, so that the comparison is bit for bit (signed zeros, NaN payloads)."""
    return tensor.contiguous().view(-1).view(torch.uint8)


def from_values(path):
    state = collections.OrderedDict()
    with open(path) as lines:
        for line in lines:
            fields = line.split()
            name, dtype, dim = fields[0], DTYPES[fields[1]], int(fields[2])
            shape = [int(s) for s in fields[3:3 + dim]]
            raw = fields[3 + dim:]
            if dtype.is_floating_point:
                values = [float(v) for v in raw]
            else:
                values = [int(v) for v in raw]
            state[name] = torch.tensor(values, dtype=dtype).reshape(shape)
    return state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("written")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference")
    group.add_argument("--values")
    parser.add_argument("--shared", default="")
    args = parser.parse_args()

    written = torch.load(args.written)
    expected = torch.load(args.reference) if args.reference else from_values(args.values)
    problems = []
    if type(written) is not collections.OrderedDict:
        problems.append(f"torch.load gives a {type(written).__name__}, not an OrderedDict")
    if list(written.keys()) != list(expected.keys()):
        problems.append(f"keys differ: {list(written.keys())} vs {list(expected.keys())}")
    for name, tensor in expected.items():
        got = written.get(name)
        if not isinstance(got, torch.Tensor):
            problems.append(f"{name}: not a tensor")
        elif got.dtype != tensor.dtype or got.shape != tensor.shape:
            problems.append(f"{name}: {got.dtype} {tuple(got.shape)} vs {tensor.dtype} {tuple(tensor.shape)}")
        elif got.requires_grad:
            problems.append(f"{name}: requires_grad is set")
        elif not torch.equal(raw_bytes(got), raw_bytes(tensor)):
            problems.append(f"{name}: values differ")
    shared = [name for name in args.shared.split(",") if name]
    if len({written[name].storage().data_ptr() for name in shared if name in written}) > 1:
        problems.append(f"{', '.join(shared)} do not share one storage")
    if problems:
        print(f"{args.written}:", *problems, sep="\n  ")
        return 1
    print(f"{args.written}: {len(written)} entries equal to {args.reference or args.values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
