// jsonrpc_extractor against a naive baseline: simdjson DOM parse of the whole document, then
// lookups, copying the arguments out as a string. Both reuse one parser, as a shard would.
//
// Run: jsonrpc_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "net/mcp/jsonrpc.h"

namespace {

using mcpgate::net::jsonrpc_extractor;
using mcpgate::net::jsonrpc_result;
using mcpgate::net::jsonrpc_status;

// A typical tools/call as an MCP client sends it (~300 bytes).
constexpr std::string_view tools_call =
    R"({"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_issues",)"
    R"("arguments":{"repository":"acme/widgets","query":"label:bug state:open sort:updated",)"
    R"("limit":25,"include_comments":false,"fields":["title","url","author","labels"]},)"
    R"("_meta":{"progressToken":"c0ffee-17"}}})";

constexpr std::string_view tools_list =
    R"({"jsonrpc":"2.0","id":"list-1","method":"tools/list","params":{}})";

// The body as it would sit in a receive slot: followed by zeroed padding.
class padded_slot {
 public:
  explicit padded_slot(std::string_view json)
      : storage_(json.size() + mcpgate::net::jsonrpc_padding, '\0'), size_(json.size()) {
    std::memcpy(storage_.data(), json.data(), json.size());
  }
  const char* data() const { return storage_.data(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return storage_.size(); }

 private:
  std::string storage_;
  std::size_t size_;
};

void run_extractor(benchmark::State& state, std::string_view json) {
  jsonrpc_extractor extractor;
  const padded_slot slot(json);
  for (auto _ : state) {
    const jsonrpc_result r = extractor.extract({slot.data(), slot.size(), slot.capacity()});
    if (r.status != jsonrpc_status::ok) state.SkipWithError("extract failed");
    benchmark::DoNotOptimize(r.messages[0].method.data());
    benchmark::DoNotOptimize(r.messages[0].arguments);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * json.size()));
}

// What a first version would write: parse to a DOM (which copies every string into the
// parser's tape), look the fields up, and serialize arguments back into a string for the
// policy. It checks neither duplicates, nor escaped names, nor id ranges.
void run_dom_baseline(benchmark::State& state, std::string_view json) {
  simdjson::dom::parser parser;
  const padded_slot slot(json);
  for (auto _ : state) {
    simdjson::dom::element root;
    if (parser.parse(slot.data(), slot.size(), false).get(root) != simdjson::SUCCESS) {
      state.SkipWithError("parse failed");
    }
    std::string_view version;
    std::string_view method;
    std::string_view name;
    simdjson::dom::element id;
    simdjson::dom::element arguments;
    if (root["jsonrpc"].get(version) != simdjson::SUCCESS ||
        root["method"].get(method) != simdjson::SUCCESS ||
        root["id"].get(id) != simdjson::SUCCESS) {
      state.SkipWithError("lookup failed");
    }
    if (root["params"]["name"].get(name) != simdjson::SUCCESS) name = {};
    std::string arguments_text;
    if (root["params"]["arguments"].get(arguments) == simdjson::SUCCESS) {
      arguments_text = simdjson::minify(arguments);
    }
    benchmark::DoNotOptimize(version.data());
    benchmark::DoNotOptimize(method.data());
    benchmark::DoNotOptimize(name.data());
    benchmark::DoNotOptimize(arguments_text.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * json.size()));
}

void BM_extractor_tools_call(benchmark::State& state) {
  run_extractor(state, tools_call);
}
void BM_dom_baseline_tools_call(benchmark::State& state) {
  run_dom_baseline(state, tools_call);
}
void BM_extractor_tools_list(benchmark::State& state) {
  run_extractor(state, tools_list);
}
void BM_dom_baseline_tools_list(benchmark::State& state) {
  run_dom_baseline(state, tools_list);
}

BENCHMARK(BM_extractor_tools_call);
BENCHMARK(BM_dom_baseline_tools_call);
BENCHMARK(BM_extractor_tools_list);
BENCHMARK(BM_dom_baseline_tools_list);

}  // namespace
