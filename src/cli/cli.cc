#include "cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdio>
#include <functional>
#include <string>

#include "cli/control_commands.h"
#include "core/config.h"
#include "db/db.h"
#include "dns/dns.h"
#include "eip/eip.h"
#include "gateway/gateway.h"
#include "objstore/objstore.h"
#include "stack/stack.h"

namespace cumulo::cli {

namespace {
std::string self_path(const char* argv0) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  return argv0;
}

// `--check` validates the file and says so; otherwise the component runs. A bad file exits 2 either way.
int check_or_run(bool check, const std::string& path, const std::function<void()>& validate,
                 const std::function<int()>& run) {
  try {
    if (!check) return run();
    validate();
    std::printf("%s: ok\n", path.c_str());
    return 0;
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo: %s\n", e.what());
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cumulo: a highly available web hosting stack in one binary (gateway, scaling groups, object "
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
  auto* up = app.add_subcommand(
      "up", "Run a whole stack on this machine: auto scaling groups over zones behind a gateway");
  up->add_option("stack", stack_file, "Stack file (see docs/configuration.md)")->capture_default_str();
  up->add_option("--state-dir", up_options.state_dir, "Where generated configs and instance logs go")
      ->capture_default_str();
  up->add_flag("--check", stack_check, "Only validate the stack file, then exit");
  up->footer("Ctrl-C stops the gateway (draining requests) and then every instance.");

  // The control API of a running stack (docs/scaling.md).
  ControlTarget target;
  auto add_target_options = [&target](CLI::App* cmd) {
    cmd->add_option("--state-dir", target.state_dir, "State directory of the running cumulo up")
        ->capture_default_str();
    cmd->add_option("--api", target.api, "Control API URL (default: from STATE_DIR/stack.json)");
    cmd->add_option("--token", target.token, "Control API token (default: from STATE_DIR/api-token)");
    cmd->add_flag("--json", target.json, "Print the API's JSON");
  };
  auto* status =
      app.add_subcommand("status", "Groups of the running stack: min, max, desired, in service, zones");
  add_target_options(status);
  auto* instances =
      app.add_subcommand("instances", "Instances of the running stack with their state and usage");
  add_target_options(instances);
  std::string scale_group;
  int scale_desired = -1;
  auto* scale = app.add_subcommand("scale", "Set a group's desired capacity");
  scale->add_option("group", scale_group, "Group name")->required();
  scale->add_option("--desired", scale_desired, "Instances wanted, within the group's min..max")->required();
  add_target_options(scale);
  unsigned long long events_since = 0;
  auto* events = app.add_subcommand("events", "Scaling decisions and instance changes, with their reasons");
  events->add_option("--since", events_since, "Only events after this sequence number");
  add_target_options(events);
  auto* metrics = app.add_subcommand("metrics", "Custom metrics for scaling policies (metric: custom:NAME)");
  metrics->require_subcommand(1);
  std::string metric_group, metric_name, metric_instance;
  double metric_value = 0;
  auto* put = metrics->add_subcommand("put", "Push one data point");
  put->add_option("group", metric_group, "Group name")->required();
  put->add_option("name", metric_name, "Metric name (a policy reads it as custom:NAME)")->required();
  put->add_option("value", metric_value, "Value")->required();
  put->add_option("--instance", metric_instance, "Instance the value is about (e.g. web-a-1)");
  add_target_options(put);

  // `cumulo s3 -c FILE`: the object store runs from the subcommand's callback (its exit code via
  // RuntimeError).
  std::string s3_config;
  bool s3_check = false;
  auto* s3 = app.add_subcommand("s3", "Run the S3-compatible object store (docs/objstore.md)");
  s3->add_option("-c,--config", s3_config, "Object store configuration file (see docs/configuration.md)")
      ->required();
  s3->add_flag("--check", s3_check, "Only validate the configuration file, then exit");
  s3->footer("SIGINT/SIGTERM finish in-flight requests, then exit.");
  s3->callback([&] {
    throw CLI::RuntimeError(check_or_run(
        s3_check, s3_config, [&] { objstore::check_config(s3_config); },
        [&] { return objstore::run(s3_config); }));
  });

  // `cumulo dns -c FILE` (or --zone/--origin without a file): the authoritative DNS server (docs/dns.md).
  dns::RunOptions dns_options;
  bool dns_check = false;
  auto* dns_cmd =
      app.add_subcommand("dns", "Run the authoritative DNS server with health-checked routing (docs/dns.md)");
  dns_cmd->add_option("-c,--config", dns_options.config_path,
                      "DNS configuration file (see docs/configuration.md)");
  dns_cmd->add_option("--listen", dns_options.listen,
                      "Address to serve on, UDP and TCP (repeatable; overrides the file)");
  dns_cmd->add_option("--zone", dns_options.zone_file, "Zone file to serve without a configuration file");
  dns_cmd->add_option("--origin", dns_options.origin, "Origin of --zone");
  dns_cmd->add_option("--admin", dns_options.admin, "Admin API address (overrides the file)");
  dns_cmd->add_option("--workers", dns_options.workers, "Worker threads (overrides the file)");
  dns_cmd->add_option(
      "--gateway-address", dns_options.gateway_addresses,
      "The gateway's address for ALIAS records with gateway: true (repeatable; cumulo up passes it)");
  dns_cmd->add_option("--elastic-ip", dns_options.elastic_ips,
                      "NAME=ADDRESS of an elastic IP, for ALIAS records with elastic_ip: NAME (repeatable; "
                      "cumulo up passes the stack's)");
  dns_cmd->add_flag("--check", dns_check, "Only validate the configuration and its zone files, then exit");
  dns_cmd->footer("SIGINT/SIGTERM stop the server.");
  dns_cmd->callback([&] {
    throw CLI::RuntimeError(check_or_run(
        dns_check, dns_options.config_path,
        [&] {
          if (dns_options.config_path.empty()) throw core::ConfigError("--check needs -c FILE");
          dns::check_config(dns_options.config_path);
        },
        [&] { return dns::run(dns_options); }));
  });

  // `cumulo net ...`: the stack's network in network mode (docs/network.md).
  std::string net_state_dir = ".cumulo";
  bool net_json = false;
  auto* net =
      app.add_subcommand("net", "The network of a stack run with a `network:` section (docs/network.md)");
  net->require_subcommand(1);
  auto* net_check = net->add_subcommand(
      "check",
      "Probe every path between the running stack's security groups and outside; compare with the policy");
  net_check->add_option("--state-dir", net_state_dir, "State directory of the running cumulo up")
      ->capture_default_str();
  net_check->add_flag("--json", net_json, "Print the rows as JSON");
  auto* net_reload = net->add_subcommand(
      "reload", "Apply the stack file's security groups again to the running stack, in one transaction");
  add_target_options(net_reload);
  net_reload->footer(
      "Reads the stack file the stack was started with. Established connections stay up; new ones follow the "
      "new rules. Addresses, ports, groups and their max need a restart: such a change is refused.");
  net_check->footer(
      "Each path is probed from inside the source's namespace: a connection or a refusal means the path is "
      "open, "
      "an ICMP 'administratively prohibited' or a timeout that it is closed. Exit status 0: every path as "
      "the "
      "policy says; 1: at least one differs.");

  // `cumulo db ...`: the database tier (docs/db.md).
  std::string db_config, db_admin, db_to;
  bool db_check = false, db_json = false;
  auto* db = app.add_subcommand("db", "The database tier: MariaDB primary and replicas, failover, endpoints");
  db->require_subcommand(1);
  auto* db_run = db->add_subcommand("run", "Run the database tier (docs/db.md)");
  db_run->add_option("-c,--config", db_config, "Database tier configuration file (docs/configuration.md)")
      ->required();
  db_run->add_flag("--check", db_check, "Only validate the configuration file, then exit");
  db_run->footer(
      "SIGINT/SIGTERM close the endpoints, then stop every mariadbd cleanly. Killed, it leaves the "
      "servers and the endpoints serving; started again, it adopts them without a failover.");
  auto* db_endpoints = db->add_subcommand(
      "endpoints", "The writer and reader endpoints alone (started by `db run` as a process of their own)");
  db_endpoints->add_option("-c,--config", db_config, "Database tier configuration file")->required();
  db_endpoints->footer(
      "SIGHUP re-reads DATA_DIR/routes.json, which `db run` writes; SIGINT/SIGTERM stop it.");
  auto* db_status =
      db->add_subcommand("status", "Primary, replicas, replication threads, lag, semi-sync, events");
  auto* db_switch = db->add_subcommand("switchover", "Planned switchover of the primary to a replica");
  db_switch->add_option(
      "--to", db_to,
      "Replica to promote (default: the most up-to-date one); with the primary lost, promotes "
      "it even if it may lack acknowledged commits that only other replicas hold");
  for (CLI::App* cmd : {db_status, db_switch}) {
    cmd->add_option("-c,--config", db_config,
                    "The running tier's configuration file (for its admin address)");
    cmd->add_option("--admin", db_admin, "The running tier's admin address (HOST:PORT)");
  }
  db_status->add_flag("--json", db_json, "Print the admin API's JSON");

  // `cumulo eip ...`: the elastic IPs of a stack (docs/elastic-ips.md).
  std::string eip_config, eip_admin, eip_state_dir = ".cumulo", eip_to, eip_name;
  bool eip_check = false, eip_json = false;
  auto* eip =
      app.add_subcommand("eip", "Elastic IPs: stable public addresses that move to a healthy gateway");
  eip->require_subcommand(1);
  auto* eip_run = eip->add_subcommand("run", "Run the elastic IP keeper (started by cumulo up)");
  eip_run->add_option("-c,--config", eip_config, "Keeper configuration file (written by cumulo up)")
      ->required();
  eip_run->add_flag("--check", eip_check, "Only validate the configuration file, then exit");
  eip_run->footer(
      "SIGINT/SIGTERM stop the keeper and leave every address where it is; started again, it adopts them "
      "(or finishes a move it was killed in) without moving anything.");
  auto* eip_list =
      eip->add_subcommand("list", "Each elastic IP: its holder, term, lease, candidates, events");
  auto* eip_move = eip->add_subcommand(
      "move", "Planned move: drain the holder's keep-alive connections (up to drain_timeout), then move");
  eip_move->add_option("name", eip_name, "The elastic IP's name")->required();
  eip_move->add_option("--to", eip_to, "The gateway to hold it, such as gateway-b")->required();
  for (CLI::App* cmd : {eip_list, eip_move}) {
    cmd->add_option("--state-dir", eip_state_dir, "The running stack's state directory (default .cumulo)");
    cmd->add_option("-c,--config", eip_config, "The keeper's configuration file (STATE_DIR/eip-keeper.yaml)");
    cmd->add_option("--admin", eip_admin, "The keeper's admin address (HOST:PORT)");
  }
  eip_list->add_flag("--json", eip_json, "Print the keeper's JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (gw->parsed()) {
      return check_or_run(
          gateway_check, gateway_config, [&] { gateway::check_config(gateway_config); },
          [&] { return gateway::run(gateway_config); });
    }
    if (up->parsed()) {
      return check_or_run(
          stack_check, stack_file, [&] { stack::check_stack_file(stack_file); },
          [&] {
            up_options.cumulo_binary = self_path(argv[0]);
            return stack::run_up(stack_file, up_options);
          });
    }
    if (db_run->parsed()) {
      return check_or_run(
          db_check, db_config, [&] { db::check_config(db_config); }, [&] { return db::run(db_config); });
    }
    if (db_endpoints->parsed()) return db::run_endpoints(db_config);
    if (db_status->parsed() || db_switch->parsed()) {
      if (db_admin.empty() && db_config.empty()) {
        std::fprintf(stderr, "cumulo db: give the running tier's --admin HOST:PORT or its -c CONFIG\n");
        return 2;
      }
      if (db_admin.empty()) db_admin = db::admin_address(db_config);
      return db_status->parsed() ? db::command_status(db_admin, db_json)
                                 : db::command_switchover(db_admin, db_to);
    }
    if (eip_run->parsed()) {
      return check_or_run(
          eip_check, eip_config, [&] { eip::check_config(eip_config); },
          [&] { return eip::run(eip_config); });
    }
    if (eip_list->parsed() || eip_move->parsed()) {
      if (eip_admin.empty()) {
        if (eip_config.empty()) eip_config = eip_state_dir + "/eip-keeper.yaml";
        if (::access(eip_config.c_str(), R_OK) != 0) {
          std::fprintf(
              stderr,
              "cumulo eip: no %s: is a stack with elastic_ips running here? (or give --state-dir, -c "
              "or --admin)\n",
              eip_config.c_str());
          return 1;
        }
        eip_admin = eip::admin_address(eip_config);
      }
      return eip_list->parsed() ? eip::command_list(eip_admin, eip_json)
                                : eip::command_move(eip_admin, eip_name, eip_to);
    }
    if (net_check->parsed()) return stack::net_check(net_state_dir, net_json);
    if (net_reload->parsed()) return command_net_reload(target);
    if (status->parsed()) return command_status(target);
    if (instances->parsed()) return command_instances(target);
    if (scale->parsed()) return command_scale(target, scale_group, scale_desired);
    if (events->parsed()) return command_events(target, events_since);
    if (put->parsed()) {
      return command_metrics_put(target, metric_group, metric_name, metric_value, metric_instance);
    }
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace cumulo::cli
