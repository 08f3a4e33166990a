#include "objstore/wire/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/text.h"

namespace cumulo::objstore {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void hmac(const uint8_t* key, size_t key_len, std::string_view data, uint8_t out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
}

bool valid_signed_headers(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == ';' || c == '_' || c == '.'))
      return false;
  return true;
}

}  // namespace

std::string SigV4Params::scope() const {
  std::string s;
  s.reserve(date.size() + region.size() + service.size() + 16);
  s.append(date).append("/").append(region).append("/").append(service).append("/aws4_request");
  return s;
}

bool parse_credential(std::string_view cred, SigV4Params& out) {
  std::string_view parts[5];
  for (int i = 0; i < 5; ++i) {
    // The access key is everything before the last four '/'-separated fields.
    size_t slash = cred.rfind('/');
    if (i == 4) {
      parts[0] = cred;
      break;
    }
    if (slash == std::string_view::npos) return false;
    parts[4 - i] = cred.substr(slash + 1);
    cred = cred.substr(0, slash);
  }
  if (parts[0].empty() || parts[1].size() != 8 || parts[2].empty() || parts[3].empty()) return false;
  for (char c : parts[1])
    if (c < '0' || c > '9') return false;
  if (parts[4] != "aws4_request") return false;
  out.access_key = parts[0];
  out.date = parts[1];
  out.region = parts[2];
  out.service = parts[3];
  return true;
}

bool parse_authorization_header(std::string_view header, SigV4Params& out, const char** why) {
  header = trim(header);
  if (header.substr(0, kSigV4Algorithm.size()) != kSigV4Algorithm ||
      header.size() == kSigV4Algorithm.size() || header[kSigV4Algorithm.size()] != ' ') {
    *why = "the Authorization header must start with 'AWS4-HMAC-SHA256 '";
    return false;
  }
  header.remove_prefix(kSigV4Algorithm.size() + 1);
  bool have_cred = false, have_headers = false, have_sig = false;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view part = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      *why = "an Authorization header part has no '='";
      return false;
    }
    std::string_view name = part.substr(0, eq), value = part.substr(eq + 1);
    if (name == "Credential") {
      if (!parse_credential(value, out)) {
        *why = "Credential must be ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request";
        return false;
      }
      have_cred = true;
    } else if (name == "SignedHeaders") {
      if (!valid_signed_headers(value)) {
        *why = "SignedHeaders must be lower-case header names separated by ';'";
        return false;
      }
      out.signed_headers = value;
      have_headers = true;
    } else if (name == "Signature") {
      if (!is_hex64(value)) {
        *why = "Signature must be 64 lower-case hex digits";
        return false;
      }
      out.signature = value;
      have_sig = true;
    } else {
      *why = "unknown part in the Authorization header";
      return false;
    }
  }
  if (!have_cred || !have_headers || !have_sig) {
    *why = "the Authorization header needs Credential, SignedHeaders and Signature";
    return false;
  }
  return true;
}

bool parse_presigned_query(std::string_view q, SigV4Params& out, const char** why) {
  std::string algorithm, credential, date, expires, headers, signature;
  bool have[6] = {};
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view raw = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    static constexpr std::string_view kNames[6] = {"X-Amz-Algorithm",     "X-Amz-Credential",
                                                   "X-Amz-Date",          "X-Amz-Expires",
                                                   "X-Amz-SignedHeaders", "X-Amz-Signature"};
    std::string* targets[6] = {&algorithm, &credential, &date, &expires, &headers, &signature};
    for (int i = 0; i < 6; ++i) {
      if (name != kNames[i]) continue;
      if (have[i]) {
        *why = "a presigned-URL parameter appears twice";
        return false;
      }
      if (!percent_decode(raw, *targets[i])) {
        *why = "bad percent-encoding in a presigned-URL parameter";
        return false;
      }
      have[i] = true;
    }
  }
  for (bool h : have) {
    if (!h) {
      *why =
          "a presigned URL needs X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, "
          "X-Amz-SignedHeaders and X-Amz-Signature";
      return false;
    }
  }
  if (algorithm != kSigV4Algorithm) {
    *why = "X-Amz-Algorithm must be AWS4-HMAC-SHA256";
    return false;
  }
  int64_t exp = 0;
  auto [p, ec] = std::from_chars(expires.data(), expires.data() + expires.size(), exp);
  if (ec != std::errc() || p != expires.data() + expires.size() || exp < 1 || exp > 604800) {
    *why = "X-Amz-Expires must be a number of seconds from 1 to 604800";
    return false;
  }
  if (!parse_amz_date(date)) {
    *why = "X-Amz-Date must look like 20130524T000000Z";
    return false;
  }
  if (!valid_signed_headers(headers)) {
    *why = "X-Amz-SignedHeaders must be lower-case header names separated by ';'";
    return false;
  }
  if (!is_hex64(signature)) {
    *why = "X-Amz-Signature must be 64 lower-case hex digits";
    return false;
  }
  out.credential_storage = std::move(credential) + '\n' + signature;
  out.signed_headers_storage = std::move(headers);
  std::string_view stored = out.credential_storage;
  size_t nl = stored.find('\n');
  if (!parse_credential(stored.substr(0, nl), out)) {
    *why = "X-Amz-Credential must be ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request";
    return false;
  }
  out.signature = stored.substr(nl + 1);
  out.signed_headers = out.signed_headers_storage;
  out.amz_date = std::move(date);
  out.expires_s = exp;
  return true;
}

std::string uri_encode(std::string_view in, bool encode_slash) {
  return core::percent_encode(in, encode_slash ? "" : "/");
}

std::optional<std::string> canonical_query(std::string_view q, bool skip_signature) {
  std::vector<std::pair<std::string, std::string>> params;
  std::string name, value;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (!percent_decode(pair.substr(0, eq), name)) return std::nullopt;
    if (!percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), value))
      return std::nullopt;
    if (skip_signature && name == "X-Amz-Signature") continue;
    params.emplace_back(uri_encode(name, true), uri_encode(value, true));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [n, v] : params) {
    if (!out.empty()) out += '&';
    out.append(n).append("=").append(v);
  }
  return out;
}

std::optional<std::string> canonical_uri(std::string_view raw_path) {
  std::string decoded;
  if (!percent_decode(raw_path, decoded)) return std::nullopt;
  if (decoded.empty()) return std::string("/");
  return uri_encode(decoded, false);
}

std::optional<std::string> canonical_request(std::string_view method, std::string_view uri,
                                             std::string_view query, const HeaderPairs& headers,
                                             std::string_view signed_headers, std::string_view payload_hash) {
  std::string out;
  out.reserve(512);
  out.append(method).append("\n").append(uri).append("\n").append(query).append("\n");
  std::string_view list = signed_headers;
  while (!list.empty()) {
    size_t semi = list.find(';');
    std::string_view name = list.substr(0, semi);
    list = semi == std::string_view::npos ? std::string_view{} : list.substr(semi + 1);
    bool found = false;
    out.append(name).append(":");
    for (const auto& [n, v] : headers) {
      if (!core::iequals(n, name)) continue;
      if (found) out += ',';
      found = true;
      // Trimmed, and sequential spaces inside folded to one (the SigV4 canonical header rule).
      std::string_view t = trim(v);
      bool space = false;
      for (char c : t) {
        if (c == ' ' || c == '\t') {
          space = true;
          continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
      }
    }
    if (!found) return std::nullopt;
    out += '\n';
  }
  out.append("\n").append(signed_headers).append("\n").append(payload_hash);
  return out;
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope, std::string_view creq) {
  std::string out;
  out.reserve(160);
  out.append(kSigV4Algorithm).append("\n").append(amz_date).append("\n").append(scope).append("\n");
  out.append(sha256_hex(creq));
  return out;
}

SigningKey derive_signing_key(std::string_view secret, std::string_view date, std::string_view region,
                              std::string_view service) {
  std::string k = "AWS4";
  k.append(secret);
  uint8_t a[32], b[32];
  hmac(reinterpret_cast<const uint8_t*>(k.data()), k.size(), date, a);
  hmac(a, 32, region, b);
  hmac(b, 32, service, a);
  SigningKey key;
  hmac(a, 32, "aws4_request", key.data());
  OPENSSL_cleanse(k.data(), k.size());
  return key;
}

std::string hmac_sha256_hex(const SigningKey& key, std::string_view data) {
  uint8_t out[32];
  hmac(key.data(), key.size(), data, out);
  return hex_encode(out, 32);
}

std::string sha256_hex(std::string_view data) {
  uint8_t out[32];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return hex_encode(out, 32);
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string hex_encode(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<int64_t> parse_amz_date(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  auto num = [&](size_t pos, size_t len, int& out) {
    out = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!num(0, 4, y) || !num(4, 2, mo) || !num(6, 2, d) || !num(9, 2, h) || !num(11, 2, mi) || !num(13, 2, se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  // Days from the civil date (Howard Hinnant's algorithm), so no time zone or locale is involved.
  int yy = y - (mo <= 2);
  int era = (yy >= 0 ? yy : yy - 399) / 400;
  int yoe = yy - era * 400;
  int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  return days * 86400 + h * 3600 + mi * 60 + se;
}

std::string format_amz_date(int64_t epoch_s) {
  time_t t = static_cast<time_t>(epoch_s);
  tm tmv{};
  gmtime_r(&t, &tmv);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tmv);
  return buf;
}

}  // namespace cumulo::objstore
