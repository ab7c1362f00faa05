#include "net/http/sse.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::net {
namespace {

using namespace std::string_literals;

// An owned copy of an sse_event, which only lives until the next feed().
struct owned_event {
  bool dispatch = false;
  std::string type;
  std::string data;
  std::string id;
  std::optional<std::uint64_t> retry;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  bool same_content(const owned_event& o) const {
    return dispatch == o.dispatch && type == o.type && data == o.data && id == o.id &&
           retry == o.retry;
  }
};

struct parse_outcome {
  std::vector<owned_event> events;
  bool failed = false;
};

parse_outcome parse_pieces(const std::vector<std::string_view>& pieces,
                           std::size_t max_event_bytes = 1024 * 1024) {
  sse_parser p(max_event_bytes);
  parse_outcome out;
  for (std::string_view piece : pieces) {
    while (true) {
      const sse_step step = p.feed(piece);
      EXPECT_LE(step.consumed, piece.size());
      piece.remove_prefix(step.consumed);
      if (step.status == sse_status::error) {
        out.failed = true;
        return out;
      }
      if (step.status == sse_status::need_more) {
        EXPECT_TRUE(piece.empty());
        break;
      }
      const sse_event& e = p.event();
      out.events.push_back({e.dispatch, std::string(e.type), std::string(e.data), std::string(e.id),
                            e.retry, e.begin, e.end});
    }
  }
  return out;
}

parse_outcome parse_whole(std::string_view stream) {
  return parse_pieces({stream});
}

TEST(SseParser, DispatchesAnEventAtABlankLine) {
  const std::string stream = "event: message\ndata: {\"jsonrpc\":\"2.0\"}\n\n";
  const parse_outcome out = parse_whole(stream);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_TRUE(out.events[0].dispatch);
  EXPECT_EQ(out.events[0].type, "message");
  EXPECT_EQ(out.events[0].data, "{\"jsonrpc\":\"2.0\"}");
  EXPECT_EQ(out.events[0].begin, 0u);
  EXPECT_EQ(out.events[0].end, stream.size());
}

TEST(SseParser, HoldsBackABlockUntilItsBlankLine) {
  EXPECT_TRUE(parse_whole("data: a\n").events.empty());
  EXPECT_TRUE(parse_whole("data: a\ndata: b").events.empty());
}

TEST(SseParser, JoinsDataLinesWithLineFeeds) {
  const parse_outcome out = parse_whole("data: a\ndata:\ndata: b\n\n");
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, "a\n\nb");
}

TEST(SseParser, StripsOnlyOneSpaceAfterTheColon) {
  const parse_outcome out = parse_whole("data:  two\n\ndata:none\n\n");
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].data, " two");
  EXPECT_EQ(out.events[1].data, "none");
}

TEST(SseParser, TreatsALineWithoutColonAsAFieldWithEmptyValue) {
  const parse_outcome out = parse_whole("data\n\n");
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_TRUE(out.events[0].dispatch);
  EXPECT_EQ(out.events[0].data, "");
}

TEST(SseParser, AcceptsCrlfLfAndCrLineEndingsAlike) {
  const parse_outcome lf = parse_whole("event: e\ndata: x\n\ndata: y\n\n");
  const parse_outcome crlf = parse_whole("event: e\r\ndata: x\r\n\r\ndata: y\r\n\r\n");
  const parse_outcome cr = parse_whole("event: e\rdata: x\r\rdata: y\r\r");
  const parse_outcome mixed = parse_whole("event: e\r\ndata: x\r\rdata: y\n\r\n");
  for (const parse_outcome* out : {&lf, &crlf, &cr, &mixed}) {
    ASSERT_EQ(out->events.size(), 2u);
    EXPECT_EQ(out->events[0].type, "e");
    EXPECT_EQ(out->events[0].data, "x");
    EXPECT_EQ(out->events[1].type, "");
    EXPECT_EQ(out->events[1].data, "y");
  }
}

TEST(SseParser, ReportsCommentOnlyBlocksAsNotDispatched) {
  const std::string stream = ": ping\n\ndata: x\n\n";
  const parse_outcome out = parse_whole(stream);
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_FALSE(out.events[0].dispatch);
  EXPECT_EQ(out.events[0].begin, 0u);
  EXPECT_EQ(out.events[0].end, 8u);
  EXPECT_TRUE(out.events[1].dispatch);
  EXPECT_EQ(out.events[1].begin, 8u);
  EXPECT_EQ(out.events[1].end, stream.size());
}

TEST(SseParser, DoesNotDispatchABlockWithoutData) {
  const parse_outcome out = parse_whole("event: orphan\nid: 7\n\ndata: x\n\n");
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_FALSE(out.events[0].dispatch);
  EXPECT_TRUE(out.events[1].dispatch);
  EXPECT_EQ(out.events[1].type, "") << "the event type does not outlive its block";
  EXPECT_EQ(out.events[1].id, "7") << "the last event ID does";
}

TEST(SseParser, KeepsTheLastEventIdAcrossEventsAndIgnoresIdsWithNul) {
  const std::string stream = "id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\n"s;
  const parse_outcome out = parse_whole(stream);
  ASSERT_EQ(out.events.size(), 3u);
  EXPECT_EQ(out.events[0].id, "1");
  EXPECT_EQ(out.events[1].id, "1");
  EXPECT_EQ(out.events[2].id, "1");
  const parse_outcome reset = parse_whole("id: 1\ndata: a\n\nid\ndata: b\n\n");
  ASSERT_EQ(reset.events.size(), 2u);
  EXPECT_EQ(reset.events[1].id, "");
}

TEST(SseParser, ReportsRetryOnlyWhenAllDigits) {
  const parse_outcome out =
      parse_whole("retry: 1500\ndata: a\n\nretry: 15s\ndata: b\n\nretry:\ndata: c\n\n");
  ASSERT_EQ(out.events.size(), 3u);
  EXPECT_EQ(out.events[0].retry, 1500u);
  EXPECT_EQ(out.events[1].retry, std::nullopt);
  EXPECT_EQ(out.events[2].retry, std::nullopt);
}

TEST(SseParser, IgnoresUnknownFieldsAndCaseVariants) {
  const parse_outcome out = parse_whole("Data: x\nfoo: y\nevent : z\ndata: real\n\n");
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, "real");
  EXPECT_EQ(out.events[0].type, "");
}

TEST(SseParser, StripsAByteOrderMarkAtTheStartOfTheStreamOnly) {
  const parse_outcome out = parse_pieces({"\xEF\xBB",
                                          "\xBF"
                                          "data: a\n\n\xEF\xBB\xBF"
                                          "data: b\n\n"});
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].data, "a");
  EXPECT_EQ(out.events[0].begin, 0u);
  EXPECT_FALSE(out.events[1].dispatch) << "a later BOM is part of an unknown field name";
}

TEST(SseParser, ByteRangesTileTheStream) {
  const std::string stream =
      ": hi\n\nevent: a\ndata: 1\n\n\n\ndata: 2\r\n\r\nretry: 5\rdata: 3\r\r";
  const parse_outcome out = parse_whole(stream);
  ASSERT_EQ(out.events.size(), 6u);
  std::uint64_t at = 0;
  for (const owned_event& e : out.events) {
    EXPECT_EQ(e.begin, at);
    EXPECT_GT(e.end, e.begin);
    at = e.end;
  }
  EXPECT_EQ(at, stream.size());
  EXPECT_EQ(stream.substr(out.events[1].begin, out.events[1].end - out.events[1].begin),
            "event: a\ndata: 1\n\n");
}

TEST(SseParser, GivesTheSameEventsAndRangesForEverySplit) {
  const std::string stream =
      ": keepalive\n\nevent: message\ndata: {\"id\":1}\n\nid: 9\ndata: a\ndata: b\n\n";
  const parse_outcome whole = parse_whole(stream);
  ASSERT_EQ(whole.events.size(), 3u);
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    const std::string_view s = stream;
    const parse_outcome out = parse_pieces({s.substr(0, split), s.substr(split)});
    ASSERT_EQ(out.events.size(), whole.events.size()) << "split " << split;
    for (std::size_t i = 0; i < out.events.size(); ++i) {
      EXPECT_TRUE(out.events[i].same_content(whole.events[i])) << "split " << split;
      EXPECT_EQ(out.events[i].begin, whole.events[i].begin) << "split " << split;
      EXPECT_EQ(out.events[i].end, whole.events[i].end) << "split " << split;
    }
  }
}

TEST(SseParser, GivesTheSameEventsForCrlfStreamsFedOneByteAtATime) {
  const std::string stream = "event: a\r\ndata: x\r\n\r\ndata: y\r\ndata: z\r\n\r\n";
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    bytes.push_back(std::string_view(stream).substr(i, 1));
  }
  const parse_outcome whole = parse_whole(stream);
  const parse_outcome split = parse_pieces(bytes);
  ASSERT_EQ(whole.events.size(), 2u);
  ASSERT_EQ(split.events.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(split.events[i].same_content(whole.events[i]));
  }
  // Split between a block's final CR and LF, the LF opens the next block's range.
  EXPECT_EQ(split.events[0].end + 1, whole.events[0].end);
  EXPECT_EQ(split.events[1].begin, split.events[0].end);
  EXPECT_EQ(split.events[1].end + 1, whole.events[1].end);
}

TEST(SseParser, FailsOnABlockOverTheLimitAndStaysFailed) {
  EXPECT_FALSE(parse_pieces({"data: 0123456789\n\n"}, 18).failed);
  EXPECT_TRUE(parse_pieces({"data: 0123456789\n\n"}, 17).failed);
  EXPECT_TRUE(parse_pieces({"data: 0123", "456789\n", "\n"}, 17).failed);
  EXPECT_TRUE(parse_pieces({"data: 0123456789012345678901234567890"}, 17).failed);

  sse_parser p(8);
  EXPECT_EQ(p.feed("data: 0123456789").status, sse_status::error);
  EXPECT_FALSE(p.error_reason().empty());
  const sse_step again = p.feed("\n\n");
  EXPECT_EQ(again.status, sse_status::error);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(SseParser, BoundsTheBlockNotTheStream) {
  std::string stream;
  for (int i = 0; i < 100; ++i) stream += "data: 0123456789\n\n";
  const parse_outcome out = parse_pieces({stream}, 18);
  EXPECT_FALSE(out.failed);
  EXPECT_EQ(out.events.size(), 100u);
}

}  // namespace
}  // namespace mcpgate::net
