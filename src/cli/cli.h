// The `cumulo` command: parses flags and calls a component. Nothing else lives here.
#pragma once

namespace cumulo::cli {

// Returns the process exit code.
int main(int argc, char** argv);

}  // namespace cumulo::cli
