#include "net/observe/trace.h"

#include <gtest/gtest.h>

namespace mcpgate::net {
namespace {

TEST(Traceparent, ReadsTheW3CFormAndItsSampledFlag) {
  trace_context t;
  ASSERT_TRUE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", t));
  EXPECT_TRUE(t.has_parent);
  EXPECT_TRUE(t.sampled);
  EXPECT_EQ(t.trace[0], 0x4b);
  EXPECT_EQ(t.parent[7], 0xb7);
  trace_context quiet;
  ASSERT_TRUE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", quiet));
  EXPECT_FALSE(quiet.sampled);
  // A later version may append fields; its first four are read.
  trace_context later;
  EXPECT_TRUE(
      parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", later));
}

TEST(Traceparent, RefusesWhatIsNotOne) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // 00 has no more
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        // version ff
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",        // zero trace
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",        // zero parent
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",        // uppercase
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
       }) {
    trace_context t;
    EXPECT_FALSE(parse_traceparent(bad, t)) << bad;
    EXPECT_FALSE(t.has_parent) << bad;
  }
}

TEST(TraceIds, ANewTraceGetsFreshIdsAndAContinuedOneKeepsItsTrace) {
  trace_ids ids;
  trace_context fresh;
  ids.fill(fresh);
  EXPECT_TRUE(fresh.active);
  EXPECT_TRUE(fresh.sampled);
  EXPECT_NE(fresh.server, fresh.upstream);
  trace_context continued;
  ASSERT_TRUE(
      parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", continued));
  trace_id before = continued.trace;
  ids.fill(continued);
  EXPECT_EQ(continued.trace, before);
  EXPECT_FALSE(continued.sampled);
  std::string header;
  append_traceparent_header(header, continued);
  EXPECT_EQ(header.substr(0, 49), "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-");
  EXPECT_EQ(header.substr(header.size() - 5), "-00\r\n");
}

TEST(TraceMeta, FindsTraceparentInParamsMeta) {
  trace_meta_reader r;
  EXPECT_EQ(r.traceparent(R"({"name":"x","_meta":{"progressToken":1,"traceparent":"00-ab"}})"),
            "00-ab");
  EXPECT_EQ(r.traceparent(R"({"name":"x"})"), "");
  EXPECT_EQ(r.traceparent(R"({"_meta":{"traceparent":7}})"), "");
  EXPECT_EQ(r.traceparent("not json"), "");
}

}  // namespace
}  // namespace mcpgate::net
