#include "net/federation/names.h"

#include <gtest/gtest.h>

#include <vector>

namespace mcpgate::net {
namespace {

const std::vector<federated_server> servers = {{"everything", "/mcp/everything"},
                                               {"python", "/mcp/python"}};

routed_call routed(std::string_view body) {
  routed_call out;
  std::string error;
  EXPECT_TRUE(route_request(body, federated_key::name, servers, "__", out, error)) << error;
  return out;
}

std::string refused(std::string_view body) {
  routed_call out;
  std::string error;
  EXPECT_FALSE(route_request(body, federated_key::name, servers, "__", out, error)) << body;
  return error;
}

TEST(FederatedNames, ACallGoesToItsServerWithOnlyTheNameRewritten) {
  routed_call r = routed(
      R"j({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"python__run_python_code",  "arguments":{"code":"x = 'python__x'"}}})j");
  EXPECT_EQ(r.server, 1u);
  EXPECT_EQ(r.tool, "run_python_code");
  EXPECT_EQ(
      r.body,
      R"j({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_python_code",  "arguments":{"code":"x = 'python__x'"}}})j");
}

TEST(FederatedNames, EscapesAreReadAsTheClientMeantThemAndWrittenPlain) {
  // "python\u005f\u005frun" is python__run: routed to python, the name written without escapes.
  routed_call r = routed(
      R"j({"method":"tools/call","params":{"arguments":{},"name":"python\u005f\u005frun\u0022x"}})j");
  EXPECT_EQ(r.server, 1u);
  EXPECT_EQ(r.tool, "run\"x");
  EXPECT_EQ(r.body, R"j({"method":"tools/call","params":{"arguments":{},"name":"run\"x"}})j");
}

TEST(FederatedNames, TheFirstSeparatorSplitsAndTheRestIsTheServersOwnName) {
  routed_call r = routed(R"j({"params":{"name":"everything__a__b"}})j");
  EXPECT_EQ(r.server, 0u);
  EXPECT_EQ(r.tool, "a__b");
}

TEST(FederatedNames, NamesOfNoServerAreRefusedNamingTheTool) {
  EXPECT_NE(refused(R"j({"params":{"name":"files__read"}})j").find("'files__read' names no server"),
            std::string::npos);
  refused(R"j({"params":{"name":"python"}})j");       // no separator
  refused(R"j({"params":{"name":"python__"}})j");     // no tool
  refused(R"j({"params":{"name":"__run"}})j");        // no server
  refused(R"j({"params":{"name":"Python__run"}})j");  // names are compared exactly
  refused(R"j({"params":{"name":7}})j");
  refused(R"j({"params":{}})j");
  refused(R"j({"params":"python__run"})j");
  refused("not json");
  // Found by the fuzz target: a name read before the rest of the document is known to be JSON.
  refused(R"j({"params":{"name":"python__run":"object"}}],"x"}}})j");
}

TEST(FederatedNames, ListedToolsArePrefixedAndKeepTheirOtherMembers) {
  std::string out;
  std::string next;
  ASSERT_TRUE(append_prefixed(
      R"j({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","description":"Echo it","inputSchema":{"type":"object"}},{"description":"no name"},{"name":"add"}],"nextCursor":"p2"}})j",
      "tools", "everything", "__", out, next));
  EXPECT_EQ(
      out,
      R"j({"name":"everything__echo","description":"Echo it","inputSchema":{"type":"object"}},{"name":"everything__add"})j");
  EXPECT_EQ(next, "p2");
  // A second server's page is appended after a comma.
  ASSERT_TRUE(append_prefixed(R"j({"result":{"tools":[{"name":"run"}]}})j", "tools", "python", "__",
                              out, next));
  EXPECT_TRUE(out.ends_with(R"j(},{"name":"python__run"})j"));
  EXPECT_EQ(next, "");
}

TEST(FederatedNames, PromptsArePrefixedAsToolsAre) {
  std::string out;
  std::string next;
  ASSERT_TRUE(append_prefixed(
      R"j({"result":{"prompts":[{"name":"simple","arguments":[]}],"tools":[{"name":"t"}]}})j",
      "prompts", "everything", "__", out, next));
  EXPECT_EQ(out, R"j({"name":"everything__simple","arguments":[]})j");
  routed_call r = routed(R"j({"method":"prompts/get","params":{"name":"everything__simple"}})j");
  EXPECT_EQ(r.body, R"j({"method":"prompts/get","params":{"name":"simple"}})j");
}

TEST(FederatedNames, ResourcesAndTemplatesTakeAUriPrefixThatReadsBack) {
  std::string out;
  std::string next;
  ASSERT_TRUE(append_prefixed(
      R"j({"result":{"resources":[{"uri":"demo://resource/1","name":"one"},{"name":"no uri"}]}})j",
      "resources", "everything", "__", out, next));
  EXPECT_EQ(out, R"j({"uri":"mcp-federated://everything/demo://resource/1","name":"one"})j");
  out.clear();
  ASSERT_TRUE(append_prefixed(
      R"j({"result":{"resourceTemplates":[{"uriTemplate":"demo://r/{id}","name":"t"}]}})j",
      "resourceTemplates", "python", "__", out, next));
  EXPECT_EQ(out, R"j({"uriTemplate":"mcp-federated://python/demo://r/{id}","name":"t"})j");

  routed_call r;
  std::string error;
  ASSERT_TRUE(route_request(
      R"j({"method":"resources/read","params":{"uri":"mcp-federated://python/demo://r/7"}})j",
      federated_key::uri, servers, "__", r, error))
      << error;
  EXPECT_EQ(r.server, 1u);
  EXPECT_EQ(r.body, R"j({"method":"resources/read","params":{"uri":"demo://r/7"}})j");
  for (std::string_view bad :
       {R"j({"params":{"uri":"demo://r/7"}})j", R"j({"params":{"uri":"mcp-federated://python"}})j",
        R"j({"params":{"uri":"mcp-federated://python/"}})j",
        R"j({"params":{"uri":"mcp-federated://files/x"}})j"}) {
    EXPECT_FALSE(route_request(bad, federated_key::uri, servers, "__", r, error)) << bad;
    EXPECT_NE(error.find("names no server"), std::string::npos) << error;
  }
}

TEST(FederatedNames, AResponseWithoutAToolsListAddsNothing) {
  std::string out;
  std::string next;
  EXPECT_FALSE(append_prefixed(R"j({"error":{"code":-32601,"message":"no"}})j", "tools", "x", "__",
                               out, next));
  EXPECT_FALSE(append_prefixed(R"j({"result":{"tools":{}}})j", "tools", "x", "__", out, next));
  EXPECT_FALSE(append_prefixed("{", "tools", "x", "__", out, next));
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace mcpgate::net
