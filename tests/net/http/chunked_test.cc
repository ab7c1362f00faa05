#include "net/http/chunked.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::net {
namespace {

using namespace std::string_literals;

const http_limits default_limits{};

struct decode_result {
  chunk_status status = chunk_status::need_more;
  std::size_t consumed = 0;
  std::string data;
  int error_status = 0;
};

// Feeds `pieces` in order, each until it is consumed or the decoder stops.
decode_result decode(const std::vector<std::string_view>& pieces,
                     const http_limits& limits = default_limits) {
  chunked_decoder d(limits);
  decode_result r;
  for (std::string_view piece : pieces) {
    const chunk_step step = d.feed(piece, &r.data);
    EXPECT_LE(step.consumed, piece.size());
    r.consumed += step.consumed;
    r.status = step.status;
    if (step.status != chunk_status::need_more) break;
    EXPECT_EQ(step.consumed, piece.size());
  }
  r.error_status = d.error_status();
  return r;
}

const std::string chunked_body =
    "5\r\nhello\r\n"
    "1A;name=\"value\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "a\r\n0123456789\r\n"
    "0\r\nX-Checksum: abc\r\nX-Other:\tv\r\n\r\n";
const std::string chunked_data = "helloabcdefghijklmnopqrstuvwxyz0123456789";

TEST(ChunkedDecoder, DecodesChunksExtensionsAndTrailers) {
  const decode_result r = decode({chunked_body});
  EXPECT_EQ(r.status, chunk_status::done);
  EXPECT_EQ(r.consumed, chunked_body.size());
  EXPECT_EQ(r.data, chunked_data);
}

TEST(ChunkedDecoder, DecodesTheSameBodySplitAtEveryBytePosition) {
  const std::string_view body = chunked_body;
  for (std::size_t split = 0; split <= body.size(); ++split) {
    const decode_result r = decode({body.substr(0, split), body.substr(split)});
    EXPECT_EQ(r.status, chunk_status::done) << "split " << split;
    EXPECT_EQ(r.consumed, body.size()) << "split " << split;
    EXPECT_EQ(r.data, chunked_data) << "split " << split;
  }
}

TEST(ChunkedDecoder, DecodesTheSameBodyFedOneByteAtATime) {
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < chunked_body.size(); ++i) {
    bytes.push_back(std::string_view(chunked_body).substr(i, 1));
  }
  const decode_result r = decode(bytes);
  EXPECT_EQ(r.status, chunk_status::done);
  EXPECT_EQ(r.data, chunked_data);
}

TEST(ChunkedDecoder, ScanOnlyModeConsumesTheSameBytes) {
  const std::string input = chunked_body + "GET / HTTP/1.1\r\n";
  chunked_decoder d;
  const chunk_step step = d.feed(input, nullptr);
  EXPECT_EQ(step.status, chunk_status::done);
  EXPECT_EQ(step.consumed, chunked_body.size());
  EXPECT_EQ(d.decoded_size(), chunked_data.size());
}

TEST(ChunkedDecoder, StopsAtTheEndOfTheBodyLeavingPipelinedBytes) {
  const std::string input = "3\r\nabc\r\n0\r\n\r\nPOST / HTTP/1.1\r\n";
  chunked_decoder d;
  std::string out;
  const chunk_step step = d.feed(input, &out);
  EXPECT_EQ(step.status, chunk_status::done);
  EXPECT_EQ(input.substr(step.consumed), "POST / HTTP/1.1\r\n");
  EXPECT_EQ(out, "abc");
  const chunk_step again = d.feed("more", &out);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_EQ(again.status, chunk_status::done);
  EXPECT_TRUE(d.done());
}

TEST(ChunkedDecoder, ReportsChunkBoundariesForCleanTermination) {
  chunked_decoder d;
  std::string out;
  EXPECT_TRUE(d.at_chunk_boundary());
  d.feed("5\r\nhel", &out);
  EXPECT_FALSE(d.at_chunk_boundary());
  d.feed("lo\r", &out);
  EXPECT_FALSE(d.at_chunk_boundary());
  d.feed("\n", &out);
  EXPECT_TRUE(d.at_chunk_boundary());
  d.feed("1", &out);
  EXPECT_FALSE(d.at_chunk_boundary());
  d.feed("\r\nx\r\n0\r\n", &out);
  EXPECT_FALSE(d.at_chunk_boundary());
  EXPECT_FALSE(d.done());
  d.feed("\r\n", &out);
  EXPECT_TRUE(d.done());
  EXPECT_FALSE(d.at_chunk_boundary());
}

TEST(ChunkedDecoder, AcceptsUpperAndLowerCaseHexAndLeadingZeros) {
  EXPECT_EQ(decode({"A\r\n0123456789\r\n0\r\n\r\n"}).data, "0123456789");
  EXPECT_EQ(decode({"a\r\n0123456789\r\n0\r\n\r\n"}).data, "0123456789");
  EXPECT_EQ(decode({"000000000000000a\r\n0123456789\r\n0\r\n\r\n"}).data, "0123456789");
}

void expect_chunked_rejected(std::string_view body, int status, std::string_view why,
                             const http_limits& limits = default_limits) {
  chunked_decoder d(limits);
  std::string out;
  const chunk_step step = d.feed(body, &out);
  EXPECT_EQ(step.status, chunk_status::error) << body;
  EXPECT_LE(step.consumed, body.size());
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(d.error_status(), status) << body;
  EXPECT_NE(d.error_reason().find(why), std::string_view::npos)
      << "reason '" << d.error_reason() << "' lacks '" << why << "' for " << body;
  EXPECT_EQ(d.feed("0\r\n\r\n", &out).consumed, 0u);
}

TEST(ChunkedDecoder, RejectsMalformedChunkSizes) {
  expect_chunked_rejected("g\r\n", 400, "invalid chunk size");
  expect_chunked_rejected("\r\n", 400, "invalid chunk size");
  expect_chunked_rejected(" 5\r\nhello\r\n", 400, "invalid chunk size");
  expect_chunked_rejected("5 \r\nhello\r\n", 400, "invalid chunk size");
  expect_chunked_rejected("5 ;a\r\nhello\r\n", 400, "invalid chunk size");
  expect_chunked_rejected("+5\r\nhello\r\n", 400, "invalid chunk size");
  expect_chunked_rejected("0x5\r\nhello\r\n", 400, "invalid chunk size");
}

TEST(ChunkedDecoder, RejectsChunkSizeWithTooManyDigits) {
  expect_chunked_rejected("00000000000000005\r\nhello\r\n", 400, "chunk size too long");
  expect_chunked_rejected("10000000000000000\r\n", 400, "chunk size too long");
}

TEST(ChunkedDecoder, RejectsBareLfAndBareCr) {
  expect_chunked_rejected("5\nhello\r\n", 400, "invalid chunk size");
  expect_chunked_rejected("5\rhello\r\n", 400, "bare CR");
  expect_chunked_rejected("5;a\nhello\r\n", 400, "control character");
  expect_chunked_rejected("5\r\nhello\n0\r\n\r\n", 400, "not followed by CRLF");
  expect_chunked_rejected("5\r\nhello\rx", 400, "not followed by CRLF");
  expect_chunked_rejected("0\r\n\n", 400, "malformed trailer");
  expect_chunked_rejected("0\r\n\rx", 400, "bare CR");
  expect_chunked_rejected("0\r\nA: b\nC: d\r\n\r\n", 400, "control character");
}

TEST(ChunkedDecoder, RejectsDataLongerThanItsChunkSize) {
  expect_chunked_rejected("3\r\nhello\r\n0\r\n\r\n", 400, "not followed by CRLF");
}

TEST(ChunkedDecoder, RejectsOverlongOrControlCharacterExtensions) {
  http_limits limits;
  limits.max_chunk_extension = 8;
  chunked_decoder fits(limits);
  EXPECT_EQ(fits.feed("1;abcdefgh\r\nx\r\n0\r\n\r\n", nullptr).status, chunk_status::done);
  expect_chunked_rejected("1;abcdefghi\r\nx\r\n", 400, "chunk extension too long", limits);
  expect_chunked_rejected("1;a\x01\r\nx\r\n", 400, "control character in chunk extension");
}

TEST(ChunkedDecoder, RejectsOversizedOrMalformedTrailers) {
  http_limits limits;
  limits.max_trailer = 16;
  chunked_decoder fits(limits);
  EXPECT_EQ(fits.feed("0\r\nA: 012345678\r\n\r\n", nullptr).status, chunk_status::done);
  expect_chunked_rejected("0\r\nA: 0123456789\r\n\r\n", 400, "trailer section too large", limits);
  expect_chunked_rejected("0\r\nA: b\r\n c\r\n\r\n", 400, "malformed trailer");
  expect_chunked_rejected("0\r\nNoColon\r\n\r\n", 400, "malformed trailer");
  expect_chunked_rejected("0\r\nA : b\r\n\r\n", 400, "malformed trailer");
  expect_chunked_rejected("0\r\nA: b\x7f\r\n\r\n", 400, "control character in trailer");
}

TEST(ChunkedDecoder, RejectsBodyPassingMaxBodyWith413BeforeTakingTheChunk) {
  http_limits limits;
  limits.max_body = 10;
  chunked_decoder exact(limits);
  EXPECT_EQ(exact.feed("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", nullptr).status,
            chunk_status::done);
  expect_chunked_rejected("5\r\nhello\r\n6\r\n", 413, "too large", limits);
  expect_chunked_rejected("ffffffffffffffff\r\n", 413, "too large", limits);
}

// ---- helpers ----

}  // namespace
}  // namespace mcpgate::net
