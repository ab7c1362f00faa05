#include "net/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace mcpgate::net {
namespace {

std::string text_of(const endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (e.addr.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&e.addr)->sin_addr, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&e.addr)->sin6_addr, buf,
              sizeof buf);
  return buf;
}

TEST(SelfAddress, AWildcardListenerIsReachedOnLoopbackAtItsBoundPort) {
  endpoint any = self_address(parse_host_port("0.0.0.0:0", "--listen"), 8123);
  EXPECT_EQ(text_of(any), "127.0.0.1");
  EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in*>(&any.addr)->sin_port), 8123);
  EXPECT_EQ(any.port, 8123);
  EXPECT_EQ(text_of(self_address(parse_host_port("[::]:0", "--listen"), 1)), "::1");
  EXPECT_EQ(text_of(self_address(parse_host_port("127.0.0.2:0", "--listen"), 1)), "127.0.0.2");
}

}  // namespace
}  // namespace mcpgate::net
