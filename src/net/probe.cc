// Probing from inside namespaces, and the full policy matrix.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <set>
#include <thread>

#include "core/net.h"
#include "core/text.h"
#include "net/net.h"

namespace cumulo::net {

std::string_view reach_name(Reach reach) {
  switch (reach) {
    case Reach::kConnected:
      return "connected";
    case Reach::kRefused:
      return "refused";
    case Reach::kDenied:
      return "denied";
    case Reach::kTimeout:
      return "timeout";
    case Reach::kError:
      return "error";
  }
  return "?";
}

Result<ConnectFunction> connect_from(const std::string& ns) {
  auto home = std::make_shared<core::Fd>(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  auto target = std::make_shared<core::Fd>(core::open_network_namespace(ns));
  if (!*home || !*target) {
    return core::Err(core::Error{
        "namespace",
        "cannot open the network namespaces of this thread and of " + ns + ": " + core::errno_text(errno),
        core::ErrorSource::kInternal, core::Retry::kNo});
  }
  return ConnectFunction([home, target](const core::SocketAddress& to, int* error) {
    if (::setns(target->get(), CLONE_NEWNET) != 0) {
      *error = errno;
      return core::Fd();
    }
    core::Fd fd = core::connect_tcp(to, error);
    if (::setns(home->get(), CLONE_NEWNET) != 0) {
      // Every later socket of this thread would be made in the wrong namespace: nothing sane to go on with.
      std::fprintf(stderr, "cannot return to the network namespace of this thread: %s\n",
                   core::errno_text(errno).c_str());
      std::abort();
    }
    return fd;
  });
}

Result<void> run_in_namespace(const std::string& ns, const std::function<void()>& fn) {
  std::string failure;
  std::exception_ptr thrown;
  // A thread of its own: setns(CLONE_NEWNET) changes the calling thread only, and this one ends with it.
  std::thread t([&] {
    core::Fd fd = core::open_network_namespace(ns);
    if (!fd) {
      failure = "cannot open " + core::network_namespace_path(ns) + ": " + core::errno_text(errno);
      return;
    }
    int rc = ::setns(fd.get(), CLONE_NEWNET);
    int err = errno;
    fd.reset();
    if (rc != 0) {
      failure = "cannot enter network namespace " + ns + ": " + core::errno_text(err) +
                (err == EPERM ? " (needs CAP_SYS_ADMIN: run as root)" : "");
      return;
    }
    try {
      fn();
    } catch (...) {
      thrown = std::current_exception();
    }
  });
  t.join();
  if (!failure.empty())
    return core::Err(core::Error{"namespace", failure, core::ErrorSource::kInternal, core::Retry::kNo});
  if (thrown) std::rethrow_exception(thrown);
  return {};
}

namespace {

Reach reach_of(int err) {
  switch (err) {
    case 0:
      return Reach::kConnected;
    case ECONNREFUSED:
      return Reach::kRefused;
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EACCES:
    case EPERM:
      return Reach::kDenied;
    case ETIMEDOUT:
      return Reach::kTimeout;
    default:
      return Reach::kError;
  }
}

Reach connect_once(uint32_t address, uint16_t port, std::chrono::milliseconds timeout) {
  core::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Reach::kError;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(address);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return Reach::kConnected;
  if (errno != EINPROGRESS) return reach_of(errno);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Reach::kTimeout;
    pollfd p{fd.get(), POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? Reach::kTimeout : Reach::kError;
    return reach_of(core::socket_error(fd.get()));
  }
}

struct Endpoint {
  std::string name, ns, group;
  uint32_t address = 0;
};

}  // namespace

Reach probe_tcp(const std::string& ns, uint32_t address, uint16_t port, std::chrono::milliseconds timeout) {
  Reach out = Reach::kError;
  auto r = run_in_namespace(ns, [&] { out = connect_once(address, port, timeout); });
  return r ? out : Reach::kError;
}

std::vector<CheckRow> check(const Plan& plan, const std::vector<Member>& members,
                            const std::vector<std::pair<std::string, uint16_t>>& listening,
                            std::chrono::milliseconds timeout) {
  const Endpoint outside{std::string(kOutside), plan.outside_ns, std::string(kOutside), plan.outside_address};
  std::vector<Endpoint> sources{outside};
  std::vector<Endpoint> dests;
  for (const Member& m : members) {
    sources.push_back({m.name, m.ns, m.group, m.address});
    dests.push_back({m.name, m.ns, m.group, m.address});
  }
  std::set<uint16_t> ports;
  for (const SecurityGroupSpec& g : plan.spec.groups)
    for (const IngressRule& r : g.ingress)
      if (r.protocol == Protocol::kTcp) {
        ports.insert(static_cast<uint16_t>(r.ports.lo));
        ports.insert(static_cast<uint16_t>(r.ports.hi));
      }
  bool outside_listens = false;
  for (const auto& [name, port] : listening) {
    ports.insert(port);
    outside_listens = outside_listens || name == kOutside;
  }
  if (outside_listens) dests.push_back(outside);
  auto listens = [&](const std::string& name, uint16_t port) {
    return std::find(listening.begin(), listening.end(), std::pair{name, port}) != listening.end();
  };

  std::vector<CheckRow> rows;
  std::vector<std::pair<const Endpoint*, const Endpoint*>> ends;
  for (const Endpoint& from : sources)
    for (const Endpoint& to : dests) {
      if (from.name == to.name) continue;  // a namespace's own address never crosses the router
      for (uint16_t port : ports) {
        CheckRow row;
        row.from = from.name;
        row.from_group = from.group;
        row.to = to.name;
        row.to_group = to.group;
        row.port = port;
        row.expected = allowed_from(plan, from.group, from.address, to.group, port);
        row.listening = listens(to.name, port);
        rows.push_back(std::move(row));
        ends.emplace_back(&from, &to);
      }
    }

  // Each probe waits at most `timeout`; a few workers keep the whole matrix near one timeout for small stacks
  // without starting thousands of threads for big ones.
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < rows.size(); i = next++) {
      CheckRow& row = rows[i];
      row.observed = probe_tcp(ends[i].first->ns, ends[i].second->address, row.port, timeout);
      if (row.expected)
        row.ok = row.observed == Reach::kConnected || (!row.listening && row.observed == Reach::kRefused);
      else
        row.ok = row.observed == Reach::kDenied;
    }
  };
  std::vector<std::thread> workers;
  const size_t n = std::min<size_t>(16, rows.size());
  for (size_t i = 0; i < n; ++i) workers.emplace_back(work);
  for (std::thread& t : workers) t.join();
  return rows;
}

std::string render_matrix(const std::vector<CheckRow>& rows) {
  std::vector<std::vector<std::string>> table{{"", "FROM", "TO", "PORT", "EXPECTED", "OBSERVED"}};
  size_t bad = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (const CheckRow& r : rows) {
      if (r.ok == (pass == 0)) continue;  // mismatches first
      bad += r.ok ? 0 : 1;
      auto who = [](const std::string& name, const std::string& group) {
        return name == group ? name : name + " (" + group + ")";
      };
      table.push_back({r.ok ? "" : "MISMATCH", who(r.from, r.from_group), who(r.to, r.to_group),
                       std::to_string(r.port) + (r.listening ? "" : " (no listener)"),
                       r.expected ? "allowed" : "denied", std::string(reach_name(r.observed))});
    }
  std::string out = core::format_columns(table);
  out += std::to_string(rows.size()) + " paths, " + std::to_string(bad) +
         (bad == 1 ? " differs from the policy\n" : " differ from the policy\n");
  return out;
}

}  // namespace cumulo::net
