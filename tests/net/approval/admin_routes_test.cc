// The operator's approval routes on hostile requests: a decision only as same-origin JSON with
// known keys, each refusal saying why.

#include "net/approval/admin_routes.h"

#include <gtest/gtest.h>

#include <string>

namespace mcpgate::net {
namespace {

struct routes {
  routes()
      : registry({}, [this](unsigned, const core::message&) {
          ++posted;
          return true;
        }) {
    approval_subject s;
    s.identity = "alice";
    s.server = "default";
    s.tool = "clear_session";
    id = registry.hold(s, 60'000, 0, {}).id;
  }

  // The reply to `head` (a whole request head) with `body`.
  approval_http_reply answer(const std::string& head, const std::string& body = {}) {
    text = head;
    request_head parsed = parse_request_head(text, http_limits{});
    EXPECT_EQ(parsed.status(), parse_status::complete) << head;
    std::string_view target = parsed.target();
    return approval_route(registry, parsed, target.substr(0, target.find('?')), body);
  }
  approval_http_reply post(const std::string& path, const std::string& body,
                           const std::string& extra = "Content-Type: application/json\r\n") {
    return answer("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n" + extra + "\r\n",
                  body);
  }

  int posted = 0;
  std::string text;
  std::string id;
  approval_registry registry;
};

TEST(ApprovalRoutes, ListsPendingCallsAndOpensTheEventStream) {
  routes r;
  approval_http_reply list = r.answer("GET /approvals HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n");
  EXPECT_EQ(list.status, 200);
  EXPECT_NE(list.body.find(r.id), std::string::npos);
  approval_http_reply events =
      r.answer("GET /approvals/events HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n");
  EXPECT_TRUE(events.stream);
  EXPECT_EQ(r.post("/approvals", "{}").status, 405);
}

TEST(ApprovalRoutes, ServesThePageWithAPolicyThatAllowsOnlyItself) {
  routes r;
  approval_http_reply page = r.answer("GET /ui/approvals HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.extra_headers.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(page.body.find("<label for=\"by\">"), std::string::npos);
  EXPECT_TRUE(is_public_approval_path("/ui/approvals"));
  EXPECT_FALSE(is_public_approval_path("/approvals"));
  EXPECT_FALSE(is_public_approval_path("/ui/approvals/../approvals"));
}

TEST(ApprovalRoutes, RefusesDecisionsThatAreNotSameOriginJson) {
  routes r;
  std::string route = "/approvals/" + r.id + "/approve";
  EXPECT_EQ(r.post(route, "by=x", "Content-Type: application/x-www-form-urlencoded\r\n").status,
            415);
  EXPECT_EQ(r.post(route, "{\"by\":\"x\"}", "").status, 415);
  EXPECT_EQ(r.post(route, "{\"by\":\"x\"}", "Content-Type: text/plain\r\n").status, 415);
  EXPECT_EQ(r.post(route, "{\"by\":\"x\"}",
                   "Content-Type: application/json\r\nOrigin: http://evil.example\r\n")
                .status,
            403);
  EXPECT_EQ(r.post(route, "{\"by\":\"x\"}",
                   "Content-Type: application/json\r\nOrigin: http://127.0.0.1:9.evil\r\n")
                .status,
            403);
  EXPECT_EQ(r.posted, 0);
  EXPECT_EQ(
      r.post(route, "{\"by\":\"x\"}",
             "Content-Type: application/json; charset=utf-8\r\nOrigin: http://127.0.0.1:9\r\n")
          .status,
      200);
  EXPECT_EQ(r.posted, 1);
}

TEST(ApprovalRoutes, NamesWhatIsWrongWithADecisionBody) {
  routes r;
  std::string route = "/approvals/" + r.id + "/approve";
  auto error_of = [&](const std::string& body, const std::string& path) {
    approval_http_reply a = r.post(path, body);
    EXPECT_EQ(a.status, 400) << body;
    return a.body;
  };
  EXPECT_NE(error_of("not json", route).find("not JSON"), std::string::npos);
  EXPECT_NE(error_of("[]", route).find("must be a JSON object"), std::string::npos);
  EXPECT_NE(error_of("{}", route).find("say who decides"), std::string::npos);
  EXPECT_NE(error_of(R"({"by":""})", route).find("say who decides"), std::string::npos);
  EXPECT_NE(error_of(R"({"by":1})", route).find("\\\"by\\\": expected a string"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"by":"x","by":"y"})", route).find("appears twice"), std::string::npos);
  EXPECT_NE(error_of(R"({"by":"x","decision":"approve"})", route).find("unknown key"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"by":"x","for_ms":1.5})", route).find("for_ms: expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"by":"x","for_ms":999999999999})", route).find("for_ms"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"by":"x","for_ms":1000})", "/approvals/" + r.id + "/deny")
                .find("for_ms applies to an approval only"),
            std::string::npos);
  EXPECT_NE(error_of("{\"by\":\"" + std::string(129, 'x') + "\"}", route).find("at most 128"),
            std::string::npos);
  EXPECT_EQ(r.posted, 0);
  EXPECT_EQ(r.post("/approvals/" + r.id + "/maybe", "{}").status, 404);
  EXPECT_EQ(r.post("/approvals//approve", "{}").status, 404);
  EXPECT_EQ(r.post("/approvals/ap-unknown/approve", R"({"by":"x"})").status, 404);
  EXPECT_EQ(r.answer("GET " + route + " HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n").status, 405);
}

}  // namespace
}  // namespace mcpgate::net
