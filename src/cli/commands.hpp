// Subcommands of the `klay` tool. Each takes the arguments after `klay` (argv[0] is the
// subcommand name) and returns the process exit status.
#pragma once

int cmd_validate(int argc, char** argv);  // klay validate FILE [--dot OUT] [--allow-dangling]
int cmd_layers(int argc, char** argv);    // klay layers [--type CATEGORY]
int cmd_weights(int argc, char** argv);   // klay weights FILE
int cmd_run(int argc, char** argv);       // klay run MODEL.yaml WEIGHTS INPUTS.json [--grads] [--out F]
int cmd_eval(int argc, char** argv);      // klay eval MODEL.yaml WEIGHTS STRUCTURE.xyz [--json]
int cmd_bench(int argc, char** argv);      // klay bench accuracy|speed ... (cmd_bench.cpp)
int cmd_fit(int argc, char** argv);        // klay fit MODEL.yaml DATA.xyz [options] (cmd_fit.cpp)
