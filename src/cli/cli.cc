#include "cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdio>
#include <string>

#include "core/config.h"
#include "gateway/gateway.h"
#include "stack/stack.h"

namespace cumulo::cli {

namespace {
std::string self_path(const char* argv0) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  return argv0;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cumulo: a highly available web hosting stack in one binary (gateway, scaling groups, object "
               "store, DNS, database tier)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cumulo 0.1.0");

  std::string gateway_config;
  bool gateway_check = false;
  auto* gw = app.add_subcommand("gateway", "Run the L7 load balancer and reverse proxy");
  gw->add_option("-c,--config", gateway_config, "Gateway configuration file (see docs/configuration.md)")
      ->required();
  gw->add_flag("--check", gateway_check, "Only validate the configuration file, then exit");
  gw->footer("Signals: SIGHUP reloads the file; SIGINT/SIGTERM drain in-flight requests, then exit.");

  std::string stack_file = "examples/webapp/stack.yaml";
  bool stack_check = false;
  stack::UpOptions up_options;
  auto* up = app.add_subcommand("up", "Run a whole stack on this machine: instances in each zone behind a gateway");
  up->add_option("stack", stack_file, "Stack file (see docs/configuration.md)")->capture_default_str();
  up->add_option("--state-dir", up_options.state_dir, "Where generated configs and instance logs go")
      ->capture_default_str();
  up->add_flag("--check", stack_check, "Only validate the stack file, then exit");
  up->footer("Ctrl-C stops the gateway (draining requests) and then every instance.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (gw->parsed()) {
      if (gateway_check) {
        gateway::check_config(gateway_config);
        std::printf("%s: ok\n", gateway_config.c_str());
        return 0;
      }
      return gateway::run(gateway_config);
    }
    if (up->parsed()) {
      if (stack_check) {
        stack::check_stack_file(stack_file);
        std::printf("%s: ok\n", stack_file.c_str());
        return 0;
      }
      up_options.cumulo_binary = self_path(argv[0]);
      return stack::run_up(stack_file, up_options);
    }
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace cumulo::cli
