#include "net/upstream/stdio/message.h"

#include <gtest/gtest.h>

#include <string>

namespace mcpgate::net {
namespace {

using kind = stdio_message::kind;

TEST(StdioMessageScanner, TellsRequestsNotificationsAndResponsesApart) {
  stdio_message_scanner s;
  ASSERT_TRUE(s.scan(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}})"));
  EXPECT_EQ(s.messages()[0].what, kind::request);
  ASSERT_TRUE(s.scan(R"({"jsonrpc":"2.0","method":"notifications/message","params":{}})"));
  EXPECT_EQ(s.messages()[0].what, kind::notification);
  ASSERT_TRUE(s.scan(R"({"jsonrpc":"2.0","id":7,"result":{}})"));
  EXPECT_EQ(s.messages()[0].what, kind::response);
  ASSERT_TRUE(s.scan(R"({"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"m"}})"));
  EXPECT_EQ(s.messages()[0].what, kind::response);
  EXPECT_FALSE(s.batch());
}

TEST(StdioMessageScanner, ComparesIdsByValueAndLocatesTheirToken) {
  stdio_message_scanner s;
  std::string text = R"({"id" : "a\u0062c" ,"jsonrpc":"2.0","result":{}})";
  ASSERT_TRUE(s.scan(text));
  const stdio_message& m = s.messages()[0];
  EXPECT_EQ(m.id_key, "s:abc");
  EXPECT_EQ(text.substr(m.id_offset, m.id_length), R"("a\u0062c")");
  ASSERT_TRUE(s.scan(R"({"jsonrpc":"2.0","id": 42 ,"result":{}})"));
  EXPECT_EQ(s.messages()[0].id_key, "n:42");
}

TEST(StdioMessageScanner, FindsProgressTokensOfRequestsAndNotifications) {
  stdio_message_scanner s;
  ASSERT_TRUE(s.scan(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"p1"}}})"));
  EXPECT_EQ(s.messages()[0].progress_token, "s:p1");
  ASSERT_TRUE(s.scan(
      R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p\u0031","progress":1}})"));
  EXPECT_EQ(s.messages()[0].progress_token, "s:p1");
}

TEST(StdioMessageScanner, LocatesTheRequestIdACancellationNames) {
  stdio_message_scanner s;
  std::string text =
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": "r\u0031" ,"reason":"x"}})";
  ASSERT_TRUE(s.scan(text));
  const stdio_message& m = s.messages()[0];
  EXPECT_EQ(m.what, kind::notification);
  EXPECT_EQ(m.request_id_key, "s:r1");
  EXPECT_EQ(text.substr(m.request_id_offset, m.request_id_length), R"("r\u0031")");
}

TEST(StdioMessageScanner, ReadsEveryMessageOfABatch) {
  stdio_message_scanner s;
  ASSERT_TRUE(s.scan(
      R"([{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}},{"jsonrpc":"2.0","method":"notifications/initialized"}])"));
  EXPECT_TRUE(s.batch());
  ASSERT_EQ(s.messages().size(), 2u);
  EXPECT_TRUE(s.messages()[0].initialize);
  EXPECT_EQ(s.messages()[1].what, kind::notification);
}

TEST(StdioMessageScanner, RefusesWhatIsNotJsonRpc) {
  stdio_message_scanner s;
  for (const char* text :
       {"", "null", "42", "[]", "[1]", R"({"jsonrpc":"2.0"})", R"({"id":1})", R"({"method":7})",
        "{\"id\":1,\"result\":", "not json", R"({"id":{},"result":1})"})
    EXPECT_FALSE(s.scan(text)) << text;
}

}  // namespace
}  // namespace mcpgate::net
