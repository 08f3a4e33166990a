#include "objstore/objstore.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/blocking_pool.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/net.h"
#include "core/signals.h"
#include "core/workers.h"
#include "http/server.h"
#include "http/transport.h"
#include "objstore/internal/replication.h"
#include "objstore/internal/s3_api.h"
#include "objstore/internal/s3_config.h"
#include "objstore/internal/storage.h"

namespace cumulo::objstore {

namespace {
constexpr const char* kComponent = "objstore";
constexpr core::Millis kDrainLimit{10'000};
// The I/O pool's threads: each holds one blocking operation (an index scan, a synchronous commit waiting for
// its fsync or for SQLite's write lock, the first open of a data file). A few keep a slow disk from holding
// every listing behind one; many would only queue on SQLite's single writer.
constexpr size_t kIoThreads = 4;
}  // namespace

void check_config(const std::string& config_path) {
  parse_s3_config(config_path);
}

int run(const std::string& config_path) {
  S3Config cfg;
  MasterKey key{};
  try {
    cfg = parse_s3_config(config_path);
    key = load_master_key(cfg.master_key_file);
  } catch (const core::ConfigError& e) {
    std::fprintf(stderr, "cumulo s3: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo s3: %s: master_key_file: %s\n", config_path.c_str(), e.what());
    return 2;
  }
  if (auto lvl = core::parse_log_level(cfg.log_level)) core::log_set_level(*lvl);

  const sigset_t mask = core::block_signals({SIGINT, SIGTERM});
  const size_t worker_count =
      cfg.workers > 0 ? static_cast<size_t>(cfg.workers) : core::default_worker_count();

  // Destroyed in reverse: the servers and APIs before the loops they live on, the storage last.
  std::unique_ptr<Storage> storage;
  std::unique_ptr<http::TlsServerContext> tls;
  core::EventLoop main_loop;  // signals, the drain, replication's waits and senders' reports
  core::LoopThreads workers(worker_count);
  // Stopped once the loops have stopped, while the APIs whose work it runs still exist; declared after the
  // loops, so it is joined before they are destroyed on any way out.
  core::BlockingPool io(kIoThreads, "s3-io");
  std::unique_ptr<Replicator> replicator;
  std::vector<std::unique_ptr<S3Api>> apis;
  std::vector<std::unique_ptr<http::Server>> servers;
  try {
    StorageOptions so;
    so.data_dir = cfg.data_dir;
    so.master_key = key;
    so.max_object_bytes = cfg.max_object_bytes;
    if (cfg.replication.enabled) so.zone = cfg.replication.zone;
    so.lookup_cache_entries = cfg.lookup_cache_entries;
    so.read_cache_max_bytes = cfg.read_cache_max_bytes;
    so.read_cache_max_object_bytes = cfg.read_cache_max_object_bytes;
    storage = Storage::open(so);
    if (size_t n = storage->sweep_orphans())
      core::log_info(kComponent, "removed data files no object refers to (left by a crash)", {{"files", n}});
    for (const auto& b : cfg.buckets) {
      StorageResult<std::optional<BucketInfo>> found = storage->bucket(b.name);
      if (!found) throw std::runtime_error("cannot read bucket " + b.name + " from the index");
      const std::optional<BucketInfo>& existing = *found;
      if (!existing) {
        if (S3Error e = storage->create_bucket(b.name, b.owner); e != S3Error::kNone)
          throw std::runtime_error("cannot create configured bucket " + b.name + ": " +
                                   std::string(s3_error_info(e).message));
      } else if (existing->owner != b.owner) {
        core::log_warn(kComponent, "configured bucket belongs to another user; left as it is",
                       {{"bucket", b.name}, {"owner", existing->owner}, {"configured_owner", b.owner}});
      }
    }
    if (!cfg.tls_cert.empty()) tls = http::TlsServerContext::create({{cfg.tls_cert, cfg.tls_key}});
    if (cfg.replication.enabled) replicator = std::make_unique<Replicator>(cfg, *storage, main_loop);
    http::ServerOptions opts;
    opts.listen = *core::SocketAddress::parse(cfg.listen);
    opts.header_timeout = cfg.header_timeout;
    opts.idle_timeout = cfg.idle_timeout;
    opts.max_body_bytes = cfg.max_xml_bytes;
    opts.tls = tls.get();
    opts.reuse_port = true;
    for (size_t i = 0; i < worker_count; ++i) {
      S3Api* a =
          apis.emplace_back(std::make_unique<S3Api>(cfg, *storage, static_cast<unsigned>(i), &io)).get();
      a->set_replicator(replicator.get());
      opts.body_sink_for = [a](const http::Request& head) { return a->begin(head); };
      auto& server = servers.emplace_back(std::make_unique<http::Server>(
          workers.loop(i), opts,
          [a](http::Request& req, http::Responder respond) { a->handle(req, std::move(respond)); }));
      server->start();
      opts.listen = server->local_address();  // port 0 resolved once, shared by every worker
    }
    workers.start();
    if (replicator) replicator->start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cumulo s3: cannot start: %s\n", e.what());
    return 1;
  }

  core::log_info(
      kComponent, "started",
      {{"listen", std::string(tls ? "https://" : "http://") + servers[0]->local_address().to_string()},
       {"workers", worker_count},
       {"data_dir", cfg.data_dir},
       {"config", config_path}});
  core::ServiceLife life;
  life.component = kComponent;
  life.drain_limit = kDrainLimit;
  life.begin_drain = [&] { workers.post_each([&servers](size_t i) { servers[i]->shutdown(); }); };
  life.idle = [&] {
    for (const auto& s : servers)
      if (s->open_connections() > 0) return false;
    return true;
  };
  core::run_service(main_loop, mask, life);
  workers.stop();
  // Work still running finishes (its answers, posted to the stopped loops, are dropped); queued work is
  // dropped.
  io.stop();
  if (replicator) replicator->stop();
  // Commits in flight finish (their replies, posted to the stopped loops, are dropped with them).
  storage->stop_commit_threads();
  servers.clear();
  core::log_info(kComponent, "stopped");
  return 0;
}

}  // namespace cumulo::objstore
