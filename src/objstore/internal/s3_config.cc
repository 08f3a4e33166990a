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

S3Config parse(const ConfigNode& root) {
  root.check_keys({"listen", "data_dir", "master_key_file", "region", "domains", "log_level", "tls", "users",
                   "buckets", "limits"});
  S3Config c;
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
