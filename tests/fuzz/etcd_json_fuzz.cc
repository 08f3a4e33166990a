// libFuzzer target for etcd's JSON gateway format (src/cluster/wire/etcd_json.h), the bytes an etcd server,
// or whatever answers on its port, sends. The first byte says how the rest is cut into pieces; the rest is a
// watch stream. Checks: the splitter hands out the same objects whole and in pieces, each one a balanced
// object; every decoder takes every object without crashing; base64 decodes only what it would encode back
// the same.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/wire/etcd_json.h"

namespace {

namespace wire = cumulo::cluster::wire;

void check(bool ok) {
  if (!ok) std::abort();
}

bool split(std::string_view in, size_t piece, std::vector<std::string>& out) {
  wire::JsonObjectSplitter s(4096);
  for (size_t i = 0; i < in.size(); i += piece)
    if (!s.feed(in.substr(i, piece), out)) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t piece = data[0] == 0 ? 1 : data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::vector<std::string> whole, pieces;
  bool whole_ok = split(in, in.size() + 1, whole);
  bool pieces_ok = split(in, piece, pieces);
  check(whole_ok == pieces_ok);
  check(whole == pieces);
  for (const std::string& text : whole) {
    check(text.size() >= 2 && text.front() == '{' && text.back() == '}');
    wire::json j = wire::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    (void)wire::decode_watch_message(j);
    (void)wire::decode_range(j);
    (void)wire::decode_txn(j);
    (void)wire::decode_keep_alive(j);
    (void)wire::decode_time_to_live(j);
    (void)wire::stream_error(j, "fuzz");
    (void)wire::error_from_answer(400, text, "fuzz");
  }

  auto decoded = wire::base64_decode(in);
  if (decoded) check(wire::base64_encode(*decoded) == in);
  auto back = wire::base64_decode(wire::base64_encode(in));
  check(back && *back == in);
  return 0;
}
