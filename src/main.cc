#include "cli/cli.h"

int main(int argc, char** argv) {
  return cumulo::cli::main(argc, argv);
}
