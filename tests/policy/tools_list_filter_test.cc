#include "policy/tools_list_filter.h"

#include <gtest/gtest.h>

namespace mcpgate::policy {
namespace {

struct fixture {
  explicit fixture(std::string_view policy, bool hide_denied = true)
      : config(
            make_access_config(std::make_shared<const document>(parse_document(policy, "p.json")),
                               store, deny_style::result, hide_denied)) {}

  const grant_policy& grant() const { return *config->anonymous()->grant; }

  filter_outcome filter(std::string_view body) {
    return filter_tools_list(body, grant(), config->hide_denied_tools(), scratch, out);
  }

  counter_store store;
  std::shared_ptr<const access_config> config;
  tools_list_scratch scratch;
  std::string out;
};

TEST(ToolsListFilter, RemovesHiddenToolsAndKeepsTheRestByteForByte) {
  fixture f(R"({"hide": ["b"]})");
  std::string_view body =
      R"({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b"},{"name":"c", "x" : [1, 2]}],"nextCursor":"n"}})";
  EXPECT_EQ(f.filter(body), filter_outcome::filtered);
  EXPECT_EQ(
      f.out,
      R"({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"c", "x" : [1, 2]}],"nextCursor":"n"}})");
}

TEST(ToolsListFilter, HandlesOddWhitespaceAndRemovingTheFirstAndLastTools) {
  fixture f(R"({"hide": ["a", "c"]})");
  std::string_view body =
      "{ \"result\" :\n { \"tools\" : [\n  {\"name\":\"a\"} ,\n\t{\"name\":\"b\"}\r\n, "
      "{\"name\":\"c\"}  ] } , \"id\" : 3 }\n";
  EXPECT_EQ(f.filter(body), filter_outcome::filtered);
  EXPECT_EQ(f.out, "{ \"result\" :\n { \"tools\" : [\n  {\"name\":\"b\"}  ] } , \"id\" : 3 }\n");
}

TEST(ToolsListFilter, RemovingEveryToolLeavesAnEmptyArray) {
  fixture f(R"({"hide": ["*"]})");
  std::string_view body = R"({"id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}})";
  EXPECT_EQ(f.filter(body), filter_outcome::filtered);
  EXPECT_EQ(f.out, R"({"id":1,"result":{"tools":[]}})");
}

TEST(ToolsListFilter, MatchesEscapedNamesAfterUnescaping) {
  fixture f(R"({"hide": ["delete_repo", "café"]})");
  std::string_view body =
      R"({"result":{"tools":[{"n\u0061me":"delete\u005frepo"},{"name":"caf\u00e9"},{"name":"keep\"me"}]}})";
  EXPECT_EQ(f.filter(body), filter_outcome::filtered);
  EXPECT_EQ(f.out, R"({"result":{"tools":[{"name":"keep\"me"}]}})");
}

TEST(ToolsListFilter, HidesUnconditionallyDeniedToolsWhenConfigured) {
  std::string_view body =
      R"({"result":{"tools":[{"name":"clear_session"},{"name":"write_file"},{"name":"other"}]}})";
  std::string_view policy = R"({"default": "deny", "tools": {
      "clear_session": {"deny_if": [{"conditions": []}]}, "write_file": {}}})";
  fixture on(policy, true);
  EXPECT_EQ(on.filter(body), filter_outcome::filtered);
  EXPECT_EQ(on.out, R"({"result":{"tools":[{"name":"write_file"}]}})");
  fixture off(policy, false);
  EXPECT_FALSE(needs_tools_list_filter(off.grant(), false));
  EXPECT_EQ(off.filter(body), filter_outcome::unchanged);
}

TEST(ToolsListFilter, LeavesBodiesWithNothingToRemoveUnchanged) {
  fixture f(R"({"hide": ["zzz"]})");
  EXPECT_EQ(f.filter(R"({"result":{"tools":[{"name":"a"}]}})"), filter_outcome::unchanged);
  EXPECT_EQ(f.filter(R"({"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}})"),
            filter_outcome::unchanged);
}

TEST(ToolsListFilter, RemovesToolsWhoseNameCannotBeRead) {
  fixture f(R"({"hide": ["a"]})");
  EXPECT_EQ(f.filter(R"({"result":{"tools":[{"name":"b","name":"a"},{"name":5},{"name":"c"}]}})"),
            filter_outcome::filtered);
  EXPECT_EQ(f.out, R"({"result":{"tools":[{"name":"c"}]}})");
}

TEST(ToolsListFilter, RejectsInvalidOrAmbiguousBodies) {
  fixture f(R"({"hide": ["a"]})");
  EXPECT_EQ(f.filter(R"({"result":{"tools":[{"name":"a"}]}} {"x":1})"), filter_outcome::invalid);
  EXPECT_EQ(f.filter(R"({"result":{"tools":[{"name":"a"}]},"result":{"tools":[]}})"),
            filter_outcome::invalid);
  EXPECT_EQ(f.filter(R"({"result":{"tools":[{"name":"a"},]}})"), filter_outcome::invalid);
  EXPECT_EQ(f.filter(R"({"result":{"tools":["a"]}})"), filter_outcome::invalid);
  EXPECT_EQ(f.filter(R"([1])"), filter_outcome::invalid);
  EXPECT_EQ(f.filter(""), filter_outcome::invalid);
}

TEST(ToolsListFilter, FiltersEveryResponseOfABatchAndKeepsWhatLiesBetweenThem) {
  fixture f(R"({"hide": ["a", "b"]})");
  std::string_view body =
      R"([{"id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}, {"id":2,"error":{"code":-1}},)"
      R"( {"id":3,"result":{"tools":[{"name":"c"}, {"name":"a"}, {"name":"d"}]}}])";
  EXPECT_EQ(f.filter(body), filter_outcome::filtered);
  EXPECT_EQ(
      f.out,
      R"([{"id":1,"result":{"tools":[]}}, {"id":2,"error":{"code":-1}}, {"id":3,"result":{"tools":[{"name":"c"}, {"name":"d"}]}}])");
  EXPECT_EQ(f.filter(R"([{"id":1,"result":{"tools":[{"name":"c"}]}}])"), filter_outcome::unchanged);
  EXPECT_EQ(f.filter(R"([{"id":1,"result":{"tools":[]}}, 2])"), filter_outcome::invalid);
}

TEST(ToolsListFilter, LeavesNotificationsAndServerRequestsUnchanged) {
  fixture f(R"({"hide": ["a"]})");
  EXPECT_EQ(f.filter(R"({"jsonrpc":"2.0","method":"notifications/progress","params":{}})"),
            filter_outcome::unchanged);
  EXPECT_EQ(f.filter(R"({"jsonrpc":"2.0","id":9,"method":"roots/list"})"),
            filter_outcome::unchanged);
}

TEST(ToolsListFilter, NeedsFilteringOnlyWhenSomethingCanBeRemoved) {
  fixture plain(R"({"w": {"limits": [{"counter": "c", "window": "hour", "max": 1}]}})");
  EXPECT_FALSE(needs_tools_list_filter(plain.grant(), true));
  fixture hiding(R"({"hide": ["x"]})");
  EXPECT_TRUE(needs_tools_list_filter(hiding.grant(), false));
  fixture denying(R"({"default": "deny"})");
  EXPECT_TRUE(needs_tools_list_filter(denying.grant(), true));
  EXPECT_FALSE(needs_tools_list_filter(denying.grant(), false));
}

}  // namespace
}  // namespace mcpgate::policy
