// The DNS admin API (docs/dns.md): GET /health, GET /metrics, GET /zones, and run-time record changes
// (POST /zones/ORIGIN/records upserts a record set, DELETE /zones/ORIGIN/records?name=N&type=T removes one),
// each bumping the zone's SOA serial and publishing a new snapshot to the workers.
#pragma once

#include <string>

#include "dns/internal/config.h"
#include "dns/internal/server.h"
#include "http/server.h"

namespace cumulo::dns {

class Admin {
 public:
  Admin(DnsConfig& config, ZoneStore& store) : config_(config), store_(store) {}
  void handle(http::Request& req, http::Responder respond);

  // Builds every zone of the configuration and publishes them. Throws std::logic_error on a bad zone (each
  // was validated when it was loaded or changed).
  void publish();

 private:
  http::Response zones_json() const;
  http::Response change(http::Request& req, ZoneSource& zone);
  ZoneSource* zone_named(std::string_view origin_text);

  DnsConfig& config_;
  ZoneStore& store_;
};

// Adds one to the serial in a SOA rdata (RFC 1982 serial arithmetic: it wraps).
void bump_serial(std::string& soa_rdata);

}  // namespace cumulo::dns
