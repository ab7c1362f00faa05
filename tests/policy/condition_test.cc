#include "policy/condition.h"

#include <gtest/gtest.h>

#include <string>

namespace mcpgate::policy {
namespace {

// Evaluates the condition `rule` (JSON text) against arguments `args` (JSON text, empty for
// absent arguments).
class evaluator {
 public:
  bool holds(std::string_view rule, std::string_view args) {
    simdjson::dom::parser parser;
    simdjson::padded_string rule_text(rule);
    auto parsed = parser.parse(rule_text);
    EXPECT_FALSE(parsed.error()) << rule;
    condition c = condition::parse(parsed.value_unsafe(), json_location("test.json", "$"));
    args_text_.assign(args);
    args_text_.append(simdjson::SIMDJSON_PADDING, '\0');
    reader_.reset(std::string_view(args_text_.data(), args.size()));
    return c.holds(reader_);
  }
  const argument_reader& reader() const { return reader_; }

 private:
  argument_reader reader_;
  std::string args_text_;
};

std::string load_error_of(std::string_view rule) {
  simdjson::dom::parser parser;
  simdjson::padded_string text(rule);
  try {
    condition::parse(parser.parse(text).value_unsafe(), json_location("p.json", "$.c"));
  } catch (const load_error& e) {
    return e.what();
  }
  return "";
}

TEST(Condition, EqMatchesEqualValuesOfTheSameTypeAndNumbersSentAsStrings) {
  evaluator e;
  EXPECT_TRUE(
      e.holds(R"({"path": "args.env", "op": "eq", "value": "prod"})", R"({"env": "prod"})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.env", "op": "eq", "value": "prod"})", R"({"env": "dev"})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.n", "op": "eq", "value": 3})", R"({"n": 3.0})"));
  // A Python server coerces "3" to 3 for a numeric field: so does the condition.
  EXPECT_TRUE(e.holds(R"({"path": "args.n", "op": "eq", "value": 3})", R"({"n": "3"})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.n", "op": "eq", "value": "3"})", R"({"n": 3})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.b", "op": "eq", "value": true})", R"({"b": true})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.b", "op": "eq", "value": true})", R"({"b": 1})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.x", "op": "eq", "value": null})", R"({"x": null})"));
}

TEST(Condition, NeqHoldsForDifferentValuesButNotForMissingOrWrongType) {
  evaluator e;
  const char* rule = R"({"path": "args.env", "op": "neq", "value": "prod"})";
  EXPECT_TRUE(e.holds(rule, R"({"env": "dev"})"));
  EXPECT_FALSE(e.holds(rule, R"({"env": "prod"})"));
  EXPECT_FALSE(e.holds(rule, R"({"other": 1})"));
  EXPECT_FALSE(e.holds(rule, R"({"env": 5})"));
}

TEST(Condition, NumericComparisonsCompareNumbersAndStringsHoldingNumbers) {
  evaluator e;
  EXPECT_TRUE(
      e.holds(R"({"path": "args.amount", "op": "gt", "value": 10000})", R"({"amount": 10001})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.amount", "op": "gt", "value": 10000})", R"({"amount": 10000})"));
  // pydantic and zod's coerce read "99999" as 99999: a deny rule on the amount must too.
  EXPECT_TRUE(
      e.holds(R"({"path": "args.amount", "op": "gt", "value": 10000})", R"({"amount": "99999"})"));
  EXPECT_TRUE(
      e.holds(R"({"path": "args.amount", "op": "gt", "value": 10000})", R"({"amount": " 2e4 "})"));
  EXPECT_TRUE(
      e.holds(R"({"path": "args.amount", "op": "lt", "value": 0})", R"({"amount": "-0.5"})"));
  for (const char* not_a_number : {R"("0x99999")", R"("inf")", R"("nan")", R"("99999abc")", R"("")",
                                   R"(" ")", R"("1e")", R"(".")", R"("--1")"}) {
    EXPECT_FALSE(e.holds(R"({"path": "args.amount", "op": "gt", "value": 0})",
                         std::string(R"({"amount": )") + not_a_number + "}"))
        << not_a_number;
  }
  EXPECT_TRUE(
      e.holds(R"({"path": "args.amount", "op": "gte", "value": 10000})", R"({"amount": 10000})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.amount", "op": "gte", "value": 10000})", R"({"amount": 9999.5})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.amount", "op": "lt", "value": 0.5})", R"({"amount": -1})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.amount", "op": "lt", "value": 0.5})", R"({"amount": 0.5})"));
  EXPECT_TRUE(
      e.holds(R"({"path": "args.amount", "op": "lte", "value": 0.5})", R"({"amount": 0.5})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.amount", "op": "lte", "value": 0.5})", R"({"amount": 0.51})"));
  // Large integers compare exactly, not through double.
  EXPECT_TRUE(e.holds(R"({"path": "args.n", "op": "gt", "value": 9007199254740992})",
                      R"({"n": 9007199254740993})"));
  EXPECT_TRUE(
      e.holds(R"({"path": "args.n", "op": "gt", "value": 1})", R"({"n": 18446744073709551615})"));
}

TEST(Condition, InAndNotInTestMembership) {
  evaluator e;
  EXPECT_TRUE(e.holds(R"({"path": "args.env", "op": "in", "value": ["dev", "staging"]})",
                      R"({"env": "dev"})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.env", "op": "in", "value": ["dev", "staging"]})",
                       R"({"env": "prod"})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.env", "op": "not_in", "value": ["dev", "staging"]})",
                      R"({"env": "prod"})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.env", "op": "not_in", "value": ["dev", "staging"]})",
                       R"({"env": "dev"})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.env", "op": "not_in", "value": ["dev"]})", R"({})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.env", "op": "not_in", "value": ["dev"]})", R"({"env": ["x"]})"));
}

TEST(Condition, ContainsFindsSubstringsAndArrayMembers) {
  evaluator e;
  EXPECT_TRUE(e.holds(R"({"path": "args.sql", "op": "contains", "value": "DROP"})",
                      R"({"sql": "x; DROP TABLE t"})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.sql", "op": "contains", "value": "DROP"})",
                       R"({"sql": "drop table"})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.tags", "op": "contains", "value": "secret"})",
                      R"({"tags": ["a", "secret"]})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.tags", "op": "contains", "value": "secret"})",
                       R"({"tags": ["a"]})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.tags", "op": "contains", "value": "secret"})", R"({"tags": 7})"));
}

TEST(Condition, StartsWithAndEndsWithCompareStrings) {
  evaluator e;
  EXPECT_TRUE(e.holds(R"({"path": "args.path", "op": "starts_with", "value": "/etc/"})",
                      R"({"path": "/etc/passwd"})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.path", "op": "starts_with", "value": "/etc/"})",
                       R"({"path": "/tmp/etc/"})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.path", "op": "ends_with", "value": ".pem"})",
                      R"({"path": "k.pem"})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.path", "op": "ends_with", "value": ".pem"})",
                       R"({"path": "k.pem.txt"})"));
  EXPECT_FALSE(
      e.holds(R"({"path": "args.path", "op": "ends_with", "value": ".pem"})", R"({"path": 5})"));
}

TEST(Condition, RegexSearchesWithRe2Syntax) {
  evaluator e;
  const char* rule = R"({"path": "args.email", "op": "regex", "value": "@(example|test)\\.com$"})";
  EXPECT_TRUE(e.holds(rule, R"({"email": "a@example.com"})"));
  EXPECT_FALSE(e.holds(rule, R"({"email": "a@example.com.evil"})"));
  EXPECT_FALSE(e.holds(rule, R"({"email": 42})"));
  EXPECT_TRUE(
      e.holds(R"({"path": "args.s", "op": "regex", "value": "^\\p{Greek}+$"})", R"({"s": "αβγ"})"));
}

TEST(Condition, RegexRejectsPatternsRe2CannotRunInLinearTime) {
  EXPECT_NE(load_error_of(R"({"path": "args.s", "op": "regex", "value": "(a)\\1"})")
                .find("p.json: $.c.value: invalid RE2 pattern"),
            std::string::npos);
}

TEST(Condition, ExistsAndNotExistsTestPresence) {
  evaluator e;
  EXPECT_TRUE(e.holds(R"({"path": "args.reason", "op": "exists"})", R"({"reason": null})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.reason", "op": "exists"})", R"({"other": 1})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.reason", "op": "not_exists"})", R"({"other": 1})"));
  EXPECT_FALSE(e.holds(R"({"path": "args.reason", "op": "not_exists"})", R"({"reason": ""})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.reason", "op": "not_exists"})", ""));
  EXPECT_FALSE(e.holds(R"({"path": "args", "op": "exists"})", ""));
  EXPECT_TRUE(e.holds(R"({"path": "args", "op": "exists"})", "{}"));
}

TEST(Condition, NestedPathsAndArrayIndexesWalkIntoArguments) {
  evaluator e;
  const char* args =
      R"({"metadata": {"environment": "prod"}, "files": [{"name": "a"}, {"name": ".env"}]})";
  EXPECT_TRUE(
      e.holds(R"({"path": "args.metadata.environment", "op": "eq", "value": "prod"})", args));
  EXPECT_FALSE(e.holds(R"({"path": "args.metadata.region", "op": "exists"})", args));
  EXPECT_TRUE(e.holds(R"({"path": "args.files[1].name", "op": "eq", "value": ".env"})", args));
  EXPECT_FALSE(e.holds(R"({"path": "args.files[0].name", "op": "eq", "value": ".env"})", args));
  EXPECT_FALSE(e.holds(R"({"path": "args.files[2].name", "op": "exists"})", args));
  EXPECT_FALSE(e.holds(R"({"path": "args.metadata[0]", "op": "exists"})", args));
  EXPECT_FALSE(e.holds(R"({"path": "args.files.name", "op": "exists"})", args));
}

TEST(Condition, EscapedKeysInArgumentsAndPolicyMatchUnescaped) {
  evaluator e;
  EXPECT_TRUE(e.holds(R"({"path": "args.env", "op": "eq", "value": "prod"})",
                      R"({"\u0065nv": "pr\u006fd"})"));
  EXPECT_TRUE(e.holds(R"({"path": "args.caf\u00e9", "op": "eq", "value": 1})", R"({"café": 1})"));
}

TEST(Condition, DuplicatedKeyOnThePathMarksTheArgumentsAmbiguous) {
  evaluator e;
  EXPECT_FALSE(e.holds(R"({"path": "args.env", "op": "exists"})", R"({"env": 1, "env": 2})"));
  EXPECT_TRUE(e.reader().ambiguous());
  EXPECT_TRUE(e.holds(R"({"path": "args.other", "op": "not_exists"})", R"({"env": 1, "env": 2})"));
  EXPECT_FALSE(e.reader().ambiguous());
}

TEST(Condition, AllHoldsOnlyWhenEveryChildHolds) {
  evaluator e;
  const char* rule =
      R"({"all": [{"path": "args.a", "op": "eq", "value": 1}, {"path": "args.b", "op": "eq", "value": 2}]})";
  EXPECT_TRUE(e.holds(rule, R"({"a": 1, "b": 2})"));
  EXPECT_FALSE(e.holds(rule, R"({"a": 1, "b": 3})"));
  EXPECT_TRUE(e.holds(R"({"all": []})", "{}"));
}

TEST(Condition, AnyHoldsWhenOneChildHolds) {
  evaluator e;
  const char* rule =
      R"({"any": [{"path": "args.a", "op": "eq", "value": 1}, {"path": "args.b", "op": "eq", "value": 2}]})";
  EXPECT_TRUE(e.holds(rule, R"({"a": 0, "b": 2})"));
  EXPECT_FALSE(e.holds(rule, R"({"a": 0, "b": 0})"));
  EXPECT_FALSE(e.holds(R"({"any": []})", "{}"));
}

TEST(Condition, NotInvertsItsChild) {
  evaluator e;
  const char* rule = R"({"not": {"path": "args.env", "op": "eq", "value": "dev"}})";
  EXPECT_TRUE(e.holds(rule, R"({"env": "prod"})"));
  EXPECT_FALSE(e.holds(rule, R"({"env": "dev"})"));
}

TEST(Condition, CombinatorsNest) {
  evaluator e;
  const char* rule = R"({"any": [
      {"all": [{"path": "args.env", "op": "eq", "value": "prod"}, {"not": {"path": "args.ticket", "op": "exists"}}]},
      {"path": "args.amount", "op": "gt", "value": 1000}]})";
  EXPECT_TRUE(e.holds(rule, R"({"env": "prod"})"));
  EXPECT_FALSE(e.holds(rule, R"({"env": "prod", "ticket": "T-1"})"));
  EXPECT_TRUE(e.holds(rule, R"({"env": "dev", "amount": 5000})"));
  EXPECT_FALSE(e.holds(rule, R"({"env": "dev", "amount": 50})"));
}

TEST(Condition, ConditionsOnAbsentOrInvalidArgumentsAreFalse) {
  evaluator e;
  EXPECT_FALSE(e.holds(R"({"path": "args.a", "op": "eq", "value": 1})", ""));
  EXPECT_FALSE(e.holds(R"({"path": "args.a", "op": "eq", "value": 1})", R"({"a": 1)"));
  EXPECT_TRUE(e.reader().invalid());
}

TEST(Condition, LoadErrorsNameThePathAndTheBadValue) {
  EXPECT_EQ(load_error_of(R"({"path": "args.a", "op": "greater", "value": 1})"),
            "p.json: $.c.op: expected one of eq, neq, lt, lte, gt, gte, in, not_in, contains, "
            "starts_with, ends_with, regex, exists, not_exists, got \"greater\"");
  EXPECT_EQ(load_error_of(R"({"path": "args.a", "op": "gt", "value": "1"})"),
            "p.json: $.c.value: expected a number, got \"1\"");
  EXPECT_EQ(load_error_of(R"({"path": "arguments.a", "op": "exists"})"),
            "p.json: $.c.path: expected a path starting with \"args\", got \"arguments.a\"");
  EXPECT_EQ(load_error_of(R"({"path": "args.a", "op": "exists", "vaule": 1})"),
            "p.json: $.c.vaule: unknown key \"vaule\" (known: path, op, value)");
  EXPECT_EQ(load_error_of(R"({"path": "args.a", "op": "exists", "value": 1})"),
            "p.json: $.c.value: exists takes no value");
  EXPECT_EQ(
      load_error_of(R"({"all": [{"path": "args.a[x]", "op": "exists"}]})"),
      "p.json: $.c.all[0].path: expected a non-negative integer index in path, got \"args.a[x]\"");
  EXPECT_EQ(load_error_of(R"({"not": {"path": "args.a", "op": "in", "value": "a"}})"),
            "p.json: $.c.not.value: expected an array of strings or numbers, got \"a\"");
}

TEST(Condition, DescribeShowsTheConditionAsText) {
  simdjson::dom::parser parser;
  simdjson::padded_string text(std::string_view(
      R"({"any": [{"path": "args.a", "op": "in", "value": ["x", 2]}, {"not": {"path": "args.b", "op": "exists"}}]})"));
  condition c = condition::parse(parser.parse(text).value_unsafe(), json_location("p", "$"));
  EXPECT_EQ(c.describe(), R"(any(args.a in ["x", 2], not(args.b exists)))");
}

}  // namespace
}  // namespace mcpgate::policy
