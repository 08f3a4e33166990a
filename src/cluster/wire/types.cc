#include "cluster/wire/types.h"

#include <utility>

namespace cumulo::cluster {

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xFF) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();  // "a\xff" ends at "b"
  }
  return std::string(1, '\0');  // etcd: range_end "\0" with any key is every key from it on
}

Compare Compare::value_is(std::string key, Op op, std::string value) {
  Compare c;
  c.target = Target::kValue;
  c.op = op;
  c.key = std::move(key);
  c.value = std::move(value);
  return c;
}

namespace {
Compare numeric(Compare::Target target, std::string key, Compare::Op op, int64_t n) {
  Compare c;
  c.target = target;
  c.op = op;
  c.key = std::move(key);
  c.number = n;
  return c;
}
}  // namespace

Compare Compare::version_is(std::string key, Op op, int64_t version) {
  return numeric(Target::kVersion, std::move(key), op, version);
}
Compare Compare::create_revision_is(std::string key, Op op, int64_t revision) {
  return numeric(Target::kCreateRevision, std::move(key), op, revision);
}
Compare Compare::mod_revision_is(std::string key, Op op, int64_t revision) {
  return numeric(Target::kModRevision, std::move(key), op, revision);
}
Compare Compare::lease_is(std::string key, Op op, int64_t lease) {
  return numeric(Target::kLease, std::move(key), op, lease);
}

Operation Operation::get(std::string key) {
  Operation o;
  o.kind = Kind::kRange;
  o.key = std::move(key);
  return o;
}
Operation Operation::range(std::string prefix) {
  Operation o;
  o.kind = Kind::kRange;
  o.range_end = prefix_end(prefix);
  o.key = std::move(prefix);
  return o;
}
Operation Operation::put(std::string key, std::string value, int64_t lease) {
  Operation o;
  o.kind = Kind::kPut;
  o.key = std::move(key);
  o.value = std::move(value);
  o.lease = lease;
  return o;
}
Operation Operation::del(std::string key) {
  Operation o;
  o.kind = Kind::kDelete;
  o.key = std::move(key);
  return o;
}
Operation Operation::del_prefix(std::string prefix) {
  Operation o = del(std::move(prefix));
  o.range_end = prefix_end(o.key);
  return o;
}

}  // namespace cumulo::cluster
