#include "net/observe/metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

namespace mcpgate::net {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

struct promtool_result {
  int exit_code = -1;
  std::string output;
};

// `promtool check metrics` on the text, as a child process (Debian package prometheus).
promtool_result run_promtool(const std::string& text) {
  char path[] = "/tmp/metrics_test.XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
  promtool_result r;
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  unlink(path);
  return r;
}

std::shared_ptr<const metric_labels> sample_labels() {
  return std::make_shared<metric_labels>(std::vector<std::string>{"read_file", "write_file"},
                                         std::vector<std::string>{"readers", "admins"});
}

// The sequence of calls the expectations below describe, spread over two shards.
void record_known_sequence(metrics_registry& m) {
  auto labels = m.labels();
  label_id call = method_id("tools/call");
  label_id list = method_id("tools/list");
  label_id read = labels->tool_id("read_file");
  label_id write = labels->tool_id("write_file");
  label_id readers = labels->grant_id("readers");
  // shard 0: three allowed reads, one denied write, one tools/list
  for (int i = 0; i < 3; ++i) m.shard(0).count_request(call, read, readers, call_decision::allowed);
  m.shard(0).count_request(call, write, readers, call_decision::denied);
  m.shard(0).count_request(list, no_label, readers, call_decision::allowed);
  // shard 1: two allowed reads, a rate-limited read, an unknown tool, an unauthenticated call
  for (int i = 0; i < 2; ++i) m.shard(1).count_request(call, read, readers, call_decision::allowed);
  m.shard(1).count_request(call, read, readers, call_decision::rate_limited);
  m.shard(1).count_request(call, labels->tool_id("rm_rf"), readers, call_decision::denied);
  m.shard(1).count_request(method_id("initialize"), no_label, no_label,
                           call_decision::unauthenticated);
  m.shard(1).count_request(method_id("x/unknown"), no_label, labels->grant_id("nobody"),
                           call_decision::invalid);

  for (int i = 0; i < 6; ++i) m.shard(i % 2).count_upstream_status(200);
  m.shard(0).count_upstream_status(404);
  m.shard(1).count_upstream_status(503);
  m.shard(1).count_upstream_error(upstream_error_kind::connect);
  m.shard(0).count_upstream_error(upstream_error_kind::reset);

  m.shard(0).observe_gateway_us(40);          // <= 50us
  m.shard(1).observe_gateway_us(50);          // <= 50us (bounds are inclusive)
  m.shard(1).observe_gateway_us(700);         // <= 1ms
  m.shard(0).observe_gateway_us(20'000'000);  // above 10s
  m.shard(0).observe_upstream_us(1'500);      // <= 2.5ms
  m.shard(1).observe_upstream_us(2'500);      // <= 2.5ms

  m.shard(0).connection_opened();
  m.shard(0).connection_opened();
  m.shard(1).connection_opened();
  m.shard(0).connection_closed();
  m.shard(1).sse_stream_opened();
}

TEST(Metrics, RendersKnownSequenceSummedOverShards) {
  metrics_registry m(2, sample_labels());
  core::log_writer_stats audit0, audit1;
  audit0.bytes_written.add(1000);
  audit0.flushes.add(3);
  audit1.bytes_written.add(500);
  audit1.flushes.add(2);
  audit1.failures.add(7);
  audit1.dropped_lines.add(11);
  audit1.pending_bytes.set(4096);
  audit1.healthy.store(false);
  m.attach_audit(0, &audit0);
  m.attach_audit(1, &audit1);
  record_known_sequence(m);
  std::string text = m.render();

  const char* expected[] = {
      "# TYPE mcpgate_requests_total counter",
      R"(mcpgate_requests_total{method="tools/call",decision="allowed"} 5)",
      R"(mcpgate_requests_total{method="tools/call",decision="denied"} 2)",
      R"(mcpgate_requests_total{method="tools/call",decision="rate_limited"} 1)",
      R"(mcpgate_requests_total{method="tools/list",decision="allowed"} 1)",
      R"(mcpgate_requests_total{method="initialize",decision="unauthenticated"} 1)",
      R"(mcpgate_requests_total{method="other",decision="invalid"} 1)",
      R"(mcpgate_tool_calls_total{tool="read_file",decision="allowed"} 5)",
      R"(mcpgate_tool_calls_total{tool="read_file",decision="rate_limited"} 1)",
      R"(mcpgate_tool_calls_total{tool="write_file",decision="denied"} 1)",
      R"(mcpgate_tool_calls_total{tool="other",decision="denied"} 1)",
      R"(mcpgate_grant_requests_total{grant="readers",decision="allowed"} 6)",
      R"(mcpgate_grant_requests_total{grant="readers",decision="denied"} 2)",
      R"(mcpgate_grant_requests_total{grant="readers",decision="rate_limited"} 1)",
      R"(mcpgate_grant_requests_total{grant="other",decision="invalid"} 1)",
      R"(mcpgate_grant_requests_total{grant="none",decision="unauthenticated"} 1)",
      R"(mcpgate_upstream_responses_total{class="2xx"} 6)",
      R"(mcpgate_upstream_responses_total{class="4xx"} 1)",
      R"(mcpgate_upstream_responses_total{class="5xx"} 1)",
      R"(mcpgate_upstream_responses_total{class="3xx"} 0)",
      R"(mcpgate_upstream_errors_total{kind="connect"} 1)",
      R"(mcpgate_upstream_errors_total{kind="reset"} 1)",
      R"(mcpgate_upstream_errors_total{kind="timeout"} 0)",
      "# TYPE mcpgate_gateway_latency_seconds histogram",
      R"(mcpgate_gateway_latency_seconds_bucket{le="5e-05"} 2)",
      R"(mcpgate_gateway_latency_seconds_bucket{le="0.0005"} 2)",
      R"(mcpgate_gateway_latency_seconds_bucket{le="0.001"} 3)",
      R"(mcpgate_gateway_latency_seconds_bucket{le="10"} 3)",
      R"(mcpgate_gateway_latency_seconds_bucket{le="+Inf"} 4)",
      "mcpgate_gateway_latency_seconds_sum 20.000790",
      "mcpgate_gateway_latency_seconds_count 4",
      R"(mcpgate_upstream_latency_seconds_bucket{le="0.001"} 0)",
      R"(mcpgate_upstream_latency_seconds_bucket{le="0.0025"} 2)",
      "mcpgate_upstream_latency_seconds_sum 0.004000",
      "mcpgate_upstream_latency_seconds_count 2",
      "mcpgate_open_connections 2",
      "mcpgate_open_sse_streams 1",
      "mcpgate_audit_bytes_total 1500",
      "mcpgate_audit_flushes_total 5",
      "mcpgate_audit_failures_total 7",
      "mcpgate_audit_dropped_lines_total 11",
      "mcpgate_audit_pending_bytes 4096",
      "mcpgate_audit_unhealthy_shards 1",
      "mcpgate_internal_bugs_total 0",
  };
  for (const char* line : expected) EXPECT_TRUE(has_line(text, line)) << line << "\n---\n" << text;
  // Series that never happened are not rendered.
  EXPECT_EQ(text.find(R"(tool="write_file",decision="allowed")"), std::string::npos);
  // Unregistered names never become labels.
  EXPECT_EQ(text.find("rm_rf"), std::string::npos);
  EXPECT_EQ(text.find("nobody"), std::string::npos);
  EXPECT_EQ(text.find("x/unknown"), std::string::npos);
}

TEST(Metrics, PromtoolAcceptsTheExposition) {
  metrics_registry m(2, sample_labels());
  core::log_writer_stats audit;
  m.attach_audit(0, &audit);
  record_known_sequence(m);
  promtool_result r = run_promtool(m.render());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("problem"), std::string::npos) << r.output;
}

TEST(Metrics, PromtoolAcceptsAnEmptyRegistry) {
  metrics_registry m(
      1, std::make_shared<metric_labels>(std::vector<std::string>{}, std::vector<std::string>{}));
  promtool_result r = run_promtool(m.render());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Metrics, CountsEachServersMessagesByDecision) {
  metrics_registry m(2, sample_labels());
  EXPECT_EQ(m.render().find("mcpgate_server_requests_total"), std::string::npos)
      << "no servers named: no family";
  m.set_servers({"default", "python"});
  m.shard(0).count_server(1, call_decision::allowed);
  m.shard(1).count_server(1, call_decision::allowed);
  m.shard(1).count_server(1, call_decision::denied);
  m.shard(0).count_server(0, call_decision::allowed);
  m.shard(0).count_server(no_label, call_decision::invalid);  // a 404: no server
  std::string text = m.render();
  EXPECT_NE(text.find("mcpgate_server_requests_total{server=\"python\",decision=\"allowed\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("mcpgate_server_requests_total{server=\"python\",decision=\"denied\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("mcpgate_server_requests_total{server=\"default\",decision=\"allowed\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(text.find("decision=\"invalid\"} 1\nmcpgate_upstream"), std::string::npos);
}

TEST(Metrics, LabelValuesAreEscaped) {
  auto labels = std::make_shared<metric_labels>(
      std::vector<std::string>{"quote\"back\\slash\nnewline"}, std::vector<std::string>{});
  metrics_registry m(1, labels);
  m.shard(0).count_request(method_id("tools/call"), labels->tool_id("quote\"back\\slash\nnewline"),
                           no_label, call_decision::allowed);
  std::string text = m.render();
  EXPECT_TRUE(has_line(
      text, R"(mcpgate_tool_calls_total{tool="quote\"back\\slash\nnewline",decision="allowed"} 1)"))
      << text;
  promtool_result r = run_promtool(text);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(MetricLabels, IdsStayStableWhenToolsAreAdded) {
  auto first = std::make_shared<metric_labels>(std::vector<std::string>{"b", "a"},
                                               std::vector<std::string>{"g"});
  label_id a = first->tool_id("a");
  label_id b = first->tool_id("b");
  EXPECT_NE(a, other_label);
  EXPECT_NE(b, other_label);
  EXPECT_EQ(first->tool_id("c"), other_label);
  auto second = first->with_tools({"c", "a", "0"});
  EXPECT_EQ(second->tool_id("a"), a);
  EXPECT_EQ(second->tool_id("b"), b);
  EXPECT_NE(second->tool_id("c"), other_label);
  EXPECT_NE(second->tool_id("0"), other_label);
  EXPECT_EQ(second->tool_count(), 5u);  // other, b, a, c, 0
  EXPECT_EQ(second->grant_id("g"), first->grant_id("g"));
  EXPECT_EQ(second->tool_name(second->tool_id("c")), "c");
}

TEST(MetricLabels, NamesPastTheCapacityCountAsOther) {
  std::vector<std::string> many;
  for (size_t i = 0; i < metric_labels::max_tools + 10; ++i)
    many.push_back("t" + std::to_string(i));
  metric_labels labels(many, {});
  EXPECT_EQ(labels.tool_count(), metric_labels::max_tools);
  EXPECT_NE(labels.tool_id("t0"), other_label);
  EXPECT_EQ(labels.tool_id("t" + std::to_string(metric_labels::max_tools + 5)), other_label);
}

TEST(Metrics, MethodIdsCoverMcpMethodsAndNothingElse) {
  EXPECT_EQ(known_methods[method_id("tools/call")], "tools/call");
  EXPECT_EQ(known_methods[method_id("notifications/initialized")], "notifications/initialized");
  EXPECT_EQ(method_id("tools/delete_everything"), other_label);
  EXPECT_EQ(method_id("response"), other_label);  // only the proxy decides a message is one
  EXPECT_EQ(method_id(""), other_label);
}

TEST(Metrics, RenderWhileShardsWriteStaysConsistent) {
  metrics_registry m(2, sample_labels());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      m.shard(0).observe_gateway_us(100);
      m.shard(0).count_request(method_id("ping"), no_label, no_label, call_decision::allowed);
    }
  });
  for (int i = 0; i < 50; ++i) {
    std::string text = m.render();
    size_t inf = text.find("mcpgate_gateway_latency_seconds_bucket{le=\"+Inf\"} ");
    size_t count = text.find("mcpgate_gateway_latency_seconds_count ");
    ASSERT_NE(inf, std::string::npos);
    ASSERT_NE(count, std::string::npos);
    auto value_at = [&](size_t at) {
      size_t sp = text.find(' ', at);
      return std::stoull(text.substr(sp + 1, text.find('\n', sp) - sp - 1));
    };
    EXPECT_EQ(value_at(inf), value_at(count));
  }
  stop = true;
  writer.join();
}

}  // namespace
}  // namespace mcpgate::net
