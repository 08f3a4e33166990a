#include "objstore/internal/s3_config.h"

#include <set>

#include "core/config.h"
#include "core/log.h"
#include "core/net.h"

namespace cumulo::objstore {

using core::ConfigNode;

const S3User* S3Config::user_by_access_key(const std::string& key) const {
  for (const auto& u : users)
    if (u.access_key == key) return &u;
  return nullptr;
}

const S3BucketConfig* S3Config::bucket_config(const std::string& name) const {
  for (const auto& b : buckets)
    if (b.name == name) return &b;
  return nullptr;
}

bool valid_bucket_name(std::string_view n) {
  if (n.size() < 3 || n.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(n.front()) || !alnum(n.back())) return false;
  bool all_digits_or_dots = true;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    if (!alnum(c) && c != '-' && c != '.') return false;
    if (c == '.' && i + 1 < n.size() && (n[i + 1] == '.' || n[i + 1] == '-')) return false;
    if (c == '-' && i + 1 < n.size() && n[i + 1] == '.') return false;
    if (!(c >= '0' && c <= '9') && c != '.') all_digits_or_dots = false;
  }
  if (all_digits_or_dots) return false;  // formatted like an IP address
  if (n.substr(0, 4) == "xn--" || n.substr(0, 8) == "sthree-") return false;
  if (n.size() >= 8 && n.substr(n.size() - 8) == "-s3alias") return false;
  if (n.size() >= 6 && n.substr(n.size() - 6) == "--ol-s3") return false;
  return true;
}

namespace {

bool valid_zone_name(std::string_view z) {
  if (z.empty() || z.size() > 63) return false;
  for (char c : z)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

void parse_replication(const ConfigNode& r, const std::set<std::string>& user_names, S3Config& c) {
  r.check_keys({"zone", "peers", "ack", "on_peer_down", "ack_timeout", "retry_interval", "user"});
  S3ReplicationConfig& rc = c.replication;
  rc.enabled = true;
  rc.zone = r.required("zone").as_string();
  if (!valid_zone_name(rc.zone))
    r["zone"].fail("expected a zone name of 1-63 characters a-z A-Z 0-9 '-' '_', got '" + rc.zone + "'");
  std::set<std::string> zones{rc.zone};
  auto peers = r.required("peers");
  for (const auto& p : peers.items()) {
    p.check_keys({"zone", "url"});
    S3ReplicationPeer peer;
    peer.zone = p.required("zone").as_string();
    if (!valid_zone_name(peer.zone))
      p["zone"].fail("expected a zone name of 1-63 characters a-z A-Z 0-9 '-' '_', got '" + peer.zone + "'");
    if (!zones.insert(peer.zone).second)
      p["zone"].fail("zone '" + peer.zone + "' is this node's own zone or another peer's: one node per zone");
    peer.url = p.required("url").as_string();
    std::string_view u = peer.url;
    if (u.substr(0, 7) != "http://")
      p["url"].fail(
          "expected http://HOST:PORT (the peer's S3 listener; https is not supported between zones "
          "yet), got '" +
          peer.url + "'");
    u.remove_prefix(7);
    while (!u.empty() && u.back() == '/') u.remove_suffix(1);
    std::string hostport(u);
    if (hostport.rfind("localhost:", 0) == 0) hostport = "127.0.0.1:" + hostport.substr(10);
    if (!core::SocketAddress::parse(hostport))
      p["url"].fail("expected http://HOST:PORT with a numeric address (127.0.0.1:9001, [::1]:9001), got '" +
                    peer.url + "'");
    peer.address = hostport;
    rc.peers.push_back(std::move(peer));
  }
  if (rc.peers.empty()) peers.fail("expected at least one peer (the store node of another zone)");
  std::string ack = r.string_or("ack", "all");
  if (ack == "all") {
    rc.ack = ReplicationAck::kAll;
  } else if (ack == "one") {
    rc.ack = ReplicationAck::kOne;
  } else {
    r["ack"].fail("expected all or one, got '" + ack + "'");
  }
  std::string down = r.string_or("on_peer_down", "degrade");
  if (down == "degrade") {
    rc.on_peer_down = PeerDownPolicy::kDegrade;
  } else if (down == "fail") {
    rc.on_peer_down = PeerDownPolicy::kFail;
  } else {
    r["on_peer_down"].fail("expected degrade or fail, got '" + down + "'");
  }
  rc.ack_timeout = r.duration_or("ack_timeout", rc.ack_timeout);
  if (rc.ack_timeout.count() <= 0) r["ack_timeout"].fail("expected a duration above zero");
  rc.retry_interval = r.duration_or("retry_interval", rc.retry_interval);
  if (rc.retry_interval.count() <= 0) r["retry_interval"].fail("expected a duration above zero");
  rc.user = r.string_or("user", c.users.front().name);
  if (!user_names.count(rc.user)) r["user"].fail("no user is named '" + rc.user + "'");
}

S3Config parse(const ConfigNode& root) {
  root.check_keys({"listen", "data_dir", "master_key_file", "region", "domains", "log_level", "tls", "users",
                   "buckets", "limits", "replication", "read_cache", "lookup_cache", "workers"});
  S3Config c;
  c.workers = static_cast<int>(root.int_or("workers", c.workers, 0, 256));
  c.listen = root.string_or("listen", c.listen);
  if (!core::SocketAddress::parse(c.listen))
    root["listen"].fail("expected an address like 127.0.0.1:9000 or [::1]:9000, got '" + c.listen + "'");
  c.data_dir = root.required("data_dir").as_string();
  if (c.data_dir.empty()) root["data_dir"].fail("expected a directory path");
  c.master_key_file = root.required("master_key_file").as_string();
  if (c.master_key_file.empty()) root["master_key_file"].fail("expected a file path");
  c.region = root.string_or("region", "");
  if (root["domains"].defined()) c.domains = root["domains"].as_string_list();
  for (const auto& d : c.domains)
    if (d.empty() || d.front() == '.') root["domains"].fail("expected host names like s3.localhost");
  c.log_level = root.string_or("log_level", c.log_level);
  if (!core::parse_log_level(c.log_level))
    root["log_level"].fail("expected debug, info, warn or error, got '" + c.log_level + "'");
  if (auto tls = root["tls"]; tls.defined()) {
    tls.check_keys({"cert", "key"});
    c.tls_cert = tls.required("cert").as_string();
    c.tls_key = tls.required("key").as_string();
  }
  auto users = root.required("users");
  std::set<std::string> names, keys;
  for (const auto& u : users.items()) {
    u.check_keys({"name", "access_key", "secret_key"});
    S3User user;
    user.name = u.required("name").as_string();
    user.access_key = u.required("access_key").as_string();
    user.secret_key = u.required("secret_key").as_string();
    if (user.name.empty()) u["name"].fail("expected a non-empty name");
    if (user.access_key.size() < 3 || user.access_key.find('/') != std::string::npos)
      u["access_key"].fail("expected at least 3 characters and no '/'");
    if (user.secret_key.size() < 8) u["secret_key"].fail("expected at least 8 characters");
    if (!names.insert(user.name).second) u["name"].fail("duplicate user name '" + user.name + "'");
    if (!keys.insert(user.access_key).second) u["access_key"].fail("duplicate access key");
    c.users.push_back(std::move(user));
  }
  if (c.users.empty()) users.fail("expected at least one user");
  if (auto buckets = root["buckets"]; buckets.defined()) {
    std::set<std::string> seen;
    for (const auto& b : buckets.items()) {
      b.check_keys({"name", "owner", "public"});
      S3BucketConfig bc;
      bc.name = b.required("name").as_string();
      if (!valid_bucket_name(bc.name))
        b["name"].fail("'" + bc.name + "' is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')");
      bc.owner = b.string_or("owner", c.users.front().name);
      if (!names.count(bc.owner)) b["owner"].fail("no user is named '" + bc.owner + "'");
      bc.is_public = b.bool_or("public", false);
      if (!seen.insert(bc.name).second) b["name"].fail("duplicate bucket '" + bc.name + "'");
      c.buckets.push_back(std::move(bc));
    }
  }
  if (auto l = root["limits"]; l.defined()) {
    l.check_keys({"max_object_bytes", "max_xml_bytes", "clock_skew", "header_timeout", "idle_timeout"});
    c.max_object_bytes = l.size_or("max_object_bytes", c.max_object_bytes);
    c.max_xml_bytes = l.size_or("max_xml_bytes", c.max_xml_bytes);
    c.clock_skew = l.duration_or("clock_skew", c.clock_skew);
    c.header_timeout = l.duration_or("header_timeout", c.header_timeout);
    c.idle_timeout = l.duration_or("idle_timeout", c.idle_timeout);
    if (c.max_object_bytes == 0) l["max_object_bytes"].fail("expected a size above zero");
    if (c.header_timeout.count() <= 0) l["header_timeout"].fail("expected a duration above zero");
    if (c.idle_timeout.count() <= 0) l["idle_timeout"].fail("expected a duration above zero");
  }
  if (auto r = root["replication"]; r.defined()) parse_replication(r, names, c);
  if (auto rc = root["read_cache"]; rc.defined()) {
    rc.check_keys({"max_bytes", "max_object_bytes"});
    c.read_cache_max_bytes = rc.size_or("max_bytes", c.read_cache_max_bytes);
    c.read_cache_max_object_bytes = rc.size_or("max_object_bytes", c.read_cache_max_object_bytes);
    if (c.read_cache_max_object_bytes > c.read_cache_max_bytes && c.read_cache_max_bytes > 0)
      rc["max_object_bytes"].fail("expected at most read_cache.max_bytes");
  }
  if (auto lc = root["lookup_cache"]; lc.defined()) {
    lc.check_keys({"max_entries"});
    c.lookup_cache_entries = static_cast<size_t>(
        lc.int_or("max_entries", static_cast<int64_t>(c.lookup_cache_entries), 0, 1 << 30));
  }
  return c;
}

}  // namespace

S3Config parse_s3_config(const std::string& path) {
  return parse(ConfigNode::load_file(path));
}

S3Config parse_s3_config_string(const std::string& text, const std::string& source) {
  return parse(ConfigNode::load_string(text, source));
}

}  // namespace cumulo::objstore
