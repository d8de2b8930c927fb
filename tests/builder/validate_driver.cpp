// Stands in for the `klay` executable in the builder's tests: `klay_validate_driver ARGS` behaves
// as `klay validate ARGS`, without linking the torch runtime.
#include "cli/commands.hpp"

int main(int argc, char** argv) { return cmd_validate(argc, argv); }
