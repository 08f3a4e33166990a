#include "db/internal/topology.h"

#include <algorithm>
#include <charconv>

namespace cumulo::db {

namespace {

template <typename T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<GtidPosition> GtidPosition::parse(std::string_view text) {
  GtidPosition pos;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\n')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\n')) item.remove_suffix(1);
    if (item.empty()) continue;
    size_t d1 = item.find('-');
    size_t d2 = d1 == std::string_view::npos ? d1 : item.find('-', d1 + 1);
    if (d2 == std::string_view::npos) return std::nullopt;
    uint32_t domain = 0, server = 0;
    uint64_t seq = 0;
    if (!parse_number(item.substr(0, d1), domain) ||
        !parse_number(item.substr(d1 + 1, d2 - d1 - 1), server) || !parse_number(item.substr(d2 + 1), seq)) {
      return std::nullopt;
    }
    uint64_t& slot = pos.seq_by_domain[domain];
    slot = std::max(slot, seq);
  }
  return pos;
}

bool GtidPosition::contains(const GtidPosition& other) const {
  for (const auto& [domain, seq] : other.seq_by_domain) {
    auto it = seq_by_domain.find(domain);
    if (seq > 0 && (it == seq_by_domain.end() || it->second < seq)) return false;
  }
  return true;
}

uint64_t GtidPosition::total() const {
  uint64_t sum = 0;
  for (const auto& [domain, seq] : seq_by_domain) sum += seq;
  return sum;
}

std::optional<std::string> choose_promotion_candidate(const std::vector<ReplicaView>& replicas) {
  struct Candidate {
    const ReplicaView* view;
    GtidPosition received;
  };
  std::vector<Candidate> candidates;
  for (const ReplicaView& r : replicas) {
    if (!r.reachable || r.fenced) continue;
    // A replica's received position is at least what it applied (the IO position can lag after a restart).
    GtidPosition received = GtidPosition::parse(r.gtid_io_pos).value_or(GtidPosition{});
    GtidPosition applied = GtidPosition::parse(r.gtid_slave_pos).value_or(GtidPosition{});
    for (const auto& [d, s] : applied.seq_by_domain)
      received.seq_by_domain[d] = std::max(received.seq_by_domain[d], s);
    candidates.push_back({&r, std::move(received)});
  }
  if (candidates.empty()) return std::nullopt;
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.view->name < b.view->name; });
  const Candidate* best = &candidates[0];
  for (const Candidate& c : candidates) {
    bool dominates = std::all_of(candidates.begin(), candidates.end(),
                                 [&](const Candidate& o) { return c.received.contains(o.received); });
    if (dominates) return c.view->name;
    if (c.received.total() > best->received.total()) best = &c;
  }
  return best->view->name;
}

std::vector<std::string> readers_within_lag(const std::vector<ReplicaView>& replicas,
                                            std::chrono::milliseconds lag_limit) {
  std::vector<std::string> out;
  for (const ReplicaView& r : replicas) {
    if (!r.reachable || r.fenced || !r.io_running || !r.sql_running || !r.seconds_behind) continue;
    if (std::chrono::seconds(*r.seconds_behind) > lag_limit) continue;
    out.push_back(r.name);
  }
  return out;
}

const std::string& ReaderRoute::next() {
  if (readers_.empty()) return primary_;
  const std::string& r = readers_[next_ % readers_.size()];
  ++next_;
  return r;
}

}  // namespace cumulo::db
