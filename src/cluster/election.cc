// Election and fencing on plain transactions (docs/internals/cluster.md "Election"): the role's key is
// created by the winner under its lease, its create_revision is the term, and a holder's writes carry the
// guard "the key still has my lease and my term".
#include <utility>

#include "cluster/cluster.h"

namespace cumulo::cluster {

namespace {

Leadership leadership_of(const KeyValue& kv) {
  return Leadership{kv.key, kv.value, kv.lease, kv.create_revision};
}

bool holds(const Leadership& me, const KeyValue& kv) {
  return kv.create_revision == me.term && kv.lease == me.lease;
}

void add_guard(TxnRequest& request, const Leadership& me) {
  request.compare.push_back(Compare::create_revision_is(me.key, Compare::Op::kEqual, me.term));
  request.compare.push_back(Compare::lease_is(me.key, Compare::Op::kEqual, me.lease));
}

core::Error bad(std::string message) {
  core::Error e;
  e.kind = "bad_response";
  e.source = core::ErrorSource::kUpstream;
  e.message = std::move(message);
  return e;
}

}  // namespace

void campaign(Client& client, std::string key, std::string value, int64_t lease,
              Callback<CampaignResult> done) {
  TxnRequest t;
  t.compare.push_back(Compare::missing(key));
  t.success.push_back(Operation::put(key, value, lease));
  t.success.push_back(Operation::get(key));
  t.failure.push_back(Operation::get(key));
  client.txn(std::move(t), [key, done = std::move(done)](core::Result<TxnResult, core::Error> r) {
    if (!r) return done(core::Err(r.error()));
    const std::vector<OperationResult>& ops = r->responses;
    // The transaction is atomic: the key is there in either branch's read.
    if (ops.empty() || ops.back().kvs.empty())
      return done(
          core::Err(bad("campaign for '" + key + "': the transaction's read of the key came back empty")));
    CampaignResult c;
    c.won = r->succeeded;
    c.leader = leadership_of(ops.back().kvs.front());
    c.header = r->header;
    done(std::move(c));
  });
}

void leader(Client& client, std::string key, Callback<std::optional<Leadership>> done) {
  client.get(std::move(key), [done = std::move(done)](core::Result<GetResult, core::Error> r) {
    if (!r) return done(core::Err(r.error()));
    std::optional<Leadership> who;
    if (r->kv) who = leadership_of(*r->kv);
    done(std::move(who));
  });
}

void resign(Client& client, const Leadership& me, Callback<bool> done) {
  TxnRequest t;
  add_guard(t, me);
  t.success.push_back(Operation::del(me.key));
  client.txn(std::move(t), [done = std::move(done)](core::Result<TxnResult, core::Error> r) {
    if (!r) return done(core::Err(r.error()));
    done(r->succeeded);
  });
}

void guarded_txn(Client& client, const Leadership& me, TxnRequest request, Callback<GuardedResult> done) {
  add_guard(request, me);
  request.failure.push_back(Operation::get(me.key));
  client.txn(std::move(request), [me, done = std::move(done)](core::Result<TxnResult, core::Error> r) {
    if (!r) return done(core::Err(r.error()));
    GuardedResult g;
    g.succeeded = r->succeeded;
    if (r->succeeded) {
      g.still_leader = true;
    } else {
      const std::vector<OperationResult>& ops = r->responses;
      g.still_leader = !ops.empty() && !ops.back().kvs.empty() && holds(me, ops.back().kvs.front());
      if (!ops.empty()) r->responses.pop_back();  // the guard's read is ours, not the caller's
    }
    g.txn = std::move(r.value());
    done(std::move(g));
  });
}

void guarded_put(Client& client, const Leadership& me, std::string key, std::string value,
                 Callback<GuardedResult> done, int64_t lease) {
  TxnRequest t;
  t.success.push_back(Operation::put(std::move(key), std::move(value), lease));
  guarded_txn(client, me, std::move(t), std::move(done));
}

// --- Campaign

namespace {
constexpr core::Millis kRetryPause{500};
}

struct Campaign::Impl {
  Impl(Client& c, std::string k, std::string v, int64_t l,
       std::function<void(core::Result<Leadership, core::Error>)> fn, core::EventLoop& loop)
      : client(c),
        key(std::move(k)),
        value(std::move(v)),
        lease(l),
        on_elected(std::move(fn)),
        retry(loop, [this] { attempt(); }) {}
  ~Impl() { *alive = false; }

  void attempt() {
    watch.reset();
    campaign(client, key, value, lease, [this, token = alive](core::Result<CampaignResult, core::Error> r) {
      if (!*token) return;
      if (!r) {
        const std::string& kind = r.error().kind;
        if (kind == "lease_not_found" || kind == "invalid_argument") return finish(core::Err(r.error()));
        retry.arm(kRetryPause);
        return;
      }
      if (r->won) return finish(r->leader);
      // Someone holds it: try again when its key goes away. Watching from the revision the transaction read
      // misses no delete in between.
      WatchRequest w;
      w.key = key;
      w.start_revision = r->header.revision + 1;
      watch = client.watch(
          std::move(w),
          [this](WatchResponse resp) {
            for (const WatchEvent& e : resp.events) {
              if (e.type != WatchEvent::Type::kDelete) continue;
              retry.arm(core::Millis(0));  // not from inside the watch's own callback: attempt() destroys it
              return;
            }
          },
          [this](WatchError) { retry.arm(core::Millis(0)); });
    });
  }

  void finish(core::Result<Leadership, core::Error> r) {
    watch.reset();
    retry.cancel();
    auto fn = std::move(on_elected);  // it may destroy the campaign, and so on_elected, while it runs
    fn(std::move(r));
  }

  Client& client;
  std::string key;
  std::string value;
  int64_t lease;
  std::function<void(core::Result<Leadership, core::Error>)> on_elected;
  std::unique_ptr<Watch> watch;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  core::Timer retry;
};

Campaign::Campaign(Client& client, std::string key, std::string value, int64_t lease,
                   std::function<void(core::Result<Leadership, core::Error>)> on_elected)
    : impl_(std::make_unique<Impl>(client, std::move(key), std::move(value), lease, std::move(on_elected),
                                   client.loop())) {
  impl_->retry.arm(core::Millis(0));  // the first attempt from the loop: no callback inside the constructor
}
Campaign::~Campaign() = default;

}  // namespace cumulo::cluster
