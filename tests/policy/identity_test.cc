#include "policy/identity.h"

#include <gtest/gtest.h>

namespace mcpgate::policy {
namespace {

// SHA-256 of "alice-key" and "bob-key".
constexpr std::string_view kAliceHash =
    "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20";
constexpr std::string_view kBobHash =
    "9b94dc1a51a38769f135edf04033ad7f2f487b6c25929be7a861cfc1ab10cf98";

std::shared_ptr<const access_config> two_identities(counter_store& store) {
  access_config_source source;
  source.grants_json = R"({"ops": {}, "dev": {}})";
  source.identities_json = std::string(R"([{"name": "alice", "key_sha256": ")") +
                           std::string(kAliceHash) +
                           R"(", "grant": "ops"}, {"name": "bob", "key_sha256": ")" +
                           std::string(kBobHash) + R"(", "grant": "dev"}])";
  return load_access_config(source, store);
}

TEST(Authenticate, GoodKeyYieldsItsIdentityAndGrant) {
  counter_store store;
  auto config = two_identities(store);
  const identity* who = authenticate(*config, "Bearer alice-key");
  ASSERT_NE(who, nullptr);
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(who->grant->name, "ops");
  EXPECT_EQ(authenticate(*config, "Bearer bob-key")->name, "bob");
}

TEST(Authenticate, SchemeIsCaseInsensitive) {
  counter_store store;
  auto config = two_identities(store);
  EXPECT_NE(authenticate(*config, "bearer alice-key"), nullptr);
  EXPECT_NE(authenticate(*config, "BEARER  alice-key "), nullptr);
}

TEST(Authenticate, BadKeyIsRejected) {
  counter_store store;
  auto config = two_identities(store);
  EXPECT_EQ(authenticate(*config, "Bearer alice-key2"), nullptr);
  EXPECT_EQ(authenticate(*config, "Bearer Alice-key"), nullptr);
  EXPECT_EQ(authenticate(*config, "Bearer " + std::string(kAliceHash)), nullptr);
}

TEST(Authenticate, MissingHeaderOrKeyIsRejected) {
  counter_store store;
  auto config = two_identities(store);
  EXPECT_EQ(authenticate(*config, ""), nullptr);
  EXPECT_EQ(authenticate(*config, "Bearer"), nullptr);
  EXPECT_EQ(authenticate(*config, "Bearer "), nullptr);
}

TEST(Authenticate, WrongSchemeIsRejected) {
  counter_store store;
  auto config = two_identities(store);
  EXPECT_EQ(authenticate(*config, "Basic alice-key"), nullptr);
  EXPECT_EQ(authenticate(*config, "Token alice-key"), nullptr);
  EXPECT_EQ(authenticate(*config, "Beareralice-key"), nullptr);
  EXPECT_EQ(authenticate(*config, "alice-key"), nullptr);
  EXPECT_EQ(authenticate(*config, "Bearer alice-key extra"), nullptr);
}

TEST(Authenticate, WithoutIdentitiesEveryCallerIsAnonymousInGrantDefault) {
  counter_store store;
  auto config = make_access_config(nullptr, store);
  for (std::string_view header : {"", "Bearer anything", "Basic x"}) {
    const identity* who = authenticate(*config, header);
    ASSERT_NE(who, nullptr);
    EXPECT_EQ(who->name, "anonymous");
    EXPECT_EQ(who->grant->name, "default");
  }
}

TEST(BearerToken, ExtractsTheKey) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("  bEaReR\tabc  "), "abc");
  EXPECT_EQ(bearer_token("Bearer"), "");
}

TEST(Sha256, MatchesTheKnownDigest) {
  auto d = sha256("abc");
  EXPECT_EQ(d[0], 0xba);
  EXPECT_EQ(d[31], 0xad);
}

}  // namespace
}  // namespace mcpgate::policy
