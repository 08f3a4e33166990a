#include "stack/stack.h"

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "core/config.h"
#include "stack/internal/network_policy.h"
#include "stack/internal/supervisor.h"
#include "stack/stack_file.h"

namespace cumulo::stack {

namespace {

namespace fs = std::filesystem;

std::string self_executable() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find the cumulo binary (/proc/self/exe): " + ec.message());
  return p.string();
}

// A bare name came from PATH and a relative path from the working directory; either way, children need a path
// that does not depend on how cumulo was invoked.
std::string resolve_cumulo_binary(const std::string& given) {
  if (given.empty() || given.find('/') == std::string::npos) return self_executable();
  return fs::absolute(given).lexically_normal().string();
}

// Every group's program must exist before anything starts, so a missing build is a stack file error, not a
// crash loop of an instance that cannot exist.
void check_commands(const StackSpec& spec, const std::string& bin_dir) {
  for (const GroupSpec& group : spec.groups) {
    const std::string& zone = spec.zones.front();
    PlaceholderValues values{"0", zone, group.name + "-" + zone + "-1", bin_dir};
    resolve_executable(group, expand_placeholders(group.launch_template.command.front(), values));
  }
}

}  // namespace

void check_stack_file(const std::string& stack_file) {
  StackSpec spec = load_stack_file(stack_file);
  check_commands(spec, fs::path(self_executable()).parent_path().string());
}

int net_check(const std::string& state_dir, bool json) {
  try {
    return internal::run_net_check(state_dir, json);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo net check: %s\n", e.what());
    return 2;
  }
}

int run_up(const std::string& stack_file, const UpOptions& options) {
  internal::SupervisorOptions supervisor;
  StackSpec spec;
  try {
    supervisor.cumulo_binary = resolve_cumulo_binary(options.cumulo_binary);
    supervisor.bin_dir = fs::path(supervisor.cumulo_binary).parent_path().string();
    supervisor.state_dir = options.state_dir.empty() ? ".cumulo" : options.state_dir;
    spec = load_stack_file(stack_file);
    check_commands(spec, supervisor.bin_dir);
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo up: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo up: %s\n", e.what());
    return 1;
  }
  try {
    return internal::run_supervisor(spec, supervisor);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo up: %s\n", e.what());
    return 1;
  }
}

}  // namespace cumulo::stack
