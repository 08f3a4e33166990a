// Addresses and routes through rtnetlink with libmnl (net.h, "Netlink"): each call builds one request, sends
// it and reads the kernel's answer to the end (an ack, an error, or a dump's NLMSG_DONE). Messages are
// matched to the request by sequence number, so that what an earlier call left unread (a read that failed
// halfway) is skipped, not taken for this call's answer.
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <vector>

#include "core/net.h"
#include "net/net.h"

namespace cumulo::net {

namespace {

// As libmnl 1.0.5's MNL_SOCKET_DUMP_SIZE: the kernel fills a dump's buffers up to 32 KiB, and a smaller
// receive buffer would truncate them (ENOSPC).
constexpr size_t kReceiveBytes = 32768;
// Requests hold a header and a few attributes.
constexpr size_t kRequestBytes = 512;
// How many times a dump is tried while the kernel marks it interrupted.
constexpr int kDumpAttempts = 3;

// The kernel's answer to one request: 0 or its errno, and the text of its extended ack, if any.
struct Answer {
  int error = 0;
  std::string said;
  // A dump that the kernel marked NLM_F_DUMP_INTR: what it listed changed meanwhile, and the answer may be
  // inconsistent.
  bool interrupted = false;
};

struct Exchange {
  uint32_t sequence;  // of the request
  const std::function<void(const nlmsghdr*)>* on_message;
  Answer* answer;
};

int on_data(const nlmsghdr* nlh, void* data) {
  auto* x = static_cast<Exchange*>(data);
  if (nlh->nlmsg_seq != x->sequence) return MNL_CB_OK;
  if ((nlh->nlmsg_flags & NLM_F_DUMP_INTR) != 0) x->answer->interrupted = true;
  if (*x->on_message) (*x->on_message)(nlh);
  return MNL_CB_OK;
}

int on_extended_ack_attribute(const nlattr* attr, void* data) {
  if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
    *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
  return MNL_CB_OK;
}

// An ack (error 0) ends the exchange; an error keeps the errno and the extended ack's message
// (NETLINK_EXT_ACK), which says which attribute or value the kernel refused.
int on_error(const nlmsghdr* nlh, void* data) {
  auto* x = static_cast<Exchange*>(data);
  if (nlh->nlmsg_seq != x->sequence) return MNL_CB_OK;
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
    errno = EBADMSG;
    return MNL_CB_ERROR;
  }
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  if (err->error == 0) return MNL_CB_STOP;
  x->answer->error = err->error < 0 ? -err->error : err->error;
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) != 0) {
    // The attributes follow the echoed request: its header alone when the kernel capped it (NETLINK_CAP_ACK).
    size_t offset = sizeof(nlmsgerr);
    if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
    if (mnl_nlmsg_size(offset) <= nlh->nlmsg_len)
      mnl_attr_parse(nlh, static_cast<unsigned>(offset), on_extended_ack_attribute, &x->answer->said);
  }
  errno = x->answer->error;
  return MNL_CB_ERROR;
}

// A dump ends with NLMSG_DONE, whose payload is the dump's error (0 when it completed).
int on_done(const nlmsghdr* nlh, void* data) {
  auto* x = static_cast<Exchange*>(data);
  if (nlh->nlmsg_seq != x->sequence) return MNL_CB_OK;
  if ((nlh->nlmsg_flags & NLM_F_DUMP_INTR) != 0) x->answer->interrupted = true;
  if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int)) {
    int error = 0;
    std::memcpy(&error, mnl_nlmsg_get_payload(nlh), sizeof error);
    if (error < 0) {
      x->answer->error = -error;
      errno = -error;
      return MNL_CB_ERROR;
    }
  }
  return MNL_CB_STOP;
}

// Calls fn(attr) for each attribute after a message's extra header of `header_bytes` (libmnl's
// mnl_attr_for_each is C: it converts from void*), stopping at one that does not fit.
template <typename F>
void for_each_attribute(const nlmsghdr* m, size_t header_bytes, F fn) {
  mnl_attr_parse(
      m, static_cast<unsigned>(header_bytes),
      [](const nlattr* attr, void* data) {
        (*static_cast<F*>(data))(attr);
        return static_cast<int>(MNL_CB_OK);
      },
      &fn);
}

std::string prefix_text(uint32_t address, int prefix) {
  return ipv4_text(address) + "/" + std::to_string(prefix);
}

// The namespace's name for errors when it has none: "net:[4026531840]", as /proc names it.
std::string own_namespace_label() {
  char buf[64] = {};
  if (::readlink("/proc/thread-self/ns/net", buf, sizeof buf - 1) > 0) return buf;
  return "the caller's namespace";
}

class NetlinkSocket final : public Netlink {
 public:
  NetlinkSocket(std::string label, mnl_socket* socket)
      : label_(std::move(label)),
        socket_(socket),
        port_id_(mnl_socket_get_portid(socket)),
        receive_(kReceiveBytes) {}
  ~NetlinkSocket() override { mnl_socket_close(socket_); }
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  // net::Netlink
  Result<void> add_address(const std::string& interface, uint32_t address, int prefix) override;
  Result<void> remove_address(const std::string& interface, uint32_t address, int prefix) override;
  Result<std::vector<InterfaceAddress>> addresses() override;
  Result<void> replace_route(uint32_t destination, int prefix, uint32_t via,
                             const std::string& interface) override;
  Result<void> remove_route(uint32_t destination, int prefix) override;
  Result<std::optional<RouteTarget>> route(uint32_t destination, int prefix) override;

 private:
  // A request of `type` with `flags` and an extra header of `extra_bytes` (zeroed), in request_.
  nlmsghdr* start(uint16_t type, uint16_t flags, size_t extra_bytes);
  // Sends `request` and reads the answer to its end, calling `on_message` for each message that is not an
  // ack, an error or the end of a dump.
  Answer exchange(nlmsghdr* request, const std::function<void(const nlmsghdr*)>& on_message = {});
  // A dump request, sent again while the kernel marks its answer interrupted; `restart` forgets what the
  // previous answer gave.
  Answer dump(nlmsghdr* request, const std::function<void(const nlmsghdr*)>& on_message,
              const std::function<void()>& restart);
  // The index of interface `name` in this namespace (ENODEV when there is none).
  Answer interface_index(const std::string& name, int* index);
  // Every interface of the namespace by index.
  Answer interface_names(std::map<int, std::string>* names);
  Result<void> address_request(uint16_t type, const std::string& what, const std::string& interface,
                               uint32_t address, int prefix);
  core::Error error(const std::string& what, const Answer& answer) const;
  core::Error refused(const std::string& what, const std::string& why) const;

  const std::string label_;  // the namespace's name, for errors
  mnl_socket* const socket_;
  const unsigned port_id_;
  unsigned sequence_ = 0;
  alignas(nlmsghdr) char request_[kRequestBytes];
  std::vector<char> receive_;
};

nlmsghdr* NetlinkSocket::start(uint16_t type, uint16_t flags, size_t extra_bytes) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(request_);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = ++sequence_;
  mnl_nlmsg_put_extra_header(nlh, extra_bytes);
  return nlh;
}

Answer NetlinkSocket::exchange(nlmsghdr* request, const std::function<void(const nlmsghdr*)>& on_message) {
  Answer answer;
  if (mnl_socket_sendto(socket_, request, request->nlmsg_len) < 0) {
    answer.error = errno;
    return answer;
  }
  Exchange x{request->nlmsg_seq, &on_message, &answer};
  mnl_cb_t control[NLMSG_MIN_TYPE] = {};
  control[NLMSG_ERROR] = on_error;
  control[NLMSG_DONE] = on_done;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(socket_, receive_.data(), receive_.size());
    if (n < 0) {
      answer.error = errno;
      return answer;
    }
    // Sequence 0: the callbacks skip other requests' answers, where libmnl would fail on them.
    int rc = mnl_cb_run2(receive_.data(), static_cast<size_t>(n), 0, port_id_, on_data, &x, control,
                         NLMSG_MIN_TYPE);
    if (rc == MNL_CB_ERROR) {
      if (answer.error == 0) answer.error = errno != 0 ? errno : EPROTO;
      return answer;
    }
    if (rc == MNL_CB_STOP) return answer;
  }
}

Answer NetlinkSocket::dump(nlmsghdr* request, const std::function<void(const nlmsghdr*)>& on_message,
                           const std::function<void()>& restart) {
  for (int attempt = 1;; ++attempt) {
    Answer answer = exchange(request, on_message);
    if (answer.error != 0 || !answer.interrupted) return answer;
    if (attempt == kDumpAttempts)
      return Answer{EAGAIN, "it changed during each of " + std::to_string(kDumpAttempts) + " dumps", false};
    restart();
    request->nlmsg_seq = ++sequence_;
  }
}

Answer NetlinkSocket::interface_index(const std::string& name, int* index) {
  *index = 0;
  // An empty name would ask for index 0 (EINVAL), one too long fails the kernel's policy: neither names an
  // interface that could exist.
  if (name.empty() || name.size() >= IFNAMSIZ) return Answer{ENODEV, "not an interface name"};
  nlmsghdr* nlh = start(RTM_GETLINK, NLM_F_ACK, sizeof(ifinfomsg));
  static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh))->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  Answer answer = exchange(nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type == RTM_NEWLINK && mnl_nlmsg_get_payload_len(m) >= sizeof(ifinfomsg))
      *index = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(m))->ifi_index;
  });
  if (answer.error == 0 && *index == 0) answer.error = ENODEV;
  return answer;
}

Answer NetlinkSocket::interface_names(std::map<int, std::string>* names) {
  nlmsghdr* nlh = start(RTM_GETLINK, NLM_F_DUMP, sizeof(ifinfomsg));
  static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh))->ifi_family = AF_UNSPEC;
  mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return dump(
      nlh,
      [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(m) < sizeof(ifinfomsg)) return;
        const int index = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(m))->ifi_index;
        for_each_attribute(m, sizeof(ifinfomsg), [&](const nlattr* attr) {
          if (mnl_attr_get_type(attr) == IFLA_IFNAME && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
            (*names)[index] = mnl_attr_get_str(attr);
        });
      },
      [&] { names->clear(); });
}

core::Error NetlinkSocket::error(const std::string& what, const Answer& answer) const {
  std::string message = label_ + ": " + what + ": " + core::errno_text(answer.error);
  if (!answer.said.empty()) message += " (" + answer.said + ")";
  return core::Error{"network", std::move(message), core::ErrorSource::kInternal, core::Retry::kNo};
}

core::Error NetlinkSocket::refused(const std::string& what, const std::string& why) const {
  return core::Error{"network", label_ + ": " + what + ": " + why, core::ErrorSource::kClient,
                     core::Retry::kNo};
}

Result<void> NetlinkSocket::address_request(uint16_t type, const std::string& what,
                                            const std::string& interface, uint32_t address, int prefix) {
  if (prefix < 0 || prefix > 32) return core::Err(refused(what, "the prefix length must be 0 to 32"));
  int index = 0;
  if (Answer a = interface_index(interface, &index); a.error != 0) return core::Err(error(what, a));
  const uint16_t flags = type == RTM_NEWADDR ? NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL : NLM_F_ACK;
  nlmsghdr* nlh = start(type, flags, sizeof(ifaddrmsg));
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<unsigned char>(prefix);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(index);
  // IFA_LOCAL is the address; IFA_ADDRESS (the same, on a link that is not point-to-point) makes a removal
  // match the prefix length too.
  mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(address));
  mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(address));
  // A /32 gets no prefix route anyway; a shorter prefix must not route its subnet to this interface behind
  // the caller's back. (The flag does not fit the 8 bits of ifa_flags.)
  if (type == RTM_NEWADDR) mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NOPREFIXROUTE);
  Answer a = exchange(nlh);
  if (type == RTM_NEWADDR && a.error == EEXIST) return {};
  if (type == RTM_DELADDR && a.error == EADDRNOTAVAIL) return {};
  if (a.error != 0) return core::Err(error(what, a));
  return {};
}

Result<void> NetlinkSocket::add_address(const std::string& interface, uint32_t address, int prefix) {
  return address_request(RTM_NEWADDR, "add " + prefix_text(address, prefix) + " on " + interface, interface,
                         address, prefix);
}

Result<void> NetlinkSocket::remove_address(const std::string& interface, uint32_t address, int prefix) {
  return address_request(RTM_DELADDR, "remove " + prefix_text(address, prefix) + " from " + interface,
                         interface, address, prefix);
}

Result<std::vector<InterfaceAddress>> NetlinkSocket::addresses() {
  const std::string what = "list addresses";
  std::map<int, std::string> names;
  if (Answer a = interface_names(&names); a.error != 0) return core::Err(error(what, a));
  std::vector<InterfaceAddress> out;
  nlmsghdr* nlh = start(RTM_GETADDR, NLM_F_DUMP, sizeof(ifaddrmsg));
  static_cast<ifaddrmsg*>(mnl_nlmsg_get_payload(nlh))->ifa_family = AF_INET;
  Answer a = dump(
      nlh,
      [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(m) < sizeof(ifaddrmsg)) return;
        const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
        if (ifa->ifa_family != AF_INET) return;
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on a point-to-point link.
        std::optional<uint32_t> local, peer;
        for_each_attribute(m, sizeof(ifaddrmsg), [&](const nlattr* attr) {
          if (mnl_attr_validate(attr, MNL_TYPE_U32) != 0) return;
          if (mnl_attr_get_type(attr) == IFA_LOCAL) local = ntohl(mnl_attr_get_u32(attr));
          if (mnl_attr_get_type(attr) == IFA_ADDRESS) peer = ntohl(mnl_attr_get_u32(attr));
        });
        if (!local) local = peer;
        if (!local) return;
        auto name = names.find(static_cast<int>(ifa->ifa_index));
        out.push_back(
            InterfaceAddress{name != names.end() ? name->second : "#" + std::to_string(ifa->ifa_index),
                             *local, ifa->ifa_prefixlen});
      },
      [&] { out.clear(); });
  if (a.error != 0) return core::Err(error(what, a));
  return out;
}

Result<void> NetlinkSocket::replace_route(uint32_t destination, int prefix, uint32_t via,
                                          const std::string& interface) {
  const std::string what = "replace route " + prefix_text(destination, prefix) +
                           (via != 0 ? " via " + ipv4_text(via) : "") + " dev " + interface;
  if (prefix < 0 || prefix > 32) return core::Err(refused(what, "the prefix length must be 0 to 32"));
  int index = 0;
  if (Answer a = interface_index(interface, &index); a.error != 0) return core::Err(error(what, a));
  nlmsghdr* nlh = start(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, sizeof(rtmsg));
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = static_cast<unsigned char>(prefix);
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = via != 0 ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put_u32(nlh, RTA_DST, htonl(destination));
  mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(index));
  if (via != 0) mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(via));
  if (Answer a = exchange(nlh); a.error != 0) return core::Err(error(what, a));
  return {};
}

Result<void> NetlinkSocket::remove_route(uint32_t destination, int prefix) {
  const std::string what = "remove route " + prefix_text(destination, prefix);
  if (prefix < 0 || prefix > 32) return core::Err(refused(what, "the prefix length must be 0 to 32"));
  nlmsghdr* nlh = start(RTM_DELROUTE, NLM_F_ACK, sizeof(rtmsg));
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = static_cast<unsigned char>(prefix);
  rtm->rtm_table = RT_TABLE_MAIN;
  // Scope "nowhere", protocol and type unset: the kernel matches any route to the prefix, as `ip route del`.
  rtm->rtm_scope = RT_SCOPE_NOWHERE;
  mnl_attr_put_u32(nlh, RTA_DST, htonl(destination));
  Answer a = exchange(nlh);
  if (a.error == ESRCH) return {};
  if (a.error != 0) return core::Err(error(what, a));
  return {};
}

Result<std::optional<RouteTarget>> NetlinkSocket::route(uint32_t destination, int prefix) {
  const std::string what = "read route " + prefix_text(destination, prefix);
  if (prefix < 0 || prefix > 32) return core::Err(refused(what, "the prefix length must be 0 to 32"));
  // A dump, not RTM_GETROUTE for the address: that is a lookup, which answers with the longest match. With
  // NETLINK_GET_STRICT_CHK the kernel dumps the main table alone; the table is checked here too.
  nlmsghdr* nlh = start(RTM_GETROUTE, NLM_F_DUMP, sizeof(rtmsg));
  auto* request = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  request->rtm_family = AF_INET;
  request->rtm_table = RT_TABLE_MAIN;
  std::optional<RouteTarget> found;
  int oif = 0;
  Answer a = dump(
      nlh,
      [&](const nlmsghdr* m) {
        if (found || m->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(m) < sizeof(rtmsg)) return;
        const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
        if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len != prefix) return;
        uint32_t table = rtm->rtm_table, dst = 0, gateway = 0;
        int dev = 0;
        for_each_attribute(m, sizeof(rtmsg), [&](const nlattr* attr) {
          if (mnl_attr_validate(attr, MNL_TYPE_U32) != 0) return;
          switch (mnl_attr_get_type(attr)) {
            case RTA_TABLE:
              table = mnl_attr_get_u32(attr);
              break;
            case RTA_DST:
              dst = ntohl(mnl_attr_get_u32(attr));
              break;
            case RTA_GATEWAY:
              gateway = ntohl(mnl_attr_get_u32(attr));
              break;
            case RTA_OIF:
              dev = static_cast<int>(mnl_attr_get_u32(attr));
              break;
            default:
              break;
          }
        });
        if (table != RT_TABLE_MAIN || dst != destination) return;
        found = RouteTarget{gateway, {}};
        oif = dev;
      },
      [&] { found.reset(); });
  if (a.error != 0) return core::Err(error(what, a));
  if (found && oif != 0) {
    std::map<int, std::string> names;
    if (Answer n = interface_names(&names); n.error != 0) return core::Err(error(what, n));
    auto name = names.find(oif);
    found->interface = name != names.end() ? name->second : "#" + std::to_string(oif);
  }
  return found;
}

}  // namespace

Result<std::unique_ptr<Netlink>> Netlink::open(const std::string& ns) {
  const std::string what = "open an rtnetlink socket";
  mnl_socket* socket = nullptr;
  int error = 0;
  auto make = [&] {
    socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (socket == nullptr) error = errno;
  };
  std::string label = ns;
  if (ns.empty()) {
    label = own_namespace_label();
    make();
  } else if (auto r = run_in_namespace(ns, make); !r) {
    return core::Err(core::Error{"network", ns + ": " + what + ": " + r.error().message,
                                 core::ErrorSource::kInternal, core::Retry::kNo});
  }
  if (socket == nullptr)
    return core::Err(core::Error{"network", label + ": " + what + ": " + core::errno_text(error),
                                 core::ErrorSource::kInternal, core::Retry::kNo});
  // Binding is not tied to a namespace: the socket's own, fixed when it was made, is the one it acts on.
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    error = errno;
    mnl_socket_close(socket);
    return core::Err(core::Error{"network", label + ": " + what + ": bind: " + core::errno_text(error),
                                 core::ErrorSource::kInternal, core::Retry::kNo});
  }
  // Errors with the kernel's reason (extended ack), without the request echoed back, and dump requests
  // checked strictly (which is what makes the kernel filter a route dump by table). Kernels without them
  // (before 4.12 and 4.20) give plain errors and whole dumps, which the answers' handling copes with.
  int on = 1;
  (void)mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, sizeof on);
  (void)mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, sizeof on);
  (void)mnl_socket_setsockopt(socket, NETLINK_GET_STRICT_CHK, &on, sizeof on);
  return std::unique_ptr<Netlink>(new NetlinkSocket(std::move(label), socket));
}

}  // namespace cumulo::net
