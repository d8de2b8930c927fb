#!/usr/bin/env python3
"""Writes a large synthetic KLay model for bench/validate_bench.sh: a chain of N layer calls mixing
AtomwiseLinear layers whose irreps come from interpolations (of model_params and of the previous
layer's config), aliases that call an earlier layer again, and ArbitraryModule activations.

usage: gen_chain_model.py N OUT.yaml
"""
import sys


def main() -> None:
    n, out = int(sys.argv[1]), sys.argv[2]
    lines = [
        "model_params:",
        "  channels: 8",
        "  block:",
        "    - {l: 0, mul: '${model_params.channels}'}",
        "model_inputs:",
        '  h: "Tensor (N,8)"',
        "model_layers:",
    ]
    previous, last_linear = "model_inputs.h", None
    for i in range(n):
        name = f"layer{i}"
        if i % 5 == 4 and last_linear:
            lines += [f"  {name}:", f"    alias: {last_linear}", f"    inputs: {{h: {previous}}}"]
        elif i % 5 == 2:
            lines += [
                f"  {name}:",
                "    type: ArbitraryModule",
                "    config: {target: torch.nn.functional.silu}",
                f"    inputs: {{0: {previous}}}",
            ]
        else:
            source = (f"${{model_layers.{last_linear}.config.irreps_out_block}}" if last_linear
                      else "${model_params.block}")
            lines += [
                f"  {name}:",
                "    type: AtomwiseLinear",
                "    config:",
                f"      irreps_in_block: {source}",
                "      irreps_out_block:",
                "        - {l: 0, mul: '${model_params.channels}'}",
                f"    inputs: {{h: {previous}}}",
            ]
            last_linear = name
        previous = name
    lines += ["model_outputs:", f"  out: {previous}", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
