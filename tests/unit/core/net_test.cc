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

}  // namespace
}  // namespace cumulo::core
