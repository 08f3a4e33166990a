// The failover that replaces a lost primary without losing an acknowledged commit (the contract is at the top
// of cluster.h). It runs one step per monitor tick until it is done, so that a replica that is slow to
// answer, a candidate that dies, or a manager restarted in the middle only delay it.
#include <signal.h>

#include <algorithm>

#include "core/log.h"
#include "db/internal/cluster.h"
#include "db/internal/instance.h"
#include "db/internal/process.h"

namespace cumulo::db {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// A failover that cannot go on says why at once, again when the reason changes or every kWaitingLogEvery, and
// after kRefuseAfter tells the operator what they can do.
constexpr milliseconds kWaitingLogEvery{10'000};
constexpr milliseconds kRefuseAfter{30'000};

}  // namespace

void Cluster::begin_failover(const std::string& why) {
  failover_ = Failover{};
  failover_.active = true;
  failover_.old_primary = primary_;
  failover_.started = primary_lost_ ? primary_lost_at_ : Clock::now();
  event("failover_started", "failing over from " + primary_ + " (" + why + ")",
        {{"old", primary_}, {"reason", why}});
  save_state();
  continue_failover();
}

bool Cluster::fence(Instance& inst) {
  if (inst.pid == 0) {
    // Not ours to watch (an earlier run's, not adopted), yet running on this data directory: still fenced.
    if (auto leftover = find_running(inst.pid_file, {inst.datadir_arg()})) {
      inst.pid = leftover->pid;
      inst.adopted = true;
      inst.adopted_process = *leftover;
    }
  }
  if (inst.pid > 0) {
    const pid_t pid = inst.pid;
    if (!kill_now(pid, !inst.adopted, kKillWait)) {
      inst.last_error = "could not be killed (pid " + std::to_string(pid) + ")";
      return false;
    }
    event("fenced", "fenced " + inst.spec.name + ": killed (pid " + std::to_string(pid) + ")",
          {{"instance", inst.spec.name}, {"pid", static_cast<long>(pid)}});
  }
  forget_process(inst, State::kFenced);
  return true;
}

core::Result<void, core::Error> Cluster::promote(Instance& c, bool relay_log_applied) {
  if (c.has_source && !relay_log_applied) {
    // Whatever its relay log still holds is applied before the configuration that points to it is dropped.
    if (auto applied = apply_relay_log(c, "before its promotion"); !applied) {
      core::Error e = applied.error();
      e.message = "cannot apply its relay log: " + e.message;
      return core::Err(std::move(e));
    }
  }
  // Strict semi-sync is on before the first write is accepted, so no commit is ever acknowledged that no
  // replica has; in fallback mode it is switched on once a replica is connected (enabled earlier, the first
  // commit would wait out the timeout and fall back). As durable as a primary (server_args) before the first
  // write; what it applied as a replica reaches the disk with that write, whose fsyncs of the redo log and of
  // the binary log cover everything written before.
  std::vector<std::string> sql = {"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL sync_binlog=1",
                                  "SET GLOBAL innodb_flush_log_at_trx_commit=1"};
  if (config_.semi_sync == DbConfig::SemiSyncMode::kStrict && instances_.size() > 1) {
    sql.push_back("SET GLOBAL rpl_semi_sync_master_enabled=ON");
  }
  sql.push_back("SET GLOBAL read_only=OFF");
  for (const std::string& s : sql) {
    if (!c.conn.exec(s)) return server_error("sql", c.conn.error() + " (in " + s + ")");
  }
  c.role = Role::kPrimary;
  c.state = State::kRunning;
  c.has_source = false;
  c.read_only = false;
  return {};
}

void Cluster::continue_failover() {
  Instance* old = find(failover_.old_primary);
  const auto now = Clock::now();
  auto waiting = [&](const std::string& why) {
    bool changed = why != failover_.waiting_for;
    if (changed || now - failover_.waiting_logged >= kWaitingLogEvery) {
      event("failover_waiting", "failover from " + failover_.old_primary + " waits: " + why,
            {{"reason", why}});
      failover_.waiting_logged = now;
    }
    failover_.waiting_for = why;
    if (!failover_.refusal_logged && now - failover_.started >= kRefuseAfter) {
      failover_.refusal_logged = true;
      event("failover_refused",
            "automatic failover from " + failover_.old_primary + " cannot go on (" + why +
                "); it keeps trying. An operator who accepts losing what only the missing replicas hold can "
                "promote one with `cumulo db switchover --to NAME`",
            {{"reason", why}});
    }
  };

  // 1. Fence: nothing may be acknowledged behind the decision.
  if (!fence(*old)) {
    waiting(old->spec.name + " " + old->last_error);
    return;
  }
  old->role = Role::kReplica;

  // 2. What each replica received: from its stopped IO thread, or, when it was restarted meanwhile, by
  // applying its relay log. A replica that is down is started (replication off) so that its relay log can be
  // read.
  std::vector<ReplicaState> states;
  for (auto& ip : instances_) {
    Instance& r = *ip;
    if (&r == old) continue;
    ReplicaState rs;
    rs.name = r.spec.name;
    rs.eligible = !r.needs_rebuild && r.state != State::kRebuilding && r.state != State::kFenced;
    rs.bound = r.bound;
    if (r.state == State::kRebuilding) {
      rs.bound = GtidSet{};
      states.push_back(rs);
      continue;
    }
    if (r.pid == 0) {
      if (now >= r.next_attempt && r.state != State::kFenced) {
        r.next_attempt = now + kRestartBackoff;
        event("restarting", "starting " + r.spec.name + " to read what its relay log holds",
              {{"instance", r.spec.name}});
        start_instance(r);
      }
      states.push_back(rs);
      continue;
    }
    if (!r.reachable) {
      // A replica that does not answer while its primary is gone is hung (stopped, or stuck on its disk):
      // killed, it can be started again and read; its relay log survives.
      if (r.state != State::kStarting && r.unreachable_since != Clock::time_point{} &&
          now - r.unreachable_since >= config_.failover_after) {
        event("fenced",
              "killed the unresponsive replica " + r.spec.name + " (pid " + std::to_string(r.pid) +
                  ") so that it can be started again and read",
              {{"instance", r.spec.name}, {"pid", static_cast<long>(r.pid)}});
        kill_server(r, State::kDown);
      } else if (r.state == State::kStarting && now - r.unreachable_since > kServerStartLimit) {
        kill_server(r, State::kDown);
      }
      states.push_back(rs);
      continue;
    }
    if (r.io_running || r.io_connecting) {
      // Its source is dead, so this returns at once.
      if (!r.conn.exec("STOP SLAVE IO_THREAD")) {
        states.push_back(rs);
        continue;
      }
      poll(r);
      if (!r.reachable) {
        states.push_back(rs);
        continue;
      }
    }
    if (!rs.eligible) {
      states.push_back(rs);
      continue;
    }
    if (r.received_known || !r.has_source) {
      rs.known = true;
      rs.received = received_set(r.binlog_state, r.slave_pos, r.has_source ? r.io_pos : GtidSet{}, history());
    } else {
      auto applied = apply_relay_log(r, "to learn what it received");
      if (applied) {
        rs.known = true;
        rs.received = applied_set(r);
        // Applied: its received set is now what it holds, whatever its IO position says.
        r.received_known = true;
        r.io_pos = GtidSet{};
      } else {
        const std::string& err = applied.error().message;
        event("catch_up_failed", r.spec.name + ": cannot apply its relay log: " + err,
              {{"instance", r.spec.name}, {"error", err}});
      }
    }
    // Its source is fenced, so what it received is final: should it fail now, a candidate that holds this set
    // holds whatever it could have acknowledged.
    if (rs.known) r.bound = rs.received;
    states.push_back(rs);
  }

  // 3. The candidate and its target.
  PromotionPlan plan;
  if (!forced_candidate_.empty()) {
    auto it = std::find_if(states.begin(), states.end(),
                           [&](const ReplicaState& s) { return s.name == forced_candidate_; });
    if (it == states.end() || !it->known) {
      waiting("the operator's choice " + forced_candidate_ + " does not answer with its position yet");
      return;
    }
    plan.candidate = forced_candidate_;
    plan.target = it->received;
  } else {
    plan = plan_promotion(states, failover_.target, failover_.candidate);
  }
  if (!plan.candidate) {
    waiting(plan.waiting_for);
    return;
  }
  if (*plan.candidate != failover_.candidate || plan.target != failover_.target) {
    failover_.candidate = *plan.candidate;
    failover_.target = plan.target;
    save_state();  // a later attempt, by this run or the next, must reach at least this target
  }
  Instance& c = *find(*plan.candidate);

  // 4. Catch-up: the candidate applies everything it received.
  const std::string target = plan.target.to_string();
  event("catch_up_started", c.spec.name + " applies its relay log up to " + target + " before its promotion",
        {{"instance", c.spec.name}, {"target", target}});
  const auto catch_up_began = Clock::now();
  if (auto applied = apply_relay_log(c, "before its promotion"); !applied) {
    const std::string& err = applied.error().message;
    event("catch_up_failed", c.spec.name + " did not apply its relay log: " + err + "; trying again",
          {{"instance", c.spec.name}, {"error", err}});
    waiting(c.spec.name + " did not apply its relay log: " + err);
    return;
  }
  const auto catch_up_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - catch_up_began).count();
  GtidSet have = applied_set(c);
  if (forced_candidate_.empty() && !have.contains(plan.target)) {
    std::string lack = plan.target.missing_from(have).to_string();
    event("catch_up_failed", c.spec.name + " applied its relay log but lacks " + lack + " of the target",
          {{"instance", c.spec.name}, {"error", "lacks " + lack}});
    waiting(c.spec.name + " lacks " + lack + " after applying its relay log");
    return;
  }
  event("catch_up_done",
        c.spec.name + " reached " + have.to_string() + " in " + std::to_string(catch_up_ms) + " ms" +
            (catch_up_ms > config_.connect_timeout.count() ? " (longer than connect_timeout)" : ""),
        {{"instance", c.spec.name}, {"ms", static_cast<long>(catch_up_ms)}});

  // 5. Promotion.
  if (auto promoted = promote(c, /*relay_log_applied=*/true); !promoted) {
    const std::string& err = promoted.error().message;
    event("promotion_failed", "promotion of " + c.spec.name + " failed: " + err + "; trying again",
          {{"instance", c.spec.name}, {"error", err}});
    waiting("promotion of " + c.spec.name + " failed: " + err);
    return;
  }
  poll(c);
  const std::string old_name = old->spec.name;
  primary_ = c.spec.name;
  ++epoch_;
  history_.merge(c.binlog_state);
  const int64_t took = std::chrono::duration_cast<milliseconds>(Clock::now() - failover_.started).count();
  {
    std::lock_guard lock(status_mu_);
    ++failovers_;
    last_failover_ms_ = took;
  }
  failover_ = Failover{};
  forced_candidate_.clear();
  primary_lost_ = false;
  old->next_attempt =
      Clock::now();  // rejoins at once: until a replica connects, strict semi-sync holds writes
  refused_logged_ = false;
  last_semi_sync_ = c.semi_sync;
  save_state();

  // 6. The others follow. Each one's received set is within the new primary's (it was chosen so), so relay
  // logs may go; one that was not read (down, hung) is applied before it is repointed (repair_replicas).
  for (auto& ip : instances_) {
    Instance& r = *ip;
    if (&r == &c || &r == old) continue;
    r.bound.reset();
    if (!r.reachable || r.state == State::kRebuilding || r.needs_rebuild) continue;
    if (!r.received_known && r.has_source) {
      r.state = State::kRecovering;
      continue;
    }
    if (auto repointed = make_replica_of(r, c); !repointed) mark_broken(r, repointed.error().message);
  }
  readers_.clear();
  event("failover_done",
        "failover done: " + c.spec.name + " is the primary (" + std::to_string(took) +
            " ms after the primary was lost); " + old_name +
            " rejoins as a replica once it is shown to hold "
            "nothing the new primary lacks, rebuilt otherwise",
        {{"instance", c.spec.name}, {"old", old_name}, {"ms", static_cast<long>(took)}});
}

void Cluster::handle_primary_loss_fallback() {
  Instance& p = primary();
  if (instances_.size() > 1 && last_semi_sync_ == SemiSync::kOn) {
    begin_failover("unreachable for " + std::to_string(config_.failover_after.count()) + " ms");
    return;
  }
  if (!refused_logged_) {
    refused_logged_ = true;
    std::string why = instances_.size() == 1
                          ? std::string("it has no replica")
                          : std::string("semi-synchronous replication was ") +
                                (last_semi_sync_ == SemiSync::kAsync ? "running asynchronously (fallen back)"
                                                                     : "not enabled") +
                                " when it was lost, so acknowledged writes may exist only on it";
    event("failover_refused",
          std::string("refusing automatic failover from ") + p.spec.name + ": " + why +
              "; restarting it in place (or run `cumulo db switchover --to NAME`)",
          {{"instance", p.spec.name}, {"reason", why}});
  }
  if (p.pid == 0 && Clock::now() >= p.next_attempt) {
    p.next_attempt = Clock::now() + kRestartBackoff;
    start_instance(p);
    if (wait_ready(p, kServerStartLimit)) {
      poll(p);
      if (auto promoted = promote(p)) {
        event("restarted", p.spec.name + " restarted in place as the primary", {{"instance", p.spec.name}});
      } else {
        core::log_warn("db", "cannot make the restarted primary writable",
                       {{"error", promoted.error().message}});
      }
    }
  }
}

}  // namespace cumulo::db
