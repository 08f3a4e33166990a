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

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<GtidSet> GtidSet::parse(std::string_view text) {
  GtidSet set;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
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
    set.add(domain, server, seq);
  }
  return set;
}

void GtidSet::add(uint32_t domain, uint32_t server, uint64_t seq) {
  uint64_t& slot = seq_[Key{domain, server}];
  slot = std::max(slot, seq);
}

void GtidSet::merge(const GtidSet& other) {
  for (const auto& [k, seq] : other.seq_) add(k.domain, k.server, seq);
}

bool GtidSet::contains(const GtidSet& other) const {
  for (const auto& [k, seq] : other.seq_) {
    auto it = seq_.find(k);
    if (seq > 0 && (it == seq_.end() || it->second < seq)) return false;
  }
  return true;
}

GtidSet GtidSet::missing_from(const GtidSet& have) const {
  GtidSet out;
  for (const auto& [k, seq] : seq_) {
    auto it = have.seq_.find(k);
    if (seq > 0 && (it == have.seq_.end() || it->second < seq)) out.add(k.domain, k.server, seq);
  }
  return out;
}

uint64_t GtidSet::highest_seq(uint32_t domain) const {
  uint64_t best = 0;
  for (auto it = seq_.lower_bound(Key{domain, 0}); it != seq_.end() && it->first.domain == domain; ++it) {
    best = std::max(best, it->second);
  }
  return best;
}

std::string GtidSet::to_string() const {
  std::string out;
  for (const auto& [k, seq] : seq_) {
    if (!out.empty()) out += ',';
    out += std::to_string(k.domain) + "-" + std::to_string(k.server) + "-" + std::to_string(seq);
  }
  return out;
}

std::string GtidSet::position() const {
  std::map<uint32_t, std::pair<uint32_t, uint64_t>> best;  // domain -> (server, seq)
  for (const auto& [k, seq] : seq_) {
    auto [it, fresh] = best.try_emplace(k.domain, k.server, seq);
    if (!fresh && seq > it->second.second) it->second = {k.server, seq};
  }
  std::string out;
  for (const auto& [domain, s] : best) {
    if (!out.empty()) out += ',';
    out += std::to_string(domain) + "-" + std::to_string(s.first) + "-" + std::to_string(s.second);
  }
  return out;
}

GtidSet received_set(const GtidSet& binlog_state, const GtidSet& applied_pos, const GtidSet& io_pos,
                     const GtidSet& history) {
  GtidSet out = binlog_state;
  out.merge(applied_pos);
  out.merge(io_pos);
  // Each position reaches back through the history it came from.
  for (const GtidSet* pos : {&applied_pos, &io_pos}) {
    for (const auto& [k, seq] : pos->entries()) {
      for (const auto& [hk, hseq] : history.entries()) {
        if (hk.domain == k.domain && hseq <= seq) out.add(hk.domain, hk.server, hseq);
      }
    }
  }
  return out;
}

GtidSet errant_transactions(const GtidSet& replica_set, const GtidSet& primary_state) {
  return replica_set.missing_from(primary_state);
}

PromotionPlan plan_promotion(const std::vector<ReplicaState>& replicas, const GtidSet& earlier_target,
                             const std::string& earlier_candidate) {
  PromotionPlan plan;
  plan.target = earlier_target;
  std::vector<const ReplicaState*> known;
  for (const ReplicaState& r : replicas) {
    if (r.known && r.eligible) {
      known.push_back(&r);
      plan.target.merge(r.received);
    }
  }
  std::sort(known.begin(), known.end(), [&](const ReplicaState* a, const ReplicaState* b) {
    if ((a->name == earlier_candidate) != (b->name == earlier_candidate)) return a->name == earlier_candidate;
    return a->name < b->name;
  });
  const ReplicaState* chosen = nullptr;
  for (const ReplicaState* c : known) {
    if (c->received.contains(plan.target)) {
      chosen = c;
      break;
    }
  }
  if (!chosen) {
    if (known.empty()) {
      plan.waiting_for = "no replica answers with its position";
    } else {
      plan.waiting_for = "no replica received every transaction that may have been acknowledged (" +
                         plan.target.to_string() + "):";
      for (const ReplicaState* c : known) {
        plan.waiting_for +=
            " " + c->name + " lacks " + plan.target.missing_from(c->received).to_string() + ";";
      }
      plan.waiting_for.pop_back();
    }
    return plan;
  }
  // A replica that is not known may hold acknowledged commits that the others lack, unless what it can have
  // received is bounded by what the candidate has.
  std::string unknown;
  for (const ReplicaState& r : replicas) {
    if (r.known && r.eligible) continue;
    if (r.bound && chosen->received.contains(*r.bound)) continue;
    unknown += (unknown.empty() ? "" : ", ") + r.name;
  }
  if (!unknown.empty()) {
    const bool one = unknown.find(',') == std::string::npos;
    plan.waiting_for = unknown + (one ? " does" : " do") +
                       " not answer and may hold acknowledged commits that " + chosen->name +
                       " lacks: waiting for " + (one ? "it" : "them");
    return plan;
  }
  plan.candidate = chosen->name;
  return plan;
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
