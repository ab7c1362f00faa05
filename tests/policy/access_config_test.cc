#include "policy/access_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace mcpgate::policy {
namespace {

constexpr std::string_view kAliceHash =
    "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20";

class temp_dir {
 public:
  temp_dir()
      : path_(std::filesystem::temp_directory_path() /
              ("mcpgate_access_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() { std::filesystem::remove_all(path_); }
  void write(const std::string& name, std::string_view text) const {
    std::ofstream(path_ / name) << text;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string error_of(const access_config_source& source) {
  counter_store store;
  try {
    load_access_config(source, store);
  } catch (const load_error& e) {
    return e.what();
  }
  return "";
}

access_config_source with_identity(std::string_view grant, std::string_view hash = kAliceHash) {
  access_config_source source;
  source.config_file = "mcpgate.json";
  source.grants_json = R"({"ops": {}})";
  source.identities_json = std::string(R"([{"name": "alice", "key_sha256": ")") +
                           std::string(hash) + R"(", "grant": ")" + std::string(grant) + R"("}])";
  return source;
}

TEST(AccessConfig, LoadsGrantPoliciesRelativeToTheBaseDirectory) {
  temp_dir dir;
  dir.write("ops.json", R"({"default": "deny"})");
  access_config_source source = with_identity("ops");
  source.grants_json = R"({"ops": {"policy": "ops.json"}})";
  source.base_dir = dir.path();
  counter_store store;
  auto config = load_access_config(source, store);
  const grant_policy* ops = config->find_grant("ops");
  ASSERT_NE(ops, nullptr);
  EXPECT_EQ(ops->mode, grant_policy::kind::document);
  EXPECT_TRUE(ops->denies_unconditionally("anything"));
  EXPECT_EQ(config->anonymous(), nullptr);
}

TEST(AccessConfig, IdentityMustNameAConfiguredGrant) {
  EXPECT_EQ(error_of(with_identity("nope")),
            "mcpgate.json: $.identities[0].grant: no grant named \"nope\" under $.grants");
}

TEST(AccessConfig, KeyHashMustBeSixtyFourHexDigits) {
  EXPECT_EQ(error_of(with_identity("ops", "abc")),
            "mcpgate.json: $.identities[0].key_sha256: expected 64 hex digits (the SHA-256 of the "
            "key), got \"abc\"");
}

TEST(AccessConfig, RejectsUnknownKeysInIdentitiesAndGrants) {
  access_config_source source = with_identity("ops");
  source.identities_json = std::string(R"([{"name": "a", "key": "x", "grant": "ops"}])");
  EXPECT_EQ(
      error_of(source),
      "mcpgate.json: $.identities[0].key: unknown key \"key\" (known: name, key_sha256, grant)");
  source = with_identity("ops");
  source.grants_json = R"({"ops": {"polcy": "x.json"}})";
  EXPECT_EQ(error_of(source),
            "mcpgate.json: $.grants.ops.polcy: unknown key \"polcy\" (known: policy, upstreams, "
            "servers)");
}

TEST(AccessConfig, PolicyErrorsNameThePolicyFile) {
  temp_dir dir;
  dir.write("ops.json", R"({"w": {"limits": [{"counter": "c", "window": "hour", "max": 0}]}})");
  access_config_source source = with_identity("ops");
  source.grants_json = R"({"ops": {"policy": "ops.json"}})";
  source.base_dir = dir.path();
  EXPECT_EQ(error_of(source), (dir.path() / "ops.json").string() +
                                  ": $.tools.w.limits[0].max: expected a positive integer, got 0");
}

TEST(AccessConfig, WithoutIdentitiesTheDefaultPolicyAppliesToAnonymous) {
  temp_dir dir;
  dir.write("p.json", R"({"hide": ["x"]})");
  access_config_source source;
  source.default_policy = dir.path() / "p.json";
  counter_store store;
  auto config = load_access_config(source, store);
  ASSERT_NE(config->anonymous(), nullptr);
  EXPECT_TRUE(config->anonymous()->grant->is_hidden("x"));
  EXPECT_FALSE(config->allows_everything());
}

TEST(AccessConfig, WithoutAnyPolicyEverythingIsAllowed) {
  counter_store store;
  auto config = load_access_config(access_config_source{}, store);
  EXPECT_TRUE(config->allows_everything());
}

TEST(AccessConfig, DefaultPolicyWithIdentitiesIsAnError) {
  access_config_source source = with_identity("ops");
  source.default_policy = "p.json";
  EXPECT_NE(error_of(source).find("mcpgate.json: $.policy: a default policy applies only when no "
                                  "identities are configured"),
            std::string::npos);
}

TEST(AccessConfig, ParsesDenyStyle) {
  EXPECT_EQ(parse_deny_style("result"), deny_style::result);
  EXPECT_EQ(parse_deny_style("error"), deny_style::error);
  EXPECT_FALSE(parse_deny_style("Error"));
}

}  // namespace
}  // namespace mcpgate::policy
