#include "net/mcp/jsonrpc.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>

namespace mcpgate::net {
namespace {

using namespace std::string_literals;

// Holds one body in a padded buffer for as long as the result's views are read. The
// padding is filled with `fill` so tests can show it is never read as part of the body.
class padded_buffer {
 public:
  explicit padded_buffer(std::string_view json, char fill = '\0')
      : storage_(json.size() + jsonrpc_padding, fill), size_(json.size()) {
    storage_.replace(0, json.size(), json);
  }
  padded_body body() const { return {storage_.data(), size_, storage_.size()}; }
  std::string_view text() const { return {storage_.data(), size_}; }

 private:
  std::string storage_;
  std::size_t size_;
};

class JsonrpcExtractor : public ::testing::Test {
 protected:
  jsonrpc_result run(std::string_view json, char fill = '\0') {
    buffer_ = std::make_unique<padded_buffer>(json, fill);
    return extractor_.extract(buffer_->body());
  }
  std::string_view input() const { return buffer_->text(); }

  jsonrpc_status status_of(std::string_view json) { return run(json).status; }

  jsonrpc_extractor extractor_;
  std::unique_ptr<padded_buffer> buffer_;
};

// Returns the substring of haystack that starts at the first occurrence of `from` and ends
// after the first following occurrence of `to`.
std::string_view between(std::string_view haystack, std::string_view from, std::string_view to) {
  const std::size_t start = haystack.find(from);
  const std::size_t stop = haystack.find(to, start + from.size());
  return haystack.substr(start, stop + to.size() - start);
}

constexpr std::string_view tools_call =
    R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file",)"
    R"("arguments":{"path":"/etc/hosts","opts":{"lines":[1, 2,3]}},"_meta":{"progressToken":"p1"}}})";

TEST_F(JsonrpcExtractor, ExtractsToolsCallRequest) {
  const jsonrpc_result r = run(tools_call);
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_FALSE(r.batch);
  ASSERT_EQ(r.messages.size(), 1u);
  const jsonrpc_message& m = r.messages[0];
  EXPECT_EQ(m.kind, message_kind::request);
  EXPECT_EQ(m.method, "tools/call");
  EXPECT_EQ(m.id_kind, id_type::number);
  EXPECT_EQ(m.id, "7");
  EXPECT_EQ(m.name, "read_file");
  EXPECT_FALSE(m.uri.has_value());
  EXPECT_TRUE(m.has_progress_token);
  EXPECT_EQ(m.raw, input());
}

TEST_F(JsonrpcExtractor, ArgumentsParamsAndIdAreExactInputSubstrings) {
  const std::string body =
      "{ \"params\" : { \"arguments\" :\t{ \"a\" : [ 1 , { \"b\" : \"\\u00e9\" } ] }\n ,"
      "\"name\":\"x\" } , \"id\" : \"a\\\"b\" , \"jsonrpc\":\"2.0\",\"method\":\"tools/call\" }";
  const jsonrpc_result r = run(body);
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  const jsonrpc_message& m = r.messages[0];
  ASSERT_TRUE(m.arguments.has_value());
  EXPECT_EQ(*m.arguments, between(input(), "{ \"a\"", "] }"));
  EXPECT_EQ(m.arguments->data(), input().data() + input().find("{ \"a\""));
  ASSERT_TRUE(m.params.has_value());
  EXPECT_EQ(*m.params, between(input(), "{ \"arguments\"", "\"x\" }"));
  EXPECT_EQ(m.id, R"("a\"b")");
  EXPECT_EQ(m.id.data(), input().data() + input().find(R"("a\"b")"));
}

TEST_F(JsonrpcExtractor, ExtractsNotificationWithoutId) {
  const jsonrpc_result r = run(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].kind, message_kind::notification);
  EXPECT_EQ(r.messages[0].id_kind, id_type::none);
  EXPECT_TRUE(r.messages[0].id.empty());
  EXPECT_FALSE(r.messages[0].params.has_value());
}

TEST_F(JsonrpcExtractor, ExtractsResultResponse) {
  const jsonrpc_result r = run(R"({"jsonrpc":"2.0","id":"r1","result":{"tools":[]}})");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].kind, message_kind::response);
  EXPECT_EQ(r.messages[0].id, R"("r1")");
  EXPECT_EQ(r.messages[0].outcome, R"({"tools":[]})");
  EXPECT_TRUE(r.messages[0].method.empty());
}

TEST_F(JsonrpcExtractor, ExtractsScalarResultVerbatim) {
  const jsonrpc_result r = run(R"({"jsonrpc":"2.0","id":1,"result":"ok" })");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].outcome, R"("ok")");
}

TEST_F(JsonrpcExtractor, ExtractsErrorResponse) {
  const jsonrpc_result r =
      run(R"({"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no such method"}})");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].kind, message_kind::error_response);
  EXPECT_EQ(r.messages[0].outcome, R"({"code":-32601,"message":"no such method"})");
}

TEST_F(JsonrpcExtractor, AcceptsNullIdOnlyInErrorResponses) {
  const jsonrpc_result r =
      run(R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}})");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].id_kind, id_type::null);
  EXPECT_EQ(r.messages[0].id, "null");
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":null,"result":{}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":null,"method":"ping"})"),
            jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, AcceptsIdsOfEveryAllowedKindVerbatim) {
  for (std::string_view id : {"0", "-0", "42", "-42", "9007199254740992", "-9007199254740992",
                              R"("")", R"("abc")", R"("\u0061\n")", R"("日本")"}) {
    const std::string body = R"({"jsonrpc":"2.0","method":"ping","id":)" + std::string(id) + "}";
    const jsonrpc_result r = run(body);
    ASSERT_EQ(r.status, jsonrpc_status::ok) << id << ": " << r.reason;
    EXPECT_EQ(r.messages[0].id, id);
    EXPECT_EQ(r.messages[0].id_kind, id[0] == '"' ? id_type::string : id_type::number);
  }
}

TEST_F(JsonrpcExtractor, RejectsIdsThatAreNotExactIntegersOrStrings) {
  for (std::string_view id :
       {"1.0", "1e3", "1E3", "-1e-3", "0.5", "9007199254740993", "-9007199254740993",
        "12345678901234567890", "{}", "[]", "[1]", "true", "false", R"({"a":1})"}) {
    const std::string body = R"({"jsonrpc":"2.0","method":"ping","id":)" + std::string(id) + "}";
    EXPECT_EQ(status_of(body), jsonrpc_status::invalid_request) << id;
  }
}

TEST_F(JsonrpcExtractor, ExtractsBatchInOrderWithRawElementRanges) {
  const std::string body =
      R"([ {"jsonrpc":"2.0","id":1,"method":"tools/list"} ,)"
      "\n"
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}},)"
      R"({"jsonrpc":"2.0","id":"x","result":{}}])";
  const jsonrpc_result r = run(body);
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_TRUE(r.batch);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].raw, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  EXPECT_EQ(r.messages[0].raw.data(), input().data() + 2);
  EXPECT_EQ(r.messages[1].kind, message_kind::notification);
  EXPECT_EQ(r.messages[1].params, R"({"requestId":1})");
  EXPECT_EQ(r.messages[2].kind, message_kind::response);
  EXPECT_EQ(r.messages[2].raw, R"({"jsonrpc":"2.0","id":"x","result":{}})");
}

TEST_F(JsonrpcExtractor, UnescapesMethodNameUriAndMemberNames) {
  const jsonrpc_result r =
      run(R"({"\u006aso\u006erpc":"2\u002e0","id":1,"\u006dethod":"tools\/call",)"
          R"("params":{"n\u0061me":"caf\u00e9 \ud83d\ude00","\u0075ri":"file:\/\/x"}})");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  const jsonrpc_message& m = r.messages[0];
  EXPECT_EQ(m.method, "tools/call");
  EXPECT_EQ(m.name, "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(m.uri, "file://x");
  EXPECT_TRUE(extractor_.in_scratch(m.method));
}

TEST_F(JsonrpcExtractor, LeavesUnescapedStringsAsViewsIntoTheInput) {
  const jsonrpc_result r = run(tools_call);
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  const std::string_view method = r.messages[0].method;
  EXPECT_GE(method.data(), input().data());
  EXPECT_LE(method.data() + method.size(), input().data() + input().size());
}

TEST_F(JsonrpcExtractor, ExtractsResourceUriAndParamsArray) {
  jsonrpc_result r =
      run(R"({"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}})");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].uri, "file:///a");
  EXPECT_FALSE(r.messages[0].name.has_value());
  EXPECT_FALSE(r.messages[0].has_progress_token);

  r = run(R"({"jsonrpc":"2.0","id":2,"method":"sum","params":[1,2]})");
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].params, "[1,2]");
}

TEST_F(JsonrpcExtractor, AcceptsSurroundingWhitespace) {
  EXPECT_EQ(status_of(" \t\r\n{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1} \n"),
            jsonrpc_status::ok);
}

TEST_F(JsonrpcExtractor, ReusesOneExtractorForManyMessages) {
  for (int i = 0; i < 2000; ++i) {
    const std::string id = std::to_string(i);
    const std::string body = i % 2 == 0
                                 ? R"({"jsonrpc":"2.0","id":)" + id +
                                       R"(,"method":"tools/call","params":{"name":"t\u0031",)"
                                       R"("arguments":{"i":)" +
                                       id + "}}}"
                                 : R"({"jsonrpc":"2.0","id":)" + id + R"(,"method":{"bad":1}})";
    const jsonrpc_result r = run(body);
    if (i % 2 == 0) {
      ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
      EXPECT_EQ(r.messages[0].id, id);
      EXPECT_EQ(r.messages[0].name, "t1");
      EXPECT_EQ(r.messages[0].arguments, R"({"i":)" + id + "}");
    } else {
      ASSERT_EQ(r.status, jsonrpc_status::invalid_request);
      EXPECT_TRUE(r.messages.empty());
    }
  }
}

// ---- Hostile input -------------------------------------------------------------------

TEST_F(JsonrpcExtractor, RejectsDuplicateEnvelopeMembers) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"a","method":"tools/call"})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"id":2,"method":"a"})"),
            jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, RejectsDuplicatesThatDifferOnlyInEscaping) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"a","\u006dethod":"b"})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"tools/call",)"
                      R"("params":{"name":"x","arguments":{"name":1,"na\u006de":2}}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(
      status_of(R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a","n\u0061me":"b"}})"),
      jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, RejectsDuplicatesNestedAnywhere) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m",)"
                      R"("params":{"arguments":{"a":[{"x":{"k":1,"k":2}}]}}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"result":{"x":1,"y":{},"x":2}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(
      status_of(R"([{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","method":"m","a":1,"a":1}])"),
      jsonrpc_status::invalid_request);
}

std::string object_with_members(int count, bool duplicate_last) {
  std::string body = R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{)";
  for (int i = 0; i < count; ++i) {
    if (i != 0) body += ',';
    const int key = duplicate_last && i == count - 1 ? 0 : i;
    body += "\"k" + std::to_string(key) + "\":" + std::to_string(i);
  }
  return body + "}}}";
}

TEST_F(JsonrpcExtractor, FindsDuplicatesInLargeObjects) {
  EXPECT_EQ(status_of(object_with_members(500, false)), jsonrpc_status::ok);
  EXPECT_EQ(status_of(object_with_members(500, true)), jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(object_with_members(17, true)), jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, AcceptsObjectAtMaxMembersAndRejectsOneMore) {
  EXPECT_EQ(status_of(object_with_members(1024, false)), jsonrpc_status::ok);
  const jsonrpc_result r = run(object_with_members(1025, false));
  EXPECT_EQ(r.status, jsonrpc_status::invalid_request);
  EXPECT_EQ(r.reason, "object has more than max_members");
}

TEST_F(JsonrpcExtractor, RejectsTrailingDataAsParseError) {
  const std::string message = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  for (const std::string& tail :
       {" {\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"evil\"}"s, "x"s, "]"s, "}"s, "1"s, ","s,
        "\"s\""s, "\f"s, "\v"s, "\x01"s, "\0"s, " null"s}) {
    const jsonrpc_result r = run(message + tail);
    EXPECT_EQ(r.status, jsonrpc_status::parse_error) << "tail: " << tail;
  }
  EXPECT_EQ(status_of("[" + message + "] []"), jsonrpc_status::parse_error);
}

TEST_F(JsonrpcExtractor, RejectsByteOrderMark) {
  EXPECT_EQ(status_of("\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"),
            jsonrpc_status::parse_error);
}

TEST_F(JsonrpcExtractor, RejectsJsonExtensionsAsParseError) {
  for (std::string_view body : {
           R"({"jsonrpc":"2.0","id":1,"method":"ping"/* c */})",
           R"({"jsonrpc":"2.0","id":1,"method":"ping"} // c)",
           R"(// c
{"jsonrpc":"2.0","id":1,"method":"ping"})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":NaN}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":Infinity}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":-Infinity}})",
           R"({'jsonrpc':'2.0','id':1,'method':'ping'})",
           R"({"jsonrpc":"2.0","id":1,"method":'ping'})",
           R"({jsonrpc:"2.0","id":1,"method":"ping"})",
           R"({"jsonrpc":"2.0","id":1,"method":"ping",})",
           R"({"jsonrpc":"2.0","id":0x10,"method":"ping"})",
           R"({"jsonrpc":"2.0","id":01,"method":"ping"})",
           R"({"jsonrpc":"2.0","id":+1,"method":"ping"})",
           R"({"jsonrpc":"2.0","id":1.,"method":"ping"})",
           R"({"jsonrpc":"2.0","id":.5,"method":"ping"})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":[1,]})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":[,1]})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":[1 2]})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a" 1}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1 "b":2}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":tru}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":truex}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":nul}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":"\x41"}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":"\u00g1"}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":"unterminated}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m")",
       }) {
    EXPECT_EQ(status_of(body), jsonrpc_status::parse_error) << body;
  }
}

// Found by the fuzzer: simdjson's skipper reads a string followed by ':' as a key and then
// skips to the next close brace unchecked, which hid the second method here.
TEST_F(JsonrpcExtractor, RejectsValueFollowedByColonWithoutHidingLaterMembers) {
  for (std::string_view body : {
           R"({"jsonrpc":"2.0","id":1,"method":"ping":"x","method":"tools/call"}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":"x":"y","name":"t"}}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1:"y"}}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":true:"y"}}})",
           R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":null:"y"}}})",
           R"({"jsonrpc":"2.0","id":"a":1,"method":"m"}})",
           R"([{"jsonrpc":"2.0","id":1,"method":"m","params":["a":1]}])",
       }) {
    EXPECT_EQ(status_of(body), jsonrpc_status::parse_error) << body;
  }
}

TEST_F(JsonrpcExtractor, AcceptsLargeNumbersButRejectsNumbersBeyondDoubleRange) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m","params":)"
                      R"([123456789012345678901234567890,1e308,-0.0,1e-400]})"),
            jsonrpc_status::ok);
  const jsonrpc_result r = run(R"({"jsonrpc":"2.0","id":1,"method":"m","params":[1e400]})");
  EXPECT_EQ(r.status, jsonrpc_status::invalid_request);
  EXPECT_EQ(r.reason, "number beyond the range of a double");
}

TEST_F(JsonrpcExtractor, NeverReadsPaddingAsPartOfTheBody) {
  // A truncated body whose padding happens to hold the missing closers.
  for (char fill : {'}', ']', '"', ' '}) {
    EXPECT_EQ(run(R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":[1)", fill).status,
              jsonrpc_status::parse_error)
        << fill;
    EXPECT_EQ(run(R"({"jsonrpc":"2.0","id":1,"method":"m)", fill).status,
              jsonrpc_status::parse_error)
        << fill;
  }
}

TEST_F(JsonrpcExtractor, RejectsInvalidUtf8AsParseError) {
  for (std::string_view bad :
       {"\xC3", "\xFF", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80"}) {
    const std::string in_value =
        R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":")" + std::string(bad) + "\"}}";
    EXPECT_EQ(status_of(in_value), jsonrpc_status::parse_error);
    const std::string in_key =
        R"({"jsonrpc":"2.0","id":1,"method":"m","params":{")" + std::string(bad) + "\":1}}";
    EXPECT_EQ(status_of(in_key), jsonrpc_status::parse_error);
  }
}

TEST_F(JsonrpcExtractor, RejectsLoneOrInvalidSurrogateEscapesAnywhere) {
  for (std::string_view bad : {R"(\ud800)", R"(\udc00)", R"(\ud800\u0041)", R"(\ud800x)",
                               R"(\ude00\ud83d)", R"(\ud800\ud800)", R"(\uDBFF)"}) {
    const std::string s(bad);
    EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a":")" + s + "\"}}"),
              jsonrpc_status::parse_error)
        << bad;
    EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m","params":{")" + s + "\":1}}"),
              jsonrpc_status::parse_error)
        << bad;
    EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m)" + s + "\"}"),
              jsonrpc_status::parse_error)
        << bad;
    EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":"x)" + s + "\",\"method\":\"m\"}"),
              jsonrpc_status::parse_error)
        << bad;
  }
}

TEST_F(JsonrpcExtractor, RejectsUnescapedControlCharacterAsParseError) {
  EXPECT_EQ(status_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\nb\"}"),
            jsonrpc_status::parse_error);
  EXPECT_EQ(
      status_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":{\"a\":\"\x1f\"}}"),
      jsonrpc_status::parse_error);
}

TEST_F(JsonrpcExtractor, FindsEscapesAndControlCharactersAtEveryOffsetOfLongStrings) {
  for (std::size_t k = 0; k < 24; ++k) {
    const std::string prefix = std::string(k, 'a') + "\xC3\xA9";
    const std::string head = R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"name":")";
    const jsonrpc_result r = run(head + prefix + R"(\"\\x"}})");
    ASSERT_EQ(r.status, jsonrpc_status::ok) << k << r.reason;
    EXPECT_EQ(r.messages[0].name, prefix + "\"\\x");
    EXPECT_EQ(status_of(head + prefix + "\x01" + std::string(k, 'b') + "\"}}"),
              jsonrpc_status::parse_error)
        << k;
    EXPECT_EQ(status_of(head + prefix + "\x7f\"}}"), jsonrpc_status::ok) << k;
  }
}

TEST_F(JsonrpcExtractor, PrefersParseErrorOverEarlierJsonRpcViolation) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"1.0","id":1.5,"method":"m","params":{"a":[1,]}})"),
            jsonrpc_status::parse_error);
}

TEST_F(JsonrpcExtractor, RejectsWrongOrMissingJsonrpcVersion) {
  for (std::string_view body :
       {R"({"id":1,"method":"m"})", R"({"jsonrpc":"1.0","id":1,"method":"m"})",
        R"({"jsonrpc":2.0,"id":1,"method":"m"})", R"({"jsonrpc":"2.0 ","id":1,"method":"m"})",
        R"({"jsonrpc":null,"id":1,"method":"m"})"}) {
    EXPECT_EQ(status_of(body), jsonrpc_status::invalid_request) << body;
  }
}

TEST_F(JsonrpcExtractor, RejectsMethodThatIsNotAString) {
  for (std::string_view method : {"5", "null", "true", "[\"m\"]", "{}"}) {
    const std::string body = R"({"jsonrpc":"2.0","id":1,"method":)" + std::string(method) + "}";
    EXPECT_EQ(status_of(body), jsonrpc_status::invalid_request) << method;
  }
}

TEST_F(JsonrpcExtractor, RejectsNulInRoutingStringsAndNames) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"tools/call\u0000x"})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a\u0000b"}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"a\u0000":1}})"),
            jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, RejectsResponsesWithBothOrNeitherOutcome) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":""}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1})"), jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","result":{}})"), jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"m","result":{}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"error":"boom"})"),
            jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, RejectsParamsThatIsNotObjectOrArray) {
  for (std::string_view params : {"\"x\"", "5", "null", "true"}) {
    const std::string body =
        R"({"jsonrpc":"2.0","id":1,"method":"m","params":)" + std::string(params) + "}";
    EXPECT_EQ(status_of(body), jsonrpc_status::invalid_request) << params;
  }
}

TEST_F(JsonrpcExtractor, RejectsRoutingFieldsOfTheWrongType) {
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["x"]}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":1}})"),
            jsonrpc_status::invalid_request);
  EXPECT_EQ(
      status_of(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":"{}"}})"),
      jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, RejectsBodiesThatAreNotObjectsOrArrays) {
  for (std::string_view body : {"1", "\"tools/call\"", "null", "true", " -2.5e3 "}) {
    EXPECT_EQ(status_of(body), jsonrpc_status::invalid_request) << body;
  }
  for (std::string_view body : {"", "   ", "1 2", "\"a\" \"b\"", "tru", "-", "\"\\ud800\""}) {
    EXPECT_EQ(status_of(body), jsonrpc_status::parse_error) << body;
  }
}

TEST_F(JsonrpcExtractor, RejectsEmptyBatchAndNonObjectElements) {
  jsonrpc_result r = run("[]");
  EXPECT_EQ(r.status, jsonrpc_status::invalid_request);
  EXPECT_TRUE(r.batch);
  EXPECT_EQ(status_of(R"([{"jsonrpc":"2.0","method":"m"},1])"), jsonrpc_status::invalid_request);
  EXPECT_EQ(status_of(R"([[{"jsonrpc":"2.0","method":"m"}]])"), jsonrpc_status::invalid_request);
}

std::string batch_of(std::size_t n) {
  std::string body = "[";
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) body += ',';
    body += R"({"jsonrpc":"2.0","method":"ping","id":)" + std::to_string(i) + "}";
  }
  return body + "]";
}

TEST_F(JsonrpcExtractor, AcceptsBatchAtMaxBatchAndRejectsOneMore) {
  const jsonrpc_result r = run(batch_of(64));
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages.size(), 64u);
  EXPECT_EQ(r.messages[63].id, "63");
  EXPECT_EQ(run(batch_of(65)).status, jsonrpc_status::invalid_request);
}

// A request whose arguments nest arrays so that the deepest container is at `depth`
// (the message object is 1, params 2, arguments 3).
std::string nested_to_depth(std::size_t depth) {
  std::string open(depth - 3, '[');
  std::string close(depth - 3, ']');
  return R"({"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{"a":)" + open + close +
         "}}}";
}

TEST_F(JsonrpcExtractor, AcceptsNestingAtMaxDepthAndRejectsOneMoreAsInvalidRequest) {
  EXPECT_EQ(status_of(nested_to_depth(64)), jsonrpc_status::ok);
  const jsonrpc_result r = run(nested_to_depth(65));
  EXPECT_EQ(r.status, jsonrpc_status::invalid_request);
  EXPECT_EQ(r.reason, "nesting deeper than max_depth");
  // Far deeper than any stack could take if the walk were unbounded.
  EXPECT_EQ(status_of(nested_to_depth(100000)), jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, CountsBatchArrayInDepth) {
  jsonrpc_extractor small({.max_body = 4096, .max_batch = 4, .max_depth = 3, .max_members = 8});
  padded_buffer ok(R"([{"jsonrpc":"2.0","id":1,"method":"m","params":{}}])");
  EXPECT_EQ(small.extract(ok.body()).status, jsonrpc_status::ok);
  padded_buffer deep(R"([{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":[]}}])");
  EXPECT_EQ(small.extract(deep.body()).status, jsonrpc_status::invalid_request);
}

TEST_F(JsonrpcExtractor, AcceptsBodyAtMaxBodyAndRejectsOneByteMore) {
  jsonrpc_extractor small({.max_body = 100, .max_batch = 4, .max_depth = 8, .max_members = 8});
  const std::string head = R"({"jsonrpc":"2.0","id":1,"method":"m"})";
  const std::string at_limit = head + std::string(100 - head.size(), ' ');
  padded_buffer ok(at_limit);
  const jsonrpc_result r = small.extract(ok.body());
  ASSERT_EQ(r.status, jsonrpc_status::ok) << r.reason;
  EXPECT_EQ(r.messages[0].raw, head);
  padded_buffer over(at_limit + " ");
  const jsonrpc_result too_big = small.extract(over.body());
  EXPECT_EQ(too_big.status, jsonrpc_status::invalid_request);
  EXPECT_EQ(too_big.reason, "body larger than max_body");
}

TEST_F(JsonrpcExtractor, ReportsMissingPaddingAsInternalError) {
  const std::string body = R"({"jsonrpc":"2.0","id":1,"method":"m"})";
  const jsonrpc_result r = extractor_.extract({body.data(), body.size(), body.size()});
  EXPECT_EQ(r.status, jsonrpc_status::internal_error);
}

TEST(JsonrpcErrorCode, MapsStatusesToJsonRpcCodes) {
  EXPECT_EQ(jsonrpc_error_code(jsonrpc_status::ok), 0);
  EXPECT_EQ(jsonrpc_error_code(jsonrpc_status::parse_error), -32700);
  EXPECT_EQ(jsonrpc_error_code(jsonrpc_status::invalid_request), -32600);
  EXPECT_EQ(jsonrpc_error_code(jsonrpc_status::internal_error), -32603);
}

}  // namespace
}  // namespace mcpgate::net
