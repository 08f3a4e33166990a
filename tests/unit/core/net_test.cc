#include "core/net.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace cumulo::core {
namespace {

SocketAddress bound_address(const Fd& listener) {
  auto a = SocketAddress::from_fd_local(listener.get());
  EXPECT_TRUE(a.has_value());
  return *a;
}

// The check opens and closes a listener: a free address stays free after it, a taken one is refused with
// listen_tcp's own words.
TEST(AddressFree, FreeThenTaken) {
  SocketAddress any = *SocketAddress::parse("127.0.0.1:0");
  Fd holder = listen_tcp(any, false);
  const SocketAddress taken = bound_address(holder);

  std::string why;
  EXPECT_FALSE(address_free(taken, &why));
  EXPECT_NE(why.find("cannot listen on " + taken.to_string()), std::string::npos) << why;
  EXPECT_FALSE(address_free(taken));

  holder.reset();
  why.clear();
  EXPECT_TRUE(address_free(taken, &why));
  EXPECT_TRUE(why.empty());
  EXPECT_TRUE(address_free(taken));  // the check itself left nothing listening
}

// Nothing pending is not an error; a pending connection comes out non-blocking and close-on-exec; a socket
// that is no listener is an error with its errno.
TEST(AcceptNonblocking, PendingNoneAndError) {
  Fd listener = listen_tcp(*SocketAddress::parse("127.0.0.1:0"), false);
  int err = -1;
  EXPECT_EQ(accept_nonblocking(listener.get(), &err), -1);
  EXPECT_EQ(err, 0);

  Fd client = connect_tcp(bound_address(listener), &err);
  ASSERT_TRUE(client);
  int fd = -1;
  for (int i = 0; i < 200 && fd < 0; ++i) {
    fd = accept_nonblocking(listener.get(), &err);
    if (fd < 0) {
      ASSERT_EQ(err, 0);
      ::usleep(5000);
    }
  }
  ASSERT_GE(fd, 0);
  Fd accepted(fd);
  EXPECT_EQ(err, 0);
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);

  Fd not_listening(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  EXPECT_EQ(accept_nonblocking(not_listening.get(), &err), -1);
  EXPECT_EQ(err, EINVAL);
}

// A listener handed down by a parent (network mode: the admin API bound on the host) is what listen_tcp
// returns for its address: non-blocking, close-on-exec, accepting what connects to it; the descriptor itself
// is made close-on-exec so that it is not handed on again. Other addresses get sockets of their own.
TEST(InheritedListener, UsedForItsAddressOnly) {
  Fd parent = listen_tcp_for_child(*SocketAddress::parse("127.0.0.1:0"));
  ASSERT_TRUE(parent);
  EXPECT_EQ(fcntl(parent.get(), F_GETFD) & FD_CLOEXEC, 0);  // made to be inherited
  const SocketAddress address = bound_address(parent);
  Fd inherited(dup2(parent.get(), 90));
  ASSERT_EQ(inherited.get(), 90);
  ASSERT_EQ(setenv(kInheritedListenersEnv, "7,90,x", 1), 0);  // 7 is no socket, x no number: both ignored

  Fd fd = listen_tcp(address, false);
  ASSERT_TRUE(fd);
  EXPECT_NE(fd.get(), 90);
  EXPECT_NE(fcntl(fd.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(fcntl(90, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(bound_address(fd).to_string(), address.to_string());

  int error = 0;
  Fd client = connect_tcp(address, &error);
  ASSERT_TRUE(client) << error;
  int accepted = -1;
  for (int i = 0; i < 100 && accepted < 0; ++i) {
    accepted = accept_nonblocking(fd.get(), &error);
    if (accepted < 0) usleep(1000);
  }
  EXPECT_GE(accepted, 0);
  if (accepted >= 0) ::close(accepted);

  // Another address is bound as usual, even with the variable set.
  Fd other = listen_tcp(*SocketAddress::parse("127.0.0.1:0"), false);
  EXPECT_NE(bound_address(other).port(), address.port());
  unsetenv(kInheritedListenersEnv);
}

TEST(NetworkNamespace, PathAndOpen) {
  EXPECT_EQ(network_namespace_path("cu-s.router"), "/run/netns/cu-s.router");
  errno = 0;
  Fd fd = open_network_namespace("cu-no-such-namespace-for-this-test");
  EXPECT_FALSE(fd);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
}  // namespace cumulo::core
