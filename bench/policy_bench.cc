// decide() against a naive baseline: the seed policy from the issue, and a generated
// 1,000-tool policy with conditions. The baseline is what a first implementation would do:
// std::map lookups by std::string, conditions evaluated on a freshly parsed argument DOM,
// and a mutex-protected std::deque sliding log per counter.

#include <benchmark/benchmark.h>

#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "policy/access_config.h"
#include "policy/document.h"
#include "policy/engine.h"

namespace mcpgate::policy {
namespace {

constexpr std::string_view kSeedPolicy = R"({
  "clear_session": { "deny_if": [ { "conditions": [], "on_deny": "Blocked by default. Requires approval." } ] },
  "write_file": { "limits": [ { "counter": "write_file_per_hour", "window": "hour", "max": 30, "scope": "grant" } ] },
  "list_directory": { "limits": [ { "counter": "list_directory_per_minute", "window": "minute", "max": 60, "scope": "grant" } ] }
})";

constexpr int64_t kSecond = 1'000'000'000;
constexpr int kTools = 1000;

std::string generated_policy() {
  std::string text = R"({"version": "1", "default": "deny", "tools": {)";
  for (int i = 0; i < kTools; ++i) {
    if (i) text += ",";
    std::string n = std::to_string(i);
    text += "\"tool_" + n + "\": {";
    text += R"("require": [{"path": "args.reason", "op": "exists"}],)";
    text +=
        R"("deny_if": [{"conditions": [{"path": "args.path", "op": "starts_with", "value": "/etc/"}]},
                          {"conditions": [{"path": "args.amount", "op": "gt", "value": 10000},
                                          {"path": "args.env", "op": "in", "value": ["prod", "live"]}]}],)";
    text += R"("limits": [{"counter": "c_)" + n + R"(", "window": "second", "max": 1000}]})";
  }
  text += "}}";
  return text;
}

constexpr std::string_view kArgs =
    R"({"path": "/home/u/notes.txt", "amount": 250, "env": "dev", "reason": "weekly report"})";

std::string padded(std::string_view json) {
  std::string s(json);
  s.append(simdjson::SIMDJSON_PADDING, '\0');
  return s;
}

// --- decide() ---------------------------------------------------------------------------

void BM_decide_seed_write_file(benchmark::State& state) {
  counter_store store;
  auto config = make_access_config(
      std::make_shared<const document>(parse_document(kSeedPolicy, "seed.json")), store);
  decide_scratch scratch;
  subject who{config->anonymous(), ""};
  // Calls arrive just slower than 30 per hour, so every one is admitted and the counter
  // works at its limit (each admission reuses the slot that just aged out).
  const int64_t step = 3600 * kSecond / 30 + 1;
  int64_t now = kSecond;
  for (auto _ : state) {
    decision d = decide(who, {"tools/call", "write_file", ""}, now, scratch);
    benchmark::DoNotOptimize(d.outcome);
    now += step;
  }
}
BENCHMARK(BM_decide_seed_write_file);

void BM_decide_seed_clear_session_denied(benchmark::State& state) {
  counter_store store;
  auto config = make_access_config(
      std::make_shared<const document>(parse_document(kSeedPolicy, "seed.json")), store);
  decide_scratch scratch;
  subject who{config->anonymous(), ""};
  for (auto _ : state) {
    decision d = decide(who, {"tools/call", "clear_session", ""}, kSecond, scratch);
    benchmark::DoNotOptimize(d.outcome);
  }
}
BENCHMARK(BM_decide_seed_clear_session_denied);

void BM_decide_1000_tools_with_conditions(benchmark::State& state) {
  counter_store store;
  auto config = make_access_config(
      std::make_shared<const document>(parse_document(generated_policy(), "gen.json")), store);
  decide_scratch scratch;
  subject who{config->anonymous(), ""};
  std::vector<std::string> names;
  for (int i = 0; i < kTools; ++i) names.push_back("tool_" + std::to_string(i));
  std::string args = padded(kArgs);
  std::string_view args_view(args.data(), kArgs.size());
  std::mt19937 rng(1);
  int64_t now = kSecond;
  size_t i = 0;
  for (auto _ : state) {
    decision d = decide(who, {"tools/call", names[(i * 7919) % kTools], args_view}, now, scratch);
    benchmark::DoNotOptimize(d.outcome);
    ++i;
    now += 2000;  // each tool is called every 2 ms: 500 per second, under its max
  }
}
BENCHMARK(BM_decide_1000_tools_with_conditions);

// --- naive baseline ----------------------------------------------------------------------

struct naive_log {
  std::mutex mutex;
  std::deque<int64_t> times;
  int64_t max;
  int64_t window;

  bool admit(int64_t now) {
    std::lock_guard lock(mutex);
    while (!times.empty() && times.front() <= now - window) times.pop_front();
    if (static_cast<int64_t>(times.size()) >= max) return false;
    times.push_back(now);
    return true;
  }
};

struct naive_condition {
  std::string key;
  std::string op;
  std::string text;
  double number = 0;
  std::vector<std::string> set;
};

struct naive_tool {
  bool deny_always = false;
  std::vector<naive_condition> require;
  std::vector<std::vector<naive_condition>> deny_if;
  std::string counter;
};

struct naive_engine {
  std::map<std::string, naive_tool> tools;
  std::map<std::string, std::unique_ptr<naive_log>> logs;

  static bool holds(const naive_condition& c, simdjson::dom::element args) {
    auto v = args[c.key];
    if (c.op == "exists") return !v.error();
    if (v.error()) return false;
    if (c.op == "starts_with") {
      std::string_view s;
      return !v.get(s) && s.substr(0, c.text.size()) == c.text;
    }
    if (c.op == "gt") {
      double d;
      return !v.get(d) && d > c.number;
    }
    if (c.op == "in") {
      std::string_view s;
      if (v.get(s)) return false;
      for (const auto& m : c.set) {
        if (m == s) return true;
      }
    }
    return false;
  }

  bool decide(const std::string& tool, std::string_view args, int64_t now) {
    auto it = tools.find(tool);
    if (it == tools.end() || it->second.deny_always) return false;
    if (!it->second.require.empty() || !it->second.deny_if.empty()) {
      simdjson::dom::parser parser;  // a fresh parser per call
      auto root = parser.parse(std::string(args));
      if (root.error()) return false;
      for (const auto& c : it->second.require) {
        if (!holds(c, root.value_unsafe())) return false;
      }
      for (const auto& entry : it->second.deny_if) {
        bool all = true;
        for (const auto& c : entry) all = all && holds(c, root.value_unsafe());
        if (all) return false;
      }
    }
    if (it->second.counter.empty()) return true;
    return logs.at(it->second.counter)->admit(now);
  }
};

void BM_naive_seed_write_file(benchmark::State& state) {
  naive_engine engine;
  engine.tools["clear_session"].deny_always = true;
  engine.tools["write_file"].counter = "write_file_per_hour";
  engine.tools["list_directory"].counter = "list_directory_per_minute";
  engine.logs["write_file_per_hour"] = std::make_unique<naive_log>();
  engine.logs["write_file_per_hour"]->max = 30;
  engine.logs["write_file_per_hour"]->window = 3600 * kSecond;
  engine.logs["list_directory_per_minute"] = std::make_unique<naive_log>();
  engine.logs["list_directory_per_minute"]->max = 60;
  engine.logs["list_directory_per_minute"]->window = 60 * kSecond;
  const int64_t step = 3600 * kSecond / 30 + 1;
  int64_t now = kSecond;
  std::string_view tool = "write_file";  // arrives as a view from the wire
  for (auto _ : state) {
    bool ok = engine.decide(std::string(tool), "", now);
    benchmark::DoNotOptimize(ok);
    now += step;
  }
}
BENCHMARK(BM_naive_seed_write_file);

void BM_naive_1000_tools_with_conditions(benchmark::State& state) {
  naive_engine engine;
  std::vector<std::string> names;
  for (int i = 0; i < kTools; ++i) {
    std::string name = "tool_" + std::to_string(i);
    names.push_back(name);
    naive_tool& t = engine.tools[name];
    t.require.push_back({"reason", "exists", "", 0, {}});
    t.deny_if.push_back({{"path", "starts_with", "/etc/", 0, {}}});
    t.deny_if.push_back({{"amount", "gt", "", 10000, {}}, {"env", "in", "", 0, {"prod", "live"}}});
    t.counter = "c_" + std::to_string(i);
    auto log = std::make_unique<naive_log>();
    log->max = 1000;
    log->window = kSecond;
    engine.logs[t.counter] = std::move(log);
  }
  int64_t now = kSecond;
  size_t i = 0;
  for (auto _ : state) {
    bool ok = engine.decide(names[(i * 7919) % kTools], kArgs, now);
    benchmark::DoNotOptimize(ok);
    ++i;
    now += 2000;  // each tool is called every 2 ms: 500 per second, under its max
  }
}
BENCHMARK(BM_naive_1000_tools_with_conditions);

}  // namespace
}  // namespace mcpgate::policy
